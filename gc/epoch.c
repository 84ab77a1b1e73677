/*
 * epoch.c - grace periods of the cross-process epoch scheme (the read
 * side and the "How it works" are in epoch.h).
 */
#include "config.h"

#include "gc/epoch.h"

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
	uint32_t i, k;

	atomic_fetch_add(&shm_hdr(s)->epoch, 1);
	/* Full fence: the unlinks before this call are visible before we
	 * read any reader slot; pairs with the fence in gc_enter(). */
	atomic_thread_fence(memory_order_seq_cst);
	for (i = 0; i < s->geom.max_procs; i++) {
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
