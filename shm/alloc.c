/*
 * alloc.c - the block allocator: fixed-size blocks in power-of-two size
 * classes, each block with a state word of its own.
 *
 * How it works. Each class is an array of `cap` blocks and a parallel
 * array of 64-bit state words (shm.h lists the states). Claiming a block
 * is one compare-and-swap of its state word from FREE to OWNED(our slot,
 * our incarnation): the claim and the record of who claimed it are the
 * same atomic step, so a process killed at any instruction leaves every
 * block either free or marked with its owner, and sesh_recover() can
 * find what the dead left behind by looking at state words alone, never
 * trusting what is written in the blocks. Every class can hold a block
 * for every session at once (plus slack for updates in flight and blocks
 * in their grace period), so no mix of sizes runs one class dry while
 * another has room; the cost is virtual address space, which tmpfs does
 * not commit until a block is touched.
 *
 * Searching starts at a per-process cursor and moves forward, so a
 * process filling a class finds the next block at once, and processes do
 * not fight over the same words.
 */
#include "config.h"

#include <errno.h>
#include <unistd.h>

#include "shm/shm.h"

int shm_class_for(const struct shm_geom *g, uint64_t bytes)
{
	unsigned c;

	for (c = 0; c < g->nclasses; c++)
		if (bytes <= g->cls[c].size)
			return (int)c;
	return -E2BIG;
}

_Atomic uint64_t *shm_class_word(const struct shm_seg *s, unsigned c,
				 uint64_t k)
{
	const struct shm_class *cl;

	if (c >= s->geom.nclasses || k >= s->geom.cls[c].cap)
		return NULL;
	cl = &s->geom.cls[c];
	return shm_ptr(s, SHM_R_BLOCKS, cl->states + k * 8, 8, 8);
}

_Atomic uint64_t *shm_blk_word(const struct shm_seg *s, uint64_t off,
			       uint64_t *size)
{
	unsigned c;

	for (c = 0; c < s->geom.nclasses; c++) {
		const struct shm_class *cl = &s->geom.cls[c];

		if (off < cl->blocks || off >= cl->end)
			continue;
		if ((off & (cl->size - 1)) != 0)
			return NULL; /* inside a block, not at its start */
		*size = cl->size;
		return shm_class_word(s, c, (off - cl->blocks) / cl->size);
	}
	return NULL;
}

int64_t shm_claim(const struct shm_seg *s, unsigned region, uint64_t states,
		  uint64_t cap, _Atomic uint64_t *cursor, uint64_t owner)
{
	uint64_t start, i, k;

	start = atomic_load_explicit(cursor, memory_order_relaxed);
	if (start == 0) /* first use: spread processes over the array */
		start = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull >> 20;
	start %= cap;
	for (i = 0, k = start; i < cap; i++, k = k + 1 < cap ? k + 1 : 0) {
		_Atomic uint64_t *w = shm_ptr(s, region, states + k * 8, 8, 8);
		uint64_t v;

		if (w == NULL)
			return -EUCLEAN;
		v = atomic_load_explicit(w, memory_order_relaxed);
		if (v != SHM_BLK_FREE)
			continue;
		/* Acquire: pairs with the release of whoever freed it,
		 * which came after every user was done with it; our writes
		 * into what it guards come after all that. */
		if (atomic_compare_exchange_strong_explicit(
			    w, &v, owner, memory_order_acquire,
			    memory_order_relaxed)) {
			atomic_store_explicit(cursor, k + 1,
					      memory_order_relaxed);
			return (int64_t)k;
		}
	}
	return -ENOSPC;
}

int64_t shm_alloc(struct shm_seg *s, struct shm_alloc_local *l, unsigned c,
		  uint64_t owner)
{
	const struct shm_class *cl;
	int64_t k;

	if (c >= s->geom.nclasses)
		return -E2BIG;
	cl = &s->geom.cls[c];
	k = shm_claim(s, SHM_R_BLOCKS, cl->states, cl->cap, &l->cursor[c],
		      owner);
	return k < 0 ? k : (int64_t)(cl->blocks + (uint64_t)k * cl->size);
}

void shm_free_unpublished(struct shm_seg *s, uint64_t off, uint64_t owner)
{
	uint64_t size;
	_Atomic uint64_t *w = shm_blk_word(s, off, &size);

	/* Release: our writes into the block come before the next owner's,
	 * who acquires. Only the owner frees an OWNED block, so the CAS
	 * fails only on a scribbled word, which sesh_check() reports. */
	if (w != NULL)
		(void)atomic_compare_exchange_strong_explicit(
			w, &owner, SHM_BLK_FREE, memory_order_release,
			memory_order_relaxed);
}

void shm_blk_each(const struct shm_seg *s, int c, shm_blk_fn fn, void *arg)
{
	unsigned first = c < 0 ? 0 : (unsigned)c;
	unsigned last = c < 0 ? s->geom.nclasses : (unsigned)c + 1;
	uint64_t k;

	for (; first < last && first < s->geom.nclasses; first++) {
		for (k = 0; k < s->geom.cls[first].cap; k++) {
			_Atomic uint64_t *w = shm_class_word(s, first, k);

			if (w == NULL)
				break;
			fn(w, atomic_load_explicit(w, memory_order_relaxed),
			   first, k, arg);
		}
	}
}

uint64_t shm_blk_total(const struct shm_seg *s)
{
	uint64_t n = 0;
	unsigned c;

	for (c = 0; c < s->geom.nclasses; c++)
		n += s->geom.cls[c].cap;
	return n;
}

uint64_t shm_blk_range(const struct shm_seg *s, uint64_t from, uint64_t n,
		       shm_blk_fn fn, void *arg)
{
	uint64_t base = 0, k;
	unsigned c;

	for (c = 0; c < s->geom.nclasses && n > 0; c++) {
		uint64_t cap = s->geom.cls[c].cap;

		if (from >= base + cap) {
			base += cap;
			continue;
		}
		for (k = from - base; k < cap && n > 0; k++, n--, from++) {
			_Atomic uint64_t *w = shm_class_word(s, c, k);

			if (w == NULL)
				return 0;
			fn(w, atomic_load_explicit(w, memory_order_relaxed), c,
			   k, arg);
		}
		base += cap;
	}
	return from >= shm_blk_total(s) ? 0 : from;
}
