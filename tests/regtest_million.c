/*
 * regtest_million.c - one domain holding 1,000,000 sessions (`make
 * regtest`): fill it to capacity, read every session back, refuse the
 * next one cleanly, validate the index, measure the memory each session
 * costs, and empty it again.
 *
 * Index overhead is measured as the memory the segment commits (st_blocks
 * of its tmpfs file) per session, with sessions that carry no metadata:
 * the record's allocator block, its state word, the bucket and the share
 * of the stripe and namespace tables. The bar is 512 bytes.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sesh.h"

#define N	     1000000u
#define OVERHEAD_MAX 512.0

static int failures;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr,                                        \
				"regtest_million: FAIL: " __VA_ARGS__);        \
			fputc('\n', stderr);                                   \
			failures++;                                            \
		}                                                              \
	} while (0)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t committed(sesh_t *d)
{
	sesh_info_t in;

	return sesh_info(d, &in) == 0 ? in.committed_bytes : 0;
}

static void id_of(char *buf, size_t n, unsigned i)
{
	/* 32 characters, like a generated id. */
	snprintf(buf, n, "%08x-%023u", i * 2654435761u, i);
}

int main(void)
{
	char name[64], id[SESH_ID_MAX + 1], user[16];
	sesh_config_t cfg;
	sesh_check_t chk;
	sesh_session_t s;
	sesh_t *d = NULL;
	uint64_t base, full;
	double t0, t_create, t_get, per;
	size_t count;
	unsigned i;
	int rc;

	snprintf(name, sizeof(name), "regtest-million-%d", (int)getpid());
	sesh_config_init(&cfg);
	cfg.max_sessions = N;
	cfg.stream_bytes = 4096; /* streams are not what this measures */
	rc = sesh_open(name, NULL, &cfg, SESH_CREATE | SESH_EXCL, &d);
	if (rc != 0) {
		fprintf(stderr, "regtest_million: sesh_open: %s\n",
			sesh_strerror(rc));
		return 1;
	}
	/* The namespace entry and the first pages exist before we count. */
	rc = sesh_session_create(d, "warm-up", NULL, NULL, 0, 0, NULL);
	CHECK(rc == 0, "warm-up create: %s", sesh_strerror(rc));
	CHECK(sesh_session_delete(d, "warm-up") == 0, "warm-up delete");
	base = committed(d);

	t0 = now_s();
	for (i = 0; i < N; i++) {
		id_of(id, sizeof(id), i);
		snprintf(user, sizeof(user), "u%u", i % 1000);
		rc = sesh_session_create(d, id, user, NULL, 0, 0, NULL);
		if (rc != 0) {
			CHECK(0, "create %u: %s", i, sesh_strerror(rc));
			break;
		}
	}
	t_create = now_s() - t0;
	full = committed(d);

	rc = sesh_session_create(d, "one-too-many", NULL, NULL, 0, 0, NULL);
	CHECK(rc == -ENOSPC, "create past capacity: %s, want -ENOSPC",
	      sesh_strerror(rc));
	CHECK(sesh_session_count(d, &count) == 0 && count == N,
	      "count %zu, want %u", count, N);

	t0 = now_s();
	for (i = 0; i < N; i++) {
		id_of(id, sizeof(id), i);
		snprintf(user, sizeof(user), "u%u", i % 1000);
		rc = sesh_session_get(d, id, user, &s, NULL, 0);
		if (rc != 0 || strcmp(s.id, id) != 0) {
			CHECK(0, "get %u: %s", i, sesh_strerror(rc));
			break;
		}
	}
	t_get = now_s() - t0;

	rc = sesh_check(d, &chk);
	CHECK(rc == 0, "sesh_check: %s (%zu problems: %s)", sesh_strerror(rc),
	      chk.problems, chk.first_problem);
	CHECK(chk.sessions == N, "check saw %zu sessions", chk.sessions);

	per = (double)(full - base) / N;
	printf("regtest_million: %u sessions: create %.0f ns/op, get %.0f "
	       "ns/op (single thread, one run; see make bench for "
	       "percentiles)\n",
	       N, t_create * 1e9 / N, t_get * 1e9 / N);
	printf("regtest_million: overhead %.1f bytes/session committed "
	       "(index record, buckets, stream ring header; 32-byte ids, no "
	       "metadata, no message published; bar %.0f)\n",
	       per, OVERHEAD_MAX);
	CHECK(per <= OVERHEAD_MAX, "overhead %.1f bytes > %.0f", per,
	      OVERHEAD_MAX);

	for (i = 0; i < N; i++) {
		id_of(id, sizeof(id), i);
		rc = sesh_session_delete(d, id);
		if (rc != 0) {
			CHECK(0, "delete %u: %s", i, sesh_strerror(rc));
			break;
		}
	}
	CHECK(sesh_session_count(d, &count) == 0 && count == 0,
	      "count after deleting all: %zu", count);
	CHECK(sesh_recover(d) == 0, "recover");
	rc = sesh_check(d, &chk);
	CHECK(rc == 0 && chk.sessions == 0 && chk.blocks_live == 0 &&
		      chk.blocks_retired == 0,
	      "after emptying: %s, %zu sessions, %zu live, %zu retired",
	      sesh_strerror(rc), chk.sessions, chk.blocks_live,
	      chk.blocks_retired);

	sesh_close(d);
	sesh_unlink(name);
	printf("regtest_million: %s\n", failures ? "FAILED" : "passed");
	return failures ? 1 : 0;
}
