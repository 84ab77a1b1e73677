/*
 * index.h - the session index: a chained hash table in shared memory, its
 * records, namespaces and counts. Internal to the library.
 *
 * Layout (inside SHM_R_INDEX, see shm_layout()):
 *
 *	struct idx_hdr		magic, the namespace-table lock, counts
 *	struct idx_ns		SHM_NS_MAX namespace entries
 *	struct idx_stripe	nstripes stripe locks: bucket b belongs to
 *				stripe b & (nstripes - 1)
 *	uint64_t		nbuckets chain heads (record offsets, 0 =
 *				empty)
 *
 * A record is one allocator block: struct idx_rec, then the id, the user
 * id and the metadata, back to back. Everything in it but `next` and
 * `last_seen_ns` is written before the record is linked and never changes
 * while it is reachable (copy-on-write). `stream` names the session's
 * ring (ring/ring.h) and is carried over by every update.
 */
#ifndef SESH_INDEX_H
#define SESH_INDEX_H

#include <pthread.h>
#include <stdbool.h>

#include "shm/shm.h"

#define IDX_MAGIC     0x5844494853455331ull /* "1SESHIDX" */
#define IDX_REC_MAGIC 0x43455253u	    /* "SREC" */

/* Longest chain a walk follows before calling the index corrupt: with a
 * keyed hash and at most one session per bucket on average, a chain this
 * long does not happen by chance. */
#define IDX_CHAIN_MAX 4096u

struct idx_hdr {
	uint64_t magic;
	uint64_t nbuckets; /* copies of the geometry, for sesh check */
	uint32_t nstripes;
	uint32_t pad0;
	/* Guards creating namespace entries (robust, process-shared). */
	_Alignas(SHM_CACHELINE) pthread_mutex_t ns_lock;
	/* Sessions linked, all namespaces. Changed only under a stripe
	 * lock; exact unless `recount` is set. */
	_Alignas(SHM_CACHELINE) _Atomic uint64_t total;
	/* Set when a writer died holding a stripe lock: the counts may be
	 * off by what it was doing, and are rebuilt (idx_recount()). */
	_Alignas(SHM_CACHELINE) _Atomic uint32_t recount;
};

enum idx_ns_state {
	IDX_NS_FREE = 0,
	IDX_NS_READY = 1,
};

struct idx_ns {
	_Atomic uint32_t state; /* READY: name is set and never changes */
	uint32_t name_len;
	char name[SESH_NAME_MAX + 1];
	_Alignas(8) _Atomic uint64_t count; /* sessions linked */
	_Atomic uint64_t quota;		    /* 0 = none */
	uint8_t pad[32];
};

struct idx_stripe {
	pthread_mutex_t lock; /* robust, process-shared */
	uint8_t pad[SHM_CACHELINE - sizeof(pthread_mutex_t)];
};

struct idx_rec {
	uint32_t magic;
	uint16_t ns;	   /* namespace entry */
	uint8_t id_len;	   /* 1..SESH_ID_MAX */
	uint8_t user_len;  /* 0..SESH_USER_MAX */
	uint32_t ttl_s;	   /* idle TTL, >= 1 */
	uint32_t meta_len; /* <= max_metadata */
	uint64_t hash;	   /* of (ns, id) */
	_Atomic uint64_t next;
	int64_t created_ns;
	_Atomic int64_t last_seen_ns;
	uint64_t stream; /* RING_STREAM(ring, generation) */
	uint64_t reserved;
	char data[]; /* id, user, metadata */
};

_Static_assert(sizeof(struct idx_ns) == 128, "namespace entries are 128 B");
_Static_assert(sizeof(struct idx_stripe) == SHM_CACHELINE,
	       "a stripe is one cache line");
_Static_assert(sizeof(struct idx_rec) == SHM_RECORD_HDR,
	       "the record header is what shm_layout() budgets");
_Static_assert(sizeof(struct idx_hdr) <= SHM_PAGE, "the header fits a page");

/* SipHash-1-3 of (ns, id) under the domain's key. */
uint64_t idx_hash(const uint64_t key[2], uint16_t ns, const char *id,
		  size_t len);

/* Initialise the index of a segment being created (the creator alone maps
 * it). Returns 0 or a negative errno of pthread. */
int idx_format(const struct shm_seg *s);

/* Whether the index header of an attached segment is what idx_format()
 * wrote for its geometry. */
bool idx_valid(const struct shm_seg *s);

/* Sessions linked in all namespaces (sesh_info). */
uint64_t idx_total(const struct shm_seg *s);

/* --- shared by index.c and check.c ---------------------------------------- */

/* A record's fields, each loaded once from the segment and checked. */
struct idx_view {
	const struct shm_seg *seg;
	struct idx_rec *r;
	uint64_t stream;
	uint64_t off;
	uint64_t size; /* of its block */
	uint64_t hash;
	int64_t created_ns;
	uint32_t ttl_s;
	uint32_t meta_len;
	uint16_t ns;
	uint8_t id_len;
	uint8_t user_len;
	const char *id, *user, *meta;
};

struct idx_hdr *idx_hdr(const struct shm_seg *s);
struct idx_ns *idx_ns_entry(const struct shm_seg *s, uint32_t i);
_Atomic uint64_t *idx_bucket(const struct shm_seg *s, uint64_t b);

/* The first record of chain b (0 if empty or b is out of range). Acquire:
 * pairs with the release store that linked it, so its contents are
 * complete. */
static inline uint64_t idx_head(const struct shm_seg *s, uint64_t b)
{
	_Atomic uint64_t *l = idx_bucket(s, b);

	return l ? atomic_load_explicit(l, memory_order_acquire) : 0;
}

/* Load and check the record at `off`; false if it is not a valid record
 * (then *v is unusable). */
bool idx_view(const struct shm_seg *s, uint64_t off, struct idx_view *v);

/* Lock stripe i, repairing it if its holder died (which also marks the
 * counts for rebuilding). Returns 0 or -EUCLEAN. */
int idx_stripe_lock(const struct shm_seg *s, uint32_t i);
void idx_stripe_unlock(const struct shm_seg *s, uint32_t i);

/* Every stripe, in order (what sesh_check and the recount hold). */
int idx_lock_all(const struct shm_seg *s);
void idx_unlock_all(const struct shm_seg *s);

/* With every stripe held: rebuild the counts from the chains. */
void idx_recount_locked(const struct shm_seg *s);

/* Rebuild the counts if a writer died inside its critical section. */
int idx_recount(const struct shm_seg *s);

/* With a read-side section held: the stream of session `id` of the
 * handle's namespace, and when it expires if nobody touches it (may be
 * NULL). Returns 0, 1 (expired, not yet removed: *stream is still set),
 * -ENOENT, -EINVAL (a bad id) or -EUCLEAN. */
int idx_stream_lookup(struct sesh *d, const char *id, uint64_t *stream,
		      int64_t *expires_ns);

/* What a recovery walk (idx_recover()) did. */
struct idx_recovery {
	uint64_t blocks_freed; /* retired blocks freed */
	uint64_t rings_freed;  /* rings of gone sessions freed */
	uint64_t holes;	       /* dead publishers' claims made padding */
};

/* Where a recovery walk is: phase 0 the blocks from `block`, 1 the rings
 * from `ring`, 2 done. */
struct idx_recover_walk {
	uint64_t block, ring;
	uint32_t phase;
};

/* One step of a recovery walk: repair the stripes and counts, then look
 * at n more blocks or rings (retire blocks the dead owned unlinked;
 * settle rings of dead creators and reclaimers, retire rings no record
 * names, pad dead publishers' claims, counted in out->holes). Returns 1
 * once the walk is done, 0 if it is not, or a negative errno. */
int idx_recover_step(struct sesh *d, struct idx_recover_walk *w, uint64_t n,
		     struct idx_recovery *out);

/* Walk the whole domain and recover what processes that died held:
 * repair their stripes and the counts, retire the blocks they owned
 * unlinked, settle their rings and stream claims, free what is past its
 * grace period. Returns 0, -ENOMEM or -EUCLEAN. */
int idx_recover(struct sesh *d, struct idx_recovery *out);

/* Record that a walk begun after reading recover_req == req finished. */
void idx_recover_done(const struct shm_seg *s, uint64_t req);

/* Sessions one idx_expire_bucket() call removes at most. */
#define IDX_EXPIRE_MAX 64

/* The first bucket of [b, b + n) (clipped to the table) with a session
 * idle past its TTL at `now`, or the end of the range if none: one
 * read-side section for the lot. Or -EINVAL, -EUCLEAN, or an error of
 * the read side. */
int64_t idx_expired_from(struct sesh *d, uint64_t b, uint64_t n, int64_t now);

/* Remove the sessions of bucket b (any namespace) idle past their TTL at
 * `now`, with their streams, as deletes would. Returns how many (at most
 * IDX_EXPIRE_MAX; call again for more), -EINVAL (b out of range),
 * -EUCLEAN, or an error of registering or of the read side. */
int idx_expire_bucket(struct sesh *d, uint64_t b, int64_t now);

/* Process-shared robust mutexes: initialise one in the segment, and lock
 * one, running `repair` (may be NULL) if its holder died. 0 or -EUCLEAN
 * (init: a negative errno of pthread). */
int idx_robust_init(pthread_mutex_t *m);
int idx_robust_lock(pthread_mutex_t *m, void (*repair)(const void *, uint32_t),
		    const void *arg, uint32_t i);

/* Create a session with the times and TTL a database recorded (restore
 * from SQLite), in the handle's namespace. As sesh_session_create(). */
int idx_restore(struct sesh *d, const char *id, const char *user,
		const void *meta, size_t meta_len, uint32_t ttl_s,
		int64_t created_ns, int64_t seen_ns);

/* Call fn on the record of (ns, id), or on every record of bucket b,
 * inside a read-side section: *v is valid only during the call. Return
 * 1 (found) or 0 (absent), or 0 (bucket), or a negative errno. */
typedef void (*idx_visit_fn)(const struct idx_view *v, void *arg);
int idx_visit_key(struct sesh *d, uint16_t ns, const char *id, size_t len,
		  idx_visit_fn fn, void *arg);
int idx_visit_bucket(struct sesh *d, uint64_t b, idx_visit_fn fn, void *arg);

/* The idle deadline of a record (last seen + TTL), in ns. */
static inline int64_t idx_deadline(const struct idx_view *v)
{
	return atomic_load_explicit(&v->r->last_seen_ns,
				    memory_order_relaxed) +
	       (int64_t)v->ttl_s * 1000000000;
}

/* Test hook: called at these points of the writers when set, so tests
 * can kill a writer there. NULL in normal use. */
enum idx_point {
	IDX_P_CREATE_FILLED,   /* record built, stripe not locked */
	IDX_P_CREATE_LOCKED,   /* stripe locked */
	IDX_P_CREATE_COUNTED,  /* counts taken, not linked */
	IDX_P_CREATE_LINKED,   /* linked, block still OWNED */
	IDX_P_CREATE_DONE,     /* LIVE, stripe still locked */
	IDX_P_CREATE_UNLOCKED, /* unlocked; a replaced record not retired */
	IDX_P_UPDATE_LOCKED,   /* stripe locked, old record found */
	IDX_P_UPDATE_FILLED,   /* new record built */
	IDX_P_SWAP_OWNED,      /* old record OWNED, still linked */
	IDX_P_SWAP_LINKED,     /* new record linked, still OWNED */
	IDX_P_UPDATE_UNLOCKED, /* unlocked, old record not retired */
	IDX_P_DELETE_LOCKED,   /* stripe locked, record found */
	IDX_P_DELETE_OWNED,    /* record OWNED, still linked */
	IDX_P_DELETE_UNLINKED, /* unlinked, counts not given back */
	IDX_P_DELETE_DONE,     /* counted, stripe still locked */
	IDX_P_DELETE_UNLOCKED, /* unlocked, record not retired */
	IDX_P_COUNT
};
extern void (*idx_test_hook)(enum idx_point p);

#endif /* SESH_INDEX_H */
