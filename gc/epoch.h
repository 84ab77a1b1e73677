/*
 * epoch.h - cross-process epoch-based reclamation, the read side inline.
 *
 * liburcu's flavours keep their reader registry in process-private memory,
 * so they cannot protect data that several processes share. This is the
 * same idea with its state in the segment: a global epoch in the header,
 * and reader slots (struct shm_reader, SHM_READERS_PER_PROC per process
 * slot) in which a thread inside a read-side section announces the epoch
 * it entered at.
 *
 * How it works. A writer makes an object unreachable with one atomic store
 * (unlink, or a copy-on-write swap), then tags it with gc_retire_tag(): the
 * epoch after the unlink. A reclaimer calls gc_oldest_reader(), which
 * advances the epoch and returns the oldest epoch any reader announces; an
 * object whose tag is below it can no longer be reached by anyone and can
 * be freed. Why: a reader announcing e <= tag may have entered before the
 * unlink, so it holds the object back; a reader announcing e > tag loaded
 * the epoch after it was advanced past tag, which happened after the
 * unlink, so it cannot find the object. A reader that loaded an old epoch
 * but announced it only after the reclaimer's scan is also safe: the scan
 * and the announcement are ordered by full fences on both sides (the
 * store-buffer pattern), so a reader the scan missed starts its traversal
 * after the unlink. Readers only ever write their own slot, and never wait.
 *
 * A dead process's reader slots are cleared when its registry slot is
 * recovered (shm_proc_reap, or a claim that reuses the slot), so a reader
 * killed inside its section holds reclamation back only until then.
 */
#ifndef SESH_GC_EPOCH_H
#define SESH_GC_EPOCH_H

#include "shm/shm.h"

/* Enter a read-side section on reader slot r (not re-entrant: nesting is
 * counted by the caller). Wait-free; no read-modify-write. */
static inline void gc_enter(const struct shm_seg *s, struct shm_reader *r)
{
	_Atomic uint64_t *ep = &shm_hdr(s)->epoch;
	uint64_t e, e2;

	e = atomic_load_explicit(ep, memory_order_relaxed);
	atomic_store_explicit(&r->epoch, e, memory_order_relaxed);
	/* Full fence: the announcement is visible before any load of the
	 * protected data, pairing with the fence in gc_oldest_reader(). */
	atomic_thread_fence(memory_order_seq_cst);
	/* The epoch moved while we announced: announce the newer one, so we
	 * hold back less. Acquire: we then see everything unlinked before
	 * the advance to e2, so announcing e2 is true. */
	e2 = atomic_load_explicit(ep, memory_order_acquire);
	if (e2 != e)
		atomic_store_explicit(&r->epoch, e2, memory_order_relaxed);
}

/* Leave the section. Release: every load of protected data made inside it
 * happens before a reclaimer sees the slot empty. */
static inline void gc_exit(struct shm_reader *r)
{
	atomic_store_explicit(&r->epoch, 0, memory_order_release);
}

/* The tag of an object just made unreachable (call after the unlink). */
uint64_t gc_retire_tag(const struct shm_seg *s);

/* Advance the epoch, then return the oldest epoch a reader announces, or
 * UINT64_MAX if no reader is inside a section. Objects tagged below the
 * result can be freed. Lock-free; reads one line per process slot in use
 * and one per reader slot handed out. */
uint64_t gc_oldest_reader(const struct shm_seg *s);

/*
 * Retiring blocks of the allocator (shm/alloc.c). A writer that unlinked a
 * block it owns calls gc_retire(): the block's state word becomes
 * RETIRED(tag) and the process remembers it. gc_reclaim() frees the
 * remembered blocks whose grace period is over; gc_sweep() frees every
 * retired block of a class whose grace period is over, whoever retired
 * it (the slow path when a class runs dry, and what recovers the retired
 * blocks of a process that died).
 */

/* Retire block `off`, which the caller owns and has just unlinked. Returns
 * how many blocks the process now remembers. */
uint32_t gc_retire(const struct shm_seg *s, struct shm_alloc_local *l,
		   uint64_t off);

/* Free the remembered blocks whose grace period is over; returns how
 * many. */
uint64_t gc_reclaim(const struct shm_seg *s, struct shm_alloc_local *l);

/* Free every retired block of class c (every class if c < 0) whose grace
 * period is over. Returns how many were freed. */
uint64_t gc_sweep(const struct shm_seg *s, int c);

/* The same for at most n blocks from block number `from` (see
 * shm_blk_range()); *next is where the next call goes on. */
uint64_t gc_sweep_range(const struct shm_seg *s, uint64_t from, uint64_t n,
			uint64_t *next);

/* Hand out reader slot k of process slot p to a thread: bumps the slot's
 * high-water mark so scans and recovery see it. Returns the slot or NULL if
 * out of range. */
struct shm_reader *gc_reader_take(const struct shm_seg *s, uint32_t p,
				  uint32_t k);

/*
 * Threads. Each thread that reads through a handle owns one of its
 * process's reader slots, taken on the thread's first read and given back
 * when the thread exits (or when the handle is closed, or in a child after
 * fork, where the parent's slots are not the child's). A small per-thread
 * cache makes finding it a few compares.
 */
struct gc_thread_reader {
	struct sesh *d;	 /* compared, dereferenced only when == caller's */
	uint64_t serial; /* of the handle when the slot was taken */
	uint32_t gen;	 /* registration generation, likewise */
	uint32_t k;	 /* reader index in our process slot */
	struct shm_reader *r;
	unsigned nest; /* read-side sections open on this thread */
};

/* Enter a read-side section on d for the calling thread; sections nest.
 * *tr is what gc_read_unlock() takes. Returns 0, -ENOSPC if every reader
 * slot of this process is taken by other threads (SHM_READERS_PER_PROC
 * threads of one process inside sesh at once), or an error of
 * registering a forked child. Wait-free once the thread has its slot. */
int gc_read_lock(struct sesh *d, struct gc_thread_reader **tr);

/* Leave the section gc_read_lock() entered. */
static inline void gc_read_unlock(struct gc_thread_reader *tr)
{
	if (--tr->nest == 0)
		gc_exit(tr->r);
}

#endif /* SESH_GC_EPOCH_H */
