/*
 * shm.h - the bottom layer: segment layout, validation, offset addressing
 * and the process registry. Internal to the library.
 *
 * A domain is one file in a tmpfs directory (/dev/shm by default), mapped
 * MAP_SHARED by every attached process at an address of its own. The file
 * is laid out as:
 *
 *	page 0		struct shm_header: identity, capacities, region table
 *	regions		page-aligned, listed in the header's region table:
 *			  SHM_R_REGISTRY  one struct shm_proc per process slot
 *			  SHM_R_READERS   SHM_READERS_PER_PROC epoch reader
 *			                  slots per process slot (gc/epoch.h)
 *			  SHM_R_INDEX     the session index (index/): its
 *			                  header, namespace table, bucket
 *			                  stripes and buckets
 *			  SHM_R_BLOCKS    the block allocator (alloc.c): per
 *			                  size class, a state word per block
 *			                  and the blocks
 *			  SHM_R_STREAMS   the rings of the streams (ring/):
 *			                  a state word per ring, the ring
 *			                  headers, and the rings' bytes
 *			  SHM_R_PINS      per process slot, the rings its
 *			                  subscriptions hold (ring/)
 *			  SHM_R_STATS     per process slot, its counters,
 *			                  and the counters of those gone
 *			  SHM_R_JOURNAL   the changes not yet written to the
 *			                  SQLite database (index/persist.c)
 *			All but the first pages are committed only when touched.
 *
 * Everything stored in the segment is an offset from its base (0 = none).
 * The segment is untrusted: the header is validated once at attach and a
 * private copy of its geometry (struct shm_geom) is kept; every later
 * access to the segment goes through shm_ptr(), which checks region,
 * bounds and alignment against that private copy.
 *
 * Byte-range locks (OFD locks, owned by an open file description, released
 * by the kernel when the last descriptor of it closes, i.e. when the
 * process dies) are taken on the segment's own file:
 *
 *	byte SHM_LOCK_INIT		held by the creator while it builds the
 *					segment under its private name
 *	byte SHM_LOCK_REAPER		the reaper lease: held for the length
 *					of a sesh_reap() pass
 *	byte SHM_LOCK_PERSIST		held while a process writes to the
 *					SQLite database (index/persist.c)
 *	bytes SHM_LOCK_PROC + slot	held by the process owning that slot
 */
#ifndef SESH_SHM_H
#define SESH_SHM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sesh.h"

struct shm_seg;

#define SHM_MAGIC	   0x314d4f4448534553ull /* "SESHDOM1", little-endian */
#define SHM_LAYOUT_VERSION 6u
#define SHM_ENDIAN_TAG	   0x01020304u
#define SHM_PAGE	   4096u
#define SHM_CACHELINE	   64u

/* Largest segment we agree to create: far past any sane capacity, far
 * below where offset arithmetic could wrap. */
#define SHM_MAX_SEGMENT ((uint64_t)1 << 46)

/* The index: namespaces per domain, most bucket stripes (each a
 * process-shared robust mutex), and the largest record, a fixed header
 * plus id, user and metadata (index/index.h keeps its header in it). */
#define SHM_NS_MAX	     256u
#define SHM_STRIPES_MAX	     1024u
#define SHM_RECORD_HDR	     64u
#define SHM_RECORD_MAX(meta) (SHM_RECORD_HDR + 128u + 128u + (meta))

/* Size classes of the block allocator: powers of two from SHM_CLASS_MIN
 * up to the first that holds the largest record. */
#define SHM_CLASS_MIN	128u
#define SHM_CLASSES_MAX 16u

/* Bounds of the configuration (sesh.h documents them). */
#define SHM_STREAM_MIN	 ((size_t)4096)
#define SHM_STREAM_MAX	 ((size_t)1 << 30)
#define SHM_METADATA_MAX ((size_t)1 << 20)
#define SHM_UNBLOCK_MAX	 60000u
#define SHM_SQLITE_PATH	 (SESH_SQLITE_PATH_MAX + 1)
#define SHM_LAG_MAX	 3600000u
#define SHM_WAIT_MAX	 600000u

/* Epoch reader slots each process slot owns: how many of its threads can
 * be inside a read-side section at once. */
#define SHM_READERS_PER_PROC 256u

/* Lock bytes on the segment's file. */
#define SHM_LOCK_INIT 0
#define SHM_LOCK_REAPER 1
#define SHM_LOCK_PERSIST 2
#define SHM_LOCK_PROC 4096

/* Regions of the segment; the table in the header has SHM_R_MAX entries,
 * of which SHM_R_COUNT are used by this layout version. */
enum shm_region_id {
	SHM_R_REGISTRY = 0,
	SHM_R_READERS = 1,
	SHM_R_INDEX = 2,
	SHM_R_BLOCKS = 3,
	SHM_R_STREAMS = 4,
	SHM_R_PINS = 5,
	SHM_R_STATS = 6,
	SHM_R_JOURNAL = 7,
	SHM_R_COUNT = 8,
	SHM_R_MAX = 8,
};

struct shm_region {
	uint64_t off; /* from the segment base, page-aligned */
	uint64_t len; /* bytes, a multiple of the page size */
};

/*
 * The header, at offset 0. Everything up to and including `checksum` is
 * written once by the creator before the segment is published and never
 * changes; the checksum covers it, so any change of it is corruption.
 * Fields that change at run time go after it, on cache lines of their own,
 * and are added by later layout versions.
 */
struct shm_header {
	uint64_t magic;
	uint32_t layout_version;
	uint32_t endian_tag;
	uint32_t header_bytes;	    /* sizeof(struct shm_header) */
	uint32_t proc_bytes;	    /* sizeof(struct shm_proc) */
	uint32_t pointer_bytes;	    /* sizeof(void *) of the creator */
	uint32_t page_bytes;	    /* SHM_PAGE */
	uint64_t features_compat;   /* may be ignored by an older reader */
	uint64_t features_incompat; /* must all be understood */
	uint64_t domain_id;	    /* random, names this incarnation */
	uint64_t hash_key[2];	    /* random key of the index's hash */
	int64_t created_ns;	    /* CLOCK_REALTIME */
	uint64_t total_bytes;	    /* size of the file */
	/* capacities, as validated at creation */
	uint64_t max_sessions;
	uint64_t stream_bytes;
	uint64_t max_message;
	uint64_t max_metadata;
	uint32_t idle_ttl_s;
	uint32_t mode;
	uint32_t max_procs;
	uint32_t nregions; /* SHM_R_COUNT */
	uint32_t unblock_ms;
	uint32_t max_subs; /* subscriptions per process */
	uint32_t sqlite_mode;
	uint32_t sqlite_lag_ms;
	uint32_t sqlite_wait_ms;
	uint32_t pad0;
	char sqlite_path[SHM_SQLITE_PATH]; /* "" = no write-through */
	struct shm_region region[SHM_R_MAX];
	uint64_t checksum; /* shm_header_checksum() of the above */

	/* Mutable from here on, each on a cache line of its own. */

	/* Global epoch of the reclamation scheme (gc/epoch.h); starts at 1
	 * so that 0 can mean "not reading" in a reader slot. */
	_Alignas(SHM_CACHELINE) _Atomic uint64_t epoch;
	uint8_t epoch_pad[SHM_CACHELINE - 8];
	/* Highest event id a closed stream issued (ring/): a new stream
	 * starts above it, so no session id ever sees an id twice. */
	_Alignas(SHM_CACHELINE) _Atomic uint64_t event_floor;
	/* One past the highest registry slot ever claimed: scans of every
	 * process's readers and pins stop there, not at max_procs. Only
	 * raised, before the slot is filled (shm_procs_scan()). */
	_Atomic uint32_t procs_hw;
	uint8_t floor_pad[SHM_CACHELINE - 12];
	/* Recovery requests: bumped before a dead process's registry slot
	 * is emptied (its blocks and rings can then no longer be told from
	 * the registry alone); a reaper that walked the domain after
	 * reading `recover_req` stores that value in `recover_done`. */
	_Alignas(SHM_CACHELINE) _Atomic uint64_t recover_req;
	_Atomic uint64_t recover_done;
	uint8_t recover_pad[SHM_CACHELINE - 16];
	/* The reaper (gc/reap.c): written only by the holder of the lease
	 * byte, read by anyone. */
	_Alignas(SHM_CACHELINE) struct shm_reaper {
		_Atomic uint64_t passes;   /* completed */
		_Atomic int64_t last_ns;   /* end of the last pass */
		_Atomic uint64_t owner;	   /* shm_blk_owned(slot, inc) */
		_Atomic int32_t pid;	   /* of the last pass's process */
		uint32_t pad;
		_Atomic uint64_t bucket;   /* next bucket of the expiry sweep */
		_Atomic uint64_t block;	   /* next block of the free sweep */
		_Atomic uint64_t ring;	   /* next ring of the free sweep */
		/* Two marks of the epoch a second or more apart: a reader
		 * still announcing an epoch at or below `stuck_epoch` has
		 * been in its section since before `stuck_ns`. */
		_Atomic uint64_t mark_epoch;
		_Atomic int64_t mark_ns;
		_Atomic uint64_t stuck_epoch;
		_Atomic int64_t stuck_ns;
		/* Starts of the expiry sweep's current and previous rounds:
		 * the sweep writes through the sessions seen since the
		 * previous round began. */
		_Atomic int64_t round_ns;
		_Atomic int64_t prev_round_ns;
		/* The recovery walk under way: the recover_req it covers
		 * (0 = none), and where it is (index/index.h). */
		_Atomic uint64_t rec_target;
		_Atomic uint64_t rec_block;
		_Atomic uint64_t rec_ring;
		_Atomic uint32_t rec_phase;
		uint8_t pad2[3 * SHM_CACHELINE - 132];
	} reaper;
};

/* Feature bits understood by this build. */
#define SHM_FEATURES_INCOMPAT_KNOWN 0ull

/* Slot states. A slot in state LIVE whose lock byte nobody holds belongs
 * to a process that died without closing: it awaits recovery. */
enum shm_proc_state {
	SHM_PROC_FREE = 0,
	SHM_PROC_LIVE = 1,
};

/*
 * One process's registry slot, a cache line of its own. Written only by
 * the process that holds the slot's lock byte (its owner, or a recoverer
 * after the owner died). `seq` is a sequence lock over the descriptive
 * fields: odd while they are written, so a reader copies them whole.
 */
struct shm_proc {
	_Atomic uint32_t state;
	_Atomic int32_t pid;
	_Atomic uint64_t seq;
	_Atomic uint64_t incarnation;
	_Atomic int64_t attached_ns;
	_Atomic uint64_t comm[2]; /* process name, 16 bytes */
	/* How many of this slot's reader slots were ever handed out (a
	 * bound for scans, clamped to SHM_READERS_PER_PROC when read). */
	_Atomic uint32_t readers_used;
	uint8_t pad[SHM_CACHELINE - 52];
};

/* An epoch reader slot: the epoch its thread entered its read-side
 * section at, or 0 outside one. Written only by that thread, and by
 * whoever recovers the slot after the owning process died. */
struct shm_reader {
	_Atomic uint64_t epoch;
	uint8_t pad[SHM_CACHELINE - 8];
};

_Static_assert(sizeof(struct shm_reader) == SHM_CACHELINE,
	       "reader slots are one cache line");

_Static_assert(sizeof(struct shm_proc) == SHM_CACHELINE,
	       "registry slots are one cache line");
_Static_assert(sizeof(struct shm_header) <= SHM_PAGE,
	       "the header fits in its page");

/* One size class of the block allocator: `cap` blocks of `size` bytes at
 * `blocks`, and their state words at `states` (segment offsets). */
struct shm_class {
	uint64_t size; /* a power of two; blocks are aligned to it */
	uint64_t cap;
	uint64_t states;
	uint64_t blocks;
	uint64_t end; /* blocks + cap * size */
};

/* The validated, private copy of a segment's geometry. Never re-read from
 * the segment after attach. */
struct shm_geom {
	uint64_t total_bytes;
	uint64_t max_sessions;
	uint64_t stream_bytes;
	uint64_t max_message;
	uint64_t max_metadata;
	uint32_t idle_ttl_s;
	uint32_t mode;
	uint32_t max_procs;
	struct shm_region region[SHM_R_COUNT];
	/* inside SHM_R_INDEX */
	uint64_t idx_ns;      /* SHM_NS_MAX namespace entries */
	uint64_t idx_stripes; /* nstripes stripe locks */
	uint64_t idx_buckets; /* nbuckets chain heads */
	uint64_t nbuckets;    /* a power of two >= max_sessions */
	uint32_t nstripes;    /* a power of two <= SHM_STRIPES_MAX */
	uint32_t nclasses;
	uint64_t hash_key[2];
	/* inside SHM_R_BLOCKS */
	struct shm_class cls[SHM_CLASSES_MAX];
	/* inside SHM_R_STREAMS */
	uint64_t nrings;
	uint64_t ring_states; /* nrings state words */
	uint64_t ring_hdrs;   /* nrings headers of SHM_RING_HDR bytes */
	uint64_t ring_data;   /* nrings rings, ring_stride bytes apart:
			       * stream_bytes of payload, then
			       * ring_nslots descriptors */
	uint64_t ring_stride;
	uint64_t ring_nslots;
	/* SHM_R_PINS: per process slot, SHM_PINS_HDR bytes then max_subs
	 * words, `pins_stride` bytes in all */
	uint32_t unblock_ms;
	uint32_t max_subs;
	uint64_t pins_stride;
	/* SHM_R_JOURNAL: a header page, then jr_cap entries */
	uint64_t jr_cap;
	uint32_t sqlite_mode;
	uint32_t sqlite_lag_ms;
	uint32_t sqlite_wait_ms;
	char sqlite_path[SHM_SQLITE_PATH];
};

/* Bytes of a ring header (ring/ring.h) and of the head of a pin table. A
 * ring of stream_bytes has stream_bytes / SHM_RING_SLOT_BYTES descriptors
 * of SHM_RING_DESC bytes: it retains at most that many messages, however
 * small they are. */
#define SHM_RING_HDR	    192u
#define SHM_RING_SLOT_BYTES 128u
#define SHM_RING_DESC	    32u
#define SHM_PINS_HDR	    64u

/*
 * A process slot's pin table: which rings its open subscriptions read, so
 * that no ring is reused under them. Written only by the slot's owner
 * (under its process-local lock) and cleared when the slot is emptied;
 * read by whoever reclaims rings. An entry is 0 (free) or what
 * ring_pin_word() makes of a ring and its generation; `used` bounds the
 * entries ever taken since the slot was last emptied.
 */
struct shm_pins {
	_Atomic uint32_t used;
	uint8_t pad[SHM_PINS_HDR - 4];
	_Atomic uint64_t ent[];
};

/* Slot i's pin table, or NULL if out of range. */
struct shm_pins *shm_pins_of(const struct shm_seg *s, uint32_t i);

/* Pins held in all registered slots (dead ones not yet recovered too). */
uint64_t shm_pins_count(const struct shm_seg *s);

/*
 * Counters, per process slot (SHM_R_STATS): each process adds to its own
 * line with relaxed atomics; when a slot is emptied its counts are moved
 * into the line after the last slot, so sums survive the processes.
 */
enum shm_stat {
	SHM_ST_PUBLISHED,
	SHM_ST_PUBLISHED_BYTES,
	SHM_ST_PUBLISH_FAILED,
	SHM_ST_DELIVERED,
	SHM_ST_DELIVERED_BYTES,
	SHM_ST_LAPPED,
	SHM_ST_HOLES,
	SHM_ST_FUTEX_WAITS,
	SHM_ST_FUTEX_WAKES,
	SHM_ST_SUBSCRIPTIONS,
	SHM_ST_CREATED,
	SHM_ST_DELETED,
	SHM_ST_EXPIRED,
	SHM_ST_REAPS,
	SHM_ST_PERSIST_ROWS,
	SHM_ST_PERSIST_COMMITS,
	SHM_ST_PERSIST_ERRORS,
	SHM_ST_COUNT
};
#define SHM_STATS_LINE 256u
_Static_assert(SHM_ST_COUNT * 8 <= SHM_STATS_LINE, "counters fit a line");

/* Counter line i (0..max_procs; max_procs holds those of the gone), or
 * NULL if out of range. */
_Atomic uint64_t *shm_stats_line(const struct shm_seg *s, uint32_t i);

/* Move slot i's counters into the line of the gone. */
void shm_stats_fold(const struct shm_seg *s, uint32_t i);

/* Add n to counter k of the handle's own line (nothing while it is not
 * registered, as in a child before its first call). */
struct sesh;
void shm_stat_add(struct sesh *d, enum shm_stat k, uint64_t n);

/* --- layout.c: sizing and validation (pure functions) ------------------ */

/* Check a configuration and complete its derived values (max_message 0).
 * Returns 0 or -EINVAL. */
int shm_config_check(const sesh_config_t *cfg, sesh_config_t *out);

/* Compute the geometry of a segment for a checked configuration, with
 * overflow-checked arithmetic. Returns 0 or -ENOSPC. */
int shm_layout(const sesh_config_t *cfg, struct shm_geom *g);

/* Fill a header for a geometry (the caller sets nothing else; the hash
 * key is taken from g->hash_key). */
void shm_header_fill(struct shm_header *h, const struct shm_geom *g,
		     uint64_t domain_id, int64_t created_ns);

uint64_t shm_header_checksum(const struct shm_header *h);

/* Validate a header read from a segment of file_bytes bytes, copying it
 * once into private memory first. On success fills *g (and *id, *created
 * when not NULL). Returns 0, -EPROTO (not ours, or another layout, byte
 * order or word size) or -EUCLEAN (ours but corrupt or truncated). */
int shm_header_validate(const void *hdr, uint64_t file_bytes,
			struct shm_geom *g, uint64_t *id, int64_t *created);

/* Name rules of sesh.h: 1..SESH_NAME_MAX of [A-Za-z0-9._-]. */
bool shm_name_valid(const char *name);

/* --- offset addressing --------------------------------------------------- */

/* A process's view of an attached segment. */
struct shm_seg {
	uint8_t *base;
	struct shm_geom geom;
};

/*
 * Pointer to [off, off + len) of region `r`, or NULL unless the range is
 * non-empty, inside the region, and `off` is a multiple of `align` (a power
 * of two). `off` is a segment offset, typically just loaded from shared
 * memory: this is the one place such a value becomes a pointer.
 */
static inline void *shm_ptr(const struct shm_seg *s, unsigned r, uint64_t off,
			    uint64_t len, uint64_t align)
{
	const struct shm_region *reg;

	if (r >= SHM_R_COUNT || len == 0 || (off & (align - 1)) != 0)
		return NULL;
	reg = &s->geom.region[r];
	if (off < reg->off || off - reg->off > reg->len ||
	    len > reg->len - (off - reg->off))
		return NULL;
	return s->base + off;
}

/* Offset of a pointer into the segment (the inverse of shm_ptr). */
static inline uint64_t shm_off(const struct shm_seg *s, const void *p)
{
	return (uint64_t)((const uint8_t *)p - s->base);
}

/* --- registry.c: process slots and liveness ------------------------------ */

/* Set (F_OFD_SETLK with F_WRLCK or F_UNLCK) or query (F_OFD_GETLK) an OFD
 * lock on byte `at` of fd's file. Returns 0 (set), 1/0 held/free (query),
 * -EAGAIN if another description holds it, or another negative errno. */
int shm_lock_byte(int fd, short type, off_t at, int cmd);

/* CLOCK_REALTIME in nanoseconds. */
int64_t shm_now_ns(void);

/* Slot `i` of the registry, or NULL if out of range. */
struct shm_proc *shm_proc_slot(const struct shm_seg *s, uint32_t i);

/* How many registry slots a scan of every process's readers or pins must
 * look at: the slots ever claimed, at most max_procs. Seq-cst: a slot is
 * counted before it is filled, so a scan that follows a full barrier
 * misses only processes that will see that barrier's effect (the epoch
 * moved, a ring marked) once they start reading. */
uint32_t shm_procs_scan(const struct shm_seg *s);

/* Claim a slot for the calling process: lock its byte through lock_fd (an
 * open file description private to this process) and fill it. Free slots
 * are taken first; a dead process's slot is recovered and reused only when
 * no free slot is left. Returns the slot number, or -ENOSPC (all slots held
 * by live processes) or another negative errno. */
int shm_proc_claim(struct shm_seg *s, int lock_fd);

/* Recover the slots of every process that died without closing: clear
 * what each held (its epoch reader slots), then free the slot. lock_fd is
 * the caller's own description, whose slot is `self` (skipped); it holds
 * each dead slot's lock while it works. Returns how many slots were
 * recovered, or a negative errno. */
int shm_proc_reap(struct shm_seg *s, int lock_fd, uint32_t self);

/* Reader slot k of process slot p, or NULL if out of range. */
struct shm_reader *shm_reader_slot(const struct shm_seg *s, uint32_t p,
				   uint32_t k);

/* The header, for its mutable fields. */
static inline struct shm_header *shm_hdr(const struct shm_seg *s)
{
	return (struct shm_header *)s->base;
}

/* Release a slot this process owns: mark it free, then drop its lock. */
void shm_proc_release(struct shm_seg *s, int lock_fd, uint32_t slot);

/* Liveness of slot `i` seen through query_fd (a descriptor that holds no
 * locks itself). Returns 1 if a process holds the slot's lock, 0 if not,
 * or a negative errno. */
int shm_proc_alive(int query_fd, uint32_t i);

/* Copy a slot's descriptive fields consistently (sequence lock). Returns
 * false if the slot is free or kept changing. */
bool shm_proc_read(const struct shm_proc *p, sesh_proc_t *out);

/* Test hook: called at named stages of segment creation when set, so tests
 * can kill a creator at awkward points. NULL in normal use. */
enum shm_stage {
	SHM_STAGE_CREATED,   /* private file created and locked */
	SHM_STAGE_SIZED,     /* ftruncate done */
	SHM_STAGE_HALF,	     /* header half written */
	SHM_STAGE_BUILT,     /* header complete, not yet published */
	SHM_STAGE_PUBLISHED, /* linked under its name, private name not yet
			      * removed */
};
extern void (*shm_test_hook)(enum shm_stage stage);

/* --- alloc.c: the block allocator --------------------------------------- */

/*
 * Every block has a state word, in an array apart from the blocks so that
 * the heap can be walked without trusting anything written in a block:
 *
 *	FREE			0
 *	OWNED(slot, inc)	claimed by the process in registry slot `slot`
 *				at incarnation `inc` (low 44 bits), and not
 *				(or no longer) reachable by readers except
 *				while that process holds the stripe lock
 *	LIVE			a record linked in the index
 *	RETIRED(tag)		unlinked at epoch `tag`; free once every
 *				reader has moved past it
 */
#define SHM_BLK_FREE	 0u
#define SHM_BLK_OWNED	 1u
#define SHM_BLK_LIVE	 2u
#define SHM_BLK_RETIRED	 3u
#define SHM_BLK_STATE(w) ((unsigned)((w)&0xf))
#define SHM_BLK_SLOT(w)	 ((uint32_t)(((w) >> 4) & 0xffff))
#define SHM_BLK_INC(w)	 ((w) >> 20)
#define SHM_BLK_TAG(w)	 ((w) >> 4)
#define SHM_BLK_INC_MASK (((uint64_t)1 << 44) - 1)

static inline uint64_t shm_blk_owned(uint32_t slot, uint64_t inc)
{
	return ((inc & SHM_BLK_INC_MASK) << 20) | ((uint64_t)slot << 4) |
	       SHM_BLK_OWNED;
}

static inline uint64_t shm_blk_retired(uint64_t tag)
{
	return (tag << 4) | SHM_BLK_RETIRED;
}

/* Retired blocks this process remembers, to free them after their grace
 * period without sweeping; the state words in the segment are the truth,
 * this list only finds them fast. */
#define SHM_RETIRE_LOCAL 256u

struct shm_alloc_local {
	pthread_mutex_t lock; /* process-private; guards the list */
	uint32_t n;
	struct {
		uint64_t off;  /* block */
		uint64_t word; /* RETIRED(tag) as we stored it */
	} retired[SHM_RETIRE_LOCAL];
	_Atomic uint64_t cursor[SHM_CLASSES_MAX]; /* where to look next */
};

/* The class whose blocks hold `bytes`, or -E2BIG. */
int shm_class_for(const struct shm_geom *g, uint64_t bytes);

/* The state word of the block at `off`, with its class size in *size;
 * NULL unless `off` is the start of a block of some class. */
_Atomic uint64_t *shm_blk_word(const struct shm_seg *s, uint64_t off,
			       uint64_t *size);

/* The size of the block starting at `off`, or 0 if `off` is not the
 * start of a block of some class. */
static inline uint64_t shm_blk_size(const struct shm_seg *s, uint64_t off)
{
	unsigned c;

	for (c = 0; c < s->geom.nclasses; c++) {
		const struct shm_class *cl = &s->geom.cls[c];

		if (off >= cl->blocks && off < cl->end)
			return (off & (cl->size - 1)) == 0 ? cl->size : 0;
	}
	return 0;
}

/* Claim a free word of the array of `cap` state words at `states` (a
 * segment offset inside `region`) for `owner`, scanning from *cursor:
 * its index, or -ENOSPC if none is free, or -EUCLEAN. */
int64_t shm_claim(const struct shm_seg *s, unsigned region, uint64_t states,
		  uint64_t cap, _Atomic uint64_t *cursor, uint64_t owner);

/* Claim a free block of class c for `owner` (an OWNED word), scanning the
 * state words from the process's cursor: the block's offset, or -ENOSPC
 * if none is free (the caller may reclaim and try again). */
int64_t shm_alloc(struct shm_seg *s, struct shm_alloc_local *l, unsigned c,
		  uint64_t owner);

/* Give back a block we own that no reader ever saw (OWNED -> FREE). */
void shm_free_unpublished(struct shm_seg *s, uint64_t off, uint64_t owner);

/* Call fn(word, its value now, class, index, arg) for every block of
 * class c (every class if c < 0), in order. */
typedef void (*shm_blk_fn)(_Atomic uint64_t *w, uint64_t v, unsigned c,
			   uint64_t k, void *arg);
void shm_blk_each(const struct shm_seg *s, int c, shm_blk_fn fn, void *arg);

/* Blocks of all classes. */
uint64_t shm_blk_total(const struct shm_seg *s);

/* The same as shm_blk_each() for at most n blocks from block number
 * `from`, numbering the blocks of all classes one after the other.
 * Returns where to go on from: 0 once the last block was visited. */
uint64_t shm_blk_range(const struct shm_seg *s, uint64_t from, uint64_t n,
		       shm_blk_fn fn, void *arg);

/* State word k of class c, or NULL if out of range. */
_Atomic uint64_t *shm_class_word(const struct shm_seg *s, unsigned c,
				 uint64_t k);

/* The journal: entries when the domain writes through to SQLite (none
 * otherwise), each of SHM_JR_ENTRY bytes after a header page. */
#define SHM_JR_CAP   8192u
#define SHM_JR_ENTRY 160u

/* Rings a process remembers having retired (see struct sesh). */
#define SHM_RING_RETIRE_LOCAL 64u

/* --- domain.c ------------------------------------------------------------- */

/* The process-local handle. */
struct sesh {
	struct shm_seg seg;
	int fd;		    /* the mapping's descriptor; never holds a lock */
	int lock_fd;	    /* this process's own description; -1 in a child
			     * until it registers */
	_Atomic int slot;   /* registry slot, -1 while unregistered */
	uint64_t domain_id; /* from the validated header */
	int64_t created_ns;
	char name[SESH_NAME_MAX + 1];
	char ns[SESH_NAME_MAX + 1];
	struct sesh *prev, *next; /* the process's list of handles */
	uint64_t serial;	  /* unique in this process, never reused */
	/* Bumped at each registration and at fork: a thread's cached reader
	 * slot from another generation is stale. */
	_Atomic uint32_t reg_gen;
	/* Reader slots held by threads (a bitmap); under the handles
	 * lock. */
	uint64_t readers_taken[SHM_READERS_PER_PROC / 64];
	_Atomic int ns_idx;	/* the namespace's entry, -1 until found */
	struct shm_alloc_local alloc;
	/* Streams (ring/): where to look for a free ring; the lock over
	 * our pin table and the rings we retired, which are reclaimed once
	 * their grace period is over and nobody reads them. */
	_Atomic uint64_t ring_cursor;
	pthread_mutex_t ring_lock;
	uint32_t ring_nretired;
	uint32_t ring_retired[SHM_RING_RETIRE_LOCAL];
	/* Held by the thread running a reaper pass on this handle: the
	 * lease byte is locked through lock_fd, which all our threads
	 * share, so the byte alone does not keep them apart. */
	pthread_mutex_t reap_lease;
	/* Persistence (index/persist.c): our SQLite connection, opened on
	 * first use in this process (a child opens its own), and the lock
	 * our threads take before the lease byte SHM_LOCK_PERSIST. */
	pthread_mutex_t persist_lock;
	struct persist_conn *pc;
};

_Static_assert(SHM_READERS_PER_PROC % 64 == 0,
	       "readers_taken is a whole number of 64-bit words");

/* Register the calling process if it is not (a child after fork). */
int shm_ensure_registered(struct sesh *d);

/* Our registry slot and its incarnation as an OWNED block word,
 * registering first if needed. Returns 0 or an error of registration. */
int shm_owner_word(struct sesh *d, uint64_t *owner);

/* Recover the registry slots of dead processes (shm_proc_reap through
 * the handle's own description). Returns how many, or a negative errno. */
int shm_recover_procs(struct sesh *d);

/* Whether the owner of an OWNED word is gone: its slot is free, or held
 * by a later incarnation, or by nobody alive. `cache` (max_procs bytes,
 * zeroed by the caller) remembers answers across calls of one pass. */
bool shm_owner_dead(const struct sesh *d, uint64_t word, uint8_t *cache);

/* The same for registry slot i at incarnation `inc`, comparing only the
 * bits of `mask` of the incarnation; `cache` may be NULL. */
bool shm_slot_dead(const struct sesh *d, uint32_t i, uint64_t inc,
		   uint64_t mask, uint8_t *cache);

/* Take a free reader slot of this process's registry slot for the calling
 * thread; *gen is the registration generation it belongs to. Returns the
 * reader index k, or -ENOSPC if all SHM_READERS_PER_PROC are taken, or an
 * error of registration. */
int shm_reader_claim(struct sesh *d, uint32_t *gen);

/* Give reader slot k back, if handle d (compared by pointer, never
 * dereferenced unless it is still open) still has this serial and
 * generation; otherwise the slot was already cleared by close or fork. */
void shm_reader_return(struct sesh *d, uint64_t serial, uint32_t gen,
		       uint32_t k);

/* Directory of the segments: $SESH_SHM_DIR or /dev/shm. */
const char *shm_dir(void);

#endif /* SESH_SHM_H */
