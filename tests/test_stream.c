/*
 * test_stream.c - the stream API: publish, subscribe, next, batches and
 * zero-copy reads; resuming from an event id; a reader lapped by a small
 * ring told so and never given a torn or repeated message; subscribers in
 * other processes woken by delete and by expiry; ids never reused after a
 * session is created again; many publisher processes against one reader;
 * futex and counter accounting; every documented error; stream handles
 * and counts across handles and processes.
 *
 * Messages that must be checked byte for byte carry a tag (a sequence
 * number) and a checksum, and their filler is derived from the tag, so a
 * torn, shifted or stale message is caught wherever it is read.
 */
#include "testutil.h"

#include "index/index.h"

#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <time.h>

/* --- helpers -------------------------------------------------------------- */

/* Slack for published_ns, which may come from a coarse clock. */
#define SLACK_NS 50000000LL

static unsigned long long ull(uint64_t v)
{
	return (unsigned long long)v;
}

/* A fresh domain with small capacities and the given stream geometry. */
static sesh_t *open_dom(const char *name, size_t stream_bytes,
			size_t max_message)
{
	sesh_config_t c;

	tu_small(&c);
	c.stream_bytes = stream_bytes;
	c.max_message = max_message;
	return tu_create(name, &c);
}

/* Another handle on an existing domain. */
static sesh_t *attach(const char *name, const char *ns)
{
	sesh_t *d = NULL;
	int rc = sesh_open(name, ns, NULL, 0, &d);

	if (rc != 0)
		fail_msg("sesh_open(%s, %s): %s", name, ns ? ns : "NULL",
			 sesh_strerror(rc));
	return d;
}

static void mk_session(sesh_t *d, const char *id, uint32_t ttl_s)
{
	int rc = sesh_session_create(d, id, NULL, NULL, 0, ttl_s, NULL);

	if (rc != 0)
		fail_msg("sesh_session_create(%s): %s", id, sesh_strerror(rc));
}

static uint64_t last_id_of(sesh_t *d, const char *id)
{
	sesh_session_t s;
	int rc = sesh_session_get(d, id, NULL, &s, NULL, 0);

	if (rc != 0)
		fail_msg("sesh_session_get(%s): %s", id, sesh_strerror(rc));
	return s.last_event_id;
}

static uint64_t pub(sesh_t *d, const char *id, const void *p, size_t n)
{
	uint64_t e = 0;
	int rc = sesh_publish(d, id, p, n, &e);

	if (rc != 0)
		fail_msg("sesh_publish(%s, %zu bytes): %s", id, n,
			 sesh_strerror(rc));
	if (e == 0)
		fail_msg("sesh_publish(%s) gave event id 0", id);
	return e;
}

static uint64_t pubs(sesh_t *d, const char *id, const char *str)
{
	return pub(d, id, str, strlen(str));
}

static sesh_stream_t *sub(sesh_t *d, const char *id, uint64_t after)
{
	sesh_stream_t *s = NULL;
	int rc = sesh_subscribe(d, id, after, &s);

	if (rc != 0)
		fail_msg("sesh_subscribe(%s, after %llu): %s", id, ull(after),
			 sesh_strerror(rc));
	assert_non_null(s);
	return s;
}

/* sesh_subscribe() that must fail with `want` and leave *out alone. */
static void sub_fails(sesh_t *d, const char *id, uint64_t after, int want)
{
	sesh_stream_t *sentinel = (sesh_stream_t *)&sentinel, *s = sentinel;
	int rc = sesh_subscribe(d, id, after, &s);

	if (rc != want) {
		if (rc == 0)
			sesh_stream_close(s);
		fail_msg("sesh_subscribe(%s, after %llu): %s (%d), want %s",
			 id ? id : "NULL", ull(after), sesh_strerror(rc), rc,
			 sesh_strerror(want));
	}
	assert_ptr_equal(s, sentinel);
}

/* next() that must return a message. */
static void next_ok(sesh_stream_t *s, sesh_msg_t *m, int timeout_ms)
{
	int rc;

	memset(m, 0x5a, sizeof(*m));
	rc = sesh_stream_next(s, m, timeout_ms);
	if (rc != 0)
		fail_msg("sesh_stream_next(timeout %d): %s, want a message",
			 timeout_ms, sesh_strerror(rc));
}

/* next(0) that must return exactly this message: it was committed
 * before the call, so no waiting is needed. */
static void expect_msg(sesh_stream_t *s, uint64_t id, const void *p, size_t n)
{
	sesh_msg_t m;

	next_ok(s, &m, 0);
	if (m.event_id != id)
		fail_msg("event id %llu, want %llu", ull(m.event_id), ull(id));
	if (m.len != n)
		fail_msg("message %llu: %zu bytes, want %zu", ull(id), m.len,
			 n);
	if (n == 0)
		assert_null(m.data);
	else
		assert_memory_equal(m.data, p, n);
}

static void expect_str(sesh_stream_t *s, uint64_t id, const char *str)
{
	expect_msg(s, id, str, strlen(str));
}

/* next() that must fail with `want`. */
static void expect_rc(sesh_stream_t *s, int timeout_ms, int want)
{
	sesh_msg_t m;
	int rc = sesh_stream_next(s, &m, timeout_ms);

	if (rc != want)
		fail_msg("sesh_stream_next(timeout %d): %s (%d), want %s",
			 timeout_ms, sesh_strerror(rc), rc,
			 sesh_strerror(want));
}

/* The -EOVERFLOW that must come next; returns where reading resumes. */
static uint64_t expect_overflow(sesh_stream_t *s)
{
	sesh_msg_t m;
	int rc;

	memset(&m, 0, sizeof(m));
	rc = sesh_stream_next(s, &m, 0);
	if (rc != -EOVERFLOW)
		fail_msg("sesh_stream_next: %s (%d), want -EOVERFLOW",
			 sesh_strerror(rc), rc);
	if (m.event_id == 0)
		fail_msg("-EOVERFLOW without the id where reading resumes");
	return m.event_id;
}

static sesh_stats_t stats_of(sesh_t *d)
{
	sesh_stats_t st;

	memset(&st, 0xa5, sizeof(st));
	assert_int_equal(sesh_stats(d, &st), 0);
	return st;
}

static sesh_info_t info_of(sesh_t *d)
{
	sesh_info_t inf;

	memset(&inf, 0xa5, sizeof(inf));
	assert_int_equal(sesh_info(d, &inf), 0);
	return inf;
}

/* Wait until some subscriber of the domain has gone to sleep since
 * futex_waits was `base`; 1 if it happened within `secs`. */
static int wait_sleeper(sesh_t *d, uint64_t base, double secs)
{
	double end = tu_mono_s() + secs;

	do {
		if (stats_of(d).futex_waits > base)
			return 1;
		tu_sleep_ms(1);
	} while (tu_mono_s() < end);
	return 0;
}

/* --- self-checking payloads ----------------------------------------------- */

static uint32_t mix32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

static uint32_t fnv(const unsigned char *p, size_t n, uint32_t h)
{
	while (n--) {
		h ^= *p++;
		h *= 16777619u;
	}
	return h;
}

static uint32_t payload_sum(const unsigned char *p, size_t len)
{
	return fnv(p + 8, len - 8, fnv(p, 4, 2166136261u ^ (uint32_t)len));
}

static unsigned char filler(uint32_t tag, size_t i)
{
	return (unsigned char)mix32(tag * 2654435761u + (uint32_t)i);
}

/* A payload of len >= 8 bytes: the tag, a checksum over everything else
 * and the length, then filler derived from the tag. */
static void mk_payload(unsigned char *buf, uint32_t tag, size_t len)
{
	uint32_t sum;
	size_t i;

	memcpy(buf, &tag, 4);
	for (i = 8; i < len; i++)
		buf[i] = filler(tag, i);
	sum = payload_sum(buf, len);
	memcpy(buf + 4, &sum, 4);
}

/* 0 if the payload is intact; its tag in *tag. */
static int chk_payload(const void *data, size_t len, uint32_t *tag)
{
	const unsigned char *p = data;
	uint32_t sum;
	size_t i;

	if (p == NULL || len < 8)
		return -1;
	memcpy(tag, p, 4);
	memcpy(&sum, p + 4, 4);
	if (sum != payload_sum(p, len))
		return -1;
	for (i = 8; i < len; i++)
		if (p[i] != filler(*tag, i))
			return -1;
	return 0;
}

/* What is left on a stream, read without waiting after every publish
 * has returned: tagged payloads of `len` bytes, ids[tag] their ids. An
 * -EOVERFLOW may only come first. */
struct tail {
	int overflows;
	uint64_t resume; /* the id the -EOVERFLOW gave */
	uint32_t first, last;
	size_t count;
};

static void read_tail(sesh_stream_t *s, const uint64_t *ids, uint32_t ntags,
		      size_t len, int zc, struct tail *t)
{
	uint64_t prev = 0;
	sesh_msg_t m;
	uint32_t tag;
	int rc;

	memset(t, 0, sizeof(*t));
	for (;;) {
		memset(&m, 0, sizeof(m));
		rc = zc ? sesh_stream_next_zc(s, &m, 0)
			: sesh_stream_next(s, &m, 0);
		if (rc == -EAGAIN)
			break;
		if (rc == -EOVERFLOW) {
			if (t->count != 0 || t->overflows != 0)
				fail_msg("-EOVERFLOW after %zu messages, with "
					 "nothing published meanwhile",
					 t->count);
			if (m.event_id == 0)
				fail_msg("-EOVERFLOW without the id where "
					 "reading resumes");
			t->overflows++;
			t->resume = m.event_id;
			continue;
		}
		if (rc != 0)
			fail_msg("sesh_stream_next%s after %zu messages: %s",
				 zc ? "_zc" : "", t->count, sesh_strerror(rc));
		if (chk_payload(m.data, m.len, &tag) != 0)
			fail_msg("message %llu (%zu bytes, after %zu read) is "
				 "not intact",
				 ull(m.event_id), m.len, t->count);
		if (zc && sesh_stream_zc_valid(s) != 0)
			fail_msg("zero-copy message %llu reported overwritten "
				 "with no publisher running",
				 ull(m.event_id));
		if (tag >= ntags)
			fail_msg("tag %u was never published", tag);
		if (m.len != len)
			fail_msg("tag %u: %zu bytes, want %zu", tag, m.len,
				 len);
		if (m.event_id != ids[tag])
			fail_msg("tag %u has id %llu; publish gave %llu", tag,
				 ull(m.event_id), ull(ids[tag]));
		if (m.event_id <= prev)
			fail_msg("id %llu after %llu", ull(m.event_id),
				 ull(prev));
		if (t->overflows && m.event_id < t->resume)
			fail_msg("id %llu below the resume point %llu",
				 ull(m.event_id), ull(t->resume));
		if (t->count > 0 && tag != t->last + 1)
			fail_msg("tag %u after tag %u: %s", tag, t->last,
				 tag <= t->last ? "a duplicate" : "a gap");
		if (t->count == 0)
			t->first = tag;
		t->last = tag;
		t->count++;
		prev = m.event_id;
	}
}

/* --- subscriber processes ------------------------------------------------- */

/* What a subscriber process reports of each call of next(). */
struct rec {
	int rc;
	int setup;    /* 1: opening or subscribing failed with rc */
	uint32_t tag; /* the payload's tag, or BAD_TAG */
	uint64_t id;  /* event id (with -EOVERFLOW: the resume point) */
	double t;     /* CLOCK_MONOTONIC when the call returned */
};

#define BAD_TAG 0xffffffffu

struct child {
	pid_t pid;
	int ready; /* a byte when the child is about to block */
	int out;   /* struct rec, one per call */
};

/* Subscribe to `sid` of domain `name` from `after`, read `npre` messages,
 * say "ready", then read with timeout -1 until an error, then call next()
 * twice more (timeouts 0 and -1). Every call is reported. */
static void reader_main(const char *name, const char *sid, uint64_t after,
			int npre, int ready_fd, int out_fd)
{
	sesh_stream_t *s = NULL;
	sesh_t *k = NULL;
	struct rec r;
	sesh_msg_t m;
	char c = 'r';
	int i, rc;

	alarm(20); /* hang guard: the parent sees EOF */
	memset(&r, 0, sizeof(r));
	rc = sesh_open(name, NULL, NULL, 0, &k);
	if (rc == 0)
		rc = sesh_subscribe(k, sid, after, &s);
	if (rc != 0) {
		r.rc = rc;
		r.setup = 1;
		tu_put(out_fd, &r, sizeof(r));
		_exit(2);
	}
	for (i = 0;; i++) {
		if (i == npre)
			tu_put(ready_fd, &c, 1);
		memset(&m, 0, sizeof(m));
		rc = sesh_stream_next(s, &m, -1);
		r.rc = rc;
		r.t = tu_mono_s();
		r.id = m.event_id;
		if (rc != 0 || chk_payload(m.data, m.len, &r.tag) != 0)
			r.tag = BAD_TAG;
		tu_put(out_fd, &r, sizeof(r));
		if (rc != 0)
			break;
	}
	for (i = 0; i < 2; i++) {
		memset(&m, 0, sizeof(m));
		r.rc = sesh_stream_next(s, &m, i == 0 ? 0 : -1);
		r.t = tu_mono_s();
		r.id = m.event_id;
		r.tag = BAD_TAG;
		tu_put(out_fd, &r, sizeof(r));
	}
	sesh_stream_close(s);
	sesh_close(k);
	_exit(0);
}

static void start_reader(struct child *ch, const char *name, const char *sid,
			 uint64_t after, int npre)
{
	pid_t parent = getpid();
	int rp[2], op[2];

	assert_int_equal(pipe(rp), 0);
	assert_int_equal(pipe(op), 0);
	ch->pid = fork();
	assert_true(ch->pid >= 0);
	if (ch->pid == 0) {
		tu_die_with(parent);
		close(rp[0]);
		close(op[0]);
		reader_main(name, sid, after, npre, rp[1], op[1]);
	}
	close(rp[1]);
	close(op[1]);
	ch->ready = rp[0];
	ch->out = op[0];
}

static void get_rec(struct child *ch, struct rec *r)
{
	if (tu_get(ch->out, r, sizeof(*r)) != 0)
		fail_msg("the subscriber process died before reporting "
			 "(status %d; 142 = killed by its hang guard)",
			 tu_wait(ch->pid));
	if (r->setup)
		fail_msg("the subscriber process could not subscribe: %s",
			 sesh_strerror(r->rc));
}

/* The next report must be a message with this tag and id. */
static void get_msg_rec(struct child *ch, uint32_t tag, uint64_t id)
{
	struct rec r;

	get_rec(ch, &r);
	if (r.rc != 0)
		fail_msg("subscriber process: next() gave %s, want the "
			 "message of tag %u",
			 sesh_strerror(r.rc), tag);
	if (r.tag != tag || r.id != id)
		fail_msg("subscriber process: tag %u id %llu, want tag %u id "
			 "%llu",
			 r.tag, ull(r.id), tag, ull(id));
}

/* The next three reports must be -ENOENT: the end, then the two calls
 * after it. Returns when the first came. */
static double get_end_recs(struct child *ch)
{
	struct rec r;
	double t = 0;
	int i;

	for (i = 0; i < 3; i++) {
		get_rec(ch, &r);
		if (r.rc != -ENOENT)
			fail_msg("subscriber process: call %d after the last "
				 "message gave %s (%d), want -ENOENT",
				 i, sesh_strerror(r.rc), r.rc);
		if (i == 0)
			t = r.t;
	}
	return t;
}

static void wait_ready(struct child *ch)
{
	char c;

	if (tu_get(ch->ready, &c, 1) != 0)
		fail_msg("the subscriber process died before it was ready "
			 "(status %d)",
			 tu_wait(ch->pid));
}

static void end_child(struct child *ch)
{
	close(ch->ready);
	close(ch->out);
	assert_int_equal(tu_wait(ch->pid), 0);
}

/* --- 1. basics ------------------------------------------------------------ */

static void test_basics(void **state)
{
	static const char *const m[3] = {"first", "the second message", "3"};
	unsigned char big[1024];
	sesh_stream_t *s, *s2, *x;
	uint64_t e[3], z0, z1, ebig;
	sesh_msg_t msg;
	int64_t t0, t1;
	sesh_info_t inf;
	char name[64];
	double w0;
	size_t lens[] = {1, 100, 512, 1023, 1024}, i, j;
	sesh_t *d;

	tu_name(name, sizeof(name), "stbas");
	d = open_dom(name, 4096, 0);
	inf = info_of(d);
	assert_int_equal(inf.stream_bytes, 4096);
	assert_int_equal(inf.max_message, 1024); /* stream_bytes / 4 */
	mk_session(d, "s", 0);
	assert_int_equal(last_id_of(d, "s"), 0);

	/* A new session's stream is empty. */
	s = sub(d, "s", SESH_FROM_OLDEST);
	expect_rc(s, 0, -EAGAIN);

	t0 = tu_real_ns();
	for (i = 0; i < 3; i++)
		e[i] = pubs(d, "s", m[i]);
	t1 = tu_real_ns();
	assert_true(e[0] < e[1]);
	assert_true(e[1] < e[2]);
	assert_int_equal(last_id_of(d, "s"), e[2]);

	/* One subscriber from before the publishes, one from after: both
	 * get the three, in order, intact. */
	s2 = sub(d, "s", SESH_FROM_OLDEST);
	for (j = 0; j < 2; j++) {
		x = j == 0 ? s : s2;
		for (i = 0; i < 3; i++) {
			next_ok(x, &msg, 0);
			assert_int_equal(msg.event_id, e[i]);
			assert_int_equal(msg.len, strlen(m[i]));
			assert_memory_equal(msg.data, m[i], strlen(m[i]));
			if (msg.published_ns < t0 - SLACK_NS ||
			    msg.published_ns > t1 + SLACK_NS)
				fail_msg("published_ns %lld outside [%lld, "
					 "%lld]",
					 (long long)msg.published_ns,
					 (long long)t0, (long long)t1);
		}
		expect_rc(x, 0, -EAGAIN);
	}
	w0 = tu_mono_s();
	expect_rc(s, 50, -ETIMEDOUT);
	if (tu_mono_s() - w0 < 0.045)
		fail_msg("-ETIMEDOUT after %.3f s of a 50 ms timeout",
			 tu_mono_s() - w0);
	expect_rc(s, 0, -EAGAIN);

	/* Zero-length messages, with and without a pointer. */
	z0 = pub(d, "s", NULL, 0);
	z1 = pub(d, "s", "ignored", 0);
	assert_true(e[2] < z0);
	assert_true(z0 < z1);
	for (j = 0; j < 2; j++) {
		x = j == 0 ? s : s2;
		expect_msg(x, z0, NULL, 0);
		expect_msg(x, z1, NULL, 0);
		expect_rc(x, 0, -EAGAIN);
	}
	assert_int_equal(last_id_of(d, "s"), z1);

	/* Growing sizes up to max_message, each read back whole. */
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		for (j = 0; j < lens[i]; j++)
			big[j] = (unsigned char)(j * 7 + i);
		ebig = pub(d, "s", big, lens[i]);
		expect_msg(s, ebig, big, lens[i]);
		expect_msg(s2, ebig, big, lens[i]);
	}

	sesh_stream_close(s);
	sesh_stream_close(s2);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 2. resuming from an event id ----------------------------------------- */

static void test_resume(void **state)
{
	char name[64], p[6][16];
	uint64_t e[6], after[2], r;
	sesh_stream_t *s, *l;
	int i, k, gaps = 0;
	sesh_t *d;

	tu_name(name, sizeof(name), "stres");
	d = open_dom(name, 4096, 0);
	mk_session(d, "r", 0);
	for (i = 0; i < 6; i++)
		snprintf(p[i], sizeof(p[i]), "msg-%d", i);
	for (i = 0; i < 5; i++) {
		e[i] = pubs(d, "r", p[i]);
		if (i > 0)
			assert_true(e[i] > e[i - 1]);
	}

	/* after = e[k]: e[k + 1] first. */
	for (k = 0; k < 4; k++) {
		s = sub(d, "r", e[k]);
		for (i = k + 1; i < 5; i++)
			expect_str(s, e[i], p[i]);
		expect_rc(s, 0, -EAGAIN);
		sesh_stream_close(s);
	}

	/* after = the newest: nothing until the next publish. */
	s = sub(d, "r", e[4]);
	expect_rc(s, 0, -EAGAIN);
	expect_rc(s, 20, -ETIMEDOUT);
	/* FROM_LATEST: only what comes next. */
	l = sub(d, "r", SESH_FROM_LATEST);
	expect_rc(l, 0, -EAGAIN);
	e[5] = pubs(d, "r", p[5]);
	assert_true(e[5] > e[4]);
	expect_str(s, e[5], p[5]);
	expect_str(l, e[5], p[5]);
	expect_rc(s, 0, -EAGAIN);
	expect_rc(l, 0, -EAGAIN);
	sesh_stream_close(s);
	sesh_stream_close(l);

	/* Newer than the newest: never issued. */
	sub_fails(d, "r", e[5] + 1, -EINVAL);
	sub_fails(d, "r", e[5] + 1000, -EINVAL);
	sub_fails(d, "r", e[5] + ((uint64_t)1 << 40), -EINVAL);
	sub_fails(d, "r", UINT64_MAX - 1, -EINVAL);

	/* Inside the retained range but not the start of a message. */
	for (i = 0; i < 5; i++) {
		if (e[i + 1] - e[i] < 2)
			continue;
		gaps++;
		sub_fails(d, "r", e[i] + 1, -EINVAL);
		sub_fails(d, "r", e[i + 1] - 1, -EINVAL);
	}
	if (gaps == 0)
		print_message("ids are consecutive: no value between two ids "
			      "to refuse\n");

	/* Older than anything retained: accepted, told, then everything. */
	after[0] = 1;
	after[1] = e[0] - 1;
	for (k = 0; k < 2; k++) {
		s = sub(d, "r", after[k]);
		r = expect_overflow(s);
		if (r > e[0])
			fail_msg("after %llu: resumes at %llu, past the oldest "
				 "retained message %llu",
				 ull(after[k]), ull(r), ull(e[0]));
		for (i = 0; i < 6; i++)
			expect_str(s, e[i], p[i]);
		expect_rc(s, 0, -EAGAIN);
		sesh_stream_close(s);
	}

	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 3. lapped by a tiny ring --------------------------------------------- */

/* next(0) that must return the tagged payload of `len` bytes with id. */
static void expect_tag(sesh_stream_t *s, uint32_t tag, uint64_t id, size_t len)
{
	sesh_msg_t m;
	uint32_t got;

	next_ok(s, &m, 0);
	if (chk_payload(m.data, m.len, &got) != 0)
		fail_msg("message %llu (%zu bytes) is not intact",
			 ull(m.event_id), m.len);
	if (got != tag || m.event_id != id || m.len != len)
		fail_msg("tag %u id %llu len %zu, want tag %u id %llu len %zu",
			 got, ull(m.event_id), m.len, tag, ull(id), len);
}

static void test_lapping(void **state)
{
	enum { N = 500, MORE = 300, LEN = 100 };
	static uint64_t ids[N + MORE];
	sesh_stats_t st0, st1, st2, st3;
	unsigned char buf[LEN];
	sesh_stream_t *s, *o;
	struct tail t, t2;
	sesh_info_t inf;
	char name[64];
	uint32_t i;
	sesh_t *d;

	tu_name(name, sizeof(name), "stlap");
	d = open_dom(name, 4096, 256);
	inf = info_of(d);
	assert_int_equal(inf.stream_bytes, 4096);
	assert_int_equal(inf.max_message, 256);
	mk_session(d, "l", 0);
	s = sub(d, "l", SESH_FROM_OLDEST);

	st0 = stats_of(d);
	for (i = 0; i < N; i++) {
		mk_payload(buf, i, LEN);
		ids[i] = pub(d, "l", buf, LEN);
		if (i > 0 && ids[i] <= ids[i - 1])
			fail_msg("id %llu after %llu", ull(ids[i]),
				 ull(ids[i - 1]));
	}
	st1 = stats_of(d);
	assert_int_equal(st1.published - st0.published, N);
	assert_int_equal(st1.published_bytes - st0.published_bytes,
			 (uint64_t)N * LEN);
	assert_int_equal(last_id_of(d, "l"), ids[N - 1]);

	/* Told once, then the retained messages, intact and in order, up
	 * to the last one. */
	read_tail(s, ids, N, LEN, 0, &t);
	print_message("lapped reader: resumes at tag %u, %zu messages\n",
		      t.first, t.count);
	if (t.overflows != 1)
		fail_msg("a reader lapped by %d bytes was not told",
			 N * LEN - 4096);
	assert_true(t.resume > ids[0]);
	assert_true(t.resume <= ids[t.first]);
	assert_int_equal(t.last, N - 1);
	assert_true(t.count >= 2);
	assert_true(t.count * LEN <= 4096);
	st2 = stats_of(d);
	assert_int_equal(st2.lapped - st1.lapped, 1);
	assert_int_equal(st2.delivered - st1.delivered, t.count);
	assert_int_equal(st2.delivered_bytes - st1.delivered_bytes,
			 (uint64_t)t.count * LEN);

	/* A new subscriber from the oldest sees the same retained
	 * messages: the lapped one lost nothing the ring still held. */
	o = sub(d, "l", SESH_FROM_OLDEST);
	read_tail(o, ids, N, LEN, 0, &t2);
	if (t2.overflows)
		print_message("note: SESH_FROM_OLDEST after lapping began "
			      "with -EOVERFLOW\n");
	assert_int_equal(t2.first, t.first);
	assert_int_equal(t2.last, N - 1);

	/* Lapped again in the middle of reading: s has read two of five,
	 * o none, when 295 more come. */
	for (i = N; i < N + 5; i++) {
		mk_payload(buf, i, LEN);
		ids[i] = pub(d, "l", buf, LEN);
	}
	expect_tag(s, N, ids[N], LEN);
	expect_tag(s, N + 1, ids[N + 1], LEN);
	for (i = N + 5; i < N + MORE; i++) {
		mk_payload(buf, i, LEN);
		ids[i] = pub(d, "l", buf, LEN);
	}
	st2 = stats_of(d);
	read_tail(s, ids, N + MORE, LEN, 0, &t);
	if (t.overflows != 1)
		fail_msg("a reader lapped mid-read was not told");
	assert_true(t.resume > ids[N + 1]);
	assert_true(t.first > N + 2);
	assert_int_equal(t.last, N + MORE - 1);
	read_tail(o, ids, N + MORE, LEN, 0, &t2);
	if (t2.overflows != 1)
		fail_msg("a reader lapped mid-read was not told");
	assert_int_equal(t2.first, t.first);
	assert_int_equal(t2.last, N + MORE - 1);
	st3 = stats_of(d);
	assert_int_equal(st3.lapped - st2.lapped, 2);
	expect_rc(s, 0, -EAGAIN);
	expect_rc(o, 0, -EAGAIN);

	sesh_stream_close(s);
	sesh_stream_close(o);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 4. batches ----------------------------------------------------------- */

/* A batch's messages are contiguous in the stream even while another
 * process publishes single messages to the same session. */
static void batch_contiguity(void)
{
	enum { SINGLES = 3000, BATCHES = 300, PER = 5 };
	static uint64_t bids[BATCHES][PER];
	unsigned char bdata[BATCHES][PER][8];
	uint32_t next_single = 0, next_batch = 0, in_batch = 0, tag;
	pid_t parent = getpid(), pid;
	sesh_buf_t bufs[PER];
	uint64_t prev = 0;
	sesh_stream_t *s;
	char name[64];
	sesh_msg_t m;
	size_t got = 0;
	int i, j, rc;
	sesh_t *d;

	tu_name(name, sizeof(name), "stbcon");
	d = open_dom(name, (size_t)1 << 20, 0);
	mk_session(d, "c", 0);
	s = sub(d, "c", SESH_FROM_OLDEST);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		unsigned char one[8];
		sesh_t *k = NULL;

		tu_die_with(parent);
		alarm(20);
		if (sesh_open(name, NULL, NULL, 0, &k) != 0)
			_exit(2);
		for (i = 0; i < SINGLES; i++) {
			one[0] = 'S';
			tag = (uint32_t)i;
			memcpy(one + 1, &tag, 4);
			memset(one + 5, 's', 3);
			if (sesh_publish(k, "c", one, sizeof(one), NULL) != 0)
				_exit(3);
		}
		sesh_close(k);
		_exit(0);
	}
	for (i = 0; i < BATCHES; i++) {
		for (j = 0; j < PER; j++) {
			bdata[i][j][0] = 'B';
			tag = (uint32_t)(i * PER + j);
			memcpy(bdata[i][j] + 1, &tag, 4);
			memset(bdata[i][j] + 5, 'b', 3);
			bufs[j].data = bdata[i][j];
			bufs[j].len = 8;
		}
		rc = sesh_publish_batch(d, "c", bufs, PER, bids[i]);
		if (rc != 0)
			fail_msg("batch %d: %s", i, sesh_strerror(rc));
		for (j = 1; j < PER; j++)
			assert_true(bids[i][j] > bids[i][j - 1]);
	}
	assert_int_equal(tu_wait(pid), 0);

	while ((rc = sesh_stream_next(s, &m, 0)) == 0) {
		if (m.len != 8)
			fail_msg("message %zu: %zu bytes", got, m.len);
		if (m.event_id <= prev)
			fail_msg("id %llu after %llu", ull(m.event_id),
				 ull(prev));
		prev = m.event_id;
		memcpy(&tag, (const char *)m.data + 1, 4);
		if (in_batch != 0 && ((const char *)m.data)[0] != 'B')
			fail_msg("a single message inside batch %u, after "
				 "its message %u",
				 next_batch, in_batch - 1);
		if (((const char *)m.data)[0] == 'S') {
			if (tag != next_single)
				fail_msg("single %u, want %u", tag,
					 next_single);
			next_single++;
		} else if (((const char *)m.data)[0] == 'B') {
			if (tag != next_batch * PER + in_batch)
				fail_msg("batch message %u, want %u", tag,
					 next_batch * PER + in_batch);
			if (m.event_id != bids[next_batch][in_batch])
				fail_msg("batch %u message %u: id %llu, "
					 "batch gave %llu",
					 next_batch, in_batch, ull(m.event_id),
					 ull(bids[next_batch][in_batch]));
			if (++in_batch == PER) {
				in_batch = 0;
				next_batch++;
			}
		} else {
			fail_msg("message %zu is not intact", got);
		}
		got++;
	}
	if (rc != -EAGAIN)
		fail_msg("sesh_stream_next after %zu: %s", got,
			 sesh_strerror(rc));
	assert_int_equal(next_single, SINGLES);
	assert_int_equal(next_batch, BATCHES);
	assert_int_equal(got, SINGLES + BATCHES * PER);

	sesh_stream_close(s);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* A batch with a bad message: what was published is exactly what has a
 * non-zero id, the rest is 0. */
static void batch_bad(sesh_t *d, sesh_stream_t *s, const sesh_buf_t *bufs,
		      size_t n, size_t bad, int want)
{
	uint64_t ids[8];
	size_t i;
	int rc;

	assert_true(n <= 8);
	memset(ids, 0xff, sizeof(ids));
	rc = sesh_publish_batch(d, "b", bufs, n, ids);
	if (rc != want)
		fail_msg("batch with a bad message %zu: %s (%d), want %s", bad,
			 sesh_strerror(rc), rc, sesh_strerror(want));
	for (i = bad; i < n; i++)
		if (ids[i] != 0)
			fail_msg("batch failed at %zu, yet id %zu is %llu", bad,
				 i, ull(ids[i]));
	for (i = 0; i < bad; i++)
		if (ids[i] != 0)
			expect_msg(s, ids[i], bufs[i].data, bufs[i].len);
	expect_rc(s, 0, -EAGAIN);
}

static void test_batch(void **state)
{
	enum { N = 10, HALF = 20, HALF_LEN = 110, WHOLE = 60, WHOLE_LEN = 100 };
	unsigned char data[N][256], hb[WHOLE][HALF_LEN], big[300];
	uint64_t ids[WHOLE], one_id = 12345, prev;
	sesh_buf_t bufs[WHOLE], one = {"x", 1};
	sesh_stream_t *s;
	struct tail t;
	char name[64];
	size_t i, j;
	sesh_t *d;

	tu_name(name, sizeof(name), "stbat");
	d = open_dom(name, 4096, 256);
	mk_session(d, "b", 0);
	s = sub(d, "b", SESH_FROM_OLDEST);

	/* n = 0 does nothing, even with msgs NULL. */
	assert_int_equal(sesh_publish_batch(d, "b", NULL, 0, NULL), 0);
	assert_int_equal(sesh_publish_batch(d, "b", &one, 0, &one_id), 0);
	expect_rc(s, 0, -EAGAIN);
	assert_int_equal(last_id_of(d, "b"), 0);

	/* Ten messages of 0..180 bytes: ten increasing ids, read in order. */
	for (i = 0; i < N; i++) {
		for (j = 0; j < sizeof(data[i]); j++)
			data[i][j] = (unsigned char)(i * 31 + j);
		bufs[i].data = i == 0 ? NULL : data[i];
		bufs[i].len = i * 20;
		ids[i] = 0;
	}
	assert_int_equal(sesh_publish_batch(d, "b", bufs, N, ids), 0);
	assert_true(ids[0] != 0);
	for (i = 1; i < N; i++)
		assert_true(ids[i] > ids[i - 1]);
	for (i = 0; i < N; i++)
		expect_msg(s, ids[i], bufs[i].data, bufs[i].len);
	expect_rc(s, 0, -EAGAIN);
	assert_int_equal(last_id_of(d, "b"), ids[N - 1]);

	/* event_ids may be NULL. */
	prev = ids[N - 1];
	assert_int_equal(sesh_publish_batch(d, "b", bufs + 1, 3, NULL), 0);
	for (i = 1; i < 4; i++) {
		sesh_msg_t m;

		next_ok(s, &m, 0);
		assert_true(m.event_id > prev);
		prev = m.event_id;
		assert_int_equal(m.len, bufs[i].len);
		assert_memory_equal(m.data, bufs[i].data, bufs[i].len);
	}
	expect_rc(s, 0, -EAGAIN);

	/* More than half the ring (2200 bytes of payload in 4096): claimed
	 * in parts, read whole. */
	for (i = 0; i < HALF; i++) {
		mk_payload(hb[i], (uint32_t)i, HALF_LEN);
		bufs[i].data = hb[i];
		bufs[i].len = HALF_LEN;
		ids[i] = 0;
	}
	assert_int_equal(sesh_publish_batch(d, "b", bufs, HALF, ids), 0);
	assert_true(ids[0] > prev);
	for (i = 1; i < HALF; i++)
		assert_true(ids[i] > ids[i - 1]);
	read_tail(s, ids, HALF, HALF_LEN, 0, &t);
	if (t.overflows)
		fail_msg("a batch of %d bytes lapped a reader of a 4096-byte "
			 "ring that had read everything before it",
			 HALF * HALF_LEN);
	assert_int_equal(t.first, 0);
	assert_int_equal(t.last, HALF - 1);

	/* More than the whole ring: it still works; the reader is lapped
	 * and then gets the tail intact. */
	for (i = 0; i < WHOLE; i++) {
		mk_payload(hb[i], (uint32_t)i, WHOLE_LEN);
		bufs[i].data = hb[i];
		bufs[i].len = WHOLE_LEN;
		ids[i] = 0;
	}
	assert_int_equal(sesh_publish_batch(d, "b", bufs, WHOLE, ids), 0);
	for (i = 1; i < WHOLE; i++)
		assert_true(ids[i] > ids[i - 1]);
	read_tail(s, ids, WHOLE, WHOLE_LEN, 0, &t);
	if (t.overflows != 1)
		fail_msg("a batch of %d bytes did not lap a reader of a "
			 "4096-byte ring",
			 WHOLE * WHOLE_LEN);
	assert_int_equal(t.last, WHOLE - 1);
	assert_int_equal(last_id_of(d, "b"), ids[WHOLE - 1]);

	/* A message too big, or NULL with a length, fails the batch. */
	for (i = 0; i < 3; i++) {
		bufs[i].data = data[i + 1];
		bufs[i].len = 10 + i;
	}
	memset(big, 'g', sizeof(big));
	bufs[2].data = big;
	bufs[2].len = 257;
	batch_bad(d, s, bufs, 3, 2, -E2BIG);
	bufs[2].len = 256; /* max_message itself is fine */
	bufs[1].data = NULL;
	batch_bad(d, s, bufs, 3, 1, -EINVAL);

	sesh_stream_close(s);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);

	batch_contiguity();
}

/* --- 5. zero-copy reads --------------------------------------------------- */

static void test_zero_copy(void **state)
{
	enum { LAP = 100, LEN = 100 };
	static uint64_t ids[3000];
	unsigned char buf[256];
	sesh_stream_t *s;
	sesh_msg_t m;
	struct tail t;
	char name[64];
	uint32_t tag;
	uint64_t e;
	size_t len;
	int i, zc;
	sesh_t *d;

	tu_name(name, sizeof(name), "stzc");
	d = open_dom(name, 4096, 256);
	mk_session(d, "z", 0);
	s = sub(d, "z", SESH_FROM_LATEST);
	assert_int_equal(sesh_stream_zc_valid(NULL), -EINVAL);
	assert_int_equal(sesh_stream_zc_valid(s), -EINVAL); /* fresh */

	e = pubs(d, "z", "zero-copy");
	memset(&m, 0, sizeof(m));
	assert_int_equal(sesh_stream_next_zc(s, &m, 0), 0);
	assert_int_equal(m.event_id, e);
	assert_int_equal(m.len, 9);
	assert_memory_equal(m.data, "zero-copy", 9);
	assert_int_equal(sesh_stream_zc_valid(s), 0);
	assert_int_equal(sesh_stream_zc_valid(s), 0);
	assert_int_equal(sesh_stream_next_zc(s, &m, 0), -EAGAIN);
	assert_int_equal(sesh_stream_zc_valid(s), -EINVAL);
	assert_int_equal(sesh_stream_next_zc(s, &m, 20), -ETIMEDOUT);
	assert_int_equal(sesh_stream_zc_valid(s), -EINVAL);
	/* A copied read is not a zero-copy one. */
	e = pubs(d, "z", "copied");
	expect_str(s, e, "copied");
	assert_int_equal(sesh_stream_zc_valid(s), -EINVAL);
	e = pub(d, "z", NULL, 0);
	memset(&m, 0x5a, sizeof(m));
	assert_int_equal(sesh_stream_next_zc(s, &m, 0), 0);
	assert_int_equal(m.event_id, e);
	assert_int_equal(m.len, 0);
	assert_null(m.data);
	assert_int_equal(sesh_stream_zc_valid(s), 0);

	/* Every length 0..max_message at every place of the ring, read
	 * zero-copy and copied in turn. */
	for (i = 0; i < 3000; i++) {
		len = (size_t)(i * 37) % 257;
		if (len >= 8)
			mk_payload(buf, (uint32_t)i, len);
		else
			memset(buf, i & 0xff, len);
		e = pub(d, "z", buf, len);
		zc = (i / 3) & 1;
		memset(&m, 0x5a, sizeof(m));
		if (zc)
			assert_int_equal(sesh_stream_next_zc(s, &m, 0), 0);
		else
			next_ok(s, &m, 0);
		if (m.event_id != e || m.len != len)
			fail_msg("message %d: id %llu len %zu, want id %llu "
				 "len %zu",
				 i, ull(m.event_id), m.len, ull(e), len);
		if (len >= 8 ? chk_payload(m.data, m.len, &tag) != 0 ||
				       tag != (uint32_t)i
			     : len > 0 && memcmp(m.data, buf, len) != 0)
			fail_msg("message %d (%zu bytes, %s) is not intact", i,
				 len, zc ? "zero-copy" : "copied");
		if (len == 0)
			assert_null(m.data);
		if (zc)
			assert_int_equal(sesh_stream_zc_valid(s), 0);
	}
	expect_rc(s, 0, -EAGAIN);

	/* Lapped while holding a zero-copy message. */
	mk_payload(buf, 0, LEN);
	ids[0] = pub(d, "z", buf, LEN);
	assert_int_equal(sesh_stream_next_zc(s, &m, 0), 0);
	assert_int_equal(m.event_id, ids[0]);
	assert_int_equal(sesh_stream_zc_valid(s), 0);
	for (i = 1; i < LAP; i++) {
		mk_payload(buf, (uint32_t)i, LEN);
		ids[i] = pub(d, "z", buf, LEN);
	}
	assert_int_equal(sesh_stream_zc_valid(s), -EOVERFLOW);
	/* The next read says where reading resumes. */
	read_tail(s, ids, LAP, LEN, 1, &t);
	if (t.overflows != 1)
		fail_msg("after zc_valid said -EOVERFLOW, the next read did "
			 "not");
	assert_true(t.resume > ids[0]);
	assert_int_equal(t.last, LAP - 1);
	assert_int_equal(sesh_stream_zc_valid(s), -EINVAL); /* -EAGAIN last */

	sesh_stream_close(s);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 6. delete while subscribed ------------------------------------------- */

static void test_delete(void **state)
{
	sesh_buf_t one = {"x", 1};
	uint64_t ea[3], eb[10], ec[5];
	unsigned char buf[64];
	sesh_stats_t st;
	struct child ch;
	sesh_stream_t *s;
	char name[64];
	uint32_t i;
	int asleep;
	sesh_t *d;

	alarm(60); /* hang guard of the parent; the children have theirs */
	tu_name(name, sizeof(name), "stdel");
	d = open_dom(name, 4096, 0);
	mk_session(d, "a", 0);
	mk_session(d, "b", 0);
	mk_session(d, "c", 0);
	for (i = 0; i < 3; i++) {
		mk_payload(buf, i, 40);
		ea[i] = pub(d, "a", buf, 40);
	}

	/* A subscriber blocked with nothing to read is woken by the delete
	 * alone. */
	st = stats_of(d);
	start_reader(&ch, name, "a", SESH_FROM_OLDEST, 3);
	for (i = 0; i < 3; i++)
		get_msg_rec(&ch, i, ea[i]);
	wait_ready(&ch);
	asleep = wait_sleeper(d, st.futex_waits, 10.0);
	if (!asleep)
		print_message("note: futex_waits did not move while the "
			      "subscriber waited; deleting anyway\n");
	tu_sleep_ms(20);
	st = stats_of(d);
	assert_int_equal(sesh_session_delete(d, "a"), 0);
	if (asleep && stats_of(d).futex_wakes <= st.futex_wakes)
		fail_msg("deleting a session with a sleeping subscriber made "
			 "no wake-up call");
	get_end_recs(&ch);
	end_child(&ch);

	/* The deleted session takes nothing more. */
	assert_int_equal(sesh_publish(d, "a", "x", 1, NULL), -ENOENT);
	assert_int_equal(sesh_publish_batch(d, "a", &one, 1, NULL), -ENOENT);
	sub_fails(d, "a", SESH_FROM_OLDEST, -ENOENT);
	sub_fails(d, "a", SESH_FROM_LATEST, -ENOENT);
	sub_fails(d, "a", ea[1], -ENOENT);
	assert_int_equal(sesh_session_delete(d, "a"), -ENOENT);

	/* Messages committed just before the delete come first. */
	st = stats_of(d);
	start_reader(&ch, name, "b", SESH_FROM_LATEST, 0);
	wait_ready(&ch);
	if (!wait_sleeper(d, st.futex_waits, 10.0))
		print_message("note: futex_waits did not move while the "
			      "subscriber waited\n");
	for (i = 0; i < 10; i++) {
		mk_payload(buf, i, 50);
		eb[i] = pub(d, "b", buf, 50);
	}
	assert_int_equal(sesh_session_delete(d, "b"), 0);
	for (i = 0; i < 10; i++)
		get_msg_rec(&ch, i, eb[i]);
	get_end_recs(&ch);
	end_child(&ch);

	/* A subscriber that read nothing drains the backlog, then -ENOENT,
	 * for good, whatever the timeout. */
	s = sub(d, "c", SESH_FROM_OLDEST);
	for (i = 0; i < 5; i++) {
		mk_payload(buf, i, 30);
		ec[i] = pub(d, "c", buf, 30);
	}
	assert_int_equal(sesh_session_delete(d, "c"), 0);
	for (i = 0; i < 5; i++)
		expect_tag(s, i, ec[i], 30);
	expect_rc(s, 0, -ENOENT);
	expect_rc(s, -1, -ENOENT);
	expect_rc(s, 50, -ENOENT);
	sesh_stream_close(s);

	alarm(0);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 7. re-create never reuses ids ---------------------------------------- */

static void test_recreate(void **state)
{
	uint64_t o[3], n[2], after[4], prev, e, r;
	sesh_stream_t *old, *fresh, *s;
	char name[64], p[16];
	int i;
	sesh_t *d;

	tu_name(name, sizeof(name), "strec");
	d = open_dom(name, 4096, 0);
	mk_session(d, "x", 0);
	for (i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "old-%d", i);
		o[i] = pubs(d, "x", p);
	}
	old = sub(d, "x", SESH_FROM_OLDEST);
	expect_str(old, o[0], "old-0");

	assert_int_equal(sesh_session_delete(d, "x"), 0);
	mk_session(d, "x", 0);
	assert_int_equal(last_id_of(d, "x"), 0);
	fresh = sub(d, "x", SESH_FROM_OLDEST);
	expect_rc(fresh, 0, -EAGAIN); /* an empty stream */
	n[0] = pubs(d, "x", "new-0");
	n[1] = pubs(d, "x", "new-1");
	if (n[0] <= o[2])
		fail_msg("the new incarnation's first id %llu is not above "
			 "the old one's last %llu",
			 ull(n[0]), ull(o[2]));
	assert_true(n[1] > n[0]);

	/* The old subscriber finishes the old incarnation and never sees
	 * the new one. */
	expect_str(old, o[1], "old-1");
	expect_str(old, o[2], "old-2");
	expect_rc(old, 0, -ENOENT);
	expect_rc(old, 0, -ENOENT);
	sesh_stream_close(old);
	expect_str(fresh, n[0], "new-0");
	expect_str(fresh, n[1], "new-1");
	expect_rc(fresh, 0, -EAGAIN);
	sesh_stream_close(fresh);

	/* An id of the old incarnation, message start or not, is accepted:
	 * -EOVERFLOW, then the new messages. */
	after[0] = o[0];
	after[1] = o[1];
	after[2] = o[2];
	after[3] = o[0] + 1;
	for (i = 0; i < 4; i++) {
		s = sub(d, "x", after[i]);
		r = expect_overflow(s);
		if (r > n[0])
			fail_msg("after old id %llu: resumes at %llu, past the "
				 "oldest retained %llu",
				 ull(after[i]), ull(r), ull(n[0]));
		expect_str(s, n[0], "new-0");
		expect_str(s, n[1], "new-1");
		expect_rc(s, 0, -EAGAIN);
		sesh_stream_close(s);
	}

	/* Ids keep growing over more incarnations. */
	prev = n[1];
	for (i = 0; i < 5; i++) {
		assert_int_equal(sesh_session_delete(d, "x"), 0);
		mk_session(d, "x", 0);
		e = pubs(d, "x", "again");
		if (e <= prev)
			fail_msg("incarnation %d: id %llu, not above %llu",
				 i + 3, ull(e), ull(prev));
		prev = e;
	}

	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 7b. the publisher's cache of targets ------------------------------- */

/* The ring a session's record names. */
static uint64_t ring_of(sesh_t *d, const char *id)
{
	uint64_t stream = 0;

	assert_true(idx_stream_lookup(d, id, &stream, NULL) >= 0);
	return stream;
}

/*
 * A thread remembers where it last published. The session goes, and its
 * ring is reused by another session: a publish to the old id must be
 * -ENOENT and land nowhere, in particular not in the ring's new stream.
 * A cached session that idles out is -ENOENT too, though nobody removed
 * it yet.
 */
static void test_publish_cache(void **state)
{
	uint64_t ra, rb = 0, e;
	sesh_stream_t *s;
	char name[64], b[32];
	int i;
	sesh_t *d;

	tu_name(name, sizeof(name), "stpc");
	d = open_dom(name, 4096, 0);
	mk_session(d, "a", 0);
	(void)pubs(d, "a", "a-0"); /* remembered */
	(void)pubs(d, "a", "a-1");
	ra = ring_of(d, "a");
	assert_int_equal(sesh_session_delete(d, "a"), 0);

	/* Sessions come and go until one is given a's ring. */
	for (i = 0; i < 4096; i++) {
		snprintf(b, sizeof(b), "b-%d", i);
		assert_int_equal(sesh_reap(d, NULL), 0); /* frees rings */
		mk_session(d, b, 0);
		rb = ring_of(d, b);
		if ((uint32_t)rb == (uint32_t)ra)
			break;
		assert_int_equal(sesh_session_delete(d, b), 0);
	}
	if ((uint32_t)rb != (uint32_t)ra)
		fail_msg("no session was given ring %u again",
			 (unsigned)(uint32_t)ra);
	assert_true(rb != ra); /* another generation */

	s = sub(d, b, SESH_FROM_OLDEST);
	assert_int_equal(sesh_publish(d, "a", "stray", 5, &e), -ENOENT);
	expect_rc(s, 0, -EAGAIN); /* nothing landed in b's stream */
	e = pubs(d, b, "b-0");
	expect_str(s, e, "b-0");
	expect_rc(s, 0, -EAGAIN);
	sesh_stream_close(s);

	/* a again: a new ring, found through the index. */
	mk_session(d, "a", 0);
	s = sub(d, "a", SESH_FROM_OLDEST);
	e = pubs(d, "a", "a-new");
	expect_str(s, e, "a-new");
	sesh_stream_close(s);

	/* Remembered, then idle past its TTL, never touched or removed. */
	mk_session(d, "short", 1);
	(void)pubs(d, "short", "s-0");
	(void)pubs(d, "short", "s-1");
	{
		struct timespec ts = {1, 300 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
	assert_int_equal(sesh_publish(d, "short", "late", 4, NULL), -ENOENT);

	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 8. expiry ------------------------------------------------------------ */

static void test_expiry(void **state)
{
	unsigned char buf[32];
	struct child ch;
	sesh_stream_t *s;
	uint64_t e[2], e2;
	double t0, tend;
	char name[64];
	uint32_t i;
	sesh_t *d;

	alarm(60);
	tu_name(name, sizeof(name), "stexp");
	d = open_dom(name, 4096, 0);
	t0 = tu_mono_s();
	mk_session(d, "e", 1);
	for (i = 0; i < 2; i++) {
		mk_payload(buf, i, 32);
		e[i] = pub(d, "e", buf, 32);
	}

	/* Nobody deletes the session: the blocked subscriber finds out by
	 * itself that it expired, after the two messages. */
	start_reader(&ch, name, "e", SESH_FROM_OLDEST, 2);
	get_msg_rec(&ch, 0, e[0]);
	get_msg_rec(&ch, 1, e[1]);
	wait_ready(&ch);
	tend = get_end_recs(&ch);
	end_child(&ch);
	print_message("-ENOENT %.2f s after creating a session of ttl 1 s\n",
		      tend - t0);
	if (tend - t0 < 0.5)
		fail_msg("-ENOENT %.3f s after creation, before the 1 s TTL "
			 "could have run out",
			 tend - t0);

	assert_int_equal(sesh_session_get(d, "e", NULL, NULL, NULL, 0),
			 -ENOENT);
	assert_int_equal(sesh_publish(d, "e", "x", 1, NULL), -ENOENT);
	sub_fails(d, "e", SESH_FROM_OLDEST, -ENOENT);

	/* Created again over the expired one: an empty stream, ids above
	 * the old ones. */
	mk_session(d, "e", 0);
	s = sub(d, "e", SESH_FROM_OLDEST);
	expect_rc(s, 0, -EAGAIN);
	e2 = pubs(d, "e", "reborn");
	if (e2 <= e[1])
		fail_msg("id %llu after expiry and re-create, not above %llu",
			 ull(e2), ull(e[1]));
	expect_str(s, e2, "reborn");
	sesh_stream_close(s);

	alarm(0);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 9. many publisher processes, one subscriber process ------------------ */

#define MP_PUBS 3
#define MP_N	20000
/* Messages in flight at most: 1000 * (200 + header) is well under 1 MiB. */
#define MP_WINDOW 1000

struct mp_shared {
	_Atomic uint64_t published;
	_Atomic uint64_t delivered;
	_Atomic int stop; /* someone failed: everyone stops */
};

struct mp_pub_rep {
	int rc;
	uint32_t done;
	uint32_t ids_bad; /* own ids not increasing */
};

struct mp_read_rep {
	int rc, setup, rc_after;
	uint64_t got, bad, bad_len, dup, gap, id_order;
	uint32_t next_seq[MP_PUBS];
};

static size_t mp_len(uint32_t tag)
{
	return 8 + mix32(tag ^ 0x5bd1e995u) % 193;
}

/* Too many messages unread: a publisher waits (unless told to stop). */
static int mp_full(struct mp_shared *sh)
{
	return atomic_load(&sh->published) - atomic_load(&sh->delivered) >=
		       MP_WINDOW &&
	       !atomic_load(&sh->stop);
}

static void mp_publisher(struct mp_shared *sh, sesh_t *k, const char *name,
			 uint32_t p, int out_fd)
{
	struct mp_pub_rep rep = {0, 0, 0};
	unsigned char buf[200];
	uint64_t e, last = 0;
	uint32_t seq, tag;
	size_t len;
	int spins;

	alarm(25);
	if (k == NULL && (rep.rc = sesh_open(name, NULL, NULL, 0, &k)) != 0)
		goto out;
	for (seq = 0; seq < MP_N && !atomic_load(&sh->stop); seq++) {
		/* Pace: never more than MP_WINDOW messages unread. */
		for (spins = 0; mp_full(sh); spins++) {
			if (spins < 100) {
				sched_yield();
			} else {
				struct timespec ts = {0, 100000};

				nanosleep(&ts, NULL);
			}
		}
		tag = p << 24 | seq;
		len = mp_len(tag);
		mk_payload(buf, tag, len);
		rep.rc = sesh_publish(k, "mp", buf, len, &e);
		if (rep.rc != 0)
			break;
		if (e <= last)
			rep.ids_bad++;
		last = e;
		rep.done++;
		atomic_fetch_add(&sh->published, 1);
	}
out:
	if (rep.rc != 0)
		atomic_store(&sh->stop, 1);
	tu_put(out_fd, &rep, sizeof(rep));
	sesh_close(k);
	_exit(0);
}

static void mp_reader(struct mp_shared *sh, const char *name, int ready_fd,
		      int out_fd)
{
	struct mp_read_rep rep;
	sesh_stream_t *s = NULL;
	uint64_t last = 0;
	sesh_t *k = NULL;
	uint32_t tag, p, seq;
	sesh_msg_t m;

	alarm(25);
	memset(&rep, 0, sizeof(rep));
	rep.rc = sesh_open(name, NULL, NULL, 0, &k);
	if (rep.rc == 0)
		rep.rc = sesh_subscribe(k, "mp", SESH_FROM_OLDEST, &s);
	if (rep.rc != 0) {
		rep.setup = 1;
		atomic_store(&sh->stop, 1);
		tu_put(out_fd, &rep, sizeof(rep));
		_exit(2);
	}
	tu_put(ready_fd, "r", 1);
	while (rep.got < (uint64_t)MP_PUBS * MP_N) {
		rep.rc = sesh_stream_next(s, &m, -1);
		if (rep.rc != 0)
			break;
		if (chk_payload(m.data, m.len, &tag) != 0 ||
		    (p = tag >> 24) >= MP_PUBS) {
			rep.bad++;
		} else if (m.len != mp_len(tag)) {
			rep.bad_len++;
		} else {
			seq = tag & 0xffffff;
			if (seq < rep.next_seq[p]) {
				rep.dup++;
			} else {
				if (seq > rep.next_seq[p])
					rep.gap++;
				rep.next_seq[p] = seq + 1;
			}
		}
		if (m.event_id <= last)
			rep.id_order++;
		last = m.event_id;
		rep.got++;
		atomic_fetch_add(&sh->delivered, 1);
	}
	if (rep.rc != 0)
		atomic_store(&sh->stop, 1);
	else
		rep.rc_after = sesh_stream_next(s, &m, 0);
	tu_put(out_fd, &rep, sizeof(rep));
	sesh_stream_close(s);
	sesh_close(k);
	_exit(0);
}

static void test_multiproc(void **state)
{
	int rdy[2], rout[2], pout[MP_PUBS][2], st;
	struct mp_pub_rep prep[MP_PUBS];
	pid_t parent = getpid(), rpid, ppid[MP_PUBS];
	struct mp_read_rep rrep;
	struct mp_shared *sh;
	struct pollfd pfd;
	sesh_stats_t s0, s1;
	sesh_config_t c;
	char name[64], b;
	double t0;
	uint32_t p;
	sesh_t *d;

	alarm(60);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(sh != MAP_FAILED);
	atomic_init(&sh->published, 0);
	atomic_init(&sh->delivered, 0);
	atomic_init(&sh->stop, 0);

	tu_name(name, sizeof(name), "stmp");
	tu_small(&c);
	c.max_sessions = 8;
	c.stream_bytes = (size_t)1 << 20;
	d = tu_create(name, &c);
	mk_session(d, "mp", 0);
	s0 = stats_of(d);

	assert_int_equal(pipe(rdy), 0);
	assert_int_equal(pipe(rout), 0);
	rpid = fork();
	assert_true(rpid >= 0);
	if (rpid == 0) {
		tu_die_with(parent);
		close(rdy[0]);
		close(rout[0]);
		mp_reader(sh, name, rdy[1], rout[1]);
	}
	close(rdy[1]);
	close(rout[1]);
	if (tu_get(rdy[0], &b, 1) != 0) {
		memset(&rrep, 0, sizeof(rrep));
		(void)tu_get(rout[0], &rrep, sizeof(rrep));
		fail_msg("the subscriber process could not start: %s",
			 sesh_strerror(rrep.rc));
	}

	/* Publishers 0 and 1 use the handle they inherit, 2 its own. */
	t0 = tu_mono_s();
	for (p = 0; p < MP_PUBS; p++) {
		assert_int_equal(pipe(pout[p]), 0);
		ppid[p] = fork();
		assert_true(ppid[p] >= 0);
		if (ppid[p] == 0) {
			tu_die_with(parent);
			close(pout[p][0]);
			mp_publisher(sh, p < 2 ? d : NULL, name, p, pout[p][1]);
		}
		close(pout[p][1]);
	}
	for (p = 0; p < MP_PUBS; p++) {
		memset(&prep[p], 0, sizeof(prep[p]));
		prep[p].rc = -9999;
		(void)tu_get(pout[p][0], &prep[p], sizeof(prep[p]));
		close(pout[p][0]);
		st = tu_wait(ppid[p]);
		if (st != 0 && prep[p].rc == 0)
			prep[p].rc = -9999;
	}
	/* The subscriber has all it needs now; if it is not done soon, it
	 * hangs (or a publisher failed and it waits for ever). */
	memset(&rrep, 0, sizeof(rrep));
	rrep.rc = -9999;
	pfd.fd = rout[0];
	pfd.events = POLLIN;
	for (p = 0; p < MP_PUBS && prep[p].rc == 0; p++)
		;
	if (poll(&pfd, 1, p < MP_PUBS ? 1000 : 10000) == 1)
		(void)tu_get(rout[0], &rrep, sizeof(rrep));
	else
		kill(rpid, SIGKILL);
	close(rout[0]);
	close(rdy[0]);
	st = tu_wait(rpid);
	print_message("%d publishers x %d messages: %.2f s; published %llu, "
		      "delivered %llu\n",
		      MP_PUBS, MP_N, tu_mono_s() - t0,
		      ull(atomic_load(&sh->published)),
		      ull(atomic_load(&sh->delivered)));
	for (p = 0; p < MP_PUBS; p++)
		print_message("publisher %u: %u published, then %s\n", p,
			      prep[p].done,
			      prep[p].rc == -9999 ? "died"
						  : sesh_strerror(prep[p].rc));
	print_message("subscriber: %llu read, then %s\n", ull(rrep.got),
		      rrep.rc == -9999 ? "hung or died"
				       : sesh_strerror(rrep.rc));
	for (p = 0; p < MP_PUBS; p++)
		if (prep[p].rc != 0)
			fail_msg("publisher %u: %s after %u messages", p,
				 prep[p].rc == -9999
					 ? "died"
					 : sesh_strerror(prep[p].rc),
				 prep[p].done);
	for (p = 0; p < MP_PUBS; p++) {
		assert_int_equal(prep[p].done, MP_N);
		assert_int_equal(prep[p].ids_bad, 0);
	}
	if (st != 0)
		fail_msg("subscriber exited with %d", st);
	if (rrep.rc == -EOVERFLOW)
		fail_msg("the subscriber was lapped after %llu messages, "
			 "though publishers kept within %d of it",
			 ull(rrep.got), MP_WINDOW);
	if (rrep.rc != 0)
		fail_msg("subscriber: %s after %llu messages",
			 rrep.rc == -9999 ? "died" : sesh_strerror(rrep.rc),
			 ull(rrep.got));
	if (rrep.bad || rrep.bad_len || rrep.dup || rrep.gap || rrep.id_order)
		fail_msg("subscriber: %llu not intact, %llu of a wrong length, "
			 "%llu duplicates, %llu gaps, %llu ids out of order",
			 ull(rrep.bad), ull(rrep.bad_len), ull(rrep.dup),
			 ull(rrep.gap), ull(rrep.id_order));
	assert_int_equal(rrep.got, (uint64_t)MP_PUBS * MP_N);
	for (p = 0; p < MP_PUBS; p++)
		assert_int_equal(rrep.next_seq[p], MP_N);
	assert_int_equal(rrep.rc_after, -EAGAIN);

	s1 = stats_of(d);
	assert_int_equal(s1.published - s0.published, (uint64_t)MP_PUBS * MP_N);
	assert_int_equal(s1.delivered - s0.delivered, (uint64_t)MP_PUBS * MP_N);
	assert_int_equal(s1.published_bytes - s0.published_bytes,
			 s1.delivered_bytes - s0.delivered_bytes);
	assert_int_equal(s1.lapped - s0.lapped, 0);
	assert_int_equal(s1.subscriptions - s0.subscriptions, 1);

	alarm(0);
	munmap(sh, sizeof(*sh));
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 10. futex and counter accounting ------------------------------------- */

static void test_accounting(void **state)
{
	enum { N = 1000 };
	unsigned char buf[64];
	sesh_stats_t a, b, c;
	struct child ch;
	sesh_stream_t *s;
	uint64_t bytes = 0, e;
	char name[64];
	sesh_msg_t m;
	size_t len;
	int i, rc;
	sesh_t *d;

	alarm(60);
	tu_name(name, sizeof(name), "stacct");
	d = open_dom(name, (size_t)1 << 18, 0);
	mk_session(d, "f", 0);
	a = stats_of(d);
	s = sub(d, "f", SESH_FROM_LATEST);
	b = stats_of(d);
	assert_int_equal(b.subscriptions - a.subscriptions, 1);

	/* No subscriber asleep: no wake-up call. */
	for (i = 0; i < N; i++) {
		len = (size_t)i % 50;
		memset(buf, i, len);
		pub(d, "f", buf, len);
		bytes += len;
	}
	c = stats_of(d);
	if (c.futex_wakes != b.futex_wakes)
		fail_msg("%llu wake-up calls for %d publishes with no "
			 "subscriber asleep",
			 ull(c.futex_wakes - b.futex_wakes), N);
	assert_int_equal(c.published - b.published, N);
	assert_int_equal(c.published_bytes - b.published_bytes, bytes);
	assert_int_equal(c.delivered, b.delivered);
	for (i = 0; i < N; i++) {
		next_ok(s, &m, 0);
		assert_int_equal(m.len, (size_t)i % 50);
	}
	expect_rc(s, 0, -EAGAIN);
	a = stats_of(d);
	assert_int_equal(a.delivered - c.delivered, N);
	assert_int_equal(a.delivered_bytes - c.delivered_bytes, bytes);
	assert_int_equal(a.futex_waits, c.futex_waits); /* never slept */
	assert_int_equal(a.lapped, c.lapped);
	assert_int_equal(a.futex_wakes, c.futex_wakes);

	/* A subscriber that timed out sleeps no more. */
	expect_rc(s, 30, -ETIMEDOUT);
	b = stats_of(d);
	for (i = 0; i < N; i++)
		pub(d, "f", "y", 1);
	c = stats_of(d);
	if (c.futex_wakes - b.futex_wakes > 1)
		fail_msg("%llu wake-up calls for %d publishes after the only "
			 "sleeper had timed out",
			 ull(c.futex_wakes - b.futex_wakes), N);
	if (c.futex_wakes != b.futex_wakes)
		print_message("note: one wake-up call for nobody after a "
			      "sleeper timed out (a stale waiter flag)\n");
	for (i = 0; (rc = sesh_stream_next(s, &m, 0)) == 0; i++)
		;
	assert_int_equal(rc, -EAGAIN);
	assert_int_equal(i, N);

	/* A subscriber of another process blocked in next(-1): it sleeps,
	 * and a publish wakes it. */
	a = stats_of(d);
	start_reader(&ch, name, "f", SESH_FROM_LATEST, 0);
	wait_ready(&ch);
	if (!wait_sleeper(d, a.futex_waits, 10.0))
		fail_msg("futex_waits did not increase in 10 s while a "
			 "subscriber was blocked in next(-1)");
	b = stats_of(d);
	mk_payload(buf, 7, 40);
	e = pub(d, "f", buf, 40);
	c = stats_of(d);
	if (c.futex_wakes <= b.futex_wakes)
		fail_msg("a publish to a sleeping subscriber made no wake-up "
			 "call");
	get_msg_rec(&ch, 7, e);
	assert_int_equal(sesh_session_delete(d, "f"), 0);
	get_end_recs(&ch);
	end_child(&ch);
	c = stats_of(d);
	assert_true(c.futex_waits > a.futex_waits);
	assert_int_equal(c.subscriptions - a.subscriptions, 1);
	assert_int_equal(c.published - a.published, 1);
	assert_int_equal(c.published_bytes - a.published_bytes, 40);
	assert_int_equal(c.delivered - a.delivered, 1);
	assert_int_equal(c.delivered_bytes - a.delivered_bytes, 40);
	assert_int_equal(c.lapped, a.lapped);

	sesh_stream_close(s);
	alarm(0);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 11. errors ----------------------------------------------------------- */

static void test_errors(void **state)
{
	char name[64], id128[SESH_ID_MAX + 1], id129[SESH_ID_MAX + 2];
	const char *bad[] = {"",	id129,	    "has space", "tab\there",
			     "del\x7f", "high\x80", "nl\n"};
	sesh_buf_t ok = {"x", 1}, nul = {NULL, 3};
	unsigned char big[300];
	sesh_stream_t *s, *t;
	sesh_stats_t st;
	sesh_msg_t m;
	uint64_t e;
	size_t i;
	sesh_t *d;

	tu_name(name, sizeof(name), "sterr");
	d = open_dom(name, 4096, 256);
	mk_session(d, "s", 0);
	memset(id128, 'a', SESH_ID_MAX);
	id128[SESH_ID_MAX] = '\0';
	memset(id129, 'b', SESH_ID_MAX + 1);
	id129[SESH_ID_MAX + 1] = '\0';
	memset(big, 'g', sizeof(big));
	s = sub(d, "s", SESH_FROM_LATEST);

	/* publish */
	assert_int_equal(sesh_publish(NULL, "s", "x", 1, &e), -EINVAL);
	assert_int_equal(sesh_publish(d, NULL, "x", 1, &e), -EINVAL);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sesh_publish(d, bad[i], "x", 1, &e), -EINVAL);
		assert_int_equal(sesh_publish_batch(d, bad[i], &ok, 1, NULL),
				 -EINVAL);
		sub_fails(d, bad[i], SESH_FROM_OLDEST, -EINVAL);
	}
	assert_int_equal(sesh_publish(d, "s", NULL, 1, &e), -EINVAL);
	assert_int_equal(sesh_publish(d, "s", big, 257, &e), -E2BIG);
	assert_int_equal(sesh_publish(d, "s", big, 300, NULL), -E2BIG);
	assert_int_equal(sesh_publish(d, "nosuch", "x", 1, &e), -ENOENT);
	assert_int_equal(sesh_publish(d, "nosuch", NULL, 0, NULL), -ENOENT);
	/* Nothing of that was published; max_message itself is fine. */
	e = pub(d, "s", big, 256);
	expect_msg(s, e, big, 256);
	expect_rc(s, 0, -EAGAIN);
	/* The longest id works. */
	mk_session(d, id128, 0);
	e = pubs(d, id128, "long id");
	t = sub(d, id128, SESH_FROM_OLDEST);
	expect_str(t, e, "long id");
	sesh_stream_close(t);

	/* publish_batch */
	assert_int_equal(sesh_publish_batch(NULL, "s", &ok, 1, NULL), -EINVAL);
	assert_int_equal(sesh_publish_batch(d, NULL, &ok, 1, NULL), -EINVAL);
	assert_int_equal(sesh_publish_batch(d, "s", NULL, 1, NULL), -EINVAL);
	assert_int_equal(sesh_publish_batch(d, "s", &nul, 1, NULL), -EINVAL);
	assert_int_equal(sesh_publish_batch(d, "nosuch", &ok, 1, NULL),
			 -ENOENT);
	expect_rc(s, 0, -EAGAIN);

	/* subscribe */
	sub_fails(NULL, "s", SESH_FROM_OLDEST, -EINVAL);
	sub_fails(d, NULL, SESH_FROM_OLDEST, -EINVAL);
	assert_int_equal(sesh_subscribe(d, "s", SESH_FROM_OLDEST, NULL),
			 -EINVAL);
	sub_fails(d, "nosuch", SESH_FROM_OLDEST, -ENOENT);
	sub_fails(d, "nosuch", SESH_FROM_LATEST, -ENOENT);
	sub_fails(d, "nosuch", 12345, -ENOENT);

	/* next, next_zc, zc_valid, close */
	assert_int_equal(sesh_stream_next(NULL, &m, 0), -EINVAL);
	assert_int_equal(sesh_stream_next(NULL, &m, -1), -EINVAL);
	assert_int_equal(sesh_stream_next(s, NULL, 0), -EINVAL);
	assert_int_equal(sesh_stream_next(s, &m, -2), -EINVAL);
	assert_int_equal(sesh_stream_next(s, &m, INT_MIN), -EINVAL);
	assert_int_equal(sesh_stream_next_zc(NULL, &m, 0), -EINVAL);
	assert_int_equal(sesh_stream_next_zc(s, NULL, 0), -EINVAL);
	assert_int_equal(sesh_stream_next_zc(s, &m, -2), -EINVAL);
	assert_int_equal(sesh_stream_next_zc(s, &m, INT_MIN), -EINVAL);
	assert_int_equal(sesh_stream_zc_valid(NULL), -EINVAL);
	sesh_stream_close(NULL);
	/* The refused calls left the stream as it was. */
	e = pubs(d, "s", "still fine");
	expect_str(s, e, "still fine");
	expect_rc(s, 0, -EAGAIN);

	/* stats */
	assert_int_equal(sesh_stats(NULL, &st), -EINVAL);
	assert_int_equal(sesh_stats(d, NULL), -EINVAL);

	sesh_stream_close(s);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* More than max_subscriptions streams in one process: -ENOSPC, until one
 * closes. */
static void test_max_subscriptions(void **state)
{
	pid_t parent = getpid(), pid;
	sesh_stream_t *ss[4], *t;
	sesh_config_t c;
	char name[64];
	uint64_t e;
	int i;
	sesh_t *d;

	tu_name(name, sizeof(name), "stmax");
	tu_small(&c);
	c.max_subscriptions = 4;
	d = tu_create(name, &c);
	assert_int_equal(info_of(d).max_subscriptions, 4);
	mk_session(d, "q", 0);
	for (i = 0; i < 4; i++)
		ss[i] = sub(d, "q", SESH_FROM_LATEST);
	sub_fails(d, "q", SESH_FROM_LATEST, -ENOSPC);
	sub_fails(d, "q", SESH_FROM_OLDEST, -ENOSPC);
	assert_int_equal(info_of(d).streams_open, 4);

	/* The limit is per process: a child, on the handle it inherited,
	 * has four of its own while the parent holds four. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		sesh_stream_t *cs[5];
		int rc;

		tu_die_with(parent);
		alarm(20);
		for (i = 0; i < 4; i++)
			if (sesh_subscribe(d, "q", SESH_FROM_LATEST, &cs[i]) !=
			    0)
				_exit(10 + i);
		rc = sesh_subscribe(d, "q", SESH_FROM_LATEST, &cs[4]);
		if (rc != -ENOSPC)
			_exit(rc == 0 ? 20 : 21);
		for (i = 0; i < 4; i++)
			sesh_stream_close(cs[i]);
		sesh_close(d);
		_exit(0);
	}
	i = tu_wait(pid);
	if (i != 0)
		fail_msg("child: %s (status %d)",
			 i >= 10 && i < 14 ? "could not open its own streams"
			 : i == 20	   ? "opened a fifth stream"
					   : "did not get -ENOSPC",
			 i);

	sesh_stream_close(ss[1]);
	ss[1] = sub(d, "q", SESH_FROM_LATEST);
	sub_fails(d, "q", SESH_FROM_LATEST, -ENOSPC);
	e = pubs(d, "q", "to all four");
	for (i = 0; i < 4; i++)
		expect_str(ss[i], e, "to all four");
	for (i = 0; i < 4; i++)
		sesh_stream_close(ss[i]);
	assert_int_equal(info_of(d).streams_open, 0);
	/* Closing gives the slots back for good. */
	for (i = 0; i < 50; i++) {
		t = sub(d, "q", SESH_FROM_LATEST);
		sesh_stream_close(t);
	}
	for (i = 0; i < 4; i++)
		ss[i] = sub(d, "q", SESH_FROM_LATEST);
	for (i = 0; i < 4; i++)
		sesh_stream_close(ss[i]);

	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* A session of one namespace does not exist for a handle of another. */
static void test_namespaces(void **state)
{
	sesh_buf_t ok = {"x", 1};
	sesh_stream_t *sa, *sb;
	sesh_t *da = NULL, *db;
	sesh_config_t c;
	uint64_t ea, eb;
	char name[64];
	int rc;

	tu_name(name, sizeof(name), "stns");
	tu_small(&c);
	rc = sesh_open(name, "nsa", &c, SESH_CREATE, &da);
	if (rc != 0)
		fail_msg("sesh_open: %s", sesh_strerror(rc));
	db = attach(name, "nsb");

	mk_session(da, "x", 0);
	ea = pubs(da, "x", "for a");
	assert_int_equal(sesh_publish(db, "x", "x", 1, NULL), -ENOENT);
	assert_int_equal(sesh_publish_batch(db, "x", &ok, 1, NULL), -ENOENT);
	sub_fails(db, "x", SESH_FROM_OLDEST, -ENOENT);
	sub_fails(db, "x", ea, -ENOENT);

	/* The same id in the other namespace is another stream. */
	mk_session(db, "x", 0);
	eb = pubs(db, "x", "for b");
	sa = sub(da, "x", SESH_FROM_OLDEST);
	sb = sub(db, "x", SESH_FROM_OLDEST);
	expect_str(sa, ea, "for a");
	expect_rc(sa, 0, -EAGAIN);
	expect_str(sb, eb, "for b");
	expect_rc(sb, 0, -EAGAIN);
	assert_int_equal(sesh_session_delete(db, "x"), 0);
	expect_rc(sb, 0, -ENOENT);
	ea = pubs(da, "x", "a lives");
	expect_str(sa, ea, "a lives");

	sesh_stream_close(sa);
	sesh_stream_close(sb);
	sesh_close(db);
	sesh_close(da);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 12. stream handles and counts ---------------------------------------- */

static void test_handles(void **state)
{
	pid_t parent = getpid(), pid;
	int rdy[2], go[2];
	sesh_stream_t *s1, *s3;
	sesh_t *d1, *d2, *d3;
	char name[64], b;
	uint64_t e;

	alarm(60);
	tu_name(name, sizeof(name), "sthdl");
	d1 = open_dom(name, 4096, 0);
	d2 = attach(name, NULL);
	d3 = attach(name, NULL);
	assert_int_equal(info_of(d1).streams_open, 0);
	mk_session(d1, "h", 0);

	s1 = sub(d1, "h", SESH_FROM_OLDEST);
	assert_int_equal(info_of(d2).streams_open, 1);
	s3 = sub(d3, "h", SESH_FROM_OLDEST);
	assert_int_equal(info_of(d1).streams_open, 2);

	/* Closing other handles leaves the stream working. */
	e = pubs(d2, "h", "via d2");
	sesh_close(d2);
	expect_str(s1, e, "via d2");
	expect_str(s3, e, "via d2");
	sesh_stream_close(s3);
	assert_int_equal(info_of(d1).streams_open, 1);
	sesh_close(d3);
	e = pubs(d1, "h", "after the closes");
	expect_str(s1, e, "after the closes");
	expect_rc(s1, 0, -EAGAIN);

	/* A failed subscribe opens nothing. */
	sub_fails(d1, "nosuch", SESH_FROM_OLDEST, -ENOENT);
	sub_fails(d1, "h", e + 1, -EINVAL);
	assert_int_equal(info_of(d1).streams_open, 1);

	/* Another process's streams count too. */
	assert_int_equal(pipe(rdy), 0);
	assert_int_equal(pipe(go), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		sesh_stream_t *cs = NULL;
		sesh_t *k = NULL;

		tu_die_with(parent);
		alarm(20);
		close(rdy[0]);
		close(go[1]);
		if (sesh_open(name, NULL, NULL, 0, &k) != 0)
			_exit(2);
		if (sesh_subscribe(k, "h", SESH_FROM_LATEST, &cs) != 0)
			_exit(3);
		tu_put(rdy[1], "r", 1);
		if (tu_get(go[0], &b, 1) != 0)
			_exit(4);
		sesh_stream_close(cs);
		sesh_close(k);
		_exit(0);
	}
	close(rdy[1]);
	close(go[0]);
	if (tu_get(rdy[0], &b, 1) != 0)
		fail_msg("child failed: status %d", tu_wait(pid));
	assert_int_equal(info_of(d1).streams_open, 2);
	tu_put(go[1], "g", 1);
	assert_int_equal(tu_wait(pid), 0);
	close(rdy[0]);
	close(go[1]);
	assert_int_equal(info_of(d1).streams_open, 1);

	e = pubs(d1, "h", "still here");
	expect_str(s1, e, "still here");
	sesh_stream_close(s1);
	assert_int_equal(info_of(d1).streams_open, 0);

	alarm(0);
	sesh_close(d1);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- configuration of streams --------------------------------------------- */

static void bad_config(const sesh_config_t *c, const char *what)
{
	char name[64];
	sesh_t *d = NULL;
	int rc;

	tu_name(name, sizeof(name), "stcfg");
	rc = sesh_open(name, NULL, c, SESH_CREATE, &d);
	if (rc != -EINVAL) {
		if (rc == 0) {
			sesh_close(d);
			sesh_unlink(name);
		}
		fail_msg("%s: %s, want -EINVAL", what, sesh_strerror(rc));
	}
	assert_null(d);
	assert_false(tu_exists(name));
}

static void test_config(void **state)
{
	sesh_config_t c;
	sesh_info_t inf;
	char name[64];
	sesh_t *d;

	sesh_config_init(&c);
	assert_int_equal(c.stream_bytes, 65536);
	assert_int_equal(c.max_message, 0);
	assert_int_equal(c.unblock_ms, 1000);
	assert_int_equal(c.max_subscriptions, 4096);

	tu_small(&c);
	c.stream_bytes = 3000;
	bad_config(&c, "stream_bytes 3000");
	c.stream_bytes = 2048;
	bad_config(&c, "stream_bytes 2048");
	tu_small(&c);
	c.max_message = 2049;
	bad_config(&c, "max_message over stream_bytes / 2");
	tu_small(&c);
	c.unblock_ms = 0;
	bad_config(&c, "unblock_ms 0");
	c.unblock_ms = 60001;
	bad_config(&c, "unblock_ms 60001");
	tu_small(&c);
	c.max_subscriptions = 0;
	bad_config(&c, "max_subscriptions 0");
	c.max_subscriptions = SESH_MAX_SUBSCRIPTIONS + 1;
	bad_config(&c, "max_subscriptions over SESH_MAX_SUBSCRIPTIONS");

	/* The edges are allowed, and sesh_info() reports them. */
	tu_name(name, sizeof(name), "stcfg");
	tu_small(&c);
	c.stream_bytes = 8192;
	c.max_message = 4096;
	c.unblock_ms = 60000;
	c.max_subscriptions = 7;
	d = tu_create(name, &c);
	inf = info_of(d);
	assert_int_equal(inf.stream_bytes, 8192);
	assert_int_equal(inf.max_message, 4096);
	assert_int_equal(inf.unblock_ms, 60000);
	assert_int_equal(inf.max_subscriptions, 7);
	assert_int_equal(inf.streams_open, 0);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);

	tu_name(name, sizeof(name), "stcfg");
	tu_small(&c);
	d = tu_create(name, &c);
	inf = info_of(d);
	assert_int_equal(inf.max_message, 1024); /* 4096 / 4 */
	assert_int_equal(inf.unblock_ms, 1000);
	assert_int_equal(inf.max_subscriptions, 4096);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* A test that failed half-way must not leave its hang guard armed. */
static int disarm(void **state)
{
	alarm(0);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_config, disarm),
		cmocka_unit_test_teardown(test_basics, disarm),
		cmocka_unit_test_teardown(test_resume, disarm),
		cmocka_unit_test_teardown(test_lapping, disarm),
		cmocka_unit_test_teardown(test_batch, disarm),
		cmocka_unit_test_teardown(test_zero_copy, disarm),
		cmocka_unit_test_teardown(test_delete, disarm),
		cmocka_unit_test_teardown(test_recreate, disarm),
		cmocka_unit_test_teardown(test_publish_cache, disarm),
		cmocka_unit_test_teardown(test_expiry, disarm),
		cmocka_unit_test_teardown(test_multiproc, disarm),
		cmocka_unit_test_teardown(test_accounting, disarm),
		cmocka_unit_test_teardown(test_errors, disarm),
		cmocka_unit_test_teardown(test_max_subscriptions, disarm),
		cmocka_unit_test_teardown(test_namespaces, disarm),
		cmocka_unit_test_teardown(test_handles, disarm),
	};

	signal(SIGPIPE, SIG_IGN); /* a dead child shows as EPIPE */
	if (getenv("SESH_TEST_FILTER") != NULL) /* e.g. "test_batch" */
		cmocka_set_test_filter(getenv("SESH_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
