/*
 * test_reap.c - the reaper and health: expiry by sesh_reap() with short
 * TTLs, bounded passes, two reapers at once, reapers killed or stopped at
 * each point of a pass, recovery of what killed workers held (records,
 * stream claims, subscriptions), churn with SIGKILLs followed by reaping
 * with no capacity leaked, and what sesh_health() and sesh_stats() say.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#include <cmocka.h>

#include "gc/epoch.h"
#include "gc/reap.h"
#include "index/index.h"
#include "ring/ring.h"

/* A reap that must succeed: retried while another pass holds the lease. */
static void reap_ok(sesh_t *d, sesh_reap_report_t *r)
{
	sesh_reap_report_t tmp;
	double end = tu_mono_s() + 10;
	int rc;

	while ((rc = sesh_reap(d, r ? r : &tmp)) == -EBUSY && tu_mono_s() < end)
		tu_sleep_ms(1);
	if (rc != 0)
		fail_msg("sesh_reap: %s", sesh_strerror(rc));
}

/* Passes until the recovery walk under way is done (each looks at a
 * bounded share of it); *sum adds up what they did. Returns how many. */
static int reap_walk(sesh_t *d, sesh_reap_report_t *sum)
{
	sesh_reap_report_t r;
	int n = 0;

	memset(sum, 0, sizeof(*sum));
	do {
		reap_ok(d, &r);
		n++;
		sum->processes_recovered += r.processes_recovered;
		sum->recovery_walk |= r.recovery_walk;
		sum->holes_unblocked += r.holes_unblocked;
		sum->sessions_expired += r.sessions_expired;
		if (!r.recovery_walk)
			break;
	} while (!r.recovery_done && n < 100);
	assert_true(!r.recovery_walk || r.recovery_done);
	return n;
}

static void check_clean(sesh_t *d)
{
	sesh_check_t c;
	int rc = sesh_check(d, &c);

	if (rc != 0)
		fail_msg("sesh_check: %s: %s", sesh_strerror(rc),
			 c.first_problem);
	assert_int_equal(c.blocks_dead, 0);
}

static size_t count(sesh_t *d)
{
	size_t n = 0;

	assert_int_equal(sesh_session_count(d, &n), 0);
	return n;
}

static void mkid(char *buf, size_t n, const char *tag, int i)
{
	snprintf(buf, n, "%s-%d", tag, i);
}

/* --- expiry ----------------------------------------------------------------
 */

struct sub_arg {
	sesh_t *d;
	const char *id;
	int rc;
};

static void *subscriber(void *p)
{
	struct sub_arg *a = p;
	sesh_stream_t *s;
	sesh_msg_t m;
	int rc;

	a->rc = sesh_subscribe(a->d, a->id, SESH_FROM_OLDEST, &s);
	if (a->rc != 0)
		return NULL;
	while ((rc = sesh_stream_next(s, &m, 10000)) == 0)
		;
	a->rc = rc;
	sesh_stream_close(s);
	return NULL;
}

/* Short-TTL sessions are removed by a pass once idle past their TTL, with
 * their streams; long-TTL ones stay; the counters say so. */
static void test_expiry(void **state)
{
	char name[64], id[32];
	sesh_reap_report_t r;
	sesh_stats_t st;
	struct sub_arg a;
	pthread_t t;
	sesh_t *d;
	int i;

	(void)state;
	tu_name(name, sizeof(name), "expiry");
	d = tu_create(name, NULL);
	for (i = 0; i < 20; i++) {
		mkid(id, sizeof(id), "short", i);
		assert_int_equal(
			sesh_session_create(d, id, "u", "m", 1, 1, NULL), 0);
		mkid(id, sizeof(id), "long", i);
		assert_int_equal(
			sesh_session_create(d, id, "u", NULL, 0, 3600, NULL),
			0);
	}
	assert_int_equal(sesh_publish(d, "short-0", "x", 1, NULL), 0);
	a.d = d;
	a.id = "short-0";
	a.rc = 1;
	assert_int_equal(pthread_create(&t, NULL, subscriber, &a), 0);

	/* Before the TTL: nothing to expire. */
	reap_ok(d, &r);
	assert_int_equal(r.sessions_expired, 0);
	assert_int_equal(r.recovery_walk, 0);
	assert_true(r.pass >= 1);
	assert_int_equal(count(d), 40);

	tu_sleep_ms(1300);
	/* Idle past the TTL: gone for readers already (lazy expiry), still
	 * counted until a pass removes them. */
	assert_int_equal(sesh_session_get(d, "short-3", NULL, NULL, NULL, 0),
			 -ENOENT);
	assert_int_equal(count(d), 40);
	reap_ok(d, &r);
	assert_int_equal(r.sessions_expired, 20);
	assert_true(r.sweep_wrapped);
	assert_int_equal(count(d), 20);
	assert_int_equal(sesh_session_get(d, "long-3", NULL, NULL, NULL, 0), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(a.rc, -ENOENT);

	/* The id can be created again; its ids start above the old ones. */
	assert_int_equal(
		sesh_session_create(d, "short-0", NULL, NULL, 0, 60, NULL), 0);
	assert_int_equal(sesh_stats(d, &st), 0);
	assert_int_equal(st.sessions_created, 41);
	assert_int_equal(st.sessions_expired, 20);
	assert_int_equal(st.sessions_deleted, 0);
	assert_true(st.reaper_passes >= 2);
	assert_int_equal(sesh_session_delete(d, "short-0"), 0);
	assert_int_equal(sesh_stats(d, &st), 0);
	assert_int_equal(st.sessions_deleted, 1);
	check_clean(d);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* A pass looks at no more than 262144 buckets; the next goes on from
 * there, and a round of the whole table wraps. */
static void test_budget(void **state)
{
	sesh_config_t cfg;
	sesh_reap_report_t r;
	char name[64];
	sesh_t *d;

	(void)state;
	sesh_config_init(&cfg);
	cfg.max_sessions = 200000; /* 524288 buckets */
	cfg.stream_bytes = 4096;
	tu_name(name, sizeof(name), "budget");
	d = tu_create(name, &cfg);
	assert_int_equal(sesh_session_create(d, "a", NULL, NULL, 0, 1, NULL),
			 0);
	reap_ok(d, &r);
	assert_int_equal(r.buckets_scanned, 262144);
	assert_false(r.sweep_wrapped);
	reap_ok(d, &r);
	assert_int_equal(r.buckets_scanned, 262144);
	assert_true(r.sweep_wrapped);
	tu_sleep_ms(1200);
	reap_ok(d, &r);
	reap_ok(d, &r);
	assert_int_equal(count(d), 0);

	/* The recovery walk after a death is bounded too: it goes on over
	 * several passes, each on at most 262144 blocks, then as many
	 * rings. */
	{
		pid_t parent = getpid(), pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			sesh_t *c = NULL;

			tu_die_with(parent);
			if (sesh_open(name, NULL, NULL, 0, &c) != 0)
				_exit(2);
			raise(SIGKILL);
		}
		assert_int_equal(tu_wait(pid), 128 + SIGKILL);
	}
	reap_ok(d, &r);
	assert_int_equal(r.processes_recovered, 1);
	assert_int_equal(r.recovery_walk, 1);
	assert_int_equal(r.recovery_done, 0);
	assert_true(reap_walk(d, &r) >= 1);
	assert_int_equal(sesh_reap(d, &r), 0);
	assert_int_equal(r.recovery_walk, 0);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- the lease --------------------------------------------------------------
 */

static int hook_at = -1;
static int hook_sig;

static void reap_hook(enum reap_point p)
{
	if ((int)p == hook_at)
		raise(hook_sig);
}

/* A child that runs one pass and stops (or dies) at `at`. Returns its
 * pid once it got there (stopped) or died. */
static pid_t reaper_child(const char *name, int at, int sig)
{
	pid_t parent = getpid(), pid;
	int st;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		sesh_t *c = NULL;

		tu_die_with(parent);
		if (sesh_open(name, NULL, NULL, 0, &c) != 0)
			_exit(2);
		hook_at = at;
		hook_sig = sig;
		reap_test_hook = reap_hook;
		(void)sesh_reap(c, NULL);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, WUNTRACED), pid);
	if (sig == SIGSTOP)
		assert_true(WIFSTOPPED(st));
	else
		assert_true(WIFSIGNALED(st) && WTERMSIG(st) == sig);
	return pid;
}

/* One pass at a time: a reaper stopped inside its pass holds the lease,
 * and others return -EBUSY at once; killed, it holds nothing, and the
 * next pass recovers it. */
static void test_lease(void **state)
{
	sesh_reap_report_t r;
	char name[64];
	sesh_t *d;
	pid_t pid;
	double t0;

	(void)state;
	tu_name(name, sizeof(name), "lease");
	d = tu_create(name, NULL);
	pid = reaper_child(name, REAP_P_RECOVERED, SIGSTOP);
	t0 = tu_mono_s();
	assert_int_equal(sesh_reap(d, &r), -EBUSY);
	assert_true(tu_mono_s() - t0 < 1.0);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait(pid), 128 + SIGKILL);
	reap_walk(d, &r);
	assert_int_equal(r.processes_recovered, 1);
	assert_int_equal(r.recovery_walk, 1);
	/* Nothing died since: no walk. */
	assert_int_equal(sesh_reap(d, &r), 0);
	assert_int_equal(r.recovery_walk, 0);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

struct lease_arg {
	sesh_t *d;
	atomic_int *go;
	int ok, busy, other;
};

static void *lease_thread(void *p)
{
	struct lease_arg *a = p;
	int i, rc;

	while (!atomic_load(a->go))
		;
	for (i = 0; i < 200; i++) {
		rc = sesh_reap(a->d, NULL);
		if (rc == 0)
			a->ok++;
		else if (rc == -EBUSY)
			a->busy++;
		else
			a->other++;
	}
	return NULL;
}

/* Two reapers at once: threads of one process (sharing the handle's lock
 * description) and two processes, reaping while sessions expire. */
static void test_two_reapers(void **state)
{
	struct lease_arg a[2];
	atomic_int go = 0;
	sesh_reap_report_t r;
	pthread_t t[2];
	char name[64], id[32];
	pid_t parent = getpid(), pid[2];
	sesh_stats_t st;
	sesh_t *d;
	int i, k;

	(void)state;
	tu_name(name, sizeof(name), "two");
	d = tu_create(name, NULL);
	for (i = 0; i < 2; i++) {
		a[i] = (struct lease_arg){d, &go, 0, 0, 0};
		assert_int_equal(
			pthread_create(&t[i], NULL, lease_thread, &a[i]), 0);
	}
	atomic_store(&go, 1);
	for (i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(a[i].other, 0);
	}
	assert_true(a[0].ok + a[1].ok > 0);

	for (i = 0; i < 200; i++) {
		mkid(id, sizeof(id), "s", i);
		assert_int_equal(
			sesh_session_create(d, id, NULL, NULL, 0, 1, NULL), 0);
	}
	for (k = 0; k < 2; k++) {
		pid[k] = fork();
		assert_true(pid[k] >= 0);
		if (pid[k] == 0) {
			sesh_t *c = NULL;
			double end = tu_mono_s() + 2.0;
			int rc, bad = 0;

			tu_die_with(parent);
			if (sesh_open(name, NULL, NULL, 0, &c) != 0)
				_exit(2);
			while (tu_mono_s() < end) {
				rc = sesh_reap(c, NULL);
				if (rc != 0 && rc != -EBUSY)
					bad++;
			}
			sesh_close(c);
			_exit(bad ? 3 : 0);
		}
	}
	for (k = 0; k < 2; k++)
		assert_int_equal(tu_wait(pid[k]), 0);
	reap_ok(d, &r);
	assert_int_equal(count(d), 0);
	assert_int_equal(sesh_stats(d, &st), 0);
	assert_int_equal(st.sessions_expired, 200);
	check_clean(d);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- reapers killed mid-pass
 * --------------------------------------------------- */

static int idx_hook_at = -1;

static void idx_hook(enum idx_point p)
{
	if ((int)p == idx_hook_at)
		raise(SIGKILL);
}

/* A reaper killed at each point of its pass, and inside the removal of
 * an expired session: the next pass, elsewhere, finishes the work and
 * leaves the domain consistent. */
static void test_killed_mid_pass(void **state)
{
	static const int idx_points[] = {
		IDX_P_DELETE_OWNED,
		IDX_P_DELETE_UNLINKED,
		IDX_P_DELETE_DONE,
		IDX_P_DELETE_UNLOCKED,
	};
	char name[64], id[32];
	sesh_reap_report_t r;
	pid_t parent = getpid();
	int round, i;

	(void)state;
	for (round = 0; round < REAP_P_COUNT + 4; round++) {
		sesh_stats_t st;
		sesh_t *d;
		pid_t pid;

		tu_name(name, sizeof(name), "midpass");
		d = tu_create(name, NULL);
		for (i = 0; i < 30; i++) {
			mkid(id, sizeof(id), "s", i);
			assert_int_equal(sesh_session_create(d, id, NULL, NULL,
							     0, 1, NULL),
					 0);
			assert_int_equal(sesh_publish(d, id, "m", 1, NULL), 0);
		}
		assert_int_equal(sesh_session_create(d, "keep", NULL, NULL, 0,
						     3600, NULL),
				 0);
		tu_sleep_ms(1200);
		if (round < REAP_P_COUNT) {
			pid = reaper_child(name, round, SIGKILL);
		} else {
			pid = fork();
			assert_true(pid >= 0);
			if (pid == 0) {
				sesh_t *c = NULL;

				tu_die_with(parent);
				if (sesh_open(name, NULL, NULL, 0, &c) != 0)
					_exit(2);
				idx_hook_at = idx_points[round - REAP_P_COUNT];
				idx_test_hook = idx_hook;
				(void)sesh_reap(c, NULL);
				_exit(0);
			}
			assert_int_equal(tu_wait(pid), 128 + SIGKILL);
		}
		reap_walk(d, &r);
		assert_int_equal(r.processes_recovered, 1);
		assert_int_equal(r.recovery_walk, 1);
		reap_ok(d, &r);
		assert_int_equal(count(d), 1);
		for (i = 0; i < 30; i++) {
			mkid(id, sizeof(id), "s", i);
			assert_int_equal(
				sesh_session_get(d, id, NULL, NULL, NULL, 0),
				-ENOENT);
		}
		assert_int_equal(
			sesh_session_get(d, "keep", NULL, NULL, NULL, 0), 0);
		check_clean(d);
		assert_int_equal(sesh_stats(d, &st), 0);
		assert_true(st.sessions_expired >= 29);
		sesh_close(d);
		assert_int_equal(sesh_unlink(name), 0);
	}
}

/* --- what killed workers leave -------------------------------------------- */

static void stop_hook(enum ring_point p)
{
	if (p == RING_P_DESCRIBED)
		raise(SIGKILL);
}

/* A worker killed with a stream claim half-written, a subscription open
 * and a session half-created: one pass recovers all of it. */
static void test_recovers_worker(void **state)
{
	char name[64];
	sesh_reap_report_t r;
	sesh_health_t h;
	sesh_info_t info;
	sesh_stream_t *s;
	sesh_msg_t m;
	pid_t parent = getpid(), pid;
	sesh_t *d;

	(void)state;
	tu_name(name, sizeof(name), "worker");
	d = tu_create(name, NULL);
	assert_int_equal(sesh_session_create(d, "a", NULL, NULL, 0, 0, NULL),
			 0);
	assert_int_equal(sesh_session_create(d, "b", NULL, NULL, 0, 0, NULL),
			 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		sesh_stream_t *cs;

		tu_die_with(parent);
		if (sesh_subscribe(d, "b", SESH_FROM_OLDEST, &cs) != 0)
			_exit(2);
		idx_hook_at = IDX_P_CREATE_FILLED;
		idx_test_hook = idx_hook;
		(void)sesh_session_create(d, "c", NULL, NULL, 0, 0, NULL);
		_exit(3);
	}
	assert_int_equal(tu_wait(pid), 128 + SIGKILL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		tu_die_with(parent);
		ring_test_hook = stop_hook;
		(void)sesh_publish(d, "a", "lost", 4, NULL);
		_exit(3);
	}
	assert_int_equal(tu_wait(pid), 128 + SIGKILL);

	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.status, SESH_DEGRADED);
	assert_int_equal(h.processes_dead, 2);
	assert_non_null(strstr(h.reason, "dead process"));
	assert_int_equal(h.streams_open, 1);

	reap_walk(d, &r);
	assert_int_equal(r.processes_recovered, 2);
	assert_int_equal(r.recovery_walk, 1);
	assert_int_equal(r.holes_unblocked, 1);
	assert_int_equal(sesh_info(d, &info), 0);
	assert_int_equal(info.processes_dead, 0);
	assert_int_equal(info.streams_open, 0);
	assert_int_equal(count(d), 2);
	check_clean(d);

	/* The hole is padding: a reader goes past it at once. */
	assert_int_equal(sesh_publish(d, "a", "after", 5, NULL), 0);
	assert_int_equal(sesh_subscribe(d, "a", SESH_FROM_OLDEST, &s), 0);
	assert_int_equal(sesh_stream_next(s, &m, 0), 0);
	assert_int_equal(m.len, 5);
	assert_memory_equal(m.data, "after", 5);
	sesh_stream_close(s);

	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.processes_dead, 0);
	assert_int_equal(h.status, SESH_HEALTHY);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- churn: workers killed at random, then reaped --------------------------
 */

#define CHURN_SESSIONS 128
#define CHURN_WORKERS  4

static void churn_worker(const char *name, unsigned seed)
{
	sesh_stream_t *subs[4] = {0};
	sesh_t *c = NULL;
	char id[32], meta[200];
	sesh_msg_t m;

	if (sesh_open(name, NULL, NULL, 0, &c) != 0)
		_exit(2);
	memset(meta, 'm', sizeof(meta));
	for (;;) {
		int op = (int)(rand_r(&seed) % 8), k;

		mkid(id, sizeof(id), "c",
		     (int)(rand_r(&seed) % CHURN_SESSIONS));
		switch (op) {
		case 0:
		case 1:
			(void)sesh_session_create(c, id, "u", meta,
						  rand_r(&seed) % sizeof(meta),
						  1 + rand_r(&seed) % 2, NULL);
			break;
		case 2:
			(void)sesh_session_update(c, id, meta,
						  rand_r(&seed) % sizeof(meta));
			break;
		case 3:
			(void)sesh_session_delete(c, id);
			break;
		case 4:
		case 5:
			(void)sesh_publish(c, id, meta,
					   1 + rand_r(&seed) % sizeof(meta),
					   NULL);
			break;
		case 6:
			k = (int)(rand_r(&seed) % 4);
			if (subs[k] != NULL)
				sesh_stream_close(subs[k]);
			subs[k] = NULL;
			(void)sesh_subscribe(c, id, SESH_FROM_OLDEST, &subs[k]);
			break;
		default:
			k = (int)(rand_r(&seed) % 4);
			if (subs[k] != NULL)
				(void)sesh_stream_next(subs[k], &m, 0);
			(void)sesh_session_touch(c, id);
			break;
		}
	}
}

static pid_t churn_spawn(const char *name, unsigned seed)
{
	pid_t parent = getpid(), pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		tu_die_with(parent);
		churn_worker(name, seed);
	}
	return pid;
}

static int delete_visit(const sesh_session_t *s, const void *meta, void *arg)
{
	(void)meta;
	(void)sesh_session_delete(arg, s->id);
	return 0;
}

/* Workers create, update, delete, publish and subscribe while they are
 * killed at random and replaced; a reaper runs throughout. Afterwards,
 * with every session removed and a few passes run, the domain's whole
 * capacity is usable again: every block free, no stream open, every
 * session creatable with a stream that takes messages. */
static void test_churn_no_leak(void **state)
{
	sesh_config_t cfg;
	sesh_check_t c;
	sesh_health_t h;
	sesh_info_t info;
	char name[64], id[32];
	pid_t pid[CHURN_WORKERS];
	unsigned seed = (unsigned)getpid();
	double end;
	sesh_t *d;
	int i, kills = 0;

	(void)state;
	sesh_config_init(&cfg);
	cfg.max_sessions = CHURN_SESSIONS;
	cfg.stream_bytes = 4096;
	cfg.max_processes = 32;
	cfg.unblock_ms = 100;
	tu_name(name, sizeof(name), "churn");
	d = tu_create(name, &cfg);
	for (i = 0; i < CHURN_WORKERS; i++)
		pid[i] = churn_spawn(name, seed + (unsigned)i);
	end = tu_mono_s() + 2.5;
	while (tu_mono_s() < end) {
		i = (int)(rand_r(&seed) % CHURN_WORKERS);
		tu_sleep_ms(5 + rand_r(&seed) % 40);
		kill(pid[i], SIGKILL);
		assert_int_equal(tu_wait(pid[i]), 128 + SIGKILL);
		kills++;
		pid[i] = churn_spawn(name, seed + 1000u * (unsigned)kills);
		(void)sesh_reap(d, NULL);
	}
	for (i = 0; i < CHURN_WORKERS; i++) {
		kill(pid[i], SIGKILL);
		assert_int_equal(tu_wait(pid[i]), 128 + SIGKILL);
	}
	reap_ok(d, NULL);
	check_clean(d);
	assert_int_equal(sesh_session_list(d, NULL, delete_visit, d), 0);
	assert_int_equal(count(d), 0);
	/* Retired blocks and rings wait out one grace period: two passes. */
	reap_ok(d, NULL);
	reap_ok(d, NULL);
	assert_int_equal(sesh_check(d, &c), 0);
	assert_int_equal(c.sessions, 0);
	assert_int_equal(c.blocks_live + c.blocks_owned + c.blocks_dead +
				 c.blocks_retired,
			 0);
	assert_int_equal(sesh_info(d, &info), 0);
	assert_int_equal(info.processes_dead, 0);
	assert_int_equal(info.processes_alive, 1);
	assert_int_equal(info.streams_open, 0);
	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.retired_blocks, 0);

	/* The whole capacity, as on a fresh domain. */
	for (i = 0; i < CHURN_SESSIONS; i++) {
		char meta[200];

		memset(meta, 'x', sizeof(meta));
		mkid(id, sizeof(id), "f", i);
		assert_int_equal(sesh_session_create(d, id, "u", meta,
						     sizeof(meta), 0, NULL),
				 0);
		assert_int_equal(sesh_publish(d, id, meta, sizeof(meta), NULL),
				 0);
	}
	assert_int_equal(
		sesh_session_create(d, "one-more", NULL, NULL, 0, 0, NULL),
		-ENOSPC);
	check_clean(d);
	print_message("churn: %d workers killed\n", kills);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- health -----------------------------------------------------------------
 */

/* No reaper: degraded. A pass by a live process: healthy. That process
 * gone: degraded again. */
static void test_health_reaper(void **state)
{
	char name[64];
	sesh_health_t h;
	pid_t parent = getpid(), pid;
	sesh_t *d;

	(void)state;
	tu_name(name, sizeof(name), "hreaper");
	d = tu_create(name, NULL);
	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.status, SESH_DEGRADED);
	assert_int_equal(h.reaper_alive, 0);
	assert_int_equal(h.reaper_pid, 0);
	assert_non_null(strstr(h.reason, "reaper"));
	assert_int_equal(h.max_sessions, 65536);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		sesh_t *c = NULL;

		tu_die_with(parent);
		if (sesh_open(name, NULL, NULL, 0, &c) != 0 ||
		    sesh_reap(c, NULL) != 0)
			_exit(2);
		pause();
		_exit(0);
	}
	for (;;) {
		assert_int_equal(sesh_health(d, &h), 0);
		if (h.reaper_passes > 0)
			break;
		tu_sleep_ms(5);
	}
	assert_int_equal(h.reaper_alive, 1);
	assert_int_equal(h.reaper_pid, pid);
	assert_int_equal(h.status, SESH_HEALTHY);
	assert_string_equal(h.reason, "");
	assert_true(h.reaper_last_ns > 0);
	/* A pass by hand meanwhile keeps the live reaper on record. */
	assert_int_equal(sesh_reap(d, NULL), 0);
	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.reaper_pid, pid);
	assert_int_equal(h.reaper_passes, 2);

	kill(pid, SIGKILL);
	assert_int_equal(tu_wait(pid), 128 + SIGKILL);
	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.reaper_alive, 0);
	assert_int_equal(h.status, SESH_DEGRADED);
	/* The dead reaper comes first: it awaits recovery. */
	assert_non_null(strstr(h.reason, "dead process"));
	assert_int_equal(sesh_reap(d, NULL), 0);
	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.status, SESH_HEALTHY);
	assert_int_equal(h.reaper_pid, getpid());
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* A process stopped inside a read-side section is a stuck reader once two
 * passes a second apart have seen it; gone once it leaves. */
static void test_health_stuck(void **state)
{
	char name[64];
	sesh_health_t h;
	pid_t parent = getpid(), pid;
	int p[2];
	char c;
	sesh_t *d;

	(void)state;
	tu_name(name, sizeof(name), "hstuck");
	d = tu_create(name, NULL);
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct gc_thread_reader *tr;

		tu_die_with(parent);
		close(p[0]);
		if (gc_read_lock(d, &tr) != 0)
			_exit(2);
		tu_put(p[1], "r", 1);
		raise(SIGSTOP);
		gc_read_unlock(tr);
		tu_put(p[1], "u", 1);
		pause();
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(tu_get(p[0], &c, 1), 0);
	reap_ok(d, NULL);
	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.stuck_readers, 0);
	tu_sleep_ms(1100);
	reap_ok(d, NULL);
	tu_sleep_ms(1100);
	reap_ok(d, NULL);
	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.stuck_readers, 1);
	assert_int_equal(h.status, SESH_DEGRADED);
	assert_non_null(strstr(h.reason, "stuck"));

	kill(pid, SIGCONT);
	assert_int_equal(tu_get(p[0], &c, 1), 0);
	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.stuck_readers, 0);
	assert_int_equal(h.status, SESH_HEALTHY);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait(pid), 128 + SIGKILL);
	close(p[0]);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* Sessions 90% or more of capacity: degraded, and says so. */
static void test_health_capacity(void **state)
{
	sesh_config_t cfg;
	sesh_health_t h;
	char name[64], id[32];
	sesh_t *d;
	int i;

	(void)state;
	tu_small(&cfg);
	cfg.max_sessions = 10;
	tu_name(name, sizeof(name), "hcap");
	d = tu_create(name, &cfg);
	reap_ok(d, NULL);
	for (i = 0; i < 8; i++) {
		mkid(id, sizeof(id), "s", i);
		assert_int_equal(
			sesh_session_create(d, id, NULL, NULL, 0, 0, NULL), 0);
	}
	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.status, SESH_HEALTHY);
	assert_int_equal(h.sessions, 8);
	assert_int_equal(sesh_session_create(d, "s-8", NULL, NULL, 0, 0, NULL),
			 0);
	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.status, SESH_DEGRADED);
	assert_non_null(strstr(h.reason, "sessions: 9 of 10"));
	assert_int_equal(sesh_health(NULL, &h), -EINVAL);
	assert_int_equal(sesh_health(d, NULL), -EINVAL);
	assert_int_equal(sesh_reap(NULL, NULL), -EINVAL);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_lease),
		cmocka_unit_test(test_two_reapers),
		cmocka_unit_test(test_killed_mid_pass),
		cmocka_unit_test(test_recovers_worker),
		cmocka_unit_test(test_churn_no_leak),
		cmocka_unit_test(test_health_reaper),
		cmocka_unit_test(test_health_stuck),
		cmocka_unit_test(test_health_capacity),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
