/*
 * layout.c - sizing a segment from its capacities, and validating the
 * header of a segment someone else made.
 *
 * Sizing uses checked arithmetic throughout: a capacity that would make a
 * size wrap or exceed SHM_MAX_SEGMENT is refused with -ENOSPC before any
 * file is touched. Validation treats the header as hostile input: it is
 * copied once into private memory, and every field is checked against what
 * this build would have computed for the same capacities, so a header that
 * passes describes exactly the geometry shm_layout() produces.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "shm/shm.h"

bool shm_name_valid(const char *name)
{
	size_t n;

	if (name == NULL)
		return false;
	for (n = 0; name[n] != '\0'; n++) {
		char c = name[n];

		if (n >= SESH_NAME_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return n > 0;
}

static bool is_pow2(uint64_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

int shm_config_check(const sesh_config_t *cfg, sesh_config_t *out)
{
	sesh_config_t c = *cfg;

	if (c.max_sessions < 1 || c.max_sessions > SESH_MAX_SESSIONS)
		return -EINVAL;
	if (!is_pow2(c.stream_bytes) || c.stream_bytes < SHM_STREAM_MIN ||
	    c.stream_bytes > SHM_STREAM_MAX)
		return -EINVAL;
	if (c.max_message == 0)
		c.max_message = c.stream_bytes / 4;
	if (c.max_message > c.stream_bytes / 2)
		return -EINVAL;
	if (c.max_metadata > SHM_METADATA_MAX)
		return -EINVAL;
	if (c.idle_ttl_s < 1)
		return -EINVAL;
	if ((c.mode & ~(mode_t)0777) != 0 || (c.mode & 0600) != 0600)
		return -EINVAL;
	if (c.max_processes < 1 || c.max_processes > SESH_MAX_PROCESSES)
		return -EINVAL;
	if (c.unblock_ms < 1 || c.unblock_ms > SHM_UNBLOCK_MAX)
		return -EINVAL;
	if (c.max_subscriptions < 1 ||
	    c.max_subscriptions > SESH_MAX_SUBSCRIPTIONS)
		return -EINVAL;
	if (c.sqlite_path != NULL &&
	    (c.sqlite_path[0] != '/' ||
	     strnlen(c.sqlite_path, SHM_SQLITE_PATH) > SESH_SQLITE_PATH_MAX))
		return -EINVAL;
	if (c.sqlite_mode > SESH_SQLITE_ASYNC)
		return -EINVAL;
	if (c.sqlite_lag_ms == 0)
		c.sqlite_lag_ms = 1000;
	if (c.sqlite_wait_ms == 0)
		c.sqlite_wait_ms = 5000;
	if (c.sqlite_lag_ms > SHM_LAG_MAX || c.sqlite_wait_ms > SHM_WAIT_MAX)
		return -EINVAL;
	*out = c;
	return 0;
}

/* a + b and a * b into *r, false on overflow or past SHM_MAX_SEGMENT. */
static bool add_ok(uint64_t a, uint64_t b, uint64_t *r)
{
	return !__builtin_add_overflow(a, b, r) && *r <= SHM_MAX_SEGMENT;
}

static bool mul_ok(uint64_t a, uint64_t b, uint64_t *r)
{
	return !__builtin_mul_overflow(a, b, r) && *r <= SHM_MAX_SEGMENT;
}

static bool round_ok(uint64_t x, uint64_t to, uint64_t *r)
{
	return add_ok(x, to - 1, r) && ((*r &= ~(to - 1)), true);
}

/* Place region r of `bytes` (rounded up to whole pages) at *at, and move
 * *at past it. False if it does not fit below SHM_MAX_SEGMENT. */
static bool place(struct shm_geom *g, unsigned r, uint64_t bytes, uint64_t *at)
{
	if (!round_ok(bytes, SHM_PAGE, &bytes))
		return false;
	g->region[r].off = *at;
	g->region[r].len = bytes;
	return add_ok(*at, bytes, at);
}

/* Blocks of each size class: every session can hold a block of any one
 * class at once, plus slack for copy-on-write updates in flight and
 * blocks waiting out their grace period. */
static uint64_t class_cap(uint64_t max_sessions)
{
	return max_sessions + max_sessions / 8 + 256;
}

/* The index: a header page, the namespace table, the stripe locks and
 * one chain head per bucket, carved out of SHM_R_INDEX. */
static bool layout_index(struct shm_geom *g, uint64_t *at)
{
	uint64_t o = *at + SHM_PAGE, bytes;

	/* Half full at capacity: a lookup touches 1.25 records on average. */
	g->nbuckets = 64;
	while (g->nbuckets < 2 * g->max_sessions)
		g->nbuckets <<= 1;
	g->nstripes = g->nbuckets < SHM_STRIPES_MAX ? (uint32_t)g->nbuckets
						    : SHM_STRIPES_MAX;
	g->idx_ns = o;
	o += (uint64_t)SHM_NS_MAX * 128;
	g->idx_stripes = o;
	o += (uint64_t)g->nstripes * SHM_CACHELINE;
	g->idx_buckets = o;
	return mul_ok(g->nbuckets, 8, &bytes) && add_ok(o, bytes, &o) &&
	       place(g, SHM_R_INDEX, o - *at, at);
}

/* The allocator: per class its state words and its blocks, each
 * page-aligned, the blocks aligned to their size. */
static bool layout_blocks(struct shm_geom *g, uint64_t *at)
{
	uint64_t o = *at, size = SHM_CLASS_MIN, bytes, largest;

	if (!add_ok(g->max_metadata, SHM_RECORD_MAX(0), &largest))
		return false;
	for (g->nclasses = 0;; size <<= 1) {
		struct shm_class *c = &g->cls[g->nclasses];

		if (g->nclasses == SHM_CLASSES_MAX)
			return false;
		c->size = size;
		c->cap = class_cap(g->max_sessions);
		c->states = o;
		if (!mul_ok(c->cap, 8, &bytes) ||
		    !round_ok(bytes, SHM_PAGE, &bytes) || !add_ok(o, bytes, &o))
			return false;
		/* Blocks aligned to their size, so an offset's class and
		 * index are found with a compare and a mask. */
		if (!round_ok(o, size < SHM_PAGE ? SHM_PAGE : size, &o))
			return false;
		c->blocks = o;
		if (!mul_ok(c->cap, size, &bytes) ||
		    !add_ok(o, bytes, &c->end) ||
		    !round_ok(bytes, SHM_PAGE, &bytes) || !add_ok(o, bytes, &o))
			return false;
		g->nclasses++;
		if (size >= largest)
			break;
	}
	return place(g, SHM_R_BLOCKS, o - *at, at);
}

/* Streams: a state word per ring, the ring headers, then the rings, each
 * page-aligned. There are rings for every session plus slack, since a
 * deleted session's ring is reused only once its subscribers are gone. */
static bool layout_streams(struct shm_geom *g, uint64_t *at)
{
	uint64_t o = *at, bytes;

	g->nrings = class_cap(g->max_sessions);
	g->ring_states = o;
	if (!mul_ok(g->nrings, 8, &bytes) ||
	    !round_ok(bytes, SHM_PAGE, &bytes) || !add_ok(o, bytes, &o))
		return false;
	g->ring_hdrs = o;
	if (!mul_ok(g->nrings, SHM_RING_HDR, &bytes) ||
	    !round_ok(bytes, SHM_PAGE, &bytes) || !add_ok(o, bytes, &o))
		return false;
	g->ring_data = o;
	g->ring_nslots = g->stream_bytes / SHM_RING_SLOT_BYTES;
	if (!round_ok(g->ring_nslots * SHM_RING_DESC, SHM_PAGE, &bytes) ||
	    !add_ok(bytes, g->stream_bytes, &g->ring_stride) ||
	    !mul_ok(g->nrings, g->ring_stride, &bytes) ||
	    !add_ok(o, bytes, &o))
		return false;
	return place(g, SHM_R_STREAMS, o - *at, at);
}

int shm_layout(const sesh_config_t *cfg, struct shm_geom *g)
{
	uint64_t procs, readers, pins, stats, at = SHM_PAGE;

	memset(g, 0, sizeof(*g));
	g->max_sessions = cfg->max_sessions;
	g->stream_bytes = cfg->stream_bytes;
	g->max_message = cfg->max_message;
	g->max_metadata = cfg->max_metadata;
	g->idle_ttl_s = cfg->idle_ttl_s;
	g->mode = (uint32_t)cfg->mode;
	g->max_procs = cfg->max_processes;
	g->unblock_ms = cfg->unblock_ms;
	g->max_subs = cfg->max_subscriptions;
	g->sqlite_mode = cfg->sqlite_mode;
	g->sqlite_lag_ms = cfg->sqlite_lag_ms;
	g->sqlite_wait_ms = cfg->sqlite_wait_ms;
	if (cfg->sqlite_path != NULL)
		strcpy(g->sqlite_path, cfg->sqlite_path); /* checked */
	g->jr_cap = g->sqlite_path[0] ? SHM_JR_CAP : 0;

	/* Registry: one cache line per process slot. Readers:
	 * SHM_READERS_PER_PROC cache lines per process slot. Pins: a table
	 * of max_subs words per process slot. Stats: a line per process
	 * slot, and one for the processes gone. The streams alone must fit
	 * (checked first: it bounds every other product of max_sessions). */
	if (!mul_ok(g->stream_bytes, g->max_sessions, &stats) ||
	    !mul_ok(g->max_procs, sizeof(struct shm_proc), &procs) ||
	    !mul_ok(g->max_procs, SHM_READERS_PER_PROC, &readers) ||
	    !mul_ok(readers, sizeof(struct shm_reader), &readers) ||
	    !mul_ok(g->max_subs, 8, &g->pins_stride) ||
	    !add_ok(g->pins_stride, SHM_PINS_HDR, &g->pins_stride) ||
	    !mul_ok(g->max_procs, g->pins_stride, &pins) ||
	    !mul_ok((uint64_t)g->max_procs + 1, SHM_STATS_LINE, &stats))
		return -ENOSPC;
	if (!place(g, SHM_R_REGISTRY, procs, &at) ||
	    !place(g, SHM_R_READERS, readers, &at) ||
	    !layout_index(g, &at) || !layout_blocks(g, &at) ||
	    !layout_streams(g, &at) || !place(g, SHM_R_PINS, pins, &at) ||
	    !place(g, SHM_R_STATS, stats, &at) ||
	    !place(g, SHM_R_JOURNAL, SHM_PAGE + g->jr_cap * SHM_JR_ENTRY,
		   &at))
		return -ENOSPC;
	g->total_bytes = at;
	return 0;
}

void shm_header_fill(struct shm_header *h, const struct shm_geom *g,
		     uint64_t domain_id, int64_t created_ns)
{
	unsigned r;

	memset(h, 0, sizeof(*h));
	h->magic = SHM_MAGIC;
	h->layout_version = SHM_LAYOUT_VERSION;
	h->endian_tag = SHM_ENDIAN_TAG;
	h->header_bytes = sizeof(struct shm_header);
	h->proc_bytes = sizeof(struct shm_proc);
	h->pointer_bytes = sizeof(void *);
	h->page_bytes = SHM_PAGE;
	h->features_compat = 0;
	h->features_incompat = 0;
	h->domain_id = domain_id;
	h->hash_key[0] = g->hash_key[0];
	h->hash_key[1] = g->hash_key[1];
	h->created_ns = created_ns;
	h->total_bytes = g->total_bytes;
	h->max_sessions = g->max_sessions;
	h->stream_bytes = g->stream_bytes;
	h->max_message = g->max_message;
	h->max_metadata = g->max_metadata;
	h->idle_ttl_s = g->idle_ttl_s;
	h->mode = g->mode;
	h->max_procs = g->max_procs;
	h->unblock_ms = g->unblock_ms;
	h->max_subs = g->max_subs;
	h->sqlite_mode = g->sqlite_mode;
	h->sqlite_lag_ms = g->sqlite_lag_ms;
	h->sqlite_wait_ms = g->sqlite_wait_ms;
	memcpy(h->sqlite_path, g->sqlite_path, sizeof(h->sqlite_path));
	h->nregions = SHM_R_COUNT;
	for (r = 0; r < SHM_R_COUNT; r++)
		h->region[r] = g->region[r];
	h->checksum = shm_header_checksum(h);
	atomic_init(&h->epoch, 1);
	atomic_init(&h->event_floor, 0);
}

/* FNV-1a over the immutable part of the header. Not cryptographic: it
 * catches scribbles and torn writes, not an attacker who can write the
 * segment (such a process owns the domain anyway). */
uint64_t shm_header_checksum(const struct shm_header *h)
{
	const uint8_t *p = (const uint8_t *)h;
	size_t n = offsetof(struct shm_header, checksum), i;
	uint64_t x = 0xcbf29ce484222325ull;

	for (i = 0; i < n; i++) {
		x ^= p[i];
		x *= 0x100000001b3ull;
	}
	return x;
}

/* A path field as the creator writes it: empty or absolute, NUL-ended,
 * and zero after the NUL. */
static bool path_valid(const char *p, size_t n)
{
	const char *end = memchr(p, '\0', n);

	if (end == NULL || (p[0] != '\0' && p[0] != '/'))
		return false;
	for (end++; end < p + n; end++)
		if (*end != '\0')
			return false;
	return true;
}

int shm_header_validate(const void *hdr, uint64_t file_bytes,
			struct shm_geom *g, uint64_t *id, int64_t *created)
{
	struct shm_header h;
	struct shm_geom want;
	sesh_config_t cfg, checked;
	unsigned r;

	if (file_bytes < sizeof(h))
		return -EPROTO;
	/* One copy; everything below looks only at the private copy. */
	memcpy(&h, hdr, sizeof(h));

	if (h.magic != SHM_MAGIC)
		return -EPROTO;
	if (h.layout_version != SHM_LAYOUT_VERSION ||
	    h.endian_tag != SHM_ENDIAN_TAG ||
	    h.pointer_bytes != sizeof(void *) ||
	    h.header_bytes != sizeof(struct shm_header) ||
	    h.proc_bytes != sizeof(struct shm_proc) ||
	    h.page_bytes != SHM_PAGE ||
	    (h.features_incompat & ~SHM_FEATURES_INCOMPAT_KNOWN) != 0)
		return -EPROTO;
	if (h.checksum != shm_header_checksum(&h))
		return -EUCLEAN;

	/* The capacities must be ones we would accept, and the geometry
	 * exactly what we would compute from them. */
	memset(&cfg, 0, sizeof(cfg));
	cfg.max_sessions = (size_t)h.max_sessions;
	cfg.stream_bytes = (size_t)h.stream_bytes;
	cfg.max_message = (size_t)h.max_message;
	cfg.max_metadata = (size_t)h.max_metadata;
	cfg.idle_ttl_s = h.idle_ttl_s;
	cfg.mode = (mode_t)h.mode;
	cfg.max_processes = h.max_procs;
	cfg.unblock_ms = h.unblock_ms;
	cfg.max_subscriptions = h.max_subs;
	cfg.sqlite_mode = h.sqlite_mode;
	cfg.sqlite_lag_ms = h.sqlite_lag_ms;
	cfg.sqlite_wait_ms = h.sqlite_wait_ms;
	if (!path_valid(h.sqlite_path, sizeof(h.sqlite_path)))
		return -EUCLEAN;
	cfg.sqlite_path = h.sqlite_path[0] ? h.sqlite_path : NULL;
	if (h.max_sessions != cfg.max_sessions ||
	    h.stream_bytes != cfg.stream_bytes ||
	    h.max_message != cfg.max_message ||
	    h.max_metadata != cfg.max_metadata || h.max_message == 0 ||
	    shm_config_check(&cfg, &checked) != 0 ||
	    shm_layout(&checked, &want) != 0)
		return -EUCLEAN;
	if (h.nregions != SHM_R_COUNT || h.total_bytes != want.total_bytes)
		return -EUCLEAN;
	for (r = 0; r < SHM_R_MAX; r++) {
		struct shm_region z = {0, 0};
		const struct shm_region *w =
			r < SHM_R_COUNT ? &want.region[r] : &z;

		if (h.region[r].off != w->off || h.region[r].len != w->len)
			return -EUCLEAN;
	}
	/* Shorter than it says: truncated. Longer: not something we made. */
	if (file_bytes != h.total_bytes)
		return -EUCLEAN;

	*g = want;
	g->hash_key[0] = h.hash_key[0];
	g->hash_key[1] = h.hash_key[1];
	if (id != NULL)
		*id = h.domain_id;
	if (created != NULL)
		*created = h.created_ns;
	return 0;
}
