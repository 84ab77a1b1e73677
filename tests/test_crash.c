/*
 * test_crash.c - writers and readers of the session index killed with
 * SIGKILL at every awkward point, and at random ones: every session stays
 * whole or absent, counts agree with listings, sesh_check() finds nothing
 * broken, and what the dead held is recovered.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
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
#include "index/index.h"

#define META_MAX 600

/* Metadata that says how it must look: a version, then a length and a
 * fill byte both derived from it. A torn record cannot pass. */
static size_t meta_make(uint8_t *m, uint32_t v)
{
	size_t len = 16 + v % 500;

	memset(m, (int)(v * 131 % 251), len);
	memcpy(m, &v, 4);
	return len;
}

static bool meta_whole(const uint8_t *m, size_t len)
{
	uint32_t v;
	size_t i;

	if (len < 16)
		return false;
	memcpy(&v, m, 4);
	if (len != 16 + v % 500)
		return false;
	for (i = 4; i < len; i++)
		if (m[i] != (uint8_t)(v * 131 % 251))
			return false;
	return true;
}

static uint32_t meta_version(const uint8_t *m)
{
	uint32_t v;

	memcpy(&v, m, 4);
	return v;
}

static void put(sesh_t *d, const char *id, uint32_t v)
{
	uint8_t m[META_MAX];
	size_t len = meta_make(m, v);

	assert_int_equal(sesh_session_create(d, id, "u", m, len, 0, NULL), 0);
}

/* Version of session id, 0 if absent; fails the test if it is torn. */
static uint32_t version_of(sesh_t *d, const char *id)
{
	uint8_t m[META_MAX];
	sesh_session_t s;
	int rc = sesh_session_get(d, id, NULL, &s, m, sizeof(m));

	if (rc == -ENOENT)
		return 0;
	assert_int_equal(rc, 0);
	if (!meta_whole(m, s.meta_len))
		fail_msg("session %s is torn (meta_len %zu)", id, s.meta_len);
	return meta_version(m);
}

struct tally {
	size_t n;
	size_t torn;
};

static int tally_visit(const sesh_session_t *s, const void *meta, void *arg)
{
	struct tally *t = arg;

	t->n++;
	if (!meta_whole(meta, s->meta_len))
		t->torn++;
	return 0;
}

/* Recover, then everything the library keeps must agree. */
static void settle_and_check(sesh_t *d, int want_dead)
{
	struct tally t = {0, 0};
	sesh_check_t c;
	size_t count;
	int n;

	n = sesh_recover(d);
	assert_true(n >= 0);
	if (want_dead >= 0)
		assert_int_equal(n, want_dead);
	if (sesh_check(d, &c) != 0)
		fail_msg("sesh_check: %zu problems: %s", c.problems,
			 c.first_problem);
	assert_int_equal(c.blocks_dead, 0);
	assert_int_equal(sesh_session_count(d, &count), 0);
	assert_int_equal(sesh_session_list(d, NULL, tally_visit, &t), 0);
	assert_int_equal(t.torn, 0);
	assert_int_equal(t.n, count);
	assert_int_equal(c.sessions, count);
}

static void wait_killed(pid_t pid)
{
	int st;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		fail_msg("child %d: status %#x, not killed", (int)pid, st);
}

static sesh_t *make_domain(char *name, size_t size, const char *tag)
{
	sesh_config_t c;

	tu_name(name, size, tag);
	tu_small(&c);
	c.max_sessions = 256;
	return tu_create(name, &c);
}

/* --- a writer killed at each point of create, update and delete ------- */

static enum idx_point g_kill_at;

static void kill_hook(enum idx_point p)
{
	if (p == g_kill_at)
		raise(SIGKILL);
}

/* What each point leaves behind, once recovered: is "new" there, does
 * "k0" have its new version, is "k1" still there. */
static const struct {
	int created, updated, deleted;
} expect[IDX_P_COUNT] = {
	[IDX_P_CREATE_FILLED] = {0, 0, 0},
	[IDX_P_CREATE_LOCKED] = {0, 0, 0},
	[IDX_P_CREATE_COUNTED] = {0, 0, 0},
	[IDX_P_CREATE_LINKED] = {1, 0, 0},
	[IDX_P_CREATE_DONE] = {1, 0, 0},
	[IDX_P_CREATE_UNLOCKED] = {1, 0, 0},
	[IDX_P_UPDATE_LOCKED] = {1, 0, 0},
	[IDX_P_UPDATE_FILLED] = {1, 0, 0},
	[IDX_P_SWAP_OWNED] = {1, 0, 0},
	[IDX_P_SWAP_LINKED] = {1, 1, 0},
	[IDX_P_UPDATE_UNLOCKED] = {1, 1, 0},
	[IDX_P_DELETE_LOCKED] = {1, 1, 0},
	[IDX_P_DELETE_OWNED] = {1, 1, 0},
	[IDX_P_DELETE_UNLINKED] = {1, 1, 1},
	[IDX_P_DELETE_DONE] = {1, 1, 1},
	[IDX_P_DELETE_UNLOCKED] = {1, 1, 1},
};

static void test_kill_at_each_point(void **state)
{
	char name[64];
	sesh_t *d = make_domain(name, sizeof(name), "crashpt");
	unsigned p, round;

	(void)state;
	alarm(120);
	for (p = 0; p < IDX_P_COUNT; p++) {
		for (round = 0; round < 3; round++) {
			uint8_t m[META_MAX];
			pid_t pid;
			size_t len;

			put(d, "k0", 100);
			put(d, "k1", 101);
			fflush(NULL);
			pid = fork();
			assert_true(pid >= 0);
			if (pid == 0) {
				tu_die_with(getppid());
				g_kill_at = (enum idx_point)p;
				idx_test_hook = kill_hook;
				len = meta_make(m, 200);
				if (sesh_session_create(d, "new", "u", m, len,
							0, NULL) != 0)
					_exit(10);
				len = meta_make(m, 300);
				if (sesh_session_update(d, "k0", m, len) != 0)
					_exit(11);
				if (sesh_session_delete(d, "k1") != 0)
					_exit(12);
				_exit(13); /* the hook never fired */
			}
			wait_killed(pid);

			/* Survivors are not blocked by the dead writer's
			 * lock, before any recovery. */
			put(d, "other", 400);
			assert_int_equal(version_of(d, "other"), 400);

			settle_and_check(d, 1);
			assert_int_equal(version_of(d, "new"),
					 expect[p].created ? 200 : 0);
			assert_int_equal(version_of(d, "k0"),
					 expect[p].updated ? 300 : 100);
			assert_int_equal(version_of(d, "k1"),
					 expect[p].deleted ? 0 : 101);

			(void)sesh_session_delete(d, "new");
			(void)sesh_session_delete(d, "k0");
			(void)sesh_session_delete(d, "k1");
			assert_int_equal(sesh_session_delete(d, "other"), 0);
			settle_and_check(d, 0);
		}
	}
	/* Nothing leaked across 48 killed writers: every block is free
	 * again once the grace periods are over. */
	{
		sesh_check_t c;

		assert_int_equal(sesh_recover(d), 0);
		assert_int_equal(sesh_check(d, &c), 0);
		assert_int_equal(c.sessions, 0);
		assert_int_equal(c.blocks_live + c.blocks_owned +
					 c.blocks_retired + c.blocks_dead,
				 0);
	}
	alarm(0);
	sesh_close(d);
	sesh_unlink(name);
}

/* --- writers killed at random instants ------------------------------- */

#define CHURN_IDS 32

static void churn(sesh_t *d, unsigned seed, bool gets)
{
	uint8_t m[META_MAX];
	char id[16];
	uint32_t v = seed * 1000;

	srand(seed);
	for (;;) {
		int op = rand() % (gets ? 6 : 3);
		size_t len;

		snprintf(id, sizeof(id), "k%d", rand() % CHURN_IDS);
		len = meta_make(m, ++v);
		switch (op) {
		case 0:
			(void)sesh_session_create(d, id, "u", m, len, 0, NULL);
			break;
		case 1:
			(void)sesh_session_update(d, id, m, len);
			break;
		case 2:
			(void)sesh_session_delete(d, id);
			break;
		case 3:
			(void)sesh_session_touch(d, id);
			break;
		default: {
			sesh_session_t s;

			if (sesh_session_get(d, id, "u", &s, m, sizeof(m)) ==
				    0 &&
			    !meta_whole(m, s.meta_len))
				_exit(20); /* a torn read */
		}
		}
	}
}

static pid_t spawn_churn(sesh_t *d, unsigned seed, bool gets)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		tu_die_with(getppid());
		churn(d, seed, gets);
	}
	return pid;
}

static void test_kill_at_random(void **state)
{
	char name[64];
	sesh_t *d = make_domain(name, sizeof(name), "crashrnd");
	struct timespec ts;
	int round;

	(void)state;
	alarm(120);
	for (round = 0; round < 150; round++) {
		pid_t pid = spawn_churn(d, (unsigned)round + 1, false);

		ts.tv_sec = 0;
		ts.tv_nsec = 200000 + (long)(rand() % 3000) * 1000;
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		wait_killed(pid);
		/* 1 dead process, or none if it died before registering. */
		settle_and_check(d, -1);
		for (int i = 0; i < CHURN_IDS; i++) {
			char id[16];

			snprintf(id, sizeof(id), "k%d", i);
			(void)version_of(d, id); /* fails if torn */
		}
	}
	alarm(0);
	sesh_close(d);
	sesh_unlink(name);
}

/*
 * N processes create, get, touch, update and delete at random for a few
 * seconds while the test kills one every so often and starts another;
 * then everything is recovered and validated.
 */
static void test_concurrent_with_kills(void **state)
{
	char name[64];
	sesh_t *d = make_domain(name, sizeof(name), "crashconc");
	enum { N = 4 };
	pid_t pids[N];
	struct timespec ts = {0, 100 * 1000 * 1000};
	unsigned seed = 1000;
	int i, k, st, killed = 0;

	(void)state;
	alarm(120);
	for (i = 0; i < N; i++)
		pids[i] = spawn_churn(d, seed++, true);
	for (k = 0; k < 25; k++) {
		nanosleep(&ts, NULL);
		i = rand() % N;
		/* A worker that saw a torn read exits by itself with 20. */
		if (waitpid(pids[i], &st, WNOHANG) == pids[i])
			fail_msg("worker exited by itself: %#x", st);
		kill(pids[i], SIGKILL);
		wait_killed(pids[i]);
		killed++;
		pids[i] = spawn_churn(d, seed++, true);
	}
	for (i = 0; i < N; i++) {
		kill(pids[i], SIGKILL);
		wait_killed(pids[i]);
	}
	settle_and_check(d, -1);
	print_message("%d workers killed mid-flight; index consistent\n",
		      killed + N);
	alarm(0);
	sesh_close(d);
	sesh_unlink(name);
}

/* --- a reader killed inside its read-side section ---------------------- */

static void test_dead_reader(void **state)
{
	char name[64];
	sesh_t *d = make_domain(name, sizeof(name), "crashrd");
	uint8_t m[META_MAX];
	size_t len = meta_make(m, 7);
	int fds[2], i, rc = 0;
	char id[32], c;
	pid_t pid;

	(void)state;
	alarm(60);
	assert_int_equal(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct gc_thread_reader *tr;

		tu_die_with(getppid());
		if (gc_read_lock(d, &tr) != 0)
			_exit(2);
		(void)!write(fds[1], "x", 1);
		pause();
		_exit(3);
	}
	assert_int_equal(read(fds[0], &c, 1), 1);
	kill(pid, SIGKILL);
	wait_killed(pid);

	/* Its slot still announces an old epoch: retired blocks cannot be
	 * freed, so churn runs the allocator dry. */
	for (i = 0; i < 10000 && rc == 0; i++) {
		snprintf(id, sizeof(id), "r%d", i);
		rc = sesh_session_create(d, id, NULL, m, len, 0, NULL);
		if (rc == 0)
			assert_int_equal(sesh_session_delete(d, id), 0);
	}
	assert_int_equal(rc, -ENOSPC);
	assert_int_equal(sesh_check(d, &(sesh_check_t){0}), 0);

	/* Recovery clears the dead reader's slot; churn goes on for good. */
	assert_int_equal(sesh_recover(d), 1);
	for (i = 0; i < 20000; i++) {
		snprintf(id, sizeof(id), "s%d", i);
		assert_int_equal(
			sesh_session_create(d, id, NULL, m, len, 0, NULL), 0);
		assert_int_equal(sesh_session_delete(d, id), 0);
	}
	settle_and_check(d, 0);
	close(fds[0]);
	close(fds[1]);
	alarm(0);
	sesh_close(d);
	sesh_unlink(name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill_at_each_point),
		cmocka_unit_test(test_kill_at_random),
		cmocka_unit_test(test_concurrent_with_kills),
		cmocka_unit_test(test_dead_reader),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
