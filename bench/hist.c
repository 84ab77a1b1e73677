/*
 * bench/hist.c - the log-linear histogram of hist.h.
 *
 * Bucket index of a value v: below 2^(SUB_BITS+1) the value itself. Above,
 * with e = floor(log2 v) - SUB_BITS, the top SUB_BITS+1 bits of v (a
 * number in [2^SUB_BITS, 2^(SUB_BITS+1))) pick one of 2^SUB_BITS
 * sub-buckets of row e, each 2^e wide.
 */
#include "bench/hist.h"

#include <math.h>
#include <string.h>

#define SUB (1u << HIST_SUB_BITS)
#define TOP (((uint64_t)1 << HIST_MAX_BITS) - 1)

void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

size_t hist_index(uint64_t v)
{
	unsigned e;

	if (v > TOP)
		v = TOP;
	if (v < 2 * SUB)
		return (size_t)v;
	e = (unsigned)(63 - __builtin_clzll(v)) - HIST_SUB_BITS;
	return 2 * SUB + (size_t)(e - 1) * SUB + (size_t)((v >> e) - SUB);
}

uint64_t hist_lowest(size_t idx)
{
	size_t row;

	if (idx < 2 * SUB)
		return idx;
	row = (idx - 2 * SUB) / SUB + 1;
	return (uint64_t)(SUB + (idx - 2 * SUB) % SUB) << row;
}

uint64_t hist_highest(size_t idx)
{
	size_t row;

	if (idx < 2 * SUB)
		return idx;
	row = (idx - 2 * SUB) / SUB + 1;
	return hist_lowest(idx) + ((uint64_t)1 << row) - 1;
}

void hist_add_n(struct hist *h, uint64_t v, uint64_t k)
{
	if (k == 0)
		return;
	h->n[hist_index(v)] += k;
	h->count += k;
	h->sum += (double)v * (double)k;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void hist_add(struct hist *h, uint64_t v)
{
	hist_add_n(h, v, 1);
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	size_t i;

	if (src->count == 0)
		return;
	for (i = 0; i < HIST_BUCKETS; i++)
		dst->n[i] += src->n[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t hist_pct(const struct hist *h, double p)
{
	uint64_t want, seen = 0, v;
	size_t i;

	if (h->count == 0)
		return 0;
	if (p <= 0)
		return h->min;
	if (p >= 100)
		return h->max;
	/* Rounded to the nearest rank, as HdrHistogram does: p% of a count
	 * is seldom an exact double. */
	want = (uint64_t)llround(p / 100.0 * (double)h->count);
	if (want == 0)
		want = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->n[i];
		if (seen >= want)
			break;
	}
	v = hist_highest(i < HIST_BUCKETS ? i : HIST_BUCKETS - 1);
	if (v > h->max)
		v = h->max;
	if (v < h->min)
		v = h->min;
	return v;
}

double hist_mean(const struct hist *h)
{
	return h->count ? h->sum / (double)h->count : 0;
}

void hist_curve(const struct hist *h,
		void (*fn)(double pct, uint64_t v, void *arg), void *arg)
{
	double limit, pct;
	int k;

	if (h->count == 0)
		return;
	/* 1/(1-p) can be resolved up to the count: past it the percentile
	 * is the max. */
	limit = 10.0 * log10((double)h->count) - 1e-9;
	for (k = 0; k < limit; k++) {
		pct = 100.0 * (1.0 - pow(10.0, -k / 10.0));
		fn(pct, hist_pct(h, pct), arg);
	}
	fn(100.0, h->max, arg);
}
