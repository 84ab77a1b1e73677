/*
 * ring.h - per-session streams: rings of variable-length messages in
 * shared memory, with sequence-tagged descriptors. Internal to the library.
 *
 * Layout of ring r inside SHM_R_STREAMS (see shm_layout()):
 *
 *	ring_states + 8 r	its state word: FREE, OWNED(slot, inc) while
 *				a creator sets it up, LIVE, RETIRED(tag)
 *				once its session is gone, RECLAIMING(slot,
 *				inc) while a reclaimer checks it is unused
 *	ring_hdrs + 192 r	struct ring_hdr: identity, the tail and front
 *				pairs, the futex word
 *	ring_data + stride r	cap payload bytes, then nslots descriptors
 *				(struct ring_desc), committed on the first
 *				publish and given back when the ring is
 *				reclaimed
 *
 * A session's record names its ring and the ring's generation (bumped at
 * every reuse) in one word, RING_STREAM(r, gen); everything that follows
 * the record to the ring checks the generation first.
 */
#ifndef SESH_RING_H
#define SESH_RING_H

#include "shm/shm.h"

#define RING_DESC SHM_RING_DESC

#define RING_CLOSED ((uint64_t)1 << 63) /* in tail_pos */

/* Ring state words: the allocator's FREE, OWNED, LIVE, RETIRED, and: */
#define RING_RECLAIMING 4u

/* Descriptor states (low 3 bits of `word`; the rest is the sequence). */
enum ring_rs {
	RS_NONE = 0,	  /* not written for this sequence yet */
	RS_CLAIMED = 1,	  /* its publisher is writing the payload */
	RS_DATA = 2,	  /* committed */
	RS_PAD = 3,	  /* no message: its publisher died or gave up */
	RS_ABANDONED = 4, /* its publisher stalled past unblock_ms and is
			   * alive: readers skip it, its bytes stay its
			   * own until it notices (then PAD) or dies */
};

struct ring_hdr {
	/* Identity of this incarnation: set by its creator before the
	 * session's record is linked, fixed until the ring is reused. */
	_Atomic uint64_t gen;
	_Atomic uint64_t base;	   /* event id of sequence 0 */
	_Atomic uint64_t reserved; /* 1 + gen whose memory is reserved */
	_Atomic uint64_t bucket;   /* index bucket of its session's record
				    * (recovery looks there for it) */
	uint8_t pad0[SHM_CACHELINE - 32];
	/* Producers. The tail {pos, seq}: the next byte position and
	 * sequence to claim, moved together by one 128-bit CAS (RING_CLOSED
	 * in pos once the session is gone). Written at every claim. */
	_Alignas(SHM_CACHELINE) _Atomic uint64_t tail_pos;
	_Atomic uint64_t tail_seq;
	uint8_t pad1[SHM_CACHELINE - 16];
	/* Subscribers sleep on this: bit 0 set while some may sleep, the
	 * rest a count bumped at each wake. */
	_Alignas(SHM_CACHELINE) _Atomic uint32_t futex;
	uint32_t pad2;
	/* The front {seq, pos}: every sequence below `seq` is finished, and
	 * bytes below `pos` may be written over. Apart from the tail, and
	 * moved in steps of many messages, so that the line every
	 * subscriber reads after each copy stays in its cache. */
	_Alignas(16) _Atomic uint64_t front_seq;
	_Atomic uint64_t front_pos;
	uint8_t pad3[SHM_CACHELINE - 32];
};

_Static_assert(sizeof(struct ring_hdr) == SHM_RING_HDR,
	       "shm_layout() budgets SHM_RING_HDR bytes a ring header");

/* One message slot. `word` and `info` change together, by 128-bit CAS. */
struct ring_desc {
	_Atomic uint64_t word; /* seq << 3 | state */
	_Atomic uint64_t info; /* len | owner slot << 32 | inc << 48 */
	_Atomic uint64_t pos;  /* byte position of the payload */
	_Atomic int64_t ns;    /* published, CLOCK_REALTIME */
};

_Static_assert(sizeof(struct ring_desc) == RING_DESC, "descriptors");

#define RING_STREAM(r, gen) (((uint64_t)(uint32_t)(gen) << 32) | ((r) + 1))

/* --- what index/ calls, for the life of a session's stream -------------- */

/* Claim a free ring for a session being created, owned by `owner` (an
 * OWNED word): *stream names it. Reclaims rings of gone sessions when
 * none is free. Returns 0, -ENOSPC or -EUCLEAN. */
int ring_assign(struct sesh *d, uint64_t owner, uint64_t *stream);

/* Under the stripe lock, before the record is linked: pick the ring's
 * first event id, above every id a closed stream issued, and note the
 * bucket the record goes to. */
void ring_start(struct sesh *d, uint64_t stream, uint64_t bucket);

/* After the record is linked: the ring is in use. */
void ring_live(struct sesh *d, uint64_t stream, uint64_t owner);

/* Give back a ring whose record was never linked. */
void ring_unassign(struct sesh *d, uint64_t stream, uint64_t owner);

/* Under the stripe lock, once the record is unlinked (or expired and
 * replaced): close the stream, wake its subscribers, retire the ring. */
void ring_retire(struct sesh *d, uint64_t stream);

/* After the stripe lock is dropped: remember the retired ring, and now
 * and then reclaim those that nobody reads any more. */
void ring_retired_note(struct sesh *d, uint64_t stream);

/* Close a stream whose session expired (publishers then get -ENOENT,
 * subscribers drain and get -ENOENT). */
void ring_close_stream(struct sesh *d, uint64_t stream);

/* Newest event id the stream issued, 0 if none (or not a valid ring). */
uint64_t ring_last_id(const struct shm_seg *s, uint64_t stream);

/* Reclaim every retired ring past its grace period that no subscription
 * reads. Returns how many. */
uint64_t ring_sweep(struct sesh *d);

/* The same for at most n rings from ring `from`; *next is where the next
 * call goes on (0 after the last ring). */
uint64_t ring_sweep_range(struct sesh *d, uint64_t from, uint64_t n,
			  uint64_t *next);

/* Recovery, ring by ring. ring_recover_bucket(): whether ring r may need
 * settling (OWNED by the dead, LIVE, RECLAIMING by the dead), and if so
 * the bucket whose chain says if a record names it, and the stream word
 * such a record holds. Then, with that bucket's stripe locked:
 * ring_recover_one() settles the ring: a dead creator's ring becomes LIVE
 * if linked, else is retired, as is a LIVE ring no record names; a dead
 * reclaimer's goes back to RETIRED; messages that dead publishers
 * claimed in a LIVE ring become padding (returns how many). `cache` is
 * as for shm_owner_dead(). */
bool ring_recover_bucket(struct sesh *d, uint64_t r, uint8_t *cache,
			 uint64_t *bucket, uint64_t *stream);
uint64_t ring_recover_one(struct sesh *d, uint64_t r, bool linked,
			  uint8_t *cache);

/* Test hook: called at these points of a publish when set, so tests can
 * kill or stop a publisher there. NULL in normal use. */
enum ring_point {
	RING_P_CLAIMED,	  /* tail claimed, descriptor not written */
	RING_P_DESCRIBED, /* descriptor CLAIMED, payload not copied */
	RING_P_COPIED,	  /* payload copied, not committed */
	RING_P_COUNT
};
extern void (*ring_test_hook)(enum ring_point p);

#endif /* SESH_RING_H */
