/*
 * bench/hist.h - a log-linear latency histogram (HDR-style).
 *
 * Values 0..255 are counted exactly; above that each power of two is cut
 * into 128 equal sub-buckets, so a recorded value is known to within
 * 1/128 (0.8 %) of itself. Values up to 2^42 ns (73 minutes) are kept;
 * larger ones count in the top bucket, and max stays exact.
 *
 * The struct holds no pointer, so it can live in a MAP_SHARED mapping and
 * be filled by a child process and read by its parent.
 */
#ifndef SESH_BENCH_HIST_H
#define SESH_BENCH_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_MAX_BITS 42
#define HIST_BUCKETS                                                      \
	((2u << HIST_SUB_BITS) +                                          \
	 (HIST_MAX_BITS - HIST_SUB_BITS - 1) * (1u << HIST_SUB_BITS))

struct hist {
	uint64_t count; /* values recorded */
	uint64_t min;	/* exact; UINT64_MAX when empty */
	uint64_t max;	/* exact */
	double sum;	/* for the mean */
	uint64_t n[HIST_BUCKETS];
};

/** Empty @p h. */
void hist_init(struct hist *h);

/** Record one value (nanoseconds, or any unit). */
void hist_add(struct hist *h, uint64_t v);

/** Record @p v @p k times. */
void hist_add_n(struct hist *h, uint64_t v, uint64_t k);

/** Add every value of @p src to @p dst. */
void hist_merge(struct hist *dst, const struct hist *src);

/**
 * The value at percentile @p p (0..100): the highest value of the bucket
 * holding the k-th smallest value, k = p% of the count rounded to the
 * nearest (at least 1), clamped to [min, max]. 0 when empty.
 */
uint64_t hist_pct(const struct hist *h, double p);

/** Mean of the recorded values; 0 when empty. */
double hist_mean(const struct hist *h);

/**
 * The percentile curve, for plotting: calls @p fn with (percentile, value)
 * at points spaced evenly in log10(1 / (1 - p)) (ten to a decade: 0 %,
 * 20.6 %, ..., 90 %, ..., 99 %, ...) up to the last point the count can
 * resolve, then (100, max).
 */
void hist_curve(const struct hist *h,
		void (*fn)(double pct, uint64_t v, void *arg), void *arg);

/* Bucket arithmetic, exposed for the test. */
size_t hist_index(uint64_t v);
uint64_t hist_lowest(size_t idx);  /* smallest value of bucket idx */
uint64_t hist_highest(size_t idx); /* largest value of bucket idx */

#endif
