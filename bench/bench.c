/*
 * bench/bench.c - the shared parts of the benchmark programs (bench.h).
 */
#define _GNU_SOURCE
#include "bench/bench.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define HAVE_TSC 1
#endif

static int use_tsc;
static double ns_per_tick = 1.0;
static double tick_per_ns = 1.0;
static double clock_cost;

uint64_t bench_mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

uint64_t bench_now(void)
{
#ifdef HAVE_TSC
	if (use_tsc) {
		unsigned aux;

		/* rdtscp waits for the instructions before it. */
		return __rdtscp(&aux);
	}
#endif
	return bench_mono_ns();
}

uint64_t bench_ns(uint64_t ticks)
{
	return use_tsc ? (uint64_t)((double)ticks * ns_per_tick) : ticks;
}

uint64_t bench_ticks(uint64_t ns)
{
	return use_tsc ? (uint64_t)((double)ns * tick_per_ns) : ns;
}

const char *bench_clock_name(void)
{
	return use_tsc ? "tsc" : "clock_gettime";
}

double bench_clock_cost_ns(void)
{
	return clock_cost;
}

/* The kernel's own clock source: "tsc" means it found the TSC constant
 * and synchronised. */
static int kernel_uses_tsc(void)
{
	char buf[32] = "";
	FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/"
			"current_clocksource", "r");

	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return strncmp(buf, "tsc", 3) == 0;
}

void bench_clock_init(void)
{
	uint64_t t0, n0, t1, n1, a, b;
	int i;
	const int reps = 100000;

#ifdef HAVE_TSC
	use_tsc = kernel_uses_tsc() && getenv("BENCH_NO_TSC") == NULL;
	if (use_tsc) {
		unsigned aux;
		struct timespec d = {0, 100000000};

		n0 = bench_mono_ns();
		t0 = __rdtscp(&aux);
		nanosleep(&d, NULL);
		n1 = bench_mono_ns();
		t1 = __rdtscp(&aux);
		if (t1 <= t0 || n1 <= n0) {
			use_tsc = 0;
		} else {
			ns_per_tick = (double)(n1 - n0) / (double)(t1 - t0);
			tick_per_ns = 1.0 / ns_per_tick;
		}
	}
#endif
	a = bench_mono_ns();
	for (i = 0; i < reps; i++)
		(void)bench_now();
	b = bench_mono_ns();
	clock_cost = (double)(b - a) / reps;
}

uint64_t bench_wait_until(uint64_t t)
{
	uint64_t now;

	while ((now = bench_now()) < t)
		;
	return now;
}

int bench_ncpu(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return 1;
	return CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1;
}

int bench_pin(int cpu)
{
	cpu_set_t set, one;
	int i, k = 0, n;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return -errno;
	n = CPU_COUNT(&set);
	if (n <= 0)
		return -EINVAL;
	cpu %= n;
	for (i = 0; i < CPU_SETSIZE; i++) {
		if (!CPU_ISSET(i, &set))
			continue;
		if (k++ == cpu) {
			CPU_ZERO(&one);
			CPU_SET(i, &one);
			if (sched_setaffinity(0, sizeof(one), &one) != 0)
				return -errno;
			return 0;
		}
	}
	return -EINVAL;
}

void *bench_shared(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		bench_die("mmap %zu bytes: %s", len, strerror(errno));
	return p;
}

void bench_unshare(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

void bench_die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

struct curve_out {
	int first;
};

static void curve_point(double pct, uint64_t v, void *arg)
{
	struct curve_out *c = arg;

	printf("%s[%.6g, %llu]", c->first ? "" : ", ", pct,
	       (unsigned long long)v);
	c->first = 0;
}

void bench_emit(const char *case_, const char *system, const char *params,
		const struct hist *h, double ops_per_s)
{
	struct curve_out c = {1};

	printf("{\"case\": \"%s\", \"system\": \"%s\", \"params\": {%s}",
	       case_, system, params ? params : "");
	if (h && h->count) {
		printf(", \"p50_ns\": %llu, \"p95_ns\": %llu, "
		       "\"p99_ns\": %llu, \"p999_ns\": %llu, \"max_ns\": %llu",
		       (unsigned long long)hist_pct(h, 50),
		       (unsigned long long)hist_pct(h, 95),
		       (unsigned long long)hist_pct(h, 99),
		       (unsigned long long)hist_pct(h, 99.9),
		       (unsigned long long)h->max);
		printf(", \"mean_ns\": %.1f, \"count\": %llu", hist_mean(h),
		       (unsigned long long)h->count);
	} else {
		printf(", \"p50_ns\": null, \"p95_ns\": null, "
		       "\"p99_ns\": null, \"p999_ns\": null, \"max_ns\": null,"
		       " \"mean_ns\": null, \"count\": 0");
	}
	if (ops_per_s >= 0)
		printf(", \"ops_per_s\": %.0f", ops_per_s);
	else
		printf(", \"ops_per_s\": null");
	printf(", \"curve\": [");
	if (h && h->count)
		hist_curve(h, curve_point, &c);
	printf("]}\n");
	fflush(stdout);
}

const char *bench_name(const char *prefix)
{
	static char buf[64];

	snprintf(buf, sizeof(buf), "%s-%ld", prefix, (long)getpid());
	return buf;
}
