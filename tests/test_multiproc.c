/*
 * test_multiproc.c - real processes: racing creators, creators killed at
 * every stage of initialisation, children forked after open registering on
 * their own, SIGKILLed processes known dead at once (a parent's death
 * visible while its child lives, a recycled pid no help), a full registry,
 * and processes killed at random points while attaching and leaving.
 */
#include "testutil.h"

#include <poll.h>
#include <pthread.h>
#include <time.h>

#include "shm/shm.h"

/* --- racing creators ------------------------------------------------------ */

struct race_result {
	int rc;
	uint64_t domain_id;
};

/* Fork n children that wait on `go`, then sesh_open(flags) at once and
 * report {rc, domain_id}. */
static void race(const char *name, int n, unsigned flags,
		 struct race_result *res)
{
	int go[2], out[2], i;
	pid_t pids[64];

	assert_true(n <= 64);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(out), 0);
	for (i = 0; i < n; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct race_result r = {0, 0};
			sesh_config_t c;
			sesh_info_t inf;
			sesh_t *d = NULL;
			char b;

			close(go[1]);
			close(out[0]);
			tu_small(&c);
			(void)read(go[0], &b, 1); /* EOF: everyone starts */
			r.rc = sesh_open(name, NULL, &c, flags, &d);
			if (r.rc == 0 && sesh_info(d, &inf) == 0)
				r.domain_id = inf.domain_id;
			tu_put(out[1], &r, sizeof(r));
			sesh_close(d);
			_exit(0);
		}
	}
	close(go[0]);
	close(out[1]);
	close(go[1]); /* start */
	for (i = 0; i < n; i++)
		assert_int_equal(tu_get(out[0], &res[i], sizeof(res[i])), 0);
	close(out[0]);
	for (i = 0; i < n; i++)
		assert_int_equal(tu_wait(pids[i]), 0);
}

static void test_race_create(void **state)
{
	int round, i;

	for (round = 0; round < 25; round++) {
		struct race_result r[8];
		char name[64];

		tu_name(name, sizeof(name), "race");
		race(name, 8, SESH_CREATE, r);
		for (i = 0; i < 8; i++) {
			if (r[i].rc != 0)
				fail_msg("round %d proc %d: %s", round, i,
					 sesh_strerror(r[i].rc));
			assert_int_equal(r[i].domain_id, r[0].domain_id);
		}
		assert_int_equal(tu_init_files(name), 0);
		assert_int_equal(sesh_unlink(name), 0);
	}
}

static void test_race_create_excl(void **state)
{
	int round, i;

	for (round = 0; round < 25; round++) {
		struct race_result r[8];
		char name[64];
		int won = 0;

		tu_name(name, sizeof(name), "excl");
		race(name, 8, SESH_CREATE | SESH_EXCL, r);
		for (i = 0; i < 8; i++) {
			if (r[i].rc == 0)
				won++;
			else
				assert_int_equal(r[i].rc, -EEXIST);
		}
		assert_int_equal(won, 1);
		assert_int_equal(tu_init_files(name), 0);
		assert_int_equal(sesh_unlink(name), 0);
	}
}

/* --- creators killed at each stage --------------------------------------- */

static enum shm_stage kill_at;

static void kill_hook(enum shm_stage s)
{
	if (s == kill_at)
		raise(SIGKILL);
}

static void test_creator_killed(void **state)
{
	enum shm_stage s;

	for (s = SHM_STAGE_CREATED; s <= SHM_STAGE_PUBLISHED; s++) {
		sesh_info_t inf;
		char name[64];
		sesh_t *d = NULL;
		pid_t pid;

		tu_name(name, sizeof(name), "killinit");
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			kill_at = s;
			shm_test_hook = kill_hook;
			(void)sesh_open(name, NULL, NULL, SESH_CREATE, &d);
			_exit(1); /* the hook should have killed us */
		}
		assert_int_equal(tu_wait(pid), 128 + SIGKILL);
		assert_int_equal(tu_init_files(name), 1);
		if (s < SHM_STAGE_PUBLISHED) {
			/* Never published: nothing to attach to. */
			assert_int_equal(sesh_open(name, NULL, NULL, 0, &d),
					 -ENOENT);
			/* The next creator removes the leftover and
			 * creates the domain afresh. */
			d = tu_create(name, NULL);
			assert_int_equal(tu_init_files(name), 0);
		} else {
			/* Published whole: attachable as it is. */
			assert_int_equal(sesh_open(name, NULL, NULL, 0, &d), 0);
		}
		assert_int_equal(sesh_info(d, &inf), 0);
		assert_int_equal(inf.processes_alive, 1);
		sesh_close(d);
		assert_int_equal(sesh_unlink(name), 0);
		assert_int_equal(tu_init_files(name), 0);
	}
}

/* A creator stuck (alive) before publishing does not block others: they
 * create the domain; when it resumes it loses the link race and attaches
 * the winner's segment. Its private file is never taken for a dead one. */
static int stuck_fd;

static void stuck_hook(enum shm_stage s)
{
	char b;

	if (s == SHM_STAGE_BUILT)
		(void)read(stuck_fd, &b, 1);
}

static void test_creator_stuck(void **state)
{
	int p[2], res[2];
	char name[64];
	sesh_info_t inf;
	sesh_t *d;
	pid_t pid;
	struct race_result r;

	tu_name(name, sizeof(name), "stuck");
	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(res), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		sesh_t *cd = NULL;

		close(p[1]);
		stuck_fd = p[0];
		shm_test_hook = stuck_hook;
		r.rc = sesh_open(name, NULL, NULL, SESH_CREATE, &cd);
		r.domain_id = 0;
		if (r.rc == 0 && sesh_info(cd, &inf) == 0)
			r.domain_id = inf.domain_id;
		tu_put(res[1], &r, sizeof(r));
		sesh_close(cd);
		_exit(0);
	}
	close(p[0]);
	close(res[1]);
	/* Wait until the child is parked with its private file built. */
	while (tu_init_files(name) != 1)
		usleep(1000);
	d = tu_create(name, NULL);
	assert_int_equal(tu_init_files(name), 1); /* alive: not swept */
	assert_int_equal(sesh_info(d, &inf), 0);
	close(p[1]); /* let it go */
	assert_int_equal(tu_get(res[0], &r, sizeof(r)), 0);
	assert_int_equal(tu_wait(pid), 0);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.domain_id, inf.domain_id);
	assert_int_equal(tu_init_files(name), 0);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
	close(res[0]);
}

/* --- registry: fork after open, death, pid reuse -------------------------- */

struct who {
	pid_t pid;
	int slot;
};

/* Look up a slot in the registry: 1 alive, 0 dead, -1 not listed. */
struct find {
	int slot;
	int alive;
	pid_t pid;
};

static int find_fn(const sesh_proc_t *p, void *arg)
{
	struct find *f = arg;

	if ((int)p->slot == f->slot) {
		f->alive = p->alive;
		f->pid = p->pid;
	}
	return 0;
}

static int slot_alive(sesh_t *d, int slot)
{
	struct find f = {slot, -1, 0};

	assert_int_equal(sesh_proc_list(d, find_fn, &f), 0);
	return f.alive;
}

static int count_fn(const sesh_proc_t *p, void *arg)
{
	int *n = arg;

	n[p->alive]++;
	return 0;
}

/* Children use the handle their parent opened; each registers on its
 * first call, with a slot of its own. */
static void test_fork_after_open(void **state)
{
	int ready[2], hold[2], i, n[2] = {0, 0};
	struct who kids[3];
	char name[64];
	sesh_info_t inf;
	sesh_t *d;
	pid_t pids[3];

	tu_name(name, sizeof(name), "fork");
	d = tu_create(name, NULL);
	assert_int_equal(sesh_info(d, &inf), 0);
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(hold), 0);
	for (i = 0; i < 3; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			struct who w = {getpid(), -1};
			sesh_info_t ci;
			char b;

			close(hold[1]);
			if (sesh_info(d, &ci) == 0)
				w.slot = ci.self_slot;
			tu_put(ready[1], &w, sizeof(w));
			(void)read(hold[0], &b, 1);
			if (i == 0)
				sesh_close(d); /* leaves cleanly */
			_exit(0);	       /* the others just exit */
		}
	}
	close(hold[0]);
	close(ready[1]);
	for (i = 0; i < 3; i++) {
		assert_int_equal(tu_get(ready[0], &kids[i], sizeof(kids[i])),
				 0);
		assert_true(kids[i].slot >= 0);
		assert_int_not_equal(kids[i].slot, inf.self_slot);
	}
	assert_int_not_equal(kids[0].slot, kids[1].slot);
	assert_int_not_equal(kids[1].slot, kids[2].slot);
	assert_int_not_equal(kids[0].slot, kids[2].slot);
	assert_int_equal(sesh_proc_list(d, count_fn, n), 0);
	assert_int_equal(n[1], 4);
	assert_int_equal(n[0], 0);
	for (i = 0; i < 3; i++) {
		struct find f = {kids[i].slot, -1, 0};

		assert_int_equal(sesh_proc_list(d, find_fn, &f), 0);
		assert_int_equal(f.alive, 1);
		assert_int_equal(f.pid, kids[i].pid);
	}
	close(hold[1]);
	for (i = 0; i < 3; i++)
		assert_int_equal(tu_wait(pids[i]), 0);
	/* The one that closed is gone; the two that exited are dead. */
	for (i = 0; i < 3; i++) {
		int a = slot_alive(d, kids[i].slot);

		/* kids[] is in order of arrival; pids[0] closed. */
		assert_int_equal(a, kids[i].pid == pids[0] ? -1 : 0);
	}
	assert_int_equal(sesh_info(d, &inf), 0);
	assert_int_equal(inf.processes_alive, 1);
	assert_int_equal(inf.processes_dead, 2);
	close(ready[0]);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* Threads of a forked child make their first calls at once: the child
 * registers exactly once, and every thread sees the same slot. */
struct thr {
	sesh_t *d;
	int slot;
	int rc;
};

static void *thr_info(void *arg)
{
	struct thr *t = arg;
	sesh_info_t inf;

	t->rc = sesh_info(t->d, &inf);
	t->slot = inf.self_slot;
	return NULL;
}

static int count_pid_fn(const sesh_proc_t *p, void *arg)
{
	int *n = arg;

	n[0] += p->alive && p->pid == (pid_t)n[1];
	return 0;
}

static void test_threads_register_once(void **state)
{
	char name[64];
	sesh_t *d;
	int round;

	tu_name(name, sizeof(name), "thr");
	d = tu_create(name, NULL);
	for (round = 0; round < 20; round++) {
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			struct thr t[8];
			pthread_t th[8];
			int i, n[2] = {0, (int)getpid()};

			for (i = 0; i < 8; i++) {
				t[i].d = d;
				t[i].slot = -1;
				if (pthread_create(&th[i], NULL, thr_info,
						   &t[i]) != 0)
					_exit(2);
			}
			for (i = 0; i < 8; i++) {
				pthread_join(th[i], NULL);
				if (t[i].rc != 0 || t[i].slot < 0 ||
				    t[i].slot != t[0].slot)
					_exit(3);
			}
			if (sesh_proc_list(d, count_pid_fn, n) != 0 ||
			    n[0] != 1)
				_exit(4);
			sesh_close(d);
			_exit(0);
		}
		assert_int_equal(tu_wait(pid), 0);
	}
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* A SIGKILLed parent is dead at once although its child, which inherited
 * all its descriptors, lives on; and a recycled pid does not revive it. */
static void test_parent_killed_child_lives(void **state)
{
	int ready[2], hold[2], i;
	struct who w[2];
	char name[64], b;
	sesh_t *d;
	pid_t p, me = getpid();

	tu_name(name, sizeof(name), "pkill");
	d = tu_create(name, NULL);
	assert_int_equal(pipe(ready), 0);
	/* P and C block on `hold`, whose only writer is this process: they
	 * end when we close it or die, whatever happens to the test. */
	assert_int_equal(pipe(hold), 0);
	p = fork();
	assert_true(p >= 0);
	if (p == 0) {
		/* P: register through the inherited handle, fork C. */
		sesh_info_t pi;
		struct who self = {getpid(), -1};
		pid_t c;

		tu_die_with(me);
		close(hold[1]);
		close(ready[0]);
		if (sesh_info(d, &pi) == 0)
			self.slot = pi.self_slot;
		c = fork();
		if (c == 0) {
			struct who cw = {getpid(), -1};
			sesh_info_t ci;

			if (sesh_info(d, &ci) == 0)
				cw.slot = ci.self_slot;
			tu_put(ready[1], &cw, sizeof(cw));
			(void)read(hold[0], &b, 1);
			_exit(0);
		}
		tu_put(ready[1], &self, sizeof(self));
		(void)read(hold[0], &b, 1);
		_exit(0);
	}
	close(hold[0]);
	close(ready[1]);
	for (i = 0; i < 2; i++)
		assert_int_equal(tu_get(ready[0], &w[i], sizeof(w[i])), 0);
	/* w[] holds P and C in some order. */
	struct who wp = w[0].pid == p ? w[0] : w[1];
	struct who wc = w[0].pid == p ? w[1] : w[0];

	assert_true(wp.slot >= 0 && wc.slot >= 0);
	assert_int_equal(slot_alive(d, wp.slot), 1);
	assert_int_equal(slot_alive(d, wc.slot), 1);

	assert_int_equal(kill(p, SIGKILL), 0);
	assert_int_equal(tu_wait(p), 128 + SIGKILL);
	assert_int_equal(slot_alive(d, wp.slot), 0); /* dead at once */
	assert_int_equal(slot_alive(d, wc.slot), 1); /* child unaffected */

	/* Pid reuse: write a live pid (ours) into the dead slot. */
	{
		struct shm_proc *sp = shm_proc_slot(&d->seg, (uint32_t)wp.slot);

		atomic_store(&sp->pid, (int32_t)getpid());
		assert_int_equal(slot_alive(d, wp.slot), 0);
	}

	assert_int_equal(kill(wc.pid, SIGKILL), 0);
	/* C is not our child: wait until the kernel has let it go. */
	for (i = 0; i < 5000 && slot_alive(d, wc.slot) == 1; i++)
		usleep(1000);
	assert_int_equal(slot_alive(d, wc.slot), 0);
	close(hold[1]);
	close(ready[0]);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* A full registry refuses with -ENOSPC; once a process dies its slot is
 * recovered for the next one. */
static void test_registry_full(void **state)
{
	int ready[2], hold[2];
	sesh_config_t c;
	char name[64], b;
	sesh_t *d, *d2 = NULL;
	pid_t a;

	tu_name(name, sizeof(name), "full");
	tu_small(&c);
	c.max_processes = 2;
	d = tu_create(name, &c);
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(hold), 0);
	a = fork();
	assert_true(a >= 0);
	if (a == 0) {
		sesh_t *ad = NULL;

		close(hold[1]);
		b = (char)sesh_open(name, NULL, NULL, 0, &ad);
		tu_put(ready[1], &b, 1);
		(void)read(hold[0], &b, 1);
		_exit(0);
	}
	close(hold[0]);
	assert_int_equal(tu_get(ready[0], &b, 1), 0);
	assert_int_equal(b, 0);
	assert_int_equal(sesh_open(name, NULL, NULL, 0, &d2), -ENOSPC);
	assert_null(d2);
	assert_int_equal(kill(a, SIGKILL), 0);
	assert_int_equal(tu_wait(a), 128 + SIGKILL);
	assert_int_equal(sesh_open(name, NULL, NULL, 0, &d2), 0);
	assert_int_equal(sesh_open(name, NULL, NULL, 0, &d2), -ENOSPC);
	sesh_close(d2);
	close(hold[1]);
	close(ready[0]);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* Processes killed at random points while attaching, listing and leaving:
 * afterwards every listed slot is either a live process or dead, the
 * registry accounts for everyone, and new processes still register. */
static void test_kill_churn(void **state)
{
	sesh_config_t c;
	sesh_info_t inf;
	char name[64];
	sesh_t *d;
	int round, i;

	tu_name(name, sizeof(name), "churn");
	tu_small(&c);
	c.max_processes = 16;
	d = tu_create(name, &c);
	srand((unsigned)time(NULL));
	for (round = 0; round < 40; round++) {
		pid_t kids[4];

		for (i = 0; i < 4; i++) {
			pid_t me = getpid();

			kids[i] = fork();
			assert_true(kids[i] >= 0);
			if (kids[i] == 0) {
				tu_die_with(me);
				for (;;) {
					sesh_t *k = NULL;
					sesh_info_t ki;

					if (sesh_open(name, NULL, NULL, 0,
						      &k) == 0) {
						(void)sesh_info(k, &ki);
						sesh_close(k);
					}
				}
			}
		}
		usleep((useconds_t)(rand() % 3000));
		for (i = 0; i < 4; i++) {
			assert_int_equal(kill(kids[i], SIGKILL), 0);
			assert_int_equal(tu_wait(kids[i]), 128 + SIGKILL);
		}
		assert_int_equal(sesh_info(d, &inf), 0);
		assert_int_equal(inf.processes_alive, 1);
		assert_true(inf.processes_dead <= 4 * (unsigned)(round + 1));
	}
	/* Every slot is usable again: fill the registry from children. */
	{
		int ready[2], hold[2], got = 0;
		pid_t kids[15];
		char rc;

		assert_int_equal(pipe(ready), 0);
		assert_int_equal(pipe(hold), 0);
		for (i = 0; i < 15; i++) {
			kids[i] = fork();
			if (kids[i] == 0) {
				sesh_t *k = NULL;

				close(hold[1]);
				rc = (char)sesh_open(name, NULL, NULL, 0, &k);
				tu_put(ready[1], &rc, 1);
				(void)read(hold[0], &rc, 1);
				_exit(0);
			}
		}
		close(hold[0]);
		for (i = 0; i < 15; i++) {
			assert_int_equal(tu_get(ready[0], &rc, 1), 0);
			got += rc == 0;
		}
		assert_int_equal(got, 15);
		assert_int_equal(sesh_info(d, &inf), 0);
		assert_int_equal(inf.processes_alive, 16);
		close(hold[1]);
		for (i = 0; i < 15; i++)
			assert_int_equal(tu_wait(kids[i]), 0);
		close(ready[0]);
	}
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_race_create),
		cmocka_unit_test(test_race_create_excl),
		cmocka_unit_test(test_creator_killed),
		cmocka_unit_test(test_creator_stuck),
		cmocka_unit_test(test_fork_after_open),
		cmocka_unit_test(test_threads_register_once),
		cmocka_unit_test(test_parent_killed_child_lives),
		cmocka_unit_test(test_registry_full),
		cmocka_unit_test(test_kill_churn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
