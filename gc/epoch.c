/*
 * epoch.c - grace periods of the cross-process epoch scheme (the read
 * side and the "How it works" are in epoch.h).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "gc/epoch.h"

/* Handles one thread reads through at once before the least useful entry
 * is evicted (its reader slot given back). */
#define GC_TLS_ENTRIES 4

static __thread struct gc_thread_reader tls[GC_TLS_ENTRIES];
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_key_ok;

static void tr_return(struct gc_thread_reader *tr)
{
	if (tr->d != NULL)
		shm_reader_return(tr->d, tr->serial, tr->gen, tr->k);
	tr->d = NULL;
	tr->nest = 0;
}

/* At thread exit: give back every reader slot the thread holds. */
static void tls_destructor(void *unused)
{
	int i;

	for (i = 0; i < GC_TLS_ENTRIES; i++)
		tr_return(&tls[i]);
}

static void tls_init(void)
{
	tls_key_ok = pthread_key_create(&tls_key, tls_destructor) == 0;
}

static bool tr_current(const struct gc_thread_reader *tr, struct sesh *d)
{
	return tr->d == d && tr->serial == d->serial &&
	       tr->gen ==
		       atomic_load_explicit(&d->reg_gen, memory_order_relaxed);
}

/* Find the thread's entry for d, or make one (taking a reader slot). */
static int tr_find(struct sesh *d, struct gc_thread_reader **out)
{
	struct gc_thread_reader *tr = NULL;
	uint32_t gen = 0;
	int i, k, slot;

	for (i = 0; i < GC_TLS_ENTRIES; i++) {
		if (tr_current(&tls[i], d)) {
			*out = &tls[i];
			return 0;
		}
	}
	/* An empty entry, else one not inside a section (stale entries,
	 * of closed handles or of the parent before fork, are such). */
	for (i = 0; i < GC_TLS_ENTRIES && tr == NULL; i++)
		if (tls[i].d == NULL)
			tr = &tls[i];
	for (i = 0; i < GC_TLS_ENTRIES && tr == NULL; i++)
		if (tls[i].nest == 0)
			tr = &tls[i];
	if (tr == NULL)
		return -ENOSPC; /* nested in GC_TLS_ENTRIES other handles */
	tr_return(tr);

	pthread_once(&tls_once, tls_init);
	if (!tls_key_ok || pthread_setspecific(tls_key, tls) != 0)
		return -ENOMEM; /* could not arrange the give-back */
	k = shm_reader_claim(d, &gen);
	if (k < 0)
		return k;
	slot = atomic_load_explicit(&d->slot, memory_order_acquire);
	tr->r = slot >= 0 ? gc_reader_take(&d->seg, (uint32_t)slot, (uint32_t)k)
			  : NULL;
	if (tr->r == NULL) {
		shm_reader_return(d, d->serial, gen, (uint32_t)k);
		return -EIO;
	}
	tr->d = d;
	tr->serial = d->serial;
	tr->gen = gen;
	tr->k = (uint32_t)k;
	tr->nest = 0;
	*out = tr;
	return 0;
}

int gc_read_lock(struct sesh *d, struct gc_thread_reader **out)
{
	struct gc_thread_reader *tr;
	int rc = tr_find(d, &tr);

	if (rc < 0)
		return rc;
	if (tr->nest++ == 0)
		gc_enter(&d->seg, tr->r);
	*out = tr;
	return 0;
}

uint64_t gc_retire_tag(const struct shm_seg *s)
{
	/* Seq-cst: ordered after the unlink that precedes the call. */
	return atomic_load(&shm_hdr(s)->epoch);
}

struct shm_reader *gc_reader_take(const struct shm_seg *s, uint32_t p,
				  uint32_t k)
{
	struct shm_proc *proc = shm_proc_slot(s, p);
	struct shm_reader *r = shm_reader_slot(s, p, k);
	uint32_t used;

	if (proc == NULL || r == NULL)
		return NULL;
	/* Only the owning process writes its high-water mark; a scanner
	 * that misses the raise sees the slot still 0, as it is until the
	 * thread's first gc_enter(), whose fence orders this store too. */
	used = atomic_load_explicit(&proc->readers_used, memory_order_relaxed);
	if (used < k + 1)
		atomic_store_explicit(&proc->readers_used, k + 1,
				      memory_order_relaxed);
	return r;
}

uint64_t gc_oldest_reader(const struct shm_seg *s)
{
	uint64_t oldest = UINT64_MAX;
	uint32_t i, k, n;

	atomic_fetch_add(&shm_hdr(s)->epoch, 1);
	/* Full fence: the unlinks before this call are visible before we
	 * read any reader slot; pairs with the fence in gc_enter(). */
	atomic_thread_fence(memory_order_seq_cst);
	/* A slot claimed after this load belongs to a process whose first
	 * gc_enter() comes after our fence: it sees the new epoch. */
	n = shm_procs_scan(s);
	for (i = 0; i < n; i++) {
		struct shm_proc *p = shm_proc_slot(s, i);
		uint32_t used;

		if (p == NULL)
			break;
		used = atomic_load_explicit(&p->readers_used,
					    memory_order_relaxed);
		if (used > SHM_READERS_PER_PROC)
			used = SHM_READERS_PER_PROC; /* scribbled */
		for (k = 0; k < used; k++) {
			struct shm_reader *r = shm_reader_slot(s, i, k);
			uint64_t e;

			if (r == NULL)
				break;
			/* Acquire: pairs with gc_exit()'s release, so a
			 * slot seen empty has finished its loads. */
			e = atomic_load_explicit(&r->epoch,
						 memory_order_acquire);
			if (e != 0 && e < oldest)
				oldest = e;
		}
	}
	return oldest;
}

/* RETIRED(tag) -> FREE, if the word still says so. Release: the readers'
 * loads (which our caller's gc_oldest_reader() acquired) and our own
 * happen before the next owner, who acquires, writes the block. */
static bool free_retired(_Atomic uint64_t *w, uint64_t word)
{
	return atomic_compare_exchange_strong_explicit(
		w, &word, SHM_BLK_FREE, memory_order_release,
		memory_order_relaxed);
}

uint32_t gc_retire(const struct shm_seg *s, struct shm_alloc_local *l,
		   uint64_t off)
{
	uint64_t size, word;
	_Atomic uint64_t *w = shm_blk_word(s, off, &size);
	uint32_t n;

	if (w == NULL)
		return 0;
	word = shm_blk_retired(gc_retire_tag(s));
	/* Relaxed: the tag was read after the unlink (seq-cst), and only a
	 * reclaimer that advanced the epoch past it frees the block. */
	atomic_store_explicit(w, word, memory_order_relaxed);

	pthread_mutex_lock(&l->lock);
	if (l->n == SHM_RETIRE_LOCAL) {
		/* Full of blocks still in their grace period: forget the
		 * older half; they stay RETIRED for gc_sweep(). */
		memmove(&l->retired[0], &l->retired[SHM_RETIRE_LOCAL / 2],
			sizeof(l->retired[0]) * (SHM_RETIRE_LOCAL / 2));
		l->n = SHM_RETIRE_LOCAL / 2;
	}
	l->retired[l->n].off = off;
	l->retired[l->n].word = word;
	n = ++l->n;
	pthread_mutex_unlock(&l->lock);
	return n;
}

uint64_t gc_reclaim(const struct shm_seg *s, struct shm_alloc_local *l)
{
	uint64_t oldest, size, freed = 0;
	uint32_t i, keep = 0;

	pthread_mutex_lock(&l->lock);
	if (l->n == 0) {
		pthread_mutex_unlock(&l->lock);
		return 0;
	}
	oldest = gc_oldest_reader(s);
	for (i = 0; i < l->n; i++) {
		_Atomic uint64_t *w = shm_blk_word(s, l->retired[i].off, &size);

		if (w != NULL && SHM_BLK_TAG(l->retired[i].word) >= oldest) {
			l->retired[keep++] = l->retired[i];
			continue;
		}
		/* Fails if a sweep freed it first (and someone may own it
		 * now): then it is not ours to touch. */
		if (w != NULL && free_retired(w, l->retired[i].word))
			freed++;
	}
	l->n = keep;
	pthread_mutex_unlock(&l->lock);
	return freed;
}

struct sweep {
	uint64_t oldest, freed;
};

static void sweep_one(_Atomic uint64_t *w, uint64_t v, unsigned c, uint64_t k,
		      void *arg)
{
	struct sweep *sw = arg;

	(void)c;
	(void)k;
	if (SHM_BLK_STATE(v) == SHM_BLK_RETIRED && SHM_BLK_TAG(v) < sw->oldest &&
	    free_retired(w, v))
		sw->freed++;
}

uint64_t gc_sweep(const struct shm_seg *s, int c)
{
	struct sweep sw = {gc_oldest_reader(s), 0};

	shm_blk_each(s, c, sweep_one, &sw);
	return sw.freed;
}

uint64_t gc_sweep_range(const struct shm_seg *s, uint64_t from, uint64_t n,
			uint64_t *next)
{
	struct sweep sw = {gc_oldest_reader(s), 0};

	*next = shm_blk_range(s, from, n, sweep_one, &sw);
	return sw.freed;
}
