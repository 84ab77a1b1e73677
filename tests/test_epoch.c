/*
 * test_epoch.c - the cross-process epoch scheme: a reader inside its
 * section holds back exactly the objects retired while it was inside; a
 * reader SIGKILLed inside its section holds them back until its process
 * slot is recovered; and under load, with reader processes killed at
 * random, a writer that poisons every block it reclaims is never caught by
 * a reader still looking at one.
 */
#include "testutil.h"

#include <pthread.h>
#include <time.h>

#include "gc/epoch.h"

static sesh_t *open_small(const char *name)
{
	sesh_config_t c;

	tu_small(&c);
	c.max_processes = 16;
	return tu_create(name, &c);
}

static void test_single_process(void **state)
{
	struct shm_reader *r, *r2;
	uint64_t e, tag;
	char name[64];
	sesh_t *d;

	tu_name(name, sizeof(name), "ep1");
	d = open_small(name);
	assert_null(gc_reader_take(&d->seg, d->slot, SHM_READERS_PER_PROC));
	assert_null(gc_reader_take(&d->seg, 16, 0));
	r = gc_reader_take(&d->seg, d->slot, 0);
	r2 = gc_reader_take(&d->seg, d->slot, 3);
	assert_non_null(r);
	assert_non_null(r2);
	assert_int_equal(shm_proc_slot(&d->seg, d->slot)->readers_used, 4);
	assert_int_equal(gc_oldest_reader(&d->seg), UINT64_MAX);

	gc_enter(&d->seg, r);
	e = atomic_load(&r->epoch);
	assert_true(e >= 1);
	tag = gc_retire_tag(&d->seg); /* retired while r is inside */
	assert_true(tag >= e);
	assert_int_equal(gc_oldest_reader(&d->seg), e);
	assert_false(tag < gc_oldest_reader(&d->seg));

	/* A reader entering now announces an epoch past the tag. */
	gc_enter(&d->seg, r2);
	assert_true(atomic_load(&r2->epoch) > tag);
	gc_exit(r2);

	gc_exit(r);
	assert_int_equal(gc_oldest_reader(&d->seg), UINT64_MAX);
	/* Closing clears our reader slots and their high-water mark. */
	gc_enter(&d->seg, r);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* A reader killed inside its section: reclamation waits for recovery,
 * then proceeds; a live reader in another process is left alone. */
static void test_dead_reader(void **state)
{
	int ready[2], i;
	char name[64];
	sesh_info_t inf;
	pid_t kids[2];
	uint64_t tag;
	sesh_t *d;

	tu_name(name, sizeof(name), "ep2");
	d = open_small(name);
	assert_int_equal(pipe(ready), 0);
	for (i = 0; i < 2; i++) {
		pid_t me = getpid();

		kids[i] = fork();
		assert_true(kids[i] >= 0);
		if (kids[i] == 0) {
			sesh_t *k = NULL;
			struct shm_reader *r;
			char b = 1;

			tu_die_with(me);
			if (sesh_open(name, NULL, NULL, 0, &k) != 0)
				_exit(2);
			r = gc_reader_take(&k->seg, k->slot, 0);
			if (r == NULL)
				_exit(3);
			gc_enter(&k->seg, r);
			tu_put(ready[1], &b, 1);
			for (;;)
				pause();
		}
	}
	for (i = 0; i < 2; i++) {
		char b;

		assert_int_equal(tu_get(ready[0], &b, 1), 0);
	}
	tag = gc_retire_tag(&d->seg);
	assert_true(gc_oldest_reader(&d->seg) <= tag);

	assert_int_equal(kill(kids[0], SIGKILL), 0);
	assert_int_equal(tu_wait(kids[0]), 128 + SIGKILL);
	assert_true(gc_oldest_reader(&d->seg) <= tag); /* dead, still held */
	assert_int_equal(sesh_info(d, &inf), 0);
	assert_int_equal(inf.processes_dead, 1);

	assert_int_equal(shm_proc_reap(&d->seg, d->lock_fd, d->slot), 1);
	assert_int_equal(shm_proc_reap(&d->seg, d->lock_fd, d->slot), 0);
	assert_int_equal(sesh_info(d, &inf), 0);
	assert_int_equal(inf.processes_dead, 0);
	assert_int_equal(inf.processes_alive, 2);      /* us and the live one */
	assert_true(gc_oldest_reader(&d->seg) <= tag); /* the live reader */

	assert_int_equal(kill(kids[1], SIGKILL), 0);
	assert_int_equal(tu_wait(kids[1]), 128 + SIGKILL);
	assert_int_equal(shm_proc_reap(&d->seg, d->lock_fd, d->slot), 1);
	assert_int_equal(gc_oldest_reader(&d->seg), UINT64_MAX);
	close(ready[0]);
	close(ready[1]);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- stress ------------------------------------------------------------- */

#define NBLOCKS 32
#define WORDS	8
#define POISON	0xdeaddeaddeaddeadull

/* Laid out at the start of the heap region. */
struct arena {
	_Atomic uint64_t current; /* offset of the published block */
	_Atomic uint64_t stop;
	uint8_t pad[48];
	struct block {
		_Atomic uint64_t w[WORDS];
	} blocks[NBLOCKS];
};

struct tally {
	uint64_t reads, bad;
};

static struct arena *arena_of(sesh_t *d)
{
	return shm_ptr(&d->seg, SHM_R_STREAMS, d->seg.geom.region[SHM_R_STREAMS].off,
		       sizeof(struct arena), SHM_CACHELINE);
}

/* Reader process: read the published block until told to stop; every
 * block seen must be whole and never poisoned. */
static void reader_main(const char *name, int out)
{
	struct tally t = {0, 0};
	struct shm_reader *r;
	struct arena *a;
	sesh_t *d = NULL;

	if (sesh_open(name, NULL, NULL, 0, &d) != 0)
		_exit(2);
	r = gc_reader_take(&d->seg, d->slot, 0);
	a = arena_of(d);
	if (r == NULL || a == NULL)
		_exit(3);
	while (!atomic_load_explicit(&a->stop, memory_order_relaxed)) {
		struct block *b;
		uint64_t off, v0;
		int i;

		gc_enter(&d->seg, r);
		off = atomic_load_explicit(&a->current, memory_order_acquire);
		b = shm_ptr(&d->seg, SHM_R_STREAMS, off, sizeof(*b), 8);
		if (b == NULL) {
			t.bad++;
		} else {
			v0 = atomic_load_explicit(&b->w[0],
						  memory_order_relaxed);
			for (i = 1; i < WORDS; i++)
				if (atomic_load_explicit(
					    &b->w[i], memory_order_relaxed) !=
				    v0)
					t.bad++;
			if (v0 == POISON)
				t.bad++;
		}
		gc_exit(r);
		t.reads++;
	}
	tu_put(out, &t, sizeof(t));
	sesh_close(d);
	_exit(0);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_stress(void **state)
{
	enum { READERS = 3 };
	struct {
		int idx;
		uint64_t tag;
	} retired[NBLOCKS];
	int freelist[NBLOCKS], nfree = 0, nretired = 0, out[2], i, cur;
	uint64_t seq = 1, reclaimed = 0, reclaimed_after_kill = 0, total = 0;
	pid_t kids[READERS + 1];
	char name[64];
	struct arena *a;
	double t0, killed_at = 0;
	bool killed = false;
	sesh_t *d;

	tu_name(name, sizeof(name), "ep3");
	d = open_small(name);
	a = arena_of(d);
	assert_non_null(a);
	for (i = 1; i < NBLOCKS; i++)
		freelist[nfree++] = i;
	cur = 0;
	for (i = 0; i < WORDS; i++)
		atomic_store(&a->blocks[0].w[i], seq);
	atomic_store(&a->current, shm_off(&d->seg, &a->blocks[0]));

	assert_int_equal(pipe(out), 0);
	for (i = 0; i < READERS + 1; i++) {
		kids[i] = fork();
		assert_true(kids[i] >= 0);
		if (kids[i] == 0) {
			tu_die_with(getppid());
			reader_main(name, out[1]);
		}
	}
	srand((unsigned)time(NULL));
	t0 = now_s();
	while (now_s() - t0 < 1.5) {
		int next, j;
		uint64_t oldest;

		/* Kill the extra reader once, at a random moment, quite
		 * possibly inside its section; then keep reaping. */
		if (!killed && now_s() - t0 > 0.3 + (rand() % 300) / 1000.0) {
			assert_int_equal(kill(kids[READERS], SIGKILL), 0);
			assert_int_equal(tu_wait(kids[READERS]), 128 + SIGKILL);
			killed = true;
			killed_at = now_s();
		}
		if (killed)
			assert_true(shm_proc_reap(&d->seg, d->lock_fd,
						  d->slot) >= 0);

		/* Reclaim: poison what no reader can reach any more. */
		oldest = gc_oldest_reader(&d->seg);
		for (j = 0; j < nretired;) {
			if (retired[j].tag < oldest) {
				struct block *b = &a->blocks[retired[j].idx];
				int w;

				for (w = 0; w < WORDS; w++)
					atomic_store_explicit(
						&b->w[w], POISON,
						memory_order_relaxed);
				freelist[nfree++] = retired[j].idx;
				retired[j] = retired[--nretired];
				reclaimed++;
				if (killed && now_s() - killed_at > 0.1)
					reclaimed_after_kill++;
			} else {
				j++;
			}
		}
		if (nfree == 0)
			continue; /* all retired: wait for readers */

		/* Publish a new block, retire the old one. */
		next = freelist[--nfree];
		seq++;
		for (i = 0; i < WORDS; i++)
			atomic_store_explicit(&a->blocks[next].w[i], seq,
					      memory_order_relaxed);
		atomic_store_explicit(&a->current,
				      shm_off(&d->seg, &a->blocks[next]),
				      memory_order_release);
		retired[nretired].idx = cur;
		retired[nretired].tag = gc_retire_tag(&d->seg);
		nretired++;
		cur = next;
	}
	atomic_store(&a->stop, 1);
	for (i = 0; i < READERS; i++) {
		struct tally t;

		assert_int_equal(tu_get(out[0], &t, sizeof(t)), 0);
		assert_int_equal(t.bad, 0);
		assert_true(t.reads > 0);
		total += t.reads;
	}
	for (i = 0; i < READERS; i++)
		assert_int_equal(tu_wait(kids[i]), 0);
	print_message("%llu reads, %llu blocks published, %llu reclaimed "
		      "(%llu after the kill)\n",
		      (unsigned long long)total, (unsigned long long)seq,
		      (unsigned long long)reclaimed,
		      (unsigned long long)reclaimed_after_kill);
	assert_true(reclaimed > NBLOCKS);
	assert_true(reclaimed_after_kill > 0); /* the dead one let go */
	close(out[0]);
	close(out[1]);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- threads ------------------------------------------------------------ */

static pthread_barrier_t b_held, b_go;
static sesh_t *thr_d;

struct thr_res {
	int rc;
	uint32_t k;
	uint64_t epoch;
};

static void *hold_reader(void *arg)
{
	struct thr_res *res = arg;
	struct gc_thread_reader *tr;

	res->rc = gc_read_lock(thr_d, &tr);
	if (res->rc == 0) {
		res->k = tr->k;
		res->epoch = atomic_load(&tr->r->epoch);
	}
	pthread_barrier_wait(&b_held);
	pthread_barrier_wait(&b_go);
	if (res->rc == 0)
		gc_read_unlock(tr);
	return NULL;
}

static void *try_reader(void *arg)
{
	struct thr_res *res = arg;
	struct gc_thread_reader *tr;

	res->rc = gc_read_lock(thr_d, &tr);
	if (res->rc == 0) {
		res->k = tr->k;
		gc_read_unlock(tr);
	}
	return NULL;
}

static void test_thread_readers(void **state)
{
	enum { N = SHM_READERS_PER_PROC - 1 };
	struct gc_thread_reader *tr, *tr2;
	struct thr_res res[N], extra;
	pthread_t th[N], t;
	uint8_t seen[SHM_READERS_PER_PROC] = {0};
	char name[64];
	pid_t pid;
	int i;

	tu_name(name, sizeof(name), "ep4");
	thr_d = open_small(name);

	/* Nesting on the main thread: one slot, entered once. */
	assert_int_equal(gc_read_lock(thr_d, &tr), 0);
	assert_int_equal(gc_read_lock(thr_d, &tr2), 0);
	assert_ptr_equal(tr, tr2);
	assert_int_equal(tr->nest, 2);
	gc_read_unlock(tr2);
	assert_int_not_equal(atomic_load(&tr->r->epoch), 0);
	gc_read_unlock(tr);
	assert_int_equal(atomic_load(&tr->r->epoch), 0);
	seen[tr->k] = 1;

	/* Every other slot to a thread of its own; one more is refused. */
	assert_int_equal(pthread_barrier_init(&b_held, NULL, N + 1), 0);
	assert_int_equal(pthread_barrier_init(&b_go, NULL, N + 1), 0);
	for (i = 0; i < N; i++)
		assert_int_equal(
			pthread_create(&th[i], NULL, hold_reader, &res[i]), 0);
	pthread_barrier_wait(&b_held);
	for (i = 0; i < N; i++) {
		assert_int_equal(res[i].rc, 0);
		assert_int_not_equal(res[i].epoch, 0);
		assert_true(res[i].k < SHM_READERS_PER_PROC);
		assert_false(seen[res[i].k]);
		seen[res[i].k] = 1;
	}
	for (i = 0; i < (int)SHM_READERS_PER_PROC; i++)
		assert_true(seen[i]);
	assert_int_equal(pthread_create(&t, NULL, try_reader, &extra), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(extra.rc, -ENOSPC);
	pthread_barrier_wait(&b_go);
	for (i = 0; i < N; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	/* Their exits gave the slots back. */
	for (i = 0; i < (int)SHM_READERS_PER_PROC; i++)
		assert_int_equal(!!(thr_d->readers_taken[i / 64] &
				    ((uint64_t)1 << (i % 64))),
				 (uint32_t)i == tr->k);
	assert_int_equal(pthread_create(&t, NULL, try_reader, &extra), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(extra.rc, 0);
	pthread_barrier_destroy(&b_held);
	pthread_barrier_destroy(&b_go);

	/* A forked child reads through the inherited handle with a reader
	 * slot of its own process slot, not the parent's cached one. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct gc_thread_reader *c;
		int slot;

		if (gc_read_lock(thr_d, &c) != 0)
			_exit(2);
		slot = thr_d->slot;
		if (slot < 0 || slot == 0 ||
		    c->r != shm_reader_slot(&thr_d->seg, (uint32_t)slot, c->k))
			_exit(3);
		gc_read_unlock(c);
		_exit(0);
	}
	assert_int_equal(tu_wait(pid), 0);

	/* Closed and reopened: the thread's cache of the old handle is
	 * stale, and the new handle gets a slot of its own. */
	sesh_close(thr_d);
	thr_d = tu_create(name, NULL);
	assert_int_equal(gc_read_lock(thr_d, &tr), 0);
	assert_ptr_equal(tr->r, shm_reader_slot(&thr_d->seg,
						(uint32_t)thr_d->slot, tr->k));
	gc_read_unlock(tr);
	sesh_close(thr_d);
	assert_int_equal(sesh_unlink(name), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_process),
		cmocka_unit_test(test_dead_reader),
		cmocka_unit_test(test_stress),
		cmocka_unit_test(test_thread_readers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
