/*
 * ring.c - per-session streams: publish, subscribe, read, wait, unblock,
 * and the life of a ring from a session's creation to its reuse.
 *
 * How it works.
 *
 * A ring is cap payload bytes and nslots = cap / SHM_RING_SLOT_BYTES
 * descriptors. Message number `seq` (its event id is base + seq) has
 * descriptor seq % nslots, whose `word` carries seq itself: a slot's
 * word only ever grows, so a compare-and-swap against a value once read
 * there cannot succeed after the slot moved on (no ABA), and a reader
 * knows from the word alone whether the slot holds its message, an older
 * one, or a newer one (it was lapped).
 *
 * Claim. The tail is a pair {pos, seq}, claimed with one 128-bit CAS
 * (libatomic_ops, cmpxchg16b): a batch of k messages takes k sequences
 * and their bytes, contiguous, at once. A message never wraps: if it does
 * not fit before the end of the bytes, its claim skips to the start.
 * Nothing may be claimed over what is not finished: the front {seq, pos}
 * says every message below front.seq is committed or padding, and bytes
 * below front.pos are free. Publishers move the front forward as they
 * need room (ring_room()); that is the only time a publisher waits for
 * another, and only for one a whole ring behind.
 *
 * Commit. After the claim, the publisher writes its descriptor as
 * CLAIMED with its length and owner (128-bit CAS from what the slot held,
 * which fails if a reader gave the slot up meanwhile), copies the
 * payload, and commits with a 128-bit CAS CLAIMED -> DATA. Each message
 * commits by itself; publishers never wait for each other to commit.
 *
 * Read. A subscriber at seq reads the descriptor: DATA with tag seq is
 * its message; it copies the payload and then checks front.seq <= seq:
 * the bytes cannot have been reused before the front passed seq, so the
 * copy is whole. If the front passed it, or the slot holds a newer seq,
 * the subscriber was lapped: -EOVERFLOW, and it goes on from front.seq.
 * PAD and ABANDONED are skipped. Subscribers write nothing shared.
 *
 * Unblock (Aeron's term unblocker). A slot below the tail that stays
 * without a descriptor, or CLAIMED, belongs to a publisher that is slow,
 * stopped or dead. A waiting reader (or a publisher that needs the room)
 * checks the owner's liveness lock: dead, and the slot becomes PAD at
 * once. Otherwise, after unblock_ms, a slot with no descriptor becomes
 * PAD (the publisher's own CAS will then fail: it has written nothing),
 * and a CLAIMED one becomes ABANDONED: readers skip it, but its bytes
 * stay the publisher's until it fails its commit (and makes it PAD) or
 * dies, so a stalled memcpy can never land on newer messages.
 *
 * Wait. Readers spin briefly, then set bit 0 of the futex word (a full
 * barrier), look again, and sleep. Publishers commit (a full barrier)
 * and then read the word: the wake system call is made only when the bit
 * is set. One of the two always sees the other.
 *
 * Life. A ring is claimed when its session is created and named in the
 * session's record with its generation. Deleting the session closes the
 * tail (RING_CLOSED) and retires the ring with an epoch tag. It is
 * reused once no publisher can still be in it (the epoch grace period:
 * publishers hold a read-side section) and no subscription reads it: each
 * process lists the rings it reads in its pin table, and the reclaimer
 * marks the ring RECLAIMING, then scans the pins, while a subscriber pins,
 * then checks the ring is not RECLAIMING; one of the two sees the other.
 * Memory is committed on the first publish (fallocate: a full tmpfs is a
 * clean -ENOSPC, not SIGBUS) and given back when the ring is reclaimed.
 */
#include "config.h"

#include <atomic_ops.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "gc/epoch.h"
#include "index/index.h"
#include "ring/ring.h"

#if !defined(AO_HAVE_compare_double_and_swap_double_full)
#error "libatomic_ops has no lock-free double-word CAS here (build with -mcx16)"
#endif

#define RS_MASK	      7u
#define TAG(w)	      ((w) >> 3)
#define STATE(w)      ((unsigned)((w)&RS_MASK))
#define WORD(seq, st) (((seq) << 3) | (st))

#define INFO_LEN(i)  ((uint32_t)(i))
#define INFO_SLOT(i) ((uint32_t)(((i) >> 32) & 0xffff))
#define INFO_INC(i)  ((uint32_t)((i) >> 48))

/* Readers poll this many times before they sleep; a publisher between
 * claim and commit is usually done well within it. */
#define SPIN_POLLS 2000
/* A publisher's liveness is first checked after this long a wait, then
 * at most this often. */
#define LIVENESS_FIRST_NS (50 * 1000)
#define LIVENESS_EVERY_NS (10 * 1000 * 1000)
/* Rings retired by this process are reclaimed in batches of this many. */
#define RECLAIM_BATCH 8u

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ __volatile__("pause" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* A process's view of one ring, every field checked or fixed. */
struct ring {
	struct ring_hdr *h;
	uint8_t *bytes;
	struct ring_desc *desc;
	uint64_t cap, nslots, base;
	uint32_t r, gen;
};

/* A wait on one sequence: since when, and when to look at its owner. */
struct stall {
	uint64_t seq;
	int64_t since, next_check;
	bool on;
};

struct sesh_stream {
	struct sesh *d;
	struct ring g;
	uint64_t seq;  /* next message to read */
	uint64_t tail; /* tail.seq last seen */
	bool overflow; /* the next read says -EOVERFLOW */
	bool ended;    /* closed and drained: -ENOENT */
	bool zc;       /* the last read was zero-copy, of zc_seq */
	uint64_t zc_seq;
	int64_t expires_ns; /* when to look at the session again */
	uint32_t pin;	    /* index in our pin table */
	uint32_t pin_gen;   /* registration generation it was taken in */
	size_t id_len;
	char id[SESH_ID_MAX + 1];
	void *buf;
	size_t buf_cap;
	/* The wait on an unfinished message, kept across calls so that
	 * polling with timeout 0 unblocks a dead publisher too. */
	struct stall st;
};

/* --- small helpers ---------------------------------------------------------
 */

void (*ring_test_hook)(enum ring_point p);

static inline void point(enum ring_point p)
{
	if (ring_test_hook != NULL)
		ring_test_hook(p);
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool dcas(void *p, uint64_t o0, uint64_t o1, uint64_t n0, uint64_t n1)
{
	return AO_compare_double_and_swap_double_full((volatile AO_double_t *)p,
						      (AO_t)o0, (AO_t)o1,
						      (AO_t)n0, (AO_t)n1);
}

static uint64_t align8(uint64_t n)
{
	return (n + 7) & ~(uint64_t)7;
}

/* The ring a RING_STREAM() word names (UINT64_MAX for none: out of any
 * range). */
static uint64_t ring_index(uint64_t stream)
{
	return (stream & 0xffffffffu) - 1;
}

static _Atomic uint64_t *ring_state(const struct shm_seg *s, uint64_t r)
{
	if (r >= s->geom.nrings)
		return NULL;
	return shm_ptr(s, SHM_R_STREAMS, s->geom.ring_states + r * 8, 8, 8);
}

static struct ring_hdr *ring_hdr_of(const struct shm_seg *s, uint64_t r)
{
	if (r >= s->geom.nrings)
		return NULL;
	return shm_ptr(s, SHM_R_STREAMS, s->geom.ring_hdrs + r * SHM_RING_HDR,
		       SHM_RING_HDR, SHM_CACHELINE);
}

static uint8_t *ring_mem(const struct shm_seg *s, uint64_t r)
{
	if (r >= s->geom.nrings)
		return NULL;
	return shm_ptr(s, SHM_R_STREAMS,
		       s->geom.ring_data + r * s->geom.ring_stride,
		       s->geom.ring_stride, SHM_PAGE);
}

/*
 * The ring a record names, checked: in range, and still of the
 * generation the record was made with. Returns 0, -ENOENT (the ring moved
 * on: its session is gone) or -EUCLEAN.
 */
static int ring_view(const struct shm_seg *s, uint64_t stream, struct ring *g)
{
	uint64_t r = ring_index(stream);
	uint8_t *mem;

	g->h = ring_hdr_of(s, r);
	mem = ring_mem(s, r);
	if (g->h == NULL || mem == NULL)
		return -EUCLEAN;
	g->r = (uint32_t)r;
	g->gen = (uint32_t)(stream >> 32);
	g->cap = s->geom.stream_bytes;
	g->nslots = s->geom.ring_nslots;
	g->bytes = mem;
	g->desc = (struct ring_desc *)(mem + g->cap);
	if ((uint32_t)atomic_load_explicit(&g->h->gen, memory_order_acquire) !=
	    g->gen)
		return -ENOENT;
	g->base = atomic_load_explicit(&g->h->base, memory_order_relaxed);
	return 0;
}

static struct ring_desc *desc_of(const struct ring *g, uint64_t seq)
{
	return &g->desc[seq % g->nslots];
}

/* A descriptor's two CAS-guarded words. Acquire on `word`: pairs with the
 * full barrier of the CAS that wrote it, so `info`, `pos` and `ns` are at
 * least that new. A torn pair only makes a later CAS fail. */
static void desc_load(const struct ring_desc *dp, uint64_t *w, uint64_t *i)
{
	*w = atomic_load_explicit(&dp->word, memory_order_acquire);
	*i = atomic_load_explicit(&dp->info, memory_order_relaxed);
}

/* The tail pair as one value (a 128-bit CAS that changes nothing, so a
 * write: publishers only). */
static void tail_load(const struct ring *g, uint64_t *pos, uint64_t *seq)
{
	AO_double_t v = AO_double_load((volatile AO_double_t *)&g->h->tail_pos);

	*pos = (uint64_t)v.AO_val1;
	*seq = (uint64_t)v.AO_val2;
}

/* Whether the publisher that wrote `info` is gone (only the low 16 bits
 * of its incarnation are kept there). */
static bool owner_dead(const struct sesh *d, uint64_t info)
{
	return shm_slot_dead(d, INFO_SLOT(info), INFO_INC(info), 0xffff, NULL);
}

static void wake(struct sesh *d, struct ring_hdr *h)
{
	/* Seq-cst: after our commit (a full barrier already), pairing with
	 * the sleeper's fetch_or before it looks again. */
	uint32_t f = atomic_load(&h->futex);

	if ((f & 1) == 0)
		return;
	if (!atomic_compare_exchange_strong(&h->futex, &f, (f + 2) & ~1u))
		return; /* another waker took it */
	syscall(SYS_futex, &h->futex, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	shm_stat_add(d, SHM_ST_FUTEX_WAKES, 1);
}

/* --- unblocking ------------------------------------------------------------
 */

enum settle {
	SETTLE_WAIT = 0, /* still blocked: wait and look again */
	SETTLE_MOVED,	 /* the slot changed: look again now */
	SETTLE_SKIP,	 /* ABANDONED: readers go past it */
};

/*
 * A slot below the tail that is not finished: `w`/`i` as just read, for
 * sequence seq. Give it up if its publisher is dead, or has held it past
 * unblock_ms. Called by waiting readers and by publishers that need the
 * room; `st` times the wait.
 */
static enum settle settle(struct sesh *d, const struct ring *g, uint64_t seq,
			  uint64_t w, uint64_t i, struct stall *st)
{
	struct ring_desc *dp = desc_of(g, seq);
	int64_t now = mono_ns(), waited;
	bool mine = TAG(w) == seq && STATE(w) != RS_NONE;

	if (!st->on || st->seq != seq) {
		st->on = true;
		st->seq = seq;
		st->since = now;
		st->next_check = now + LIVENESS_FIRST_NS;
	}
	waited = now - st->since;
	if (mine && STATE(w) == RS_ABANDONED && now < st->next_check)
		return SETTLE_SKIP;
	if (mine && now >= st->next_check) {
		st->next_check = now + LIVENESS_EVERY_NS;
		if (owner_dead(d, i)) {
			if (dcas(dp, w, i, WORD(seq, RS_PAD), 0))
				shm_stat_add(d, SHM_ST_HOLES, 1);
			return SETTLE_MOVED;
		}
	}
	if (mine && STATE(w) == RS_ABANDONED)
		return SETTLE_SKIP;
	if (waited < (int64_t)d->seg.geom.unblock_ms * 1000000)
		return SETTLE_WAIT;
	if (!mine) {
		/* No descriptor yet: its publisher has written nothing, and
		 * its own CAS fails once this one lands. */
		if (dcas(dp, w, i, WORD(seq, RS_PAD), 0))
			shm_stat_add(d, SHM_ST_HOLES, 1);
		return SETTLE_MOVED;
	}
	if (dcas(dp, w, i, WORD(seq, RS_ABANDONED), i))
		shm_stat_add(d, SHM_ST_HOLES, 1);
	return SETTLE_MOVED;
}

static void backoff(unsigned *n)
{
	if (*n < 64) {
		cpu_relax();
	} else if (*n < 128) {
		sched_yield();
	} else {
		nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 200000},
			  NULL);
	}
	(*n)++;
}

/* Whether the front has moved past seq (what we read of seq may then be
 * a later message's). Acquire: pairs with the CAS that moved it. */
static bool front_moved(const struct ring *g, uint64_t seq)
{
	return atomic_load_explicit(&g->h->front_seq, memory_order_acquire) >
	       seq;
}

/*
 * Move the front until sequences below goal_seq are finished and bytes
 * below goal_pos are free. Returns 0, -EAGAIN (a live publisher a ring
 * behind holds it up past unblock_ms) or -EUCLEAN.
 *
 * A call that has to move the front at all goes on past the goal, over
 * messages already finished (never waiting for one), by up to a
 * sixteenth of the ring: the front is then written once every many
 * messages rather than at every claim, and the subscribers, which read
 * it after every copy, keep its line in their caches. The ring retains
 * a sixteenth less at worst.
 */
static int ring_room(struct sesh *d, const struct ring *g, uint64_t goal_seq,
		     uint64_t goal_pos)
{
	struct stall st = {0};
	unsigned n = 0;
	bool moved = false, extra = false;
	uint64_t far_seq = goal_seq + g->nslots / 16;
	uint64_t far_pos = goal_pos + g->cap / 16;

	for (;;) {
		uint64_t fs = atomic_load_explicit(&g->h->front_seq,
						   memory_order_acquire);
		uint64_t fp = atomic_load_explicit(&g->h->front_pos,
						   memory_order_acquire);
		uint64_t tp, ts, w, i, np;
		struct ring_desc *dp;
		enum settle rc;

		if (fs >= goal_seq && fp >= goal_pos) {
			if (!moved || (fs >= far_seq && fp >= far_pos))
				return 0;
			extra = true; /* past the goal: finished ones only */
		}
		tail_load(g, &tp, &ts);
		tp &= ~RING_CLOSED;
		if (fs > ts || fp > tp)
			return -EUCLEAN;
		if (fs == ts) {
			if (extra)
				return 0;
			/* Everything claimed is finished: all bytes below
			 * the tail are free. */
			(void)dcas(&g->h->front_seq, fs, fp, fs, tp);
			if (tp < goal_pos)
				return -EUCLEAN; /* cannot be: goal < tail */
			continue;
		}
		dp = desc_of(g, fs);
		desc_load(dp, &w, &i);
		if (TAG(w) > fs) {
			/* Reused: fine if another publisher moved the front
			 * past fs since we read it, corrupt otherwise. */
			if (front_moved(g, fs))
				continue;
			return -EUCLEAN;
		}
		if (TAG(w) == fs && STATE(w) == RS_DATA) {
			uint64_t pos = atomic_load_explicit(
				&dp->pos, memory_order_relaxed);

			np = pos + align8(INFO_LEN(i));
			if (INFO_LEN(i) > d->seg.geom.max_message || np > tp) {
				if (front_moved(g, fs))
					continue;
				return -EUCLEAN;
			}
			(void)dcas(&g->h->front_seq, fs, fp, fs + 1,
				   np > fp ? np : fp);
			st.on = false;
			moved = true;
			continue;
		}
		if (TAG(w) == fs && STATE(w) == RS_PAD) {
			(void)dcas(&g->h->front_seq, fs, fp, fs + 1, fp);
			st.on = false;
			moved = true;
			continue;
		}
		if (extra)
			return 0; /* not finished: not worth a wait */
		rc = settle(d, g, fs, w, i, &st);
		if (rc == SETTLE_MOVED)
			continue;
		if (rc == SETTLE_SKIP &&
		    mono_ns() - st.since >=
			    (int64_t)d->seg.geom.unblock_ms * 1000000)
			return -EAGAIN;
		backoff(&n);
	}
}

/* --- publishing ------------------------------------------------------------
 */

/* Commit the ring's memory on its first publish. */
static int ring_reserve(struct sesh *d, const struct ring *g)
{
	uint64_t want = (uint64_t)g->gen + 1;
	int rc;

	if (atomic_load_explicit(&g->h->reserved, memory_order_acquire) == want)
		return 0;
	do {
		rc = posix_fallocate(d->fd, (off_t)(g->bytes - d->seg.base),
				     (off_t)d->seg.geom.ring_stride);
	} while (rc == EINTR);
	if (rc == ENOSPC || rc == EFBIG || rc == EDQUOT)
		return -ENOSPC;
	/* Other errors (a file system without fallocate) leave pages to be
	 * committed when touched, as for the rest of the segment. */
	atomic_store_explicit(&g->h->reserved, want, memory_order_release);
	return 0;
}

/* Our owner bits for descriptors: slot and low incarnation bits. */
static uint64_t info_of(uint64_t owner, size_t len)
{
	return (uint64_t)len | ((uint64_t)SHM_BLK_SLOT(owner) << 32) |
	       ((SHM_BLK_INC(owner) & 0xffff) << 48);
}

/*
 * Write and commit message seq at byte position pos, published at `now`
 * (one clock read serves a whole claim). Returns 0, or
 * -ETIMEDOUT if the slot was given up before we committed (nothing of
 * ours is then visible).
 */
static int ring_write(struct sesh *d, const struct ring *g, uint64_t seq,
		      uint64_t pos, const void *msg, size_t len, uint64_t info,
		      int64_t now)
{
	struct ring_desc *dp = desc_of(g, seq);
	uint64_t w, i;

	for (;;) {
		desc_load(dp, &w, &i);
		if (TAG(w) > seq || (TAG(w) == seq && STATE(w) != RS_NONE))
			return -ETIMEDOUT; /* a reader gave it up */
		if (dcas(dp, w, i, WORD(seq, RS_CLAIMED), info))
			break;
	}
	point(RING_P_DESCRIBED);
	atomic_store_explicit(&dp->pos, pos, memory_order_relaxed);
	atomic_store_explicit(&dp->ns, now, memory_order_relaxed);
	if (len > 0)
		memcpy(g->bytes + (pos & (g->cap - 1)), msg, len);
	point(RING_P_COPIED);
	/* Full barrier: the payload and the fields above before DATA. */
	if (dcas(dp, WORD(seq, RS_CLAIMED), info, WORD(seq, RS_DATA), info))
		return 0;
	/* Given up while we wrote: ABANDONED (our bytes were kept for us;
	 * now they may go) or PAD (we were thought dead). */
	(void)dcas(dp, WORD(seq, RS_ABANDONED), info, WORD(seq, RS_PAD), 0);
	return -ETIMEDOUT;
}

/*
 * Claim n messages (n <= nslots / 2, their bytes at most cap / 2) in one
 * step: their sequences from *seq0 and their byte positions in pos[].
 */
static int ring_claim(struct sesh *d, const struct ring *g,
		      const sesh_buf_t *msgs, size_t n, uint64_t *seq0,
		      uint64_t *pos, bool cached)
{
	for (;;) {
		uint64_t tp, ts, p, size;
		size_t k;
		int rc;

		tail_load(g, &tp, &ts);
		/* A ring reached through the thread's cache, not the index:
		 * closed, or reused by another session (ring_assign() writes
		 * the generation before it resets the tail, and tail_load()
		 * is a full barrier), it is stale, and the index decides.
		 * An open tail of our generation, read inside our section,
		 * cannot be reused before the section ends: its retirement,
		 * after the close, is tagged with an epoch past ours. */
		if (cached &&
		    ((tp & RING_CLOSED) ||
		     (uint32_t)atomic_load_explicit(&g->h->gen,
						    memory_order_relaxed) !=
			     g->gen))
			return -ESTALE;
		if (tp & RING_CLOSED)
			return -ENOENT;
		for (p = tp, k = 0; k < n; k++) {
			uint64_t off = p & (g->cap - 1);

			size = align8(msgs[k].len);
			if (off + size > g->cap)
				p += g->cap - off; /* never wrap a message */
			pos[k] = p;
			p += size;
		}
		rc = ring_room(d, g,
			       ts + n > g->nslots ? ts + n - g->nslots : 0,
			       p > g->cap ? p - g->cap : 0);
		if (rc < 0)
			return rc;
		/* Full barrier: the front we checked is before the claim,
		 * and the claim before any write into what it covers. */
		if (dcas(&g->h->tail_pos, tp, ts, p, ts + n)) {
			*seq0 = ts;
			return 0;
		}
	}
}

/* Find the session's ring, holding a read-side section (the caller's) so
 * the ring is not reused under us. */
static int stream_find(struct sesh *d, const char *id, struct ring *g,
		       int64_t *expires, uint64_t *stream_out)
{
	uint64_t stream;
	int rc = idx_stream_lookup(d, id, &stream, expires);

	if (stream_out != NULL)
		*stream_out = stream;
	if (rc == 1) {
		/* Expired, not yet removed: end its stream too. */
		ring_close_stream(d, stream);
		return -ENOENT;
	}
	if (rc < 0)
		return rc;
	return ring_view(&d->seg, stream, g);
}

/*
 * Each thread remembers its last few publish targets: id -> stream word
 * and when the session would expire if nobody touched it. A run of
 * publishes to one session (an SSE response streaming progress) then
 * skips the index lookup, about half of a publish's instructions. An
 * entry is only a hint: it is used inside the read-side section, its
 * ring checked by ring_view() (generation) and at every claim
 * (ring_claim(): closed or reused means stale), and dropped once the
 * session may have expired; anything stale falls back to the index.
 */
#define PCACHE_WAYS 4

struct pcache_ent {
	const struct sesh *d;
	uint64_t serial; /* of the handle: a new handle never matches */
	uint64_t stream;
	int64_t expires_ns; /* CLOCK_REALTIME, as the index's TTL check */
	size_t len;
	char id[SESH_ID_MAX + 1];
};

static __thread struct pcache_ent pcache[PCACHE_WAYS];

static struct pcache_ent *pcache_way(const char *id, size_t len)
{
	unsigned w = (unsigned)len ^ (unsigned char)id[0] ^
		     (unsigned char)id[len - 1];

	return &pcache[w % PCACHE_WAYS];
}

static int64_t coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The thread's entry for `id` in handle d, if it holds one that may still
 * be good. */
static struct pcache_ent *pcache_get(const struct sesh *d, const char *id,
				     size_t len)
{
	struct pcache_ent *e;

	if (len == 0 || len > SESH_ID_MAX)
		return NULL;
	e = pcache_way(id, len);
	if (e->d != d || e->serial != d->serial || e->len != len ||
	    memcmp(e->id, id, len) != 0)
		return NULL;
	if (coarse_ns() >= e->expires_ns) {
		e->d = NULL; /* the index decides about expiry */
		return NULL;
	}
	return e;
}

static void pcache_put(const struct sesh *d, const char *id, size_t len,
		       uint64_t stream, int64_t expires_ns)
{
	struct pcache_ent *e;

	if (len == 0 || len > SESH_ID_MAX)
		return;
	e = pcache_way(id, len);
	e->d = d;
	e->serial = d->serial;
	e->stream = stream;
	e->expires_ns = expires_ns;
	e->len = len;
	memcpy(e->id, id, len);
	e->id[len] = '\0';
}

/* The session's ring, through the thread's cache or the index. *cached
 * says which. */
static int target_find(struct sesh *d, const char *id, size_t len,
		       struct ring *g, bool *cached)
{
	struct pcache_ent *e = pcache_get(d, id, len);
	uint64_t stream;
	int64_t expires;
	int rc;

	if (e != NULL) {
		if (ring_view(&d->seg, e->stream, g) == 0) {
			*cached = true;
			return 0;
		}
		e->d = NULL;
	}
	*cached = false;
	rc = stream_find(d, id, g, &expires, &stream);
	if (rc == 0)
		pcache_put(d, id, len, stream, expires);
	return rc;
}

static int publish(struct sesh *d, const char *id, const sesh_buf_t *msgs,
		   size_t n, uint64_t *ids)
{
	struct gc_thread_reader *tr;
	uint64_t owner, seq0, pos[64], info, sent = 0, sent_bytes = 0;
	struct ring g;
	size_t done = 0, k, chunk, bytes, len;
	bool cached;
	int64_t now;
	int rc;

	if (ids != NULL)
		for (k = 0; k < n; k++)
			ids[k] = 0;
	if (d == NULL || id == NULL || (msgs == NULL && n > 0))
		return -EINVAL;
	for (k = 0; k < n; k++) {
		if (msgs[k].data == NULL && msgs[k].len > 0)
			return -EINVAL;
		if (msgs[k].len > d->seg.geom.max_message)
			return -E2BIG;
	}
	rc = shm_owner_word(d, &owner);
	if (rc < 0)
		return rc;
	rc = gc_read_lock(d, &tr);
	if (rc < 0)
		return rc;
	len = strnlen(id, SESH_ID_MAX + 1);
	rc = target_find(d, id, len, &g, &cached);
	if (rc == 0)
		rc = ring_reserve(d, &g);
	while (rc == 0 && done < n) {
		/* A claim covers at most half the ring (bytes and slots),
		 * and at most 64 messages. */
		for (chunk = 0, bytes = 0;
		     done + chunk < n && chunk < 64 && chunk < g.nslots / 2;
		     chunk++) {
			uint64_t sz = align8(msgs[done + chunk].len);

			if (chunk > 0 && bytes + sz > g.cap / 2)
				break;
			bytes += sz;
		}
		rc = ring_claim(d, &g, msgs + done, chunk, &seq0, pos,
				cached && done == 0);
		if (rc == -ESTALE) {
			/* The cached ring went; nothing was claimed yet.
			 * Ask the index, then claim again. */
			pcache_way(id, len)->d = NULL;
			cached = false;
			rc = stream_find(d, id, &g, NULL, NULL);
			if (rc == 0)
				rc = ring_reserve(d, &g);
			continue;
		}
		if (rc == 0)
			point(RING_P_CLAIMED);
		now = shm_now_ns();
		for (k = 0; rc == 0 && k < chunk; k++) {
			const sesh_buf_t *m = &msgs[done + k];

			info = info_of(owner, m->len);
			rc = ring_write(d, &g, seq0 + k, pos[k], m->data,
					m->len, info, now);
			if (rc == 0) {
				if (ids != NULL)
					ids[done + k] = g.base + seq0 + k;
				sent++;
				sent_bytes += m->len;
			}
		}
		if (rc < 0 && k > 0 && k < chunk) {
			/* Give up the rest of this claim at once rather
			 * than leave readers to wait for it. */
			for (; k < chunk; k++) {
				struct ring_desc *dp = desc_of(&g, seq0 + k);
				uint64_t w, i;

				desc_load(dp, &w, &i);
				if (TAG(w) < seq0 + k ||
				    (TAG(w) == seq0 + k && STATE(w) == RS_NONE))
					(void)dcas(dp, w, i,
						   WORD(seq0 + k, RS_PAD), 0);
			}
		}
		if (rc == 0 || k > 0)
			wake(d, g.h);
		done += chunk;
	}
	gc_read_unlock(tr);
	/* Counted once a call: each add is a locked instruction. */
	if (sent > 0) {
		shm_stat_add(d, SHM_ST_PUBLISHED, sent);
		shm_stat_add(d, SHM_ST_PUBLISHED_BYTES, sent_bytes);
	}
	if (rc == -ETIMEDOUT || rc == -EAGAIN)
		shm_stat_add(d, SHM_ST_PUBLISH_FAILED, 1);
	return rc;
}

int sesh_publish(sesh_t *d, const char *id, const void *msg, size_t len,
		 uint64_t *event_id)
{
	sesh_buf_t b = {msg, len};

	return publish(d, id, &b, 1, event_id);
}

int sesh_publish_batch(sesh_t *d, const char *id, const sesh_buf_t *msgs,
		       size_t n, uint64_t *event_ids)
{
	return publish(d, id, msgs, n, event_ids);
}

/* --- pins ------------------------------------------------------------------
 */

static uint64_t pin_word(const struct ring *g)
{
	return ((uint64_t)g->gen << 32) | ((uint64_t)g->r + 1);
}

/* Whether ring g may be read: not reclaimed, not reused. Seq-cst:
 * after our pin is stored, pairing with the reclaimer's mark. */
static bool ring_usable(const struct shm_seg *s, const struct ring *g)
{
	_Atomic uint64_t *sw = ring_state(s, g->r);
	uint64_t v;

	if (sw == NULL)
		return false;
	v = atomic_load(sw);
	return SHM_BLK_STATE(v) != SHM_BLK_FREE &&
	       SHM_BLK_STATE(v) != RING_RECLAIMING &&
	       (uint32_t)atomic_load(&g->h->gen) == g->gen;
}

/* Take an entry of our pin table for g. Returns its index or -ENOSPC,
 * -ENOENT (the ring is already being reclaimed) or a registration
 * error. */
static int pin_take(struct sesh *d, const struct ring *g, uint32_t *gen)
{
	struct shm_pins *t;
	uint32_t k, used;
	int slot, rc;

	rc = shm_ensure_registered(d);
	if (rc < 0)
		return rc;
	slot = atomic_load_explicit(&d->slot, memory_order_acquire);
	t = shm_pins_of(&d->seg, (uint32_t)slot);
	if (t == NULL)
		return -EUCLEAN;
	pthread_mutex_lock(&d->ring_lock);
	*gen = atomic_load_explicit(&d->reg_gen, memory_order_relaxed);
	used = atomic_load_explicit(&t->used, memory_order_relaxed);
	if (used > d->seg.geom.max_subs)
		used = d->seg.geom.max_subs; /* scribbled */
	for (k = 0; k < used; k++)
		if (atomic_load_explicit(&t->ent[k], memory_order_relaxed) == 0)
			break;
	if (k == d->seg.geom.max_subs) {
		pthread_mutex_unlock(&d->ring_lock);
		return -ENOSPC;
	}
	if (k == used)
		atomic_store_explicit(&t->used, used + 1, memory_order_relaxed);
	/* Seq-cst: the pin before we look at the ring's state. */
	atomic_store(&t->ent[k], pin_word(g));
	pthread_mutex_unlock(&d->ring_lock);
	if (!ring_usable(&d->seg, g)) {
		atomic_store_explicit(&t->ent[k], 0, memory_order_release);
		return -ENOENT;
	}
	return (int)k;
}

static void pin_drop(struct sesh *d, uint32_t k, uint32_t gen)
{
	int slot = atomic_load_explicit(&d->slot, memory_order_acquire);
	struct shm_pins *t;

	/* After fork the entry is the parent's, in its table. */
	if (slot < 0 ||
	    gen != atomic_load_explicit(&d->reg_gen, memory_order_relaxed))
		return;
	t = shm_pins_of(&d->seg, (uint32_t)slot);
	if (t == NULL || k >= d->seg.geom.max_subs)
		return;
	pthread_mutex_lock(&d->ring_lock);
	/* Release: our reads of the ring before a reclaimer reuses it. */
	atomic_store_explicit(&t->ent[k], 0, memory_order_release);
	pthread_mutex_unlock(&d->ring_lock);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Every pin of every registered process, sorted; *n of them. NULL with
 * *n 0 when there are none, or no memory (then *n is SIZE_MAX). */
static uint64_t *pins_collect(const struct shm_seg *s, size_t *n)
{
	uint64_t *all = NULL;
	size_t cap = 0, have = 0;
	uint32_t p, k, used, np = shm_procs_scan(s);

	/* A process that claims its slot after we count the slots pins
	 * after that, so it then sees the ring marked RECLAIMING. */
	for (p = 0; p < np; p++) {
		struct shm_proc *pr = shm_proc_slot(s, p);
		struct shm_pins *t = shm_pins_of(s, p);

		if (pr == NULL || t == NULL ||
		    atomic_load(&pr->state) != SHM_PROC_LIVE)
			continue;
		used = atomic_load(&t->used);
		if (used > s->geom.max_subs)
			used = s->geom.max_subs;
		for (k = 0; k < used; k++) {
			uint64_t v = atomic_load(&t->ent[k]);

			if (v == 0)
				continue;
			if (have == cap) {
				uint64_t *m;

				cap = cap ? 2 * cap : 256;
				m = realloc(all, cap * sizeof(*all));
				if (m == NULL) {
					free(all);
					*n = SIZE_MAX;
					return NULL;
				}
				all = m;
			}
			all[have++] = v;
		}
	}
	if (have > 1)
		qsort(all, have, sizeof(*all), cmp_u64);
	*n = have;
	return all;
}

/* --- life of a ring --------------------------------------------------------
 */

int ring_assign(struct sesh *d, uint64_t owner, uint64_t *stream)
{
	const struct shm_geom *gm = &d->seg.geom;
	struct ring_hdr *h;
	int64_t k = -ENOSPC;
	uint64_t gen;
	int tries;

	for (tries = 0; tries < 2 && k == -ENOSPC; tries++) {
		if (tries > 0 && ring_sweep(d) == 0)
			break;
		k = shm_claim(&d->seg, SHM_R_STREAMS, gm->ring_states,
			      gm->nrings, &d->ring_cursor, owner);
	}
	if (k < 0)
		return (int)k;
	h = ring_hdr_of(&d->seg, (uint64_t)k);
	if (h == NULL)
		return -EUCLEAN;
	/* Ours alone until the record that names it is linked (release);
	 * the index leads nobody to the old generation any more. A
	 * publisher's cache still may (see publish()): it reads the tail,
	 * then the generation, so the new generation goes first (release
	 * fence), and again last for those that find it by the index. */
	gen = atomic_load_explicit(&h->gen, memory_order_relaxed) + 1;
	if ((uint32_t)gen == 0)
		gen++; /* 0 is never a generation, so a zeroed record never
			* names a ring */
	atomic_store_explicit(&h->gen, gen, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&h->tail_pos, 0, memory_order_relaxed);
	atomic_store_explicit(&h->tail_seq, 0, memory_order_relaxed);
	atomic_store_explicit(&h->front_seq, 0, memory_order_relaxed);
	atomic_store_explicit(&h->front_pos, 0, memory_order_relaxed);
	atomic_store_explicit(&h->base, 0, memory_order_relaxed);
	atomic_store_explicit(&h->gen, gen, memory_order_release);
	*stream = RING_STREAM((uint64_t)k, gen);
	return 0;
}

void ring_start(struct sesh *d, uint64_t stream, uint64_t bucket)
{
	struct shm_header *hd = shm_hdr(&d->seg);
	struct ring_hdr *h = ring_hdr_of(&d->seg, ring_index(stream));
	uint64_t base = (uint64_t)shm_now_ns();
	uint64_t floor = atomic_load(&hd->event_floor);

	if (h == NULL)
		return;
	if (base <= floor)
		base = floor + 1;
	atomic_store_explicit(&h->base, base, memory_order_relaxed);
	atomic_store_explicit(&h->bucket, bucket, memory_order_relaxed);
}

static void state_set(struct sesh *d, uint64_t stream, uint64_t from,
		      uint64_t to)
{
	_Atomic uint64_t *sw = ring_state(&d->seg, ring_index(stream));

	if (sw != NULL)
		(void)atomic_compare_exchange_strong(sw, &from, to);
}

void ring_live(struct sesh *d, uint64_t stream, uint64_t owner)
{
	state_set(d, stream, owner, SHM_BLK_LIVE);
}

void ring_unassign(struct sesh *d, uint64_t stream, uint64_t owner)
{
	state_set(d, stream, owner, SHM_BLK_FREE);
}

/* Set RING_CLOSED on the tail and wake every sleeper. */
static void ring_close(struct sesh *d, const struct ring *g)
{
	uint64_t tp, ts;

	do {
		tail_load(g, &tp, &ts);
		if (tp & RING_CLOSED)
			break;
	} while (!dcas(&g->h->tail_pos, tp, ts, tp | RING_CLOSED, ts));
	/* Ids of a closed stream are never given again for any session.
	 * Seq-cst max: ordered after the close above. */
	{
		_Atomic uint64_t *fl = &shm_hdr(&d->seg)->event_floor;
		uint64_t last = g->base + ts, cur = atomic_load(fl);

		while (cur < last &&
		       !atomic_compare_exchange_weak(fl, &cur, last))
			;
	}
	wake(d, g->h);
}

void ring_close_stream(struct sesh *d, uint64_t stream)
{
	struct ring g;

	if (ring_view(&d->seg, stream, &g) == 0)
		ring_close(d, &g);
}

void ring_retire(struct sesh *d, uint64_t stream)
{
	_Atomic uint64_t *sw = ring_state(&d->seg, ring_index(stream));
	struct ring g;
	uint64_t v;

	if (sw == NULL || ring_view(&d->seg, stream, &g) < 0)
		return;
	ring_close(d, &g);
	v = atomic_load(sw);
	if (SHM_BLK_STATE(v) == SHM_BLK_LIVE ||
	    SHM_BLK_STATE(v) == SHM_BLK_OWNED)
		(void)atomic_compare_exchange_strong(
			sw, &v, shm_blk_retired(gc_retire_tag(&d->seg)));
}

/* Give ring r back: its memory to the file system, its word FREE. */
static void ring_free(struct sesh *d, uint64_t r, _Atomic uint64_t *sw,
		      uint64_t mark)
{
	struct ring_hdr *h = ring_hdr_of(&d->seg, r);
	uint8_t *mem = ring_mem(&d->seg, r);

	if (h == NULL || mem == NULL)
		return;
	if (fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)(mem - d->seg.base),
		      (off_t)d->seg.geom.ring_stride) != 0)
		/* No hole punching here: the descriptors must read as
		 * never written for the next generation. */
		memset(mem + d->seg.geom.stream_bytes, 0,
		       d->seg.geom.ring_nslots * SHM_RING_DESC);
	atomic_store_explicit(&h->reserved, 0, memory_order_relaxed);
	/* Release: all of the above before the next owner claims it. */
	(void)atomic_compare_exchange_strong_explicit(sw, &mark, SHM_BLK_FREE,
						      memory_order_release,
						      memory_order_relaxed);
}

static bool pinned(const uint64_t *pins, size_t n, uint64_t word)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (pins[mid] == word)
			return true;
		if (pins[mid] < word)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/*
 * Reclaim the rings in r[0..n) that are RETIRED past their grace period
 * and read by nobody. Returns how many were freed.
 */
static uint64_t reclaim(struct sesh *d, const uint32_t *r, size_t n)
{
	const struct shm_seg *s = &d->seg;
	uint64_t oldest, owner, freed = 0, mark;
	uint64_t *pins;
	size_t i, npins;
	uint8_t *mine;

	if (n == 0 || shm_owner_word(d, &owner) < 0)
		return 0;
	mine = calloc(n, 1);
	if (mine == NULL)
		return 0;
	mark = (owner & ~(uint64_t)0xf) | RING_RECLAIMING;
	oldest = gc_oldest_reader(s);
	for (i = 0; i < n; i++) {
		_Atomic uint64_t *sw = ring_state(s, r[i]);
		uint64_t v = sw ? atomic_load(sw) : 0;

		/* Seq-cst: the mark before we read any pin. */
		if (SHM_BLK_STATE(v) == SHM_BLK_RETIRED &&
		    SHM_BLK_TAG(v) < oldest &&
		    atomic_compare_exchange_strong(sw, &v, mark))
			mine[i] = 1;
	}
	pins = pins_collect(s, &npins);
	for (i = 0; i < n; i++) {
		_Atomic uint64_t *sw = ring_state(s, r[i]);
		struct ring_hdr *h = ring_hdr_of(s, r[i]);
		uint64_t word;

		if (!mine[i] || sw == NULL || h == NULL)
			continue;
		word = ((uint64_t)(uint32_t)atomic_load(&h->gen) << 32) |
		       ((uint64_t)r[i] + 1);
		if (npins == SIZE_MAX || pinned(pins, npins, word)) {
			uint64_t m = mark;

			/* Still read: back to RETIRED, grace long over. */
			(void)atomic_compare_exchange_strong(
				sw, &m, shm_blk_retired(0));
			continue;
		}
		ring_free(d, r[i], sw, mark);
		freed++;
	}
	free(pins);
	free(mine);
	return freed;
}

void ring_retired_note(struct sesh *d, uint64_t stream)
{
	uint32_t batch[SHM_RING_RETIRE_LOCAL];
	uint32_t n = 0;

	pthread_mutex_lock(&d->ring_lock);
	if (d->ring_nretired == SHM_RING_RETIRE_LOCAL)
		d->ring_nretired = 0; /* forget them: ring_sweep() finds them */
	d->ring_retired[d->ring_nretired++] = (uint32_t)ring_index(stream);
	if (d->ring_nretired >= RECLAIM_BATCH) {
		n = d->ring_nretired;
		memcpy(batch, d->ring_retired, n * sizeof(batch[0]));
		d->ring_nretired = 0;
	}
	pthread_mutex_unlock(&d->ring_lock);
	if (n > 0)
		(void)reclaim(d, batch, n);
}

uint64_t ring_sweep_range(struct sesh *d, uint64_t from, uint64_t n,
			  uint64_t *next)
{
	const struct shm_seg *s = &d->seg;
	uint64_t r, freed = 0;
	uint32_t batch[256];
	size_t k = 0;

	for (r = from; r < s->geom.nrings && n > 0; r++, n--) {
		_Atomic uint64_t *sw = ring_state(s, r);

		if (sw == NULL)
			break;
		if (SHM_BLK_STATE(atomic_load_explicit(
			    sw, memory_order_relaxed)) != SHM_BLK_RETIRED)
			continue;
		batch[k++] = (uint32_t)r;
		if (k == 256) {
			freed += reclaim(d, batch, k);
			k = 0;
		}
	}
	*next = r >= s->geom.nrings ? 0 : r;
	return freed + reclaim(d, batch, k);
}

uint64_t ring_sweep(struct sesh *d)
{
	uint64_t next;

	return ring_sweep_range(d, 0, d->seg.geom.nrings, &next);
}

/*
 * Ring r is LIVE: turn the messages that publishers now dead claimed and
 * never committed into padding, so that the front can pass them without
 * anyone waiting. A claim with no descriptor names no owner: readers and
 * publishers settle it after unblock_ms, as ever. Returns how many.
 */
static uint64_t settle_dead(struct sesh *d, uint64_t r, uint8_t *cache)
{
	struct ring_hdr *h = ring_hdr_of(&d->seg, r);
	struct ring g;
	uint64_t fs, ts, seq, padded = 0;

	if (h == NULL ||
	    ring_view(&d->seg, RING_STREAM(r, atomic_load(&h->gen)), &g) < 0)
		return 0;
	fs = atomic_load_explicit(&h->front_seq, memory_order_acquire);
	ts = atomic_load_explicit(&h->tail_seq, memory_order_acquire);
	if (ts < fs || ts - fs > g.nslots)
		return 0; /* moving, or scribbled: nothing to trust */
	for (seq = fs; seq < ts; seq++) {
		struct ring_desc *dp = desc_of(&g, seq);
		uint64_t w, i;

		desc_load(dp, &w, &i);
		if (TAG(w) != seq ||
		    (STATE(w) != RS_CLAIMED && STATE(w) != RS_ABANDONED))
			continue;
		if (!shm_slot_dead(d, INFO_SLOT(i), INFO_INC(i), 0xffff, cache))
			continue;
		if (dcas(dp, w, i, WORD(seq, RS_PAD), 0)) {
			padded++;
			shm_stat_add(d, SHM_ST_HOLES, 1);
		}
	}
	if (padded > 0)
		wake(d, h);
	return padded;
}

bool ring_recover_bucket(struct sesh *d, uint64_t r, uint8_t *cache,
			 uint64_t *bucket, uint64_t *stream)
{
	_Atomic uint64_t *sw = ring_state(&d->seg, r);
	struct ring_hdr *h = ring_hdr_of(&d->seg, r);
	uint64_t v;

	if (sw == NULL || h == NULL)
		return false;
	v = atomic_load(sw);
	switch (SHM_BLK_STATE(v)) {
	case SHM_BLK_OWNED:
		if (!shm_owner_dead(d, v, cache))
			return false; /* a live creator's */
		break;
	case SHM_BLK_LIVE:
		break;
	case RING_RECLAIMING:
		break;
	default:
		return false;
	}
	/* Untrusted: out of range means no chain can name the ring. */
	*bucket = atomic_load_explicit(&h->bucket, memory_order_relaxed);
	if (*bucket >= d->seg.geom.nbuckets)
		*bucket = 0;
	*stream = RING_STREAM(r, atomic_load(&h->gen));
	return true;
}

uint64_t ring_recover_one(struct sesh *d, uint64_t r, bool linked,
			  uint8_t *cache)
{
	const struct shm_seg *s = &d->seg;
	_Atomic uint64_t *sw = ring_state(s, r);
	struct ring_hdr *h = ring_hdr_of(s, r);
	uint64_t v, st;

	if (sw == NULL || h == NULL)
		return 0;
	v = atomic_load(sw);
	switch (SHM_BLK_STATE(v)) {
	case SHM_BLK_OWNED:
		/* A creator's, or a dead creator's: linked means the session
		 * exists, unlinked means it never will. */
		if (!shm_owner_dead(d, v, cache))
			return 0;
		if (linked)
			return atomic_compare_exchange_strong(sw, &v,
							      SHM_BLK_LIVE)
				       ? settle_dead(d, r, cache)
				       : 0;
		/* fall through */
	case SHM_BLK_LIVE:
		if (linked)
			return settle_dead(d, r, cache);
		/* Unlinked: its creator died before linking, or its deleter
		 * between unlink and retire. */
		st = RING_STREAM(r, atomic_load(&h->gen));
		ring_retire(d, st);
		ring_retired_note(d, st);
		return 0;
	case RING_RECLAIMING:
		if (shm_owner_dead(d, (v & ~(uint64_t)0xf) | SHM_BLK_OWNED,
				   cache))
			(void)atomic_compare_exchange_strong(
				sw, &v, shm_blk_retired(0));
		return 0;
	default:
		return 0;
	}
}

uint64_t ring_last_id(const struct shm_seg *s, uint64_t stream)
{
	struct ring g;
	uint64_t ts;

	if (stream == 0 || ring_view(s, stream, &g) < 0)
		return 0;
	ts = atomic_load_explicit(&g.h->tail_seq, memory_order_relaxed);
	return ts ? g.base + ts - 1 : 0;
}

/* --- subscribing -----------------------------------------------------------
 */

int sesh_subscribe(sesh_t *d, const char *id, uint64_t after,
		   sesh_stream_t **out)
{
	struct gc_thread_reader *tr;
	struct sesh_stream *s;
	uint64_t ts, fs;
	int64_t expires;
	int rc, k;

	if (d == NULL || id == NULL || out == NULL)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	rc = shm_ensure_registered(d);
	if (rc < 0)
		goto fail;
	rc = gc_read_lock(d, &tr);
	if (rc < 0)
		goto fail;
	rc = stream_find(d, id, &s->g, &expires, NULL);
	if (rc < 0)
		goto unlock;
	k = pin_take(d, &s->g, &s->pin_gen);
	if (k < 0) {
		rc = k;
		goto unlock;
	}
	s->pin = (uint32_t)k;
	/* Acquire: the tail before the front, so front <= tail. */
	ts = atomic_load_explicit(&s->g.h->tail_seq, memory_order_acquire);
	fs = atomic_load_explicit(&s->g.h->front_seq, memory_order_acquire);
	if (after == SESH_FROM_LATEST) {
		s->seq = ts;
	} else if (after == SESH_FROM_OLDEST) {
		s->seq = fs;
	} else if (after < s->g.base || after - s->g.base < fs) {
		/* Older than what is retained, or of an earlier life of
		 * the session. */
		s->seq = fs;
		s->overflow = true;
	} else if (after - s->g.base >= ts) {
		rc = -EINVAL; /* never issued */
	} else {
		s->seq = after - s->g.base + 1;
	}
	gc_read_unlock(tr);
	if (rc < 0) {
		pin_drop(d, s->pin, s->pin_gen);
		free(s);
		return rc;
	}
	s->d = d;
	s->tail = ts;
	s->expires_ns = expires;
	s->id_len = strlen(id);
	memcpy(s->id, id, s->id_len + 1);
	shm_stat_add(d, SHM_ST_SUBSCRIPTIONS, 1);
	*out = s;
	return 0;
unlock:
	gc_read_unlock(tr);
fail:
	free(s);
	return rc;
}

void sesh_stream_close(sesh_stream_t *s)
{
	struct sesh *d;
	_Atomic uint64_t *sw;

	if (s == NULL)
		return;
	d = s->d;
	pin_drop(d, s->pin, s->pin_gen);
	/* The last reader of a retired ring gives it back. */
	sw = ring_state(&d->seg, s->g.r);
	if (sw != NULL && SHM_BLK_STATE(atomic_load_explicit(
				  sw, memory_order_relaxed)) == SHM_BLK_RETIRED)
		(void)reclaim(d, &s->g.r, 1);
	free(s->buf);
	free(s);
}

/* After fork, a stream of the parent's reads under a pin of the child. */
static int stream_repin(struct sesh_stream *s)
{
	uint32_t gen;
	int k;

	if (s->pin_gen ==
	    atomic_load_explicit(&s->d->reg_gen, memory_order_relaxed))
		return 0;
	k = pin_take(s->d, &s->g, &gen);
	if (k < 0)
		return k == -ENOENT ? -ENOENT : k;
	s->pin = (uint32_t)k;
	s->pin_gen = gen;
	return 0;
}

/* Look at the session again: if it is gone or expired, close its stream
 * so that we (and the other subscribers) drain and end. */
static void stream_recheck(struct sesh_stream *s)
{
	struct gc_thread_reader *tr;
	uint64_t stream;
	int64_t expires;
	int rc;

	if (gc_read_lock(s->d, &tr) < 0) {
		s->expires_ns = shm_now_ns() + 1000000000;
		return;
	}
	rc = idx_stream_lookup(s->d, s->id, &stream, &expires);
	if (rc == 0 && stream == RING_STREAM(s->g.r, s->g.gen)) {
		s->expires_ns = expires;
	} else {
		ring_close(s->d, &s->g);
		s->expires_ns = INT64_MAX;
	}
	gc_read_unlock(tr);
}

static int grow(struct sesh_stream *s, size_t len)
{
	void *b;
	size_t cap = s->buf_cap ? s->buf_cap : 256;

	if (len <= s->buf_cap)
		return 0;
	while (cap < len)
		cap *= 2;
	b = realloc(s->buf, cap);
	if (b == NULL)
		return -ENOMEM;
	s->buf = b;
	s->buf_cap = cap;
	return 0;
}

enum step {
	STEP_MSG,   /* *msg filled */
	STEP_AGAIN, /* the position moved: look again */
	STEP_WAIT,  /* nothing to read at the position yet */
};

static void lapped(struct sesh_stream *s, sesh_msg_t *msg)
{
	s->seq = atomic_load_explicit(&s->g.h->front_seq, memory_order_acquire);
	s->overflow = false;
	s->st.on = false;
	msg->event_id = s->g.base + s->seq;
	msg->published_ns = 0;
	msg->data = NULL;
	msg->len = 0;
	shm_stat_add(s->d, SHM_ST_LAPPED, 1);
}

/*
 * One look at the stream's position. Returns a step or a negative errno
 * (-EOVERFLOW with msg set, -ENOENT, -ENOMEM, -EUCLEAN).
 */
static int step(struct sesh_stream *s, sesh_msg_t *msg, bool zc,
		struct stall *st)
{
	const struct ring *g = &s->g;
	const struct shm_geom *gm = &s->d->seg.geom;
	struct ring_desc *dp;
	uint64_t w, i, pos, tp;
	uint32_t len;

	if (s->overflow) {
		lapped(s, msg);
		return -EOVERFLOW;
	}
	/* The descriptor first: a committed message is taken without a
	 * look at the tail, whose line the publishers are writing (one
	 * transfer between cores less on the way of every message). Tags
	 * only grow, so DATA with our seq is our message, committed. */
	dp = desc_of(g, s->seq);
	desc_load(dp, &w, &i);
	if (w != WORD(s->seq, RS_DATA) && s->seq >= s->tail) {
		/* Acquire: pos (for the closed bit) first; a close
		 * changes nothing else, so seq is then final. */
		tp = atomic_load_explicit(&g->h->tail_pos,
					  memory_order_acquire);
		s->tail = atomic_load_explicit(&g->h->tail_seq,
					       memory_order_acquire);
		if (s->seq >= s->tail) {
			st->on =
				false; /* waiting for a publisher, not on one */
			return (tp & RING_CLOSED) ? -ENOENT : STEP_WAIT;
		}
		/* Claimed: what the slot holds now is at least as new as
		 * the claim. */
		desc_load(dp, &w, &i);
	}
	if (TAG(w) > s->seq) {
		lapped(s, msg);
		return -EOVERFLOW;
	}
	if (TAG(w) < s->seq || STATE(w) == RS_NONE || STATE(w) == RS_CLAIMED ||
	    STATE(w) == RS_ABANDONED) {
		switch (settle(s->d, g, s->seq, w, i, st)) {
		case SETTLE_SKIP:
			s->seq++;
			st->on = false;
			return STEP_AGAIN;
		case SETTLE_MOVED:
			return STEP_AGAIN;
		default:
			return STEP_WAIT;
		}
	}
	st->on = false;
	if (STATE(w) == RS_PAD) {
		s->seq++;
		return STEP_AGAIN;
	}
	if (STATE(w) != RS_DATA)
		return -EUCLEAN;
	len = INFO_LEN(i);
	pos = atomic_load_explicit(&dp->pos, memory_order_relaxed);
	if (len > gm->max_message || (pos & 7) != 0 ||
	    (pos & (g->cap - 1)) + len > g->cap) {
		/* Either torn by a lap (checked below) or corrupt. */
		if (atomic_load_explicit(&g->h->front_seq,
					 memory_order_acquire) > s->seq) {
			lapped(s, msg);
			return -EOVERFLOW;
		}
		return -EUCLEAN;
	}
	msg->event_id = g->base + s->seq;
	msg->published_ns = atomic_load_explicit(&dp->ns, memory_order_relaxed);
	msg->len = len;
	if (zc) {
		msg->data = len ? g->bytes + (pos & (g->cap - 1)) : NULL;
	} else if (len > 0) {
		if (grow(s, len) < 0)
			return -ENOMEM;
		memcpy(s->buf, g->bytes + (pos & (g->cap - 1)), len);
		msg->data = s->buf;
	} else {
		msg->data = NULL;
	}
	/* Acquire: our reads of the bytes come before this load. The bytes
	 * are reused only after the front passes seq, so if it has not,
	 * what we read was whole. */
	atomic_thread_fence(memory_order_acquire);
	if (!zc && atomic_load_explicit(&g->h->front_seq,
					memory_order_relaxed) > s->seq) {
		lapped(s, msg);
		return -EOVERFLOW;
	}
	s->zc = zc;
	s->zc_seq = s->seq;
	s->seq++;
	shm_stat_add(s->d, SHM_ST_DELIVERED, 1);
	shm_stat_add(s->d, SHM_ST_DELIVERED_BYTES, len);
	return STEP_MSG;
}

/* Sleep until the futex word moves, for at most ns. */
static void sleep_on(struct sesh_stream *s, uint32_t v, int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / 1000000000,
			      .tv_nsec = ns % 1000000000};

	shm_stat_add(s->d, SHM_ST_FUTEX_WAITS, 1);
	syscall(SYS_futex, &s->g.h->futex, FUTEX_WAIT, v, &ts, NULL, 0);
}

/* step(), with 0 for a message and the end of the stream remembered. */
static int look(struct sesh_stream *s, sesh_msg_t *msg, bool zc)
{
	int rc = step(s, msg, zc, &s->st);

	if (rc == -ENOENT)
		s->ended = true;
	return rc == STEP_MSG ? 0 : rc;
}

static int next(sesh_stream_t *s, sesh_msg_t *msg, int timeout_ms, bool zc)
{
	struct stall *st;
	int64_t deadline = 0, now;
	int polls = 0, rc;

	if (s == NULL || msg == NULL || timeout_ms < -1)
		return -EINVAL;
	st = &s->st;
	s->zc = false;
	if (s->ended)
		return -ENOENT;
	rc = stream_repin(s);
	if (rc < 0)
		return rc;
	if (timeout_ms > 0)
		deadline = mono_ns() + (int64_t)timeout_ms * 1000000;
	for (;;) {
		uint32_t v;
		int64_t left;

		rc = look(s, msg, zc);
		if (rc <= 0)
			return rc;
		if (rc == STEP_AGAIN) {
			polls = 0;
			continue;
		}
		/* Nothing yet. Has the session gone away meanwhile? (Not
		 * asked at every poll of the spin: it reads the clock.) */
		if (!st->on && (polls == 0 || polls >= SPIN_POLLS) &&
		    shm_now_ns() >= s->expires_ns) {
			stream_recheck(s);
			continue;
		}
		if (timeout_ms == 0 && !st->on)
			return -EAGAIN;
		if (polls++ < SPIN_POLLS) {
			cpu_relax();
			continue;
		}
		now = mono_ns();
		if (timeout_ms == 0)
			return -EAGAIN;
		if (timeout_ms > 0 && now >= deadline)
			return -ETIMEDOUT;
		/* Announce we may sleep, then look once more. Seq-cst:
		 * pairs with the publisher's commit and read of the word. */
		v = atomic_fetch_or(&s->g.h->futex, 1) | 1;
		rc = look(s, msg, zc);
		if (rc <= 0)
			return rc;
		if (rc == STEP_AGAIN)
			continue;
		left = timeout_ms >= 0 ? deadline - now : INT64_MAX;
		if (st->on && left > LIVENESS_EVERY_NS)
			left = LIVENESS_EVERY_NS; /* a publisher mid-message */
		if (s->expires_ns != INT64_MAX) {
			int64_t e = s->expires_ns - shm_now_ns() + 1000000;

			if (e < left)
				left = e > 0 ? e : 1000000;
		}
		if (left > 3600 * (int64_t)1000000000)
			left = 3600 * (int64_t)1000000000;
		sleep_on(s, v, left);
	}
}

int sesh_stream_next(sesh_stream_t *s, sesh_msg_t *msg, int timeout_ms)
{
	return next(s, msg, timeout_ms, false);
}

int sesh_stream_next_zc(sesh_stream_t *s, sesh_msg_t *msg, int timeout_ms)
{
	return next(s, msg, timeout_ms, true);
}

int sesh_stream_zc_valid(sesh_stream_t *s)
{
	if (s == NULL || !s->zc)
		return -EINVAL;
	/* Acquire: the caller's reads of the bytes before this load. */
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&s->g.h->front_seq, memory_order_relaxed) >
	    s->zc_seq)
		return -EOVERFLOW;
	return 0;
}

/* --- counters --------------------------------------------------------------
 */

int sesh_stats(sesh_t *d, sesh_stats_t *out)
{
	uint64_t sum[SHM_ST_COUNT] = {0};
	uint32_t p;
	unsigned k;

	if (d == NULL || out == NULL)
		return -EINVAL;
	for (p = 0; p <= d->seg.geom.max_procs; p++) {
		_Atomic uint64_t *line = shm_stats_line(&d->seg, p);

		if (line == NULL)
			break;
		for (k = 0; k < SHM_ST_COUNT; k++)
			sum[k] += atomic_load_explicit(&line[k],
						       memory_order_relaxed);
	}
	memset(out, 0, sizeof(*out));
	out->published = sum[SHM_ST_PUBLISHED];
	out->published_bytes = sum[SHM_ST_PUBLISHED_BYTES];
	out->publish_failed = sum[SHM_ST_PUBLISH_FAILED];
	out->delivered = sum[SHM_ST_DELIVERED];
	out->delivered_bytes = sum[SHM_ST_DELIVERED_BYTES];
	out->lapped = sum[SHM_ST_LAPPED];
	out->holes_unblocked = sum[SHM_ST_HOLES];
	out->futex_waits = sum[SHM_ST_FUTEX_WAITS];
	out->futex_wakes = sum[SHM_ST_FUTEX_WAKES];
	out->subscriptions = sum[SHM_ST_SUBSCRIPTIONS];
	out->sessions_created = sum[SHM_ST_CREATED];
	out->sessions_deleted = sum[SHM_ST_DELETED];
	out->sessions_expired = sum[SHM_ST_EXPIRED];
	out->reaper_passes = sum[SHM_ST_REAPS];
	out->persist_rows = sum[SHM_ST_PERSIST_ROWS];
	out->persist_commits = sum[SHM_ST_PERSIST_COMMITS];
	out->persist_errors = sum[SHM_ST_PERSIST_ERRORS];
	return 0;
}
