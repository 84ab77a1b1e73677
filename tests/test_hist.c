/*
 * test_hist.c - the benchmarks' log-linear histogram: bucket arithmetic,
 * the error bound, percentiles of known data, merging and the curve.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "bench/hist.h"

static struct hist h1, h2, h3;

/* Every bucket's range starts where the last one ended, and the index of
 * both ends is the bucket itself. */
static void test_buckets_tile(void **state)
{
	size_t i;

	assert_int_equal(hist_index(0), 0);
	assert_int_equal(hist_lowest(0), 0);
	for (i = 0; i < HIST_BUCKETS; i++) {
		assert_int_equal(hist_index(hist_lowest(i)), i);
		assert_int_equal(hist_index(hist_highest(i)), i);
		assert_true(hist_highest(i) >= hist_lowest(i));
		if (i + 1 < HIST_BUCKETS)
			assert_int_equal(hist_lowest(i + 1),
					 hist_highest(i) + 1);
	}
	assert_int_equal(hist_highest(HIST_BUCKETS - 1),
			 ((uint64_t)1 << HIST_MAX_BITS) - 1);
}

/* A value is known to within 1/128 of itself. */
static void test_error_bound(void **state)
{
	uint64_t x = 88172645463325252ull, v, hi;
	int i;

	for (i = 0; i < 1000000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		v = x >> (22 + i % 42);
		if (v >= (uint64_t)1 << HIST_MAX_BITS)
			continue;
		hi = hist_highest(hist_index(v));
		assert_true(hi >= v);
		assert_true(hi - v <= v / 128);
		assert_true(hist_lowest(hist_index(v)) <= v);
	}
}

static void test_percentiles(void **state)
{
	uint64_t v;

	hist_init(&h1);
	assert_int_equal(hist_pct(&h1, 50), 0);
	assert_int_equal(hist_pct(&h1, 100), 0);
	for (v = 1; v <= 10000; v++)
		hist_add(&h1, v);
	assert_int_equal(h1.count, 10000);
	assert_int_equal(h1.min, 1);
	assert_int_equal(h1.max, 10000);
	assert_true(hist_pct(&h1, 50) >= 5000);
	assert_true(hist_pct(&h1, 50) <= 5000 + 5000 / 128);
	assert_true(hist_pct(&h1, 99) >= 9900);
	assert_true(hist_pct(&h1, 99) <= 9900 + 9900 / 128);
	assert_true(hist_pct(&h1, 99.9) >= 9990);
	assert_int_equal(hist_pct(&h1, 100), 10000);
	assert_int_equal(hist_pct(&h1, 0), 1);
	/* Small values are exact. */
	assert_int_equal(hist_pct(&h1, 1), 100);
	assert_true(hist_mean(&h1) > 5000.4 && hist_mean(&h1) < 5000.6);

	/* A tail: 999 fast values and one slow one. */
	hist_init(&h2);
	hist_add_n(&h2, 100, 999);
	hist_add(&h2, 1000000);
	assert_int_equal(hist_pct(&h2, 99.9), 100);
	assert_true(hist_pct(&h2, 99.95) >= 1000000 - 1000000 / 128);
	assert_int_equal(h2.max, 1000000);
	assert_int_equal(hist_pct(&h2, 100), 1000000);
}

static void test_merge_and_clamp(void **state)
{
	uint64_t v;

	hist_init(&h1);
	hist_init(&h2);
	hist_init(&h3);
	for (v = 0; v < 50000; v += 7) {
		hist_add(v % 2 ? &h1 : &h2, v * 31);
		hist_add(&h3, v * 31);
	}
	hist_merge(&h1, &h2);
	assert_int_equal(h1.count, h3.count);
	assert_int_equal(h1.min, h3.min);
	assert_int_equal(h1.max, h3.max);
	assert_memory_equal(h1.n, h3.n, sizeof(h1.n));
	assert_int_equal(hist_pct(&h1, 99), hist_pct(&h3, 99));

	/* Past the top bucket: counted there, max exact. */
	hist_add(&h1, UINT64_MAX);
	assert_int_equal(h1.max, UINT64_MAX);
	assert_int_equal(h1.n[HIST_BUCKETS - 1], 1);
	assert_int_equal(hist_pct(&h1, 100), UINT64_MAX);
}

struct pts {
	int n;
	double last_pct;
	uint64_t last_v;
	int ordered;
};

static void point(double pct, uint64_t v, void *arg)
{
	struct pts *p = arg;

	if (p->n && (pct <= p->last_pct || v < p->last_v))
		p->ordered = 0;
	p->n++;
	p->last_pct = pct;
	p->last_v = v;
}

static void test_curve(void **state)
{
	struct pts p = {0, 0, 0, 1};
	uint64_t v;

	hist_init(&h1);
	hist_curve(&h1, point, &p);
	assert_int_equal(p.n, 0);
	for (v = 1; v <= 100000; v++)
		hist_add(&h1, v);
	hist_curve(&h1, point, &p);
	assert_true(p.ordered);
	/* 0 .. 99.999 % in tenths of a decade, then the max. */
	assert_int_equal(p.n, 51);
	assert_true(p.last_pct == 100.0);
	assert_int_equal(p.last_v, 100000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets_tile),
		cmocka_unit_test(test_error_bound),
		cmocka_unit_test(test_percentiles),
		cmocka_unit_test(test_merge_and_clamp),
		cmocka_unit_test(test_curve),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
