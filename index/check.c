/*
 * check.c - what the reaper and `sesh check` run: recovery of what dead
 * processes left in the index and the allocator, and a validator of every
 * invariant the writers keep.
 *
 * Recovery. A process that died may have left: its registry and reader
 * slots (shm_proc_reap clears them), a stripe lock (robust: the next
 * locker repairs the stripe, see index.c), and blocks OWNED by it that no
 * chain links: new records it never published, old ones it had unlinked
 * and not yet retired. A block OWNED by a dead process is found from the
 * state words alone; whether a chain links it is settled under its
 * stripe's lock, after that stripe is repaired, when every linked record
 * is LIVE: a block still OWNED then is unlinked, and is retired.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gc/epoch.h"
#include "index/index.h"
#include "ring/ring.h"

/* Retire block k of class c if it is still `word` (OWNED by the dead),
 * after settling under its stripe's lock that no chain links it. */
static void recover_block(const struct shm_seg *s, _Atomic uint64_t *w,
			  unsigned c, uint64_t k, uint64_t word)
{
	uint64_t off = s->geom.cls[c].blocks + k * s->geom.cls[c].size;
	struct idx_view v;
	uint32_t st = 0;
	bool locked = false;

	/* A block whose contents are not a valid record was never linked
	 * (records are complete before they are linked): no lock needed. */
	if (idx_view(s, off, &v)) {
		st = (uint32_t)(v.hash & (s->geom.nbuckets - 1) &
				(s->geom.nstripes - 1));
		locked = idx_stripe_lock(s, st) == 0;
		if (!locked)
			return;
	}
	/* Repaired stripe: linked records are LIVE, so still `word` means
	 * unlinked. The tag is now, later than any unlink it had done. */
	(void)atomic_compare_exchange_strong_explicit(
		w, &word, shm_blk_retired(gc_retire_tag(s)),
		memory_order_relaxed, memory_order_relaxed);
	if (locked)
		idx_stripe_unlock(s, st);
}

/* What a block walk of recovery or of the check carries along. */
struct walk_ctx {
	sesh_t *d;
	uint8_t *cache; /* shm_owner_dead()'s answers */
	sesh_check_t *out;
};

static void recover_one(_Atomic uint64_t *w, uint64_t v, unsigned c, uint64_t k,
			void *arg)
{
	struct walk_ctx *x = arg;

	if (SHM_BLK_STATE(v) == SHM_BLK_OWNED &&
	    shm_owner_dead(x->d, v, x->cache))
		recover_block(&x->d->seg, w, c, k, v);
}

/* With bucket b's stripe held: whether a record of its chain holds
 * `stream`. */
static bool chain_names(const struct shm_seg *s, uint64_t b, uint64_t stream)
{
	uint64_t off = idx_head(s, b), n;
	struct idx_view v;

	for (n = 0; off != 0 && n < IDX_CHAIN_MAX; n++) {
		if (!idx_view(s, off, &v))
			return false;
		if (v.stream == stream)
			return true;
		off = atomic_load_explicit(&v.r->next, memory_order_acquire);
	}
	return false;
}

/* Rings [from, from + n): settle each that may need it under the lock of
 * the stripe its record would be in. Returns where to go on (0 at the
 * end), or a negative errno. */
static int64_t recover_rings(struct sesh *d, uint64_t from, uint64_t n,
			     uint8_t *cache, struct idx_recovery *out)
{
	const struct shm_seg *s = &d->seg;
	uint64_t r, b, stream;

	for (r = from; r < s->geom.nrings && n > 0; r++, n--) {
		uint32_t st;
		int rc;

		if (!ring_recover_bucket(d, r, cache, &b, &stream))
			continue;
		st = (uint32_t)(b & (s->geom.nstripes - 1));
		rc = idx_stripe_lock(s, st);
		if (rc < 0)
			return rc;
		out->holes += ring_recover_one(d, r, chain_names(s, b, stream),
					       cache);
		idx_stripe_unlock(s, st);
	}
	return r >= s->geom.nrings ? 0 : (int64_t)r;
}

int idx_recover_step(struct sesh *d, struct idx_recover_walk *w, uint64_t n,
		     struct idx_recovery *out)
{
	struct walk_ctx x = {0};
	const struct shm_seg *s = &d->seg;
	int64_t next;
	int rc;

	/* Locking each stripe once repairs any whose holder died. */
	rc = idx_lock_all(s);
	if (rc < 0)
		return rc;
	idx_unlock_all(s);
	rc = idx_recount(s);
	if (rc < 0)
		return rc;
	x.d = d;
	x.cache = calloc(s->geom.max_procs, 1);
	if (x.cache == NULL)
		return -ENOMEM;
	if (w->phase == 0) {
		/* Blocks OWNED by the dead that no chain links: retired. */
		w->block = shm_blk_range(s, w->block, n, recover_one, &x);
		if (w->block == 0)
			w->phase = 1;
	} else if (w->phase == 1) {
		memset(x.cache, 0, s->geom.max_procs);
		next = recover_rings(d, w->ring, n, x.cache, out);
		if (next < 0) {
			free(x.cache);
			return (int)next;
		}
		w->ring = (uint64_t)next;
		if (w->ring == 0)
			w->phase = 2;
	}
	free(x.cache);
	return w->phase >= 2;
}

int idx_recover(struct sesh *d, struct idx_recovery *out)
{
	struct idx_recover_walk w = {0};
	int rc;

	memset(out, 0, sizeof(*out));
	do
		rc = idx_recover_step(d, &w, UINT64_MAX, out);
	while (rc == 0);
	if (rc < 0)
		return rc;
	out->blocks_freed = gc_reclaim(&d->seg, &d->alloc);
	out->blocks_freed += gc_sweep(&d->seg, -1);
	out->rings_freed = ring_sweep(d);
	return 0;
}

int sesh_recover(sesh_t *d)
{
	struct idx_recovery r;
	uint64_t req;
	int n, rc;

	if (d == NULL)
		return -EINVAL;
	n = shm_recover_procs(d);
	if (n < 0)
		return n;
	/* Seq-cst: the requests of the slots just emptied are seen. */
	req = atomic_load(&shm_hdr(&d->seg)->recover_req);
	rc = idx_recover(d, &r);
	if (rc < 0)
		return rc;
	idx_recover_done(&d->seg, req);
	return n;
}

void idx_recover_done(const struct shm_seg *s, uint64_t req)
{
	_Atomic uint64_t *done = &shm_hdr(s)->recover_done;
	uint64_t cur = atomic_load(done);

	while (cur < req && !atomic_compare_exchange_weak(done, &cur, req))
		;
}

/* --- the validator ---------------------------------------------------- */

static void problem(sesh_check_t *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void problem(sesh_check_t *out, const char *fmt, ...)
{
	va_list ap;

	if (out->problems++ == 0) {
		va_start(ap, fmt);
		vsnprintf(out->first_problem, sizeof(out->first_problem), fmt,
			  ap);
		va_end(ap);
	}
}

/* Walk chain b: each record valid, in the right bucket, LIVE, of a live
 * namespace, and not repeated. Adds to counts[]. */
static void check_chain(const struct shm_seg *s, uint64_t b, uint64_t *counts,
			sesh_check_t *out)
{
	uint64_t seen[64], off = idx_head(s, b), n, i, size;

	for (n = 0; off != 0; n++) {
		struct idx_view v;
		struct idx_ns *e;
		_Atomic uint64_t *w;

		if (n == IDX_CHAIN_MAX) {
			problem(out,
				"bucket %llu: chain longer than %u "
				"(a cycle?)",
				(unsigned long long)b, IDX_CHAIN_MAX);
			return;
		}
		if (!idx_view(s, off, &v)) {
			problem(out,
				"bucket %llu: offset %#llx is not a valid "
				"record",
				(unsigned long long)b, (unsigned long long)off);
			return;
		}
		if ((v.hash & (s->geom.nbuckets - 1)) != b ||
		    idx_hash(s->geom.hash_key, v.ns, v.id, v.id_len) != v.hash)
			problem(out,
				"bucket %llu: record %#llx hashes "
				"elsewhere",
				(unsigned long long)b, (unsigned long long)off);
		e = idx_ns_entry(s, v.ns);
		if (e == NULL ||
		    atomic_load_explicit(&e->state, memory_order_acquire) !=
			    IDX_NS_READY)
			problem(out, "record %#llx: namespace %u is not in use",
				(unsigned long long)off, v.ns);
		w = shm_blk_word(s, off, &size);
		if (w == NULL ||
		    atomic_load_explicit(w, memory_order_relaxed) !=
			    SHM_BLK_LIVE)
			problem(out,
				"record %#llx: linked but its block is "
				"not LIVE",
				(unsigned long long)off);
		for (i = 0; i < n && i < 64; i++) {
			struct idx_view o;

			if (idx_view(s, seen[i], &o) && o.ns == v.ns &&
			    o.id_len == v.id_len &&
			    memcmp(o.id, v.id, v.id_len) == 0)
				problem(out,
					"bucket %llu: session id stored "
					"twice",
					(unsigned long long)b);
		}
		if (n < 64)
			seen[n] = off;
		counts[v.ns]++;
		out->sessions++;
		off = atomic_load_explicit(&v.r->next, memory_order_acquire);
	}
}

static void check_one(_Atomic uint64_t *w, uint64_t v, unsigned c, uint64_t k,
		      void *arg)
{
	struct walk_ctx *x = arg;
	sesh_check_t *out = x->out;

	(void)w;
	switch (SHM_BLK_STATE(v)) {
	case SHM_BLK_FREE:
	case SHM_BLK_LIVE:
		if (v != SHM_BLK_FREE && v != SHM_BLK_LIVE)
			problem(out, "class %u block %llu: bad state word", c,
				(unsigned long long)k);
		if (SHM_BLK_STATE(v) == SHM_BLK_FREE)
			out->blocks_free++;
		else
			out->blocks_live++;
		break;
	case SHM_BLK_RETIRED:
		out->blocks_retired++;
		break;
	case SHM_BLK_OWNED:
		if (shm_owner_dead(x->d, v, x->cache))
			out->blocks_dead++;
		else
			out->blocks_owned++;
		break;
	default:
		problem(out, "class %u block %llu: unknown state %u", c,
			(unsigned long long)k, SHM_BLK_STATE(v));
	}
}

/* Count the allocator's blocks by state; LIVE blocks must be exactly the
 * linked records. */
static void check_blocks(sesh_t *d, sesh_check_t *out)
{
	struct walk_ctx x = {d, calloc(d->seg.geom.max_procs, 1), out};

	if (x.cache == NULL) {
		problem(out, "out of memory checking the allocator");
		return;
	}
	shm_blk_each(&d->seg, -1, check_one, &x);
	free(x.cache);
	if (out->blocks_live != out->sessions)
		problem(out, "%zu blocks are LIVE but %zu records are linked",
			out->blocks_live, out->sessions);
}

int sesh_check(sesh_t *d, sesh_check_t *out)
{
	const struct shm_seg *s;
	struct idx_hdr *h;
	uint64_t *counts, b;
	uint32_t i;
	int rc;

	if (d == NULL || out == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	rc = shm_ensure_registered(d);
	if (rc < 0)
		return rc;
	s = &d->seg;
	h = idx_hdr(s);
	if (h == NULL || !idx_valid(s)) {
		problem(out, "the index header is not valid");
		return -EUCLEAN;
	}
	counts = calloc(SHM_NS_MAX, sizeof(*counts));
	if (counts == NULL)
		return -ENOMEM;
	rc = idx_lock_all(s);
	if (rc < 0) {
		free(counts);
		return rc;
	}
	/* A writer died in its critical section: rebuild the counts first,
	 * as any writer would; the check is of what the library keeps. */
	if (atomic_load_explicit(&h->recount, memory_order_relaxed))
		idx_recount_locked(s);
	for (b = 0; b < s->geom.nbuckets; b++)
		check_chain(s, b, counts, out);
	for (i = 0; i < SHM_NS_MAX; i++) {
		struct idx_ns *e = idx_ns_entry(s, i);
		uint64_t have;

		if (e == NULL)
			continue;
		if (atomic_load_explicit(&e->state, memory_order_acquire) !=
		    IDX_NS_READY) {
			if (counts[i] != 0)
				problem(out,
					"namespace %u: free but has "
					"sessions",
					i);
			continue;
		}
		out->namespaces++;
		have = atomic_load_explicit(&e->count, memory_order_relaxed);
		if (have != counts[i])
			problem(out, "namespace %.64s: count %llu, %llu linked",
				e->name, (unsigned long long)have,
				(unsigned long long)counts[i]);
	}
	if (atomic_load_explicit(&h->total, memory_order_relaxed) !=
	    out->sessions)
		problem(out, "total count %llu, %zu linked",
			(unsigned long long)atomic_load_explicit(
				&h->total, memory_order_relaxed),
			out->sessions);
	check_blocks(d, out);
	idx_unlock_all(s);
	free(counts);
	return out->problems ? -EUCLEAN : 0;
}
