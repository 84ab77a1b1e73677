/*
 * bench/bench.h - what the benchmark programs share: a cheap clock, CPU
 * pinning, memory shared with children, and the JSON result line.
 *
 * Every program prints one JSON object per result on standard output, a
 * line each; bench/run gathers them:
 *
 *   {"case": "session.get", "system": "sesh", "params": {...},
 *    "p50_ns": .., "p95_ns": .., "p99_ns": .., "p999_ns": .., "max_ns": ..,
 *    "mean_ns": .., "count": .., "ops_per_s": ..,
 *    "curve": [[percentile, ns], ...]}
 *
 * Progress and errors go to standard error.
 */
#ifndef SESH_BENCH_H
#define SESH_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/hist.h"

/*
 * The clock: the TSC (rdtscp) where the kernel itself trusts it as its
 * clock source (constant and synchronised across cores), else
 * CLOCK_MONOTONIC. bench_clock_init() calibrates once; call it in the
 * parent before fork() so every process converts ticks the same way, and
 * timestamps taken on different cores compare.
 */
void bench_clock_init(void);
uint64_t bench_now(void);		/* ticks */
uint64_t bench_ns(uint64_t ticks);	/* ticks to ns */
uint64_t bench_ticks(uint64_t ns);	/* ns to ticks */
const char *bench_clock_name(void);	/* "tsc" or "clock_gettime" */
double bench_clock_cost_ns(void);	/* cost of one bench_now() */

/* Nanoseconds of CLOCK_MONOTONIC. */
uint64_t bench_mono_ns(void);

/* Spin until bench_now() reaches @p t; returns the tick it saw. */
uint64_t bench_wait_until(uint64_t t);

/* Pin the calling process to CPU @p cpu modulo the CPUs it may use.
 * Returns 0, or -errno (the run goes on unpinned). */
int bench_pin(int cpu);
/* CPUs the process may run on. */
int bench_ncpu(void);

/* Zeroed memory shared with children forked after the call; exits on
 * failure. */
void *bench_shared(size_t len);
void bench_unshare(void *p, size_t len);

/* An error that ends the program: message to stderr, exit 1. */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2),
							noreturn));

/*
 * Print one result line. @p params is the inside of the params object,
 * e.g. "\"size\": 64, \"mode\": \"spin\"" (may be ""). @p h may be NULL
 * (no percentiles: they print as null). @p ops_per_s < 0 prints null.
 */
void bench_emit(const char *case_, const char *system, const char *params,
		const struct hist *h, double ops_per_s);

/* A unique name for this run's domains and files: "<prefix>-<pid>". */
const char *bench_name(const char *prefix);

#endif
