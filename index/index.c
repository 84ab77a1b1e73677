/*
 * index.c - the session store: create, get, touch, update, delete, count,
 * list and expired, over a chained hash table in shared memory.
 *
 * How it works. Each bucket holds the offset of the first record of its
 * chain; each record holds the offset of the next. Readers (get, touch,
 * list) walk a chain inside an epoch read-side section (gc/epoch.h) and
 * never lock, never write a shared word (touch writes the record's time)
 * and never make a system call. Writers serialise per stripe of buckets
 * on a process-shared robust mutex and change a chain with one atomic
 * store each:
 *
 *	create	build the record in a block of our own, then publish it
 *		as the new head of its chain;
 *	update	build a copy with the new metadata, point it at the old
 *		record's successor, then swap it in where the old one was;
 *	delete	point the predecessor past the record.
 *
 * The record that left the chain is retired (gc_retire) and its block is
 * freed once every reader has moved past the epoch it left at. A reader
 * therefore sees the old record or the new one, whole, never a mix.
 *
 * How a writer killed at any instruction stays harmless. Its blocks are
 * marked OWNED by it (see alloc.c) from the moment it claims a new block,
 * and from just before it unlinks an old one, until the block is LIVE in
 * the chain or RETIRED; a linked record is never OWNED except while its
 * owner holds the stripe lock. When a writer dies holding the lock, the
 * next locker gets EOWNERDEAD: it marks every OWNED record of the stripe's
 * chains LIVE (they are linked, so they are whole) and flags the counts
 * for rebuilding, since the dead writer may have linked without counting
 * or counted without linking. Blocks the dead writer left OWNED outside
 * the chains are retired by sesh_recover() (check.c). A killed writer thus
 * leaves each session whole or absent.
 */
#include "config.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "gc/epoch.h"
#include "index/index.h"
#include "index/persist.h"
#include "ring/ring.h"

void (*idx_test_hook)(enum idx_point p);

static inline void point(enum idx_point p)
{
	if (idx_test_hook != NULL)
		idx_test_hook(p);
}

/* Retired blocks a process collects before it tries to free them. */
#define IDX_RECLAIM_BATCH 32u

/* How long an allocation waits for readers to leave their sections
 * before it gives up with -ENOSPC. */
#define IDX_ALLOC_WAIT_MS 250

/* Updates that lose a race with a re-create before giving up. */
#define IDX_UPDATE_TRIES 16

/* Buckets a list walk copies per read-side section. */
#define IDX_WALK_BUCKETS 64u

/* --- addressing ----------------------------------------------------------- */

struct idx_hdr *idx_hdr(const struct shm_seg *s)
{
	return shm_ptr(s, SHM_R_INDEX, s->geom.region[SHM_R_INDEX].off,
		       sizeof(struct idx_hdr), SHM_CACHELINE);
}

struct idx_ns *idx_ns_entry(const struct shm_seg *s, uint32_t i)
{
	if (i >= SHM_NS_MAX)
		return NULL;
	return shm_ptr(s, SHM_R_INDEX, s->geom.idx_ns + (uint64_t)i * 128,
		       sizeof(struct idx_ns), SHM_CACHELINE);
}

static struct idx_stripe *stripe(const struct shm_seg *s, uint32_t i)
{
	if (i >= s->geom.nstripes)
		return NULL;
	return shm_ptr(s, SHM_R_INDEX,
		       s->geom.idx_stripes + (uint64_t)i * SHM_CACHELINE,
		       sizeof(struct idx_stripe), SHM_CACHELINE);
}

_Atomic uint64_t *idx_bucket(const struct shm_seg *s, uint64_t b)
{
	if (b >= s->geom.nbuckets)
		return NULL;
	return shm_ptr(s, SHM_R_INDEX, s->geom.idx_buckets + b * 8, 8, 8);
}

bool idx_view(const struct shm_seg *s, uint64_t off, struct idx_view *v)
{
	uint64_t need;

	v->size = shm_blk_size(s, off);
	if (v->size == 0)
		return false;
	v->r = shm_ptr(s, SHM_R_BLOCKS, off, v->size, SHM_CACHELINE);
	if (v->r == NULL || v->r->magic != IDX_REC_MAGIC)
		return false;
	v->seg = s;
	v->off = off;
	v->stream = v->r->stream;
	v->ns = v->r->ns;
	v->id_len = v->r->id_len;
	v->user_len = v->r->user_len;
	v->ttl_s = v->r->ttl_s;
	v->meta_len = v->r->meta_len;
	v->hash = v->r->hash;
	v->created_ns = v->r->created_ns;
	need = SHM_RECORD_HDR + (uint64_t)v->id_len + v->user_len + v->meta_len;
	if (v->ns >= SHM_NS_MAX || v->id_len == 0 || v->id_len > SESH_ID_MAX ||
	    v->user_len > SESH_USER_MAX || v->meta_len > s->geom.max_metadata ||
	    need > v->size)
		return false;
	v->id = v->r->data;
	v->user = v->id + v->id_len;
	v->meta = v->user + v->user_len;
	return true;
}

uint64_t idx_total(const struct shm_seg *s)
{
	struct idx_hdr *h = idx_hdr(s);

	return h ? atomic_load_explicit(&h->total, memory_order_relaxed) : 0;
}

bool idx_valid(const struct shm_seg *s)
{
	struct idx_hdr *h = idx_hdr(s);

	return h != NULL && h->magic == IDX_MAGIC &&
	       h->nbuckets == s->geom.nbuckets &&
	       h->nstripes == s->geom.nstripes;
}

/* --- format and locks ----------------------------------------------------- */

int idx_robust_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	int rc;

	rc = pthread_mutexattr_init(&a);
	if (rc != 0)
		return -rc;
	rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (rc == 0)
		rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (rc == 0)
		rc = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	return -rc;
}

int idx_format(const struct shm_seg *s)
{
	struct idx_hdr *h = idx_hdr(s);
	uint32_t i;
	int rc;

	if (h == NULL)
		return -EUCLEAN;
	h->nbuckets = s->geom.nbuckets;
	h->nstripes = s->geom.nstripes;
	rc = idx_robust_init(&h->ns_lock);
	for (i = 0; rc == 0 && i < s->geom.nstripes; i++) {
		struct idx_stripe *st = stripe(s, i);

		rc = st ? idx_robust_init(&st->lock) : -EUCLEAN;
	}
	h->magic = IDX_MAGIC;
	return rc;
}

/* A robust lock: on EOWNERDEAD run `repair` (with the lock held), then
 * mark the lock consistent. Never unlocked without that, so it never
 * becomes unrecoverable. */
int idx_robust_lock(pthread_mutex_t *m, void (*repair)(const void *, uint32_t),
		    const void *arg, uint32_t i)
{
	int rc = pthread_mutex_lock(m);

	if (rc == EOWNERDEAD) {
		if (repair != NULL)
			repair(arg, i);
		rc = pthread_mutex_consistent(m);
	}
	return rc == 0 ? 0 : -EUCLEAN;
}

/* The holder of stripe i died: every record linked in its chains is whole
 * (it was built before it was linked), so any still OWNED becomes LIVE;
 * the counts may be off by the dead writer's step, so rebuild them. */
static void stripe_repair(const void *arg, uint32_t i)
{
	const struct shm_seg *s = arg;
	struct idx_hdr *h = idx_hdr(s);
	uint64_t b, n;

	for (b = i; b < s->geom.nbuckets; b += s->geom.nstripes) {
		uint64_t off = idx_head(s, b);

		for (n = 0; off != 0 && n < IDX_CHAIN_MAX; n++) {
			struct idx_view v;
			_Atomic uint64_t *w;
			uint64_t size;

			if (!idx_view(s, off, &v))
				break; /* corrupt: sesh_check reports it */
			w = shm_blk_word(s, off, &size);
			if (w != NULL &&
			    SHM_BLK_STATE(atomic_load_explicit(
				    w, memory_order_relaxed)) == SHM_BLK_OWNED)
				atomic_store_explicit(w, SHM_BLK_LIVE,
						      memory_order_relaxed);
			off = atomic_load_explicit(&v.r->next,
						   memory_order_acquire);
		}
	}
	if (h != NULL)
		atomic_store_explicit(&h->recount, 1, memory_order_relaxed);
}

int idx_stripe_lock(const struct shm_seg *s, uint32_t i)
{
	struct idx_stripe *st = stripe(s, i);

	if (st == NULL)
		return -EUCLEAN;
	return idx_robust_lock(&st->lock, stripe_repair, s, i);
}

void idx_stripe_unlock(const struct shm_seg *s, uint32_t i)
{
	struct idx_stripe *st = stripe(s, i);

	if (st != NULL)
		pthread_mutex_unlock(&st->lock);
}

int idx_lock_all(const struct shm_seg *s)
{
	uint32_t i;
	int rc;

	for (i = 0; i < s->geom.nstripes; i++) {
		rc = idx_stripe_lock(s, i);
		if (rc < 0) {
			while (i-- > 0)
				idx_stripe_unlock(s, i);
			return rc;
		}
	}
	return 0;
}

void idx_unlock_all(const struct shm_seg *s)
{
	uint32_t i = s->geom.nstripes;

	while (i-- > 0)
		idx_stripe_unlock(s, i);
}

void idx_recount_locked(const struct shm_seg *s)
{
	struct idx_hdr *h = idx_hdr(s);
	uint64_t counts[SHM_NS_MAX] = {0}, total = 0, b, n;
	uint32_t i;

	for (b = 0; b < s->geom.nbuckets; b++) {
		uint64_t off = idx_head(s, b);

		for (n = 0; off != 0 && n < IDX_CHAIN_MAX; n++) {
			struct idx_view v;

			if (!idx_view(s, off, &v))
				break;
			counts[v.ns]++;
			total++;
			off = atomic_load_explicit(&v.r->next,
						   memory_order_acquire);
		}
	}
	for (i = 0; i < SHM_NS_MAX; i++) {
		struct idx_ns *e = idx_ns_entry(s, i);

		if (e != NULL)
			atomic_store_explicit(&e->count, counts[i],
					      memory_order_relaxed);
	}
	if (h != NULL) {
		atomic_store_explicit(&h->total, total, memory_order_relaxed);
		atomic_store_explicit(&h->recount, 0, memory_order_relaxed);
	}
}

int idx_recount(const struct shm_seg *s)
{
	struct idx_hdr *h = idx_hdr(s);
	int rc;

	if (h == NULL)
		return -EUCLEAN;
	if (!atomic_load_explicit(&h->recount, memory_order_relaxed))
		return 0;
	rc = idx_lock_all(s);
	if (rc < 0)
		return rc;
	if (atomic_load_explicit(&h->recount, memory_order_relaxed))
		idx_recount_locked(s);
	idx_unlock_all(s);
	return 0;
}

/* --- arguments, namespaces, clocks ---------------------------------------- */

/* An id or user id: 1..128 bytes of 0x21-0x7E. */
/* Whether all eight bytes of x are printable (0x21..0x7e): no byte below
 * 0x21 (the borrow test) and none above 0x7e (the carry test). Exact as
 * a yes or no, though not as to which byte. */
static inline bool printable8(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101ull;
	const uint64_t highs = 0x8080808080808080ull;

	return ((((x - ones * 0x21) & ~x) | ((x + ones) | x)) & highs) == 0;
}

/* A valid id: 1..SESH_ID_MAX printable bytes. Checked eight bytes at a
 * time: every get and touch pays for it. */
static bool id_ok(const char *s, size_t *len)
{
	size_t n, i;
	uint64_t x;

	if (s == NULL)
		return false;
	n = strnlen(s, SESH_ID_MAX + 1);
	if (n == 0 || n > SESH_ID_MAX)
		return false;
	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&x, s + i, 8);
		if (!printable8(x))
			return false;
	}
	if (i < n) {
		x = 0x2121212121212121ull; /* printable filler */
		memcpy(&x, s + i, n - i);
		if (!printable8(x))
			return false;
	}
	*len = n;
	return true;
}

static int gen_id(char out[2 * 16 + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t r[16];
	size_t got = 0;
	int i;

	while (got < sizeof(r)) {
		ssize_t n = getrandom(r + got, sizeof(r) - got, 0);

		if (n < 0 && errno != EINTR)
			return -EIO;
		if (n > 0)
			got += (size_t)n;
	}
	for (i = 0; i < 16; i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
	}
	out[32] = '\0';
	return 0;
}

static int ns_find(const struct shm_seg *s, const char *name, size_t len)
{
	uint32_t i;

	for (i = 0; i < SHM_NS_MAX; i++) {
		struct idx_ns *e = idx_ns_entry(s, i);

		if (e == NULL)
			return -EUCLEAN;
		/* Acquire: pairs with the release that made it READY, so
		 * the name is complete. */
		if (atomic_load_explicit(&e->state, memory_order_acquire) ==
			    IDX_NS_READY &&
		    e->name_len == len && memcmp(e->name, name, len) == 0)
			return (int)i;
	}
	return -ENOENT;
}

/* The handle's namespace entry; with `make`, created if missing.
 * Returns its index, -ENOENT (missing, !make), -ENOSPC or -EUCLEAN. */
static int ns_resolve(struct sesh *d, bool make)
{
	const struct shm_seg *s = &d->seg;
	struct idx_hdr *h;
	size_t len;
	uint32_t i;
	int rc;

	rc = atomic_load_explicit(&d->ns_idx, memory_order_relaxed);
	if (rc >= 0)
		return rc;
	h = idx_hdr(s);
	len = strlen(d->ns);
	rc = ns_find(s, d->ns, len);
	if (rc != -ENOENT || !make)
		goto out;
	if (h == NULL || idx_robust_lock(&h->ns_lock, NULL, NULL, 0) < 0)
		return -EUCLEAN;
	/* A holder that died mid-way left at most a FREE entry with part of
	 * a name in it, which the next creation overwrites. */
	rc = ns_find(s, d->ns, len);
	for (i = 0; rc == -ENOENT && i < SHM_NS_MAX; i++) {
		struct idx_ns *e = idx_ns_entry(s, i);

		if (e == NULL ||
		    atomic_load_explicit(&e->state, memory_order_relaxed) !=
			    IDX_NS_FREE)
			continue;
		memset(e->name, 0, sizeof(e->name));
		memcpy(e->name, d->ns, len);
		e->name_len = (uint32_t)len;
		atomic_store_explicit(&e->count, 0, memory_order_relaxed);
		atomic_store_explicit(&e->quota, 0, memory_order_relaxed);
		/* Release: the name before READY. */
		atomic_store_explicit(&e->state, IDX_NS_READY,
				      memory_order_release);
		rc = (int)i;
	}
	if (rc == -ENOENT)
		rc = -ENOSPC; /* the table is full */
	pthread_mutex_unlock(&h->ns_lock);
out:
	if (rc >= 0)
		atomic_store_explicit(&d->ns_idx, rc, memory_order_relaxed);
	return rc;
}

/* The handle's namespace entry, created if missing: its index, and the
 * entry in *e. */
static int ns_make(struct sesh *d, struct idx_ns **e)
{
	int ns = ns_resolve(d, true);

	if (ns < 0)
		return ns;
	*e = idx_ns_entry(&d->seg, (uint32_t)ns);
	return *e ? ns : -EUCLEAN;
}

/* CLOCK_REALTIME_COARSE: a vDSO read, no system call. */
static int64_t coarse_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool idle_for(const struct idx_view *v, int64_t now, uint64_t idle_ns)
{
	int64_t seen =
		atomic_load_explicit(&v->r->last_seen_ns, memory_order_relaxed);

	return now > seen && (uint64_t)(now - seen) > idle_ns;
}

static bool expired(const struct idx_view *v, int64_t now)
{
	return idle_for(v, now, (uint64_t)v->ttl_s * 1000000000u);
}

/* --- lookups -------------------------------------------------------------- */

struct key {
	const char *id;
	size_t len;
	uint16_t ns;
	uint64_t hash;
	uint64_t bucket;
	uint32_t stripe;
};

static void key_make(const struct shm_seg *s, struct key *k, uint16_t ns,
		     const char *id, size_t len)
{
	k->id = id;
	k->len = len;
	k->ns = ns;
	k->hash = idx_hash(s->geom.hash_key, ns, id, len);
	k->bucket = k->hash & (s->geom.nbuckets - 1);
	k->stripe = (uint32_t)(k->bucket & (s->geom.nstripes - 1));
}

/* The record block at `off`, or NULL if `off` is not the start of a
 * block. Nothing in it is checked yet (idx_view() does that). */
static struct idx_rec *rec_ptr(const struct shm_seg *s, uint64_t off)
{
	uint64_t size = shm_blk_size(s, off);

	return size ? shm_ptr(s, SHM_R_BLOCKS, off, size, SHM_CACHELINE) : NULL;
}

/*
 * Find a key's record in its chain. On 1, *v is the record and *link the
 * word that points at it (the bucket or the predecessor's `next`).
 * Returns 1, 0 (absent) or -EUCLEAN (a broken or endless chain). Safe for
 * readers inside a read-side section and for the stripe's lock holder.
 */
static int chain_find(const struct shm_seg *s, const struct key *k,
		      struct idx_view *v, _Atomic uint64_t **link)
{
	_Atomic uint64_t *l = idx_bucket(s, k->bucket);
	uint64_t off, n;

	if (l == NULL)
		return -EUCLEAN;
	/* Acquire (here and for each `next`): pairs with the release store
	 * that linked the record, so its contents are complete. */
	off = atomic_load_explicit(l, memory_order_acquire);
	for (n = 0; off != 0; n++) {
		/* Only the hash of a record that is not ours: check just
		 * what that needs, the rest when the hash matches. */
		struct idx_rec *r = rec_ptr(s, off);

		if (n == IDX_CHAIN_MAX || r == NULL)
			return -EUCLEAN;
		if (r->hash == k->hash) {
			if (!idx_view(s, off, v))
				return -EUCLEAN;
			if (v->ns == k->ns && v->id_len == k->len &&
			    memcmp(v->id, k->id, k->len) == 0) {
				*link = l;
				return 1;
			}
		}
		l = &r->next;
		off = atomic_load_explicit(l, memory_order_acquire);
	}
	return 0;
}

static void copy_out(const struct idx_view *v, sesh_session_t *out, void *meta,
		     size_t meta_cap)
{
	if (out != NULL) {
		memcpy(out->id, v->id, v->id_len);
		out->id[v->id_len] = '\0';
		memcpy(out->user, v->user, v->user_len);
		out->user[v->user_len] = '\0';
		out->created_ns = v->created_ns;
		out->last_seen_ns = atomic_load_explicit(&v->r->last_seen_ns,
							 memory_order_relaxed);
		out->ttl_s = v->ttl_s;
		out->last_event_id = ring_last_id(v->seg, v->stream);
		out->meta_len = v->meta_len;
	}
	if (meta != NULL && meta_cap > 0)
		memcpy(meta, v->meta,
		       meta_cap < v->meta_len ? meta_cap : v->meta_len);
}

/*
 * Enter a read-side section and find `id` in the handle's namespace.
 * Returns 0 with the section held (*tr) and *v the record, or a negative
 * errno (-ENOENT when absent) with nothing held.
 */
static int read_find(struct sesh *d, const char *id, struct idx_view *v,
		     struct gc_thread_reader **tr)
{
	_Atomic uint64_t *link;
	struct key k;
	size_t len;
	int ns, rc;

	if (d == NULL || !id_ok(id, &len))
		return -EINVAL;
	ns = ns_resolve(d, false);
	if (ns < 0)
		return ns; /* -ENOENT: the namespace never held a session */
	key_make(&d->seg, &k, (uint16_t)ns, id, len);
	rc = gc_read_lock(d, tr);
	if (rc < 0)
		return rc;
	rc = chain_find(&d->seg, &k, v, &link);
	if (rc == 1)
		return 0;
	gc_read_unlock(*tr);
	return rc == 0 ? -ENOENT : rc;
}

int sesh_session_get(sesh_t *d, const char *id, const char *user,
		     sesh_session_t *out, void *meta, size_t meta_cap)
{
	struct gc_thread_reader *tr;
	struct idx_view v;
	size_t ulen = 0;
	int rc;

	if (user != NULL && !id_ok(user, &ulen))
		return -EINVAL;
	rc = read_find(d, id, &v, &tr);
	if (rc < 0)
		return rc;
	/* Expired and foreign look the same as missing. */
	if (expired(&v, coarse_now()) ||
	    (user != NULL &&
	     (v.user_len != ulen || memcmp(v.user, user, ulen) != 0)))
		rc = -ENOENT;
	else
		copy_out(&v, out, meta, meta_cap);
	gc_read_unlock(tr);
	return rc;
}

int sesh_session_touch(sesh_t *d, const char *id)
{
	struct gc_thread_reader *tr;
	struct idx_view v;
	int64_t now;
	int rc;

	rc = read_find(d, id, &v, &tr);
	if (rc < 0)
		return rc;
	now = coarse_now();
	if (expired(&v, now))
		rc = -ENOENT;
	/* One store, and none while the coarse clock stands. A store into
	 * a record an update just replaced is lost; the update set the
	 * time itself. */
	else if (atomic_load_explicit(&v.r->last_seen_ns,
				      memory_order_relaxed) != now)
		atomic_store_explicit(&v.r->last_seen_ns, now,
				      memory_order_relaxed);
	gc_read_unlock(tr);
	return rc;
}

int idx_stream_lookup(struct sesh *d, const char *id, uint64_t *stream,
		      int64_t *expires_ns)
{
	struct gc_thread_reader *tr;
	struct idx_view v;
	int rc;

	rc = read_find(d, id, &v, &tr);
	if (rc < 0)
		return rc;
	*stream = v.stream;
	if (expires_ns != NULL)
		*expires_ns = atomic_load_explicit(&v.r->last_seen_ns,
						   memory_order_relaxed) +
			      (int64_t)v.ttl_s * 1000000000;
	rc = expired(&v, coarse_now()) ? 1 : 0;
	gc_read_unlock(tr);
	return rc;
}

/* --- writers -------------------------------------------------------------- */

static void blk_set(const struct shm_seg *s, uint64_t off, uint64_t word)
{
	uint64_t size;
	_Atomic uint64_t *w = shm_blk_word(s, off, &size);

	/* Relaxed: state words of linked records are read only under the
	 * stripe lock (recovery, sesh_check), which orders them. */
	if (w != NULL)
		atomic_store_explicit(w, word, memory_order_relaxed);
}

/*
 * A block for a record with `data` bytes after its header, owned by us.
 * Called with no lock held. When the class is dry, its blocks are waiting
 * out grace periods: usually behind a reader that was preempted inside
 * its section (more busy processes than cores), which runs again within
 * a scheduling quantum. So reclaim, sweep and try again, backing off from
 * a yield to sleeps that double, for up to IDX_ALLOC_WAIT_MS in all; only
 * a reader that stays inside (stopped, or dead and not yet recovered)
 * makes this -ENOSPC.
 */
static int rec_alloc(struct sesh *d, uint64_t data, uint64_t owner,
		     uint64_t *off)
{
	int c = shm_class_for(&d->seg.geom, SHM_RECORD_HDR + data);
	long waited_ms = 0, step_ms = 1;
	int64_t o;

	if (c < 0)
		return c;
	for (;;) {
		o = shm_alloc(&d->seg, &d->alloc, (unsigned)c, owner);
		if (o != -ENOSPC)
			break;
		gc_reclaim(&d->seg, &d->alloc);
		if (gc_sweep(&d->seg, c) > 0)
			continue;
		if (waited_ms >= IDX_ALLOC_WAIT_MS)
			break;
		if (waited_ms == 0 && step_ms == 1) {
			sched_yield();
			step_ms = 0;
			continue;
		}
		step_ms = step_ms ? 2 * step_ms : 1;
		nanosleep(&(struct timespec){.tv_sec = 0,
					     .tv_nsec = step_ms * 1000000},
			  NULL);
		waited_ms += step_ms;
	}
	if (o < 0)
		return (int)o;
	*off = (uint64_t)o;
	return 0;
}

/* After an unlink: retire the old block; now and then free what is past
 * its grace period. Called without the stripe lock. */
static void retire(struct sesh *d, uint64_t off)
{
	if (gc_retire(&d->seg, &d->alloc, off) >= IDX_RECLAIM_BATCH)
		gc_reclaim(&d->seg, &d->alloc);
}

/* Take one session slot in the namespace and the domain, or -ENOSPC. Under
 * the stripe lock, so a writer dying here leaves the lock to repair. */
static int count_take(const struct shm_seg *s, struct idx_ns *e)
{
	struct idx_hdr *h = idx_hdr(s);
	uint64_t q = atomic_load_explicit(&e->quota, memory_order_relaxed);
	uint64_t c = atomic_load_explicit(&e->count, memory_order_relaxed);

	do {
		if (q != 0 && c >= q)
			return -ENOSPC;
	} while (!atomic_compare_exchange_weak_explicit(&e->count, &c, c + 1,
							memory_order_relaxed,
							memory_order_relaxed));
	c = atomic_load_explicit(&h->total, memory_order_relaxed);
	do {
		if (c >= s->geom.max_sessions) {
			atomic_fetch_sub_explicit(&e->count, 1,
						  memory_order_relaxed);
			return -ENOSPC;
		}
	} while (!atomic_compare_exchange_weak_explicit(&h->total, &c, c + 1,
							memory_order_relaxed,
							memory_order_relaxed));
	return 0;
}

static void count_give(const struct shm_seg *s, struct idx_ns *e)
{
	atomic_fetch_sub_explicit(&e->count, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&idx_hdr(s)->total, 1, memory_order_relaxed);
}

/*
 * Swap record `nu` in for `old` (which `link` points at): `old` becomes
 * ours first, so that if we die once it is unlinked, recovery retires
 * it; `nu` takes old's successor, then one release store publishes it.
 */
static void swap_in(const struct shm_seg *s, _Atomic uint64_t *link,
		    const struct idx_view *old, struct idx_rec *nu,
		    uint64_t nu_off, uint64_t owner)
{
	blk_set(s, old->off, owner);
	point(IDX_P_SWAP_OWNED);
	atomic_store_explicit(
		&nu->next,
		atomic_load_explicit(&old->r->next, memory_order_relaxed),
		memory_order_relaxed);
	/* Release: nu's contents before it is reachable. */
	atomic_store_explicit(link, nu_off, memory_order_release);
	point(IDX_P_SWAP_LINKED);
	blk_set(s, nu_off, SHM_BLK_LIVE);
}

struct new_rec {
	uint16_t ns;
	const char *id, *user;
	size_t id_len, user_len;
	const void *meta;
	size_t meta_len;
	uint32_t ttl_s;
	int64_t created_ns, seen_ns;
	uint64_t hash, stream;
};

static void rec_fill(struct idx_rec *r, const struct new_rec *n)
{
	r->ns = n->ns;
	r->id_len = (uint8_t)n->id_len;
	r->user_len = (uint8_t)n->user_len;
	r->ttl_s = n->ttl_s;
	r->meta_len = (uint32_t)n->meta_len;
	r->hash = n->hash;
	atomic_store_explicit(&r->next, 0, memory_order_relaxed);
	r->created_ns = n->created_ns;
	atomic_store_explicit(&r->last_seen_ns, n->seen_ns,
			      memory_order_relaxed);
	r->stream = n->stream;
	r->reserved = 0;
	memcpy(r->data, n->id, n->id_len);
	if (n->user_len)
		memcpy(r->data + n->id_len, n->user, n->user_len);
	if (n->meta_len)
		memcpy(r->data + n->id_len + n->user_len, n->meta, n->meta_len);
	r->magic = IDX_REC_MAGIC;
}

/* A create with given times: what sesh_session_create() and a restore
 * from SQLite (idx_restore()) do. On success *ns_out is the namespace. */
static int create(struct sesh *d, const char *id, const char *user,
		  const void *meta, size_t meta_len, uint32_t ttl_s,
		  int64_t created_ns, int64_t seen_ns,
		  char id_out[SESH_ID_MAX + 1], int *ns_out)
{
	struct new_rec n = {0};
	char gen[33];
	struct idx_view old;
	_Atomic uint64_t *link;
	struct idx_rec *r;
	struct idx_ns *e;
	uint64_t owner, off, head;
	struct key k;
	int rc, ns, found;

	if (d == NULL || (id == NULL && id_out == NULL) ||
	    (user != NULL && !id_ok(user, &n.user_len)) ||
	    (meta == NULL && meta_len > 0))
		return -EINVAL;
	if (id == NULL) {
		rc = gen_id(gen);
		if (rc < 0)
			return rc;
		id = gen;
	}
	if (!id_ok(id, &n.id_len))
		return -EINVAL;
	if (meta_len > d->seg.geom.max_metadata)
		return -E2BIG;
	rc = shm_owner_word(d, &owner);
	if (rc < 0)
		return rc;
	ns = ns_make(d, &e);
	if (ns < 0)
		return ns;
	key_make(&d->seg, &k, (uint16_t)ns, id, n.id_len);

	n.ns = (uint16_t)ns;
	n.id = id;
	n.user = user;
	n.meta = meta;
	n.meta_len = meta_len;
	n.ttl_s = ttl_s ? ttl_s : d->seg.geom.idle_ttl_s;
	n.created_ns = created_ns;
	n.seen_ns = seen_ns;
	n.hash = k.hash;
	rc = rec_alloc(d, n.id_len + n.user_len + meta_len, owner, &off);
	if (rc < 0)
		return rc;
	r = rec_ptr(&d->seg, off);
	if (r == NULL) {
		rc = -EUCLEAN;
		goto out_free;
	}
	rc = ring_assign(d, owner, &n.stream);
	if (rc < 0)
		goto out_free;
	rec_fill(r, &n);
	point(IDX_P_CREATE_FILLED);

	rc = idx_stripe_lock(&d->seg, k.stripe);
	if (rc < 0)
		goto out_free;
	point(IDX_P_CREATE_LOCKED);
	found = chain_find(&d->seg, &k, &old, &link);
	if (found < 0) {
		rc = found;
	} else if (found == 1 && !expired(&old, coarse_now())) {
		rc = -EEXIST;
	} else if (found == 1) {
		/* Expired, never removed: the new session replaces it, and
		 * the counts stay as they are. Its stream ends first, so the
		 * new one starts above its ids. */
		ring_retire(d, old.stream);
		ring_start(d, n.stream, k.bucket);
		swap_in(&d->seg, link, &old, r, off, owner);
		ring_live(d, n.stream, owner);
	} else {
		rc = count_take(&d->seg, e);
		if (rc == 0) {
			point(IDX_P_CREATE_COUNTED);
			ring_start(d, n.stream, k.bucket);
			link = idx_bucket(&d->seg, k.bucket);
			head = atomic_load_explicit(link, memory_order_relaxed);
			atomic_store_explicit(&r->next, head,
					      memory_order_relaxed);
			/* Release: the record before it is reachable. */
			atomic_store_explicit(link, off, memory_order_release);
			point(IDX_P_CREATE_LINKED);
			blk_set(&d->seg, off, SHM_BLK_LIVE);
			ring_live(d, n.stream, owner);
		}
	}
	point(IDX_P_CREATE_DONE);
	idx_stripe_unlock(&d->seg, k.stripe);
	if (rc < 0)
		goto out_free;
	point(IDX_P_CREATE_UNLOCKED);
	if (found == 1) {
		retire(d, old.off);
		ring_retired_note(d, old.stream);
		shm_stat_add(d, SHM_ST_EXPIRED, 1);
	}
	shm_stat_add(d, SHM_ST_CREATED, 1);
	if (id_out != NULL && id_out != id)
		memcpy(id_out, id, n.id_len + 1);
	*ns_out = ns;
	return 0;
out_free:
	if (n.stream != 0)
		ring_unassign(d, n.stream, owner);
	shm_free_unpublished(&d->seg, off, owner);
	return rc;
}

int sesh_session_create(sesh_t *d, const char *id, const char *user,
			const void *meta, size_t meta_len, uint32_t ttl_s,
			char id_out[SESH_ID_MAX + 1])
{
	char buf[SESH_ID_MAX + 1];
	int64_t now = shm_now_ns();
	int ns, rc;

	if (d == NULL || (id == NULL && id_out == NULL))
		return -EINVAL;
	if (id_out == NULL)
		id_out = buf;
	rc = create(d, id, user, meta, meta_len, ttl_s, now, now, id_out, &ns);
	if (rc == 0 && persist_on(&d->seg))
		rc = persist_after_write(d, (uint16_t)ns, id_out,
					 strlen(id_out));
	return rc;
}

int idx_restore(struct sesh *d, const char *id, const char *user,
		const void *meta, size_t meta_len, uint32_t ttl_s,
		int64_t created_ns, int64_t seen_ns)
{
	int ns;

	if (ttl_s == 0)
		return -EINVAL;
	return create(d, id, user, meta, meta_len, ttl_s, created_ns, seen_ns,
		      NULL, &ns);
}

/* Lock the stripe of `id` in the handle's namespace and find it: returns
 * 1 with the stripe held, or 0/-errno with it released. */
static int write_find(struct sesh *d, const char *id, struct key *k,
		      struct idx_view *v, _Atomic uint64_t **link,
		      uint64_t *owner)
{
	size_t len;
	int ns, rc;

	if (d == NULL || !id_ok(id, &len))
		return -EINVAL;
	rc = shm_owner_word(d, owner);
	if (rc < 0)
		return rc;
	ns = ns_resolve(d, false);
	if (ns < 0)
		return ns;
	key_make(&d->seg, k, (uint16_t)ns, id, len);
	rc = idx_stripe_lock(&d->seg, k->stripe);
	if (rc < 0)
		return rc;
	rc = chain_find(&d->seg, k, v, link);
	if (rc != 1)
		idx_stripe_unlock(&d->seg, k->stripe);
	return rc;
}

/* The length of a session's user id, read without locking (to size the
 * copy an update builds before it takes the lock). */
static int user_len_of(struct sesh *d, const char *id, size_t *ulen)
{
	struct gc_thread_reader *tr;
	struct idx_view v;
	int rc = read_find(d, id, &v, &tr);

	if (rc < 0)
		return rc;
	if (expired(&v, coarse_now()))
		rc = -ENOENT;
	else
		*ulen = v.user_len;
	gc_read_unlock(tr);
	return rc;
}

int sesh_session_update(sesh_t *d, const char *id, const void *meta,
			size_t meta_len)
{
	struct new_rec n = {0};
	struct idx_view old;
	_Atomic uint64_t *link;
	struct idx_rec *r;
	uint64_t owner, off;
	struct key k;
	size_t ulen = 0, len;
	int rc, tries;

	if (d == NULL || (meta == NULL && meta_len > 0) || !id_ok(id, &len))
		return -EINVAL;
	if (meta_len > d->seg.geom.max_metadata)
		return -E2BIG;
	rc = shm_owner_word(d, &owner);
	if (rc < 0)
		return rc;
	for (tries = 0; tries < IDX_UPDATE_TRIES; tries++) {
		/* The new record is allocated before the lock is taken, so
		 * a wait for blocks never holds up the stripe. Its size
		 * depends on the user id, which a re-create may change in
		 * between: then start over. */
		rc = user_len_of(d, id, &ulen);
		if (rc < 0)
			return rc;
		rc = rec_alloc(d, len + ulen + meta_len, owner, &off);
		if (rc < 0)
			return rc;
		r = rec_ptr(&d->seg, off);
		if (r == NULL)
			return -EUCLEAN;
		rc = write_find(d, id, &k, &old, &link, &owner);
		if (rc <= 0) {
			shm_free_unpublished(&d->seg, off, owner);
			return rc == 0 ? -ENOENT : rc;
		}
		point(IDX_P_UPDATE_LOCKED);
		if (old.user_len == ulen)
			break;
		idx_stripe_unlock(&d->seg, k.stripe);
		shm_free_unpublished(&d->seg, off, owner);
	}
	if (tries == IDX_UPDATE_TRIES)
		return -EAGAIN;
	rc = 0;
	if (expired(&old, coarse_now())) {
		rc = -ENOENT;
		goto out;
	}
	n.ns = old.ns;
	n.id = old.id;
	n.id_len = old.id_len;
	n.user = old.user;
	n.user_len = old.user_len;
	n.meta = meta;
	n.meta_len = meta_len;
	n.ttl_s = old.ttl_s;
	n.created_ns = old.created_ns;
	n.seen_ns = shm_now_ns();
	n.hash = old.hash;
	n.stream = old.stream;
	rec_fill(r, &n);
	point(IDX_P_UPDATE_FILLED);
	swap_in(&d->seg, link, &old, r, off, owner);
out:
	idx_stripe_unlock(&d->seg, k.stripe);
	point(IDX_P_UPDATE_UNLOCKED);
	if (rc != 0) {
		shm_free_unpublished(&d->seg, off, owner);
		return rc;
	}
	retire(d, old.off);
	if (persist_on(&d->seg))
		rc = persist_after_write(d, k.ns, id, len);
	return rc;
}

/*
 * With the stripe lock held: take record `old`, which `link` points at,
 * out of its chain, give back its count and close its stream. The caller
 * unlocks, then retires the block and notes the ring. Returns 0 or
 * -EUCLEAN (a record of no namespace: left alone).
 */
static int unlink_locked(struct sesh *d, _Atomic uint64_t *link,
			 const struct idx_view *old, uint64_t owner)
{
	struct idx_ns *e = idx_ns_entry(&d->seg, old->ns);

	if (e == NULL)
		return -EUCLEAN;
	/* Ours before it leaves the chain: if we die once it has left,
	 * recovery finds it OWNED by the dead and retires it. */
	point(IDX_P_DELETE_LOCKED);
	blk_set(&d->seg, old->off, owner);
	point(IDX_P_DELETE_OWNED);
	/* Release: pairs with readers' acquire of the link, as for every
	 * store that changes a chain. */
	atomic_store_explicit(
		link, atomic_load_explicit(&old->r->next, memory_order_relaxed),
		memory_order_release);
	point(IDX_P_DELETE_UNLINKED);
	count_give(&d->seg, e);
	ring_retire(d, old->stream);
	point(IDX_P_DELETE_DONE);
	return 0;
}

int sesh_session_delete(sesh_t *d, const char *id)
{
	struct idx_view old;
	_Atomic uint64_t *link;
	uint64_t owner;
	struct key k;
	int rc;

	rc = write_find(d, id, &k, &old, &link, &owner);
	if (rc <= 0)
		return rc == 0 ? -ENOENT : rc;
	rc = unlink_locked(d, link, &old, owner);
	idx_stripe_unlock(&d->seg, k.stripe);
	if (rc < 0)
		return rc;
	point(IDX_P_DELETE_UNLOCKED);
	retire(d, old.off);
	ring_retired_note(d, old.stream);
	shm_stat_add(d, SHM_ST_DELETED, 1);
	if (persist_on(&d->seg))
		rc = persist_after_write(d, k.ns, k.id, k.len);
	return rc;
}

/* Whether chain b holds a session idle past its TTL at `now`. Inside a
 * read-side section. -EUCLEAN for a broken chain. */
static int chain_has_expired(const struct shm_seg *s, uint64_t b, int64_t now)
{
	uint64_t off = idx_head(s, b), n;
	struct idx_view v;

	for (n = 0; off != 0; n++) {
		if (n == IDX_CHAIN_MAX || !idx_view(s, off, &v))
			return -EUCLEAN;
		if (expired(&v, now))
			return 1;
		off = atomic_load_explicit(&v.r->next, memory_order_acquire);
	}
	return 0;
}

int64_t idx_expired_from(struct sesh *d, uint64_t b, uint64_t n, int64_t now)
{
	const struct shm_seg *s = &d->seg;
	struct gc_thread_reader *tr;
	uint64_t end;
	int rc;

	if (b >= s->geom.nbuckets)
		return -EINVAL;
	end = n > s->geom.nbuckets - b ? s->geom.nbuckets : b + n;
	rc = gc_read_lock(d, &tr);
	if (rc < 0)
		return rc;
	for (; b < end; b++) {
		rc = chain_has_expired(s, b, now);
		if (rc != 0)
			break;
	}
	gc_read_unlock(tr);
	return rc < 0 ? rc : (int64_t)b;
}

int idx_expire_bucket(struct sesh *d, uint64_t b, int64_t now)
{
	const struct shm_seg *s = &d->seg;
	struct gc_thread_reader *tr;
	uint64_t gone[IDX_EXPIRE_MAX][2];
	uint64_t owner, off, n;
	_Atomic uint64_t *link;
	uint32_t st;
	int rc, k = 0, i;

	if (b >= s->geom.nbuckets)
		return -EINVAL;
	/* Most buckets have nothing to expire: look without the lock. */
	rc = gc_read_lock(d, &tr);
	if (rc < 0)
		return rc;
	rc = chain_has_expired(s, b, now);
	gc_read_unlock(tr);
	if (rc <= 0)
		return rc;
	rc = shm_owner_word(d, &owner);
	if (rc < 0)
		return rc;
	st = (uint32_t)(b & (s->geom.nstripes - 1));
	rc = idx_stripe_lock(s, st);
	if (rc < 0)
		return rc;
	link = idx_bucket(s, b);
	off = link ? atomic_load_explicit(link, memory_order_acquire) : 0;
	for (n = 0; off != 0 && k < IDX_EXPIRE_MAX; n++) {
		struct idx_view v;

		if (n == IDX_CHAIN_MAX || !idx_view(s, off, &v)) {
			rc = -EUCLEAN;
			break;
		}
		if (!expired(&v, now)) {
			link = &v.r->next;
		} else if (unlink_locked(d, link, &v, owner) == 0) {
			/* `link` now points past it: stay on it. */
			gone[k][0] = v.off;
			gone[k][1] = v.stream;
			k++;
		} else {
			link = &v.r->next;
		}
		off = atomic_load_explicit(link, memory_order_acquire);
	}
	idx_stripe_unlock(s, st);
	if (k > 0)
		point(IDX_P_DELETE_UNLOCKED);
	for (i = 0; i < k; i++) {
		struct idx_view v;

		/* Still ours (OWNED, unlinked) until retired: readable. */
		if (persist_on(s) && idx_view(s, gone[i][0], &v))
			persist_note(d, v.ns, v.id, v.id_len);
		retire(d, gone[i][0]);
		ring_retired_note(d, gone[i][1]);
	}
	if (k > 0)
		shm_stat_add(d, SHM_ST_EXPIRED, (uint64_t)k);
	return rc < 0 ? rc : k;
}

int sesh_session_count(sesh_t *d, size_t *out)
{
	struct idx_ns *e;
	int ns, rc;

	if (d == NULL || out == NULL)
		return -EINVAL;
	rc = shm_ensure_registered(d);
	if (rc < 0)
		return rc;
	rc = idx_recount(&d->seg);
	if (rc < 0)
		return rc;
	ns = ns_resolve(d, false);
	if (ns == -ENOENT) {
		*out = 0;
		return 0;
	}
	if (ns < 0)
		return ns;
	e = idx_ns_entry(&d->seg, (uint32_t)ns);
	if (e == NULL)
		return -EUCLEAN;
	*out = (size_t)atomic_load_explicit(&e->count, memory_order_relaxed);
	return 0;
}

int sesh_ns_set_quota(sesh_t *d, size_t quota)
{
	struct idx_ns *e;
	int ns, rc;

	if (d == NULL)
		return -EINVAL;
	rc = shm_ensure_registered(d);
	if (rc < 0)
		return rc;
	ns = ns_make(d, &e);
	if (ns < 0)
		return ns;
	atomic_store_explicit(&e->quota, quota, memory_order_relaxed);
	return 0;
}

/* --- walks ---------------------------------------------------------------- */

/* Copies of the records of a batch of buckets, made inside one read-side
 * section and handed to the visitor outside it. */
struct batch {
	sesh_session_t *s;
	size_t n, cap;
	char *meta;
	size_t meta_used, meta_cap;
	size_t *meta_at;
};

static int batch_add(struct batch *b, const struct idx_view *v)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 64;
		sesh_session_t *s = realloc(b->s, cap * sizeof(*s));
		size_t *at;

		if (s == NULL)
			return -ENOMEM;
		b->s = s;
		at = realloc(b->meta_at, cap * sizeof(*at));
		if (at == NULL)
			return -ENOMEM;
		b->meta_at = at;
		b->cap = cap;
	}
	if (b->meta == NULL || b->meta_used + v->meta_len > b->meta_cap) {
		size_t cap = 2 * (b->meta_used + v->meta_len) + 4096;
		char *m = realloc(b->meta, cap);

		if (m == NULL)
			return -ENOMEM;
		b->meta = m;
		b->meta_cap = cap;
	}
	copy_out(v, &b->s[b->n], b->meta + b->meta_used, v->meta_len);
	b->meta_at[b->n++] = b->meta_used;
	b->meta_used += v->meta_len;
	return 0;
}

enum walk_kind { WALK_LIST, WALK_EXPIRED };

struct walk {
	enum walk_kind kind;
	const char *user;
	size_t user_len;
	uint64_t idle_ns; /* WALK_EXPIRED; 0: past their own TTL */
	int64_t now;
};

static bool walk_wants(const struct walk *w, const struct idx_view *v)
{
	if (w->kind == WALK_EXPIRED)
		return w->idle_ns ? idle_for(v, w->now, w->idle_ns)
				  : expired(v, w->now);
	if (expired(v, w->now))
		return false;
	return w->user == NULL || (v->user_len == w->user_len &&
				   memcmp(v->user, w->user, w->user_len) == 0);
}

/* Copy the wanted records of buckets [b0, b1) of namespace ns. */
static int walk_batch(struct sesh *d, const struct walk *w, uint16_t ns,
		      uint64_t b0, uint64_t b1, struct batch *out)
{
	struct gc_thread_reader *tr;
	uint64_t b, off, n;
	int rc = gc_read_lock(d, &tr);

	if (rc < 0)
		return rc;
	for (b = b0; b < b1 && rc == 0; b++) {
		off = idx_head(&d->seg, b);
		for (n = 0; off != 0 && rc == 0; n++) {
			struct idx_view v;

			if (n == IDX_CHAIN_MAX || !idx_view(&d->seg, off, &v)) {
				rc = -EUCLEAN;
				break;
			}
			if (v.ns == ns && walk_wants(w, &v))
				rc = batch_add(out, &v);
			off = atomic_load_explicit(&v.r->next,
						   memory_order_acquire);
		}
	}
	gc_read_unlock(tr);
	return rc;
}

static int walk(struct sesh *d, struct walk *w, sesh_visit_fn fn, void *arg)
{
	struct batch b = {0};
	uint64_t b0, nb;
	size_t i;
	int ns, rc = 0;

	if (d == NULL || fn == NULL ||
	    (w->user != NULL && !id_ok(w->user, &w->user_len)))
		return -EINVAL;
	ns = ns_resolve(d, false);
	if (ns == -ENOENT)
		return 0;
	if (ns < 0)
		return ns;
	nb = d->seg.geom.nbuckets;
	for (b0 = 0; b0 < nb && rc == 0; b0 += IDX_WALK_BUCKETS) {
		b.n = 0;
		b.meta_used = 0;
		w->now = coarse_now();
		rc = walk_batch(
			d, w, (uint16_t)ns, b0,
			b0 + IDX_WALK_BUCKETS < nb ? b0 + IDX_WALK_BUCKETS : nb,
			&b);
		for (i = 0; i < b.n && rc == 0; i++)
			rc = fn(&b.s[i], b.meta + b.meta_at[i], arg);
	}
	free(b.s);
	free(b.meta_at);
	free(b.meta);
	return rc;
}

int sesh_session_list(sesh_t *d, const char *user, sesh_visit_fn fn, void *arg)
{
	struct walk w = {.kind = WALK_LIST, .user = user};

	return walk(d, &w, fn, arg);
}

int sesh_session_expired(sesh_t *d, uint32_t idle_s, sesh_visit_fn fn,
			 void *arg)
{
	struct walk w = {.kind = WALK_EXPIRED,
			 .idle_ns = (uint64_t)idle_s * 1000000000u};

	return walk(d, &w, fn, arg);
}

/* --- for persistence ---------------------------------------------------- */

int idx_visit_key(struct sesh *d, uint16_t ns, const char *id, size_t len,
		  idx_visit_fn fn, void *arg)
{
	struct gc_thread_reader *tr;
	_Atomic uint64_t *link;
	struct idx_view v;
	struct key k;
	int rc;

	key_make(&d->seg, &k, ns, id, len);
	rc = gc_read_lock(d, &tr);
	if (rc < 0)
		return rc;
	rc = chain_find(&d->seg, &k, &v, &link);
	if (rc == 1)
		fn(&v, arg);
	gc_read_unlock(tr);
	return rc;
}

int idx_visit_bucket(struct sesh *d, uint64_t b, idx_visit_fn fn, void *arg)
{
	const struct shm_seg *s = &d->seg;
	struct gc_thread_reader *tr;
	uint64_t off, n;
	int rc;

	if (b >= s->geom.nbuckets)
		return -EINVAL;
	rc = gc_read_lock(d, &tr);
	if (rc < 0)
		return rc;
	off = idx_head(s, b);
	for (n = 0; off != 0; n++) {
		struct idx_view v;

		if (n == IDX_CHAIN_MAX || !idx_view(s, off, &v)) {
			rc = -EUCLEAN;
			break;
		}
		fn(&v, arg);
		off = atomic_load_explicit(&v.r->next, memory_order_acquire);
	}
	gc_read_unlock(tr);
	return rc;
}
