/*
 * bench_stream.c - one-way latency, round-trip latency and throughput of
 * message streams between processes: sesh, a Unix-domain socketpair (uds)
 * and Redis streams over a Unix socket (redis).
 *
 *   bench_stream latency    --system S --size N --mode spin|sleep
 *                           --rate R --seconds T [--redis-socket PATH]
 *   bench_stream pingpong   --system sesh|uds --size N --mode spin|sleep
 *                           --seconds T
 *   bench_stream throughput --system S --publishers P --size N --batch B
 *                           --seconds T [--redis-socket PATH]
 *
 * Each run prints one JSON line with bench_emit(), case stream.latency,
 * stream.pingpong or stream.throughput; progress, losses and errors go to
 * stderr.
 *
 * How it works. The parent sets the system up (a new sesh domain with one
 * session, two for ping-pong; a SOCK_SEQPACKET socketpair; or a new Redis
 * key), forks the subscriber and the publishers, or the pinger and the
 * ponger, and waits for them in sigtimedwait():
 * a child that fails, SIGINT or SIGTERM, or a deadline makes it kill the
 * others, then it removes the domain or the key and exits 1. Children die
 * with the parent (PR_SET_PDEATHSIG). They meet in a control block made
 * by bench_shared(), which also holds the histogram: the subscriber fills
 * it, the parent reads it once the subscriber has exited.
 *
 * A message starts with an 8-byte stamp in ticks of bench.h's clock,
 * calibrated once in the parent before the forks, so that stamps taken in
 * one process compare with the clock read in another. Two values no clock
 * gives mark warm-up messages (not recorded) and the end of the run (sent
 * last; the subscriber exits on it).
 *
 * Latency. Publisher on CPU 0, subscriber on CPU 1. At --rate R, message
 * i is due at t0 + i / R: the publisher spins until then and stamps the
 * message with that intended time, so a publisher that falls behind shows
 * as latency, not as fewer samples (no coordinated omission). With
 * --rate 0 it sends back to back and stamps the time it sends. On receipt
 * the subscriber records now - stamp. spin polls (sesh_stream_next() with
 * timeout 0, recv() with MSG_DONTWAIT); sleep waits in the call (timeout
 * -1, a blocking recv(), XREAD BLOCK 0; redis has only this mode). The
 * sesh subscriber uses the copying sesh_stream_next(), as the others copy.
 * Messages stamped in the first 10 % of the run are not recorded.
 * ops_per_s is the recorded messages over the time from the first to the
 * last of them.
 *
 * Flow control. A sesh ring overwrites what a slow subscriber has not
 * read, and Redis trims it; the lost messages would leave the histogram
 * instead of showing in it. So the publisher keeps at most 64 messages in
 * flight, in every system and at every rate: the subscriber acks its count
 * in the control block after each message, and the publisher reads that
 * count only when its last copy says the window is full. At a rate the
 * subscriber keeps up with, the window never fills; past it the publisher
 * waits and latency grows from the intended times. With --rate 0 the
 * figure is thus the latency through a queue kept 64 deep.
 *
 * Before t0 the sesh publisher sends one ring's worth of warm-up messages:
 * each process maps the pages of a shared object on first touch, a cost
 * paid once per page and process that would otherwise land in the
 * percentiles of a short run.
 *
 * Ping-pong. The pinger, on CPU 0, sends a message of --size bytes; the
 * ponger, on CPU 1, receives it and sends one of the same size back; the
 * pinger records the time from before its send to after it received the
 * reply, and starts the next exchange at once. sesh carries the messages
 * in two sessions of one domain, "ping" and "pong", and each side
 * subscribes to the one it receives on before the pinger starts (the
 * ready count); uds sends both ways on the one socketpair. spin and sleep
 * are as for latency, on both sides. One message is in flight at a time,
 * so no flow control is needed and a lap is an error; the pinger checks
 * that each reply carries the stamp it sent. The sesh pair first makes
 * one ring's worth of warm-up exchanges, polling whatever the mode, for
 * the reason above. Then the run lasts --seconds; exchanges begun in the
 * first 10 % are not recorded. ops_per_s is round trips per second: the
 * recorded exchanges over the time from the start of the first to the
 * end of the last. The pinger ends the run with the end mark.
 *
 * Throughput. P publishers, publisher i on CPU i (modulo the CPUs), the
 * subscriber on the last CPU: with two CPUs, P >= 2 shares CPUs, which is
 * the scaling figure. Publishers send batches of B as fast as they can
 * (sesh_publish(), or sesh_publish_batch() for B > 1; sendmmsg() on the
 * socket end they all share; B pipelined XADDs) until the parent says
 * stop, --seconds after go. The subscriber waits in the call (timeout -1,
 * recvmmsg(), XREAD BLOCK 0). The first 10 % of the run is warm-up; the
 * subscriber counts the messages received from the first one after it to
 * the first one after stop (or to stop itself, if it had caught up), and
 * ops_per_s is that count over that time. The histogram holds, for each
 * 1024 messages received in that span, their time / 1024: p50_ns is the
 * median cost per message over windows of 1024.
 *
 * Throughput flow control. A sesh publisher waits while its last event id
 * is more than W ahead of the last one the subscriber read (event ids are
 * consecutive, so the difference counts every publisher's messages, with
 * no counter shared by the publishers), then until it is max(W / 2, B)
 * ahead. W is half the messages the ring holds, less P x B for publishers
 * whose last id is stale, and at least B. Redis publishers reserve each
 * batch on a shared counter and wait the same way against the subscriber's
 * count, with W = min(8192, MAXLEN / 4). A socketpair needs nothing: its
 * send buffer blocks the senders. Messages lost all the same (sesh laps)
 * are reported on stderr and never counted as received.
 *
 * Redis keeps its stream bounded with XADD MAXLEN ~ min(100000,
 * 256 MiB / size), so no window lets it trim unread entries.
 */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif

#include "sesh.h"
#include "bench/bench.h"

#define NS_PER_S 1000000000ull

#define MSG_MIN	       8     /* the stamp */
#define MSG_MAX	       16384 /* the domain's max_message */
#define MAX_PUBLISHERS 64
#define MAX_BATCH      1024
#define MAX_SECONDS    3600.0

#define STAMP_WARM (UINT64_MAX - 1) /* warm-up message: not recorded */
#define STAMP_END  UINT64_MAX	    /* last message of the run */

#define LAT_WINDOW	64	    /* latency: messages in flight at most */
#define TP_HIST_WINDOW	1024	    /* throughput: messages per sample */
#define LAT_RING	(4u << 20)  /* stream_bytes, latency */
#define TP_RING		(16u << 20) /* stream_bytes, throughput */
#define RING_SLOT_BYTES 128	    /* a ring retains stream_bytes / 128 */
#define SESH_SESSIONS	16
#define SESH_TTL_S	86400
#define SID		"bench"
#define PING_SID	"ping" /* ping-pong: pinger to ponger */
#define PONG_SID	"pong" /* and back */

#define UDS_BUF	       (4 << 20) /* SO_SNDBUF and SO_RCVBUF asked for */
#define UDS_RECV_BATCH 64	 /* recvmmsg() vector */

#define REDIS_MAXLEN	100000ull
#define REDIS_MAX_BYTES (256ull << 20)
#define REDIS_WINDOW	8192ull
#define REDIS_COUNT	1024 /* XREAD COUNT */

#define READY_TIMEOUT_NS (30 * NS_PER_S)
#define EXIT_TIMEOUT_NS	 (30 * NS_PER_S)

enum kind { LATENCY, THROUGHPUT, PINGPONG };
enum sys { SYS_SESH, SYS_UDS, SYS_REDIS, SYS_NONE };
enum phase { PH_SETUP, PH_WARM, PH_MEASURE, PH_STOP };

static const char *const sys_names[] = {"sesh", "uds", "redis"};

struct opts {
	enum kind kind;
	enum sys sys;
	size_t size;
	bool spin;
	double rate;
	double seconds;
	unsigned publishers;
	unsigned batch;
	const char *redis_socket;
};

/* Shared by the parent and its children; zeroed by bench_shared(). */
struct ctl {
	/*
	 * The subscriber's ack, stored after every message; publishers read
	 * it only when their window looks full. A line of its own.
	 */
	_Alignas(64) _Atomic uint64_t acked;
	/* Redis throughput: messages the publishers have reserved. */
	_Alignas(64) _Atomic uint64_t reserved;
	/* Read-mostly. */
	_Alignas(64) _Atomic int ready; /* children set up */
	_Atomic int phase;		/* enum phase, throughput */
	_Atomic uint64_t t0;		/* latency: tick of message 0 */
	_Atomic uint64_t t_stop;	/* throughput: tick of PH_STOP */
	_Atomic uint64_t sent;		/* publishers add their counts */
	/* Written by the subscriber, read after it exited. */
	uint64_t received; /* every message but the end mark */
	uint64_t counted;  /* recorded, or counted for throughput */
	uint64_t span_ticks;
	uint64_t lapped, lost;
	struct hist h;
};

/* What the parent set up; children get a copy with fork(). */
struct bench {
	struct opts o;
	struct ctl *ctl;
	uint64_t window; /* throughput flow control; see the top */
	uint64_t prefill;
	/* sesh */
	char dname[SESH_NAME_MAX + 1];
	sesh_t *d;
	bool linked;
	uint64_t base; /* event id of the parent's first message */
	/* uds */
	int fd[2];
	/* redis */
	char key[64];
	unsigned long long maxlen;
#ifdef HAVE_HIREDIS
	redisContext *rc;
#endif
	bool key_made;
};

/* One end of the stream, in one process. */
struct ep {
	struct bench *b;
	const char *who;
	/* sesh */
	const char *sid; /* the session whose stream this end uses */
	sesh_stream_t *st;
	sesh_buf_t *bufs;
	uint64_t *ids;
	uint64_t last_id; /* read, or published */
	uint64_t lapped, lost;
	/* uds */
	int fd;
	struct mmsghdr *mm;
	struct iovec *iov;
	uint8_t *rbuf;
	unsigned rn, ri;
#ifdef HAVE_HIREDIS
	/* redis */
	redisContext *rc;
	redisReply *rep;
	size_t rpos;
	char last[64];
#endif
};

struct kids {
	unsigned n;
	pid_t pid[MAX_PUBLISHERS + 1];
	bool gone[MAX_PUBLISHERS + 1];
	char role[MAX_PUBLISHERS + 1][24];
};

typedef int (*child_fn)(struct bench *b, unsigned idx);

static sigset_t wait_set, old_set;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("bench_stream: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

static void pin(int cpu, const char *who)
{
	int r = bench_pin(cpu);

	if (r)
		say("%s: cannot pin to CPU %d (%s); going on unpinned", who,
		    cpu, strerror(-r));
}

/* Wait, in a child, until *v >= want. */
static void wait_for(_Atomic int *v, int want)
{
	unsigned k = 0;

	while (atomic_load_explicit(v, memory_order_acquire) < want) {
		if (++k % 64 == 0)
			sched_yield();
		else
			cpu_relax();
	}
}

static uint64_t align8(uint64_t n)
{
	return (n + 7) & ~(uint64_t)7;
}

/* ---------------------------------------------------------------------
 * The ends of a stream: open, send, receive, close.
 */

/*
 * Open an end on session @p sid (sesh) or socket @p fd (uds): a
 * subscriber's if @p sub, else a publisher's sending up to @p batch at once.
 */
static int ep_open(struct ep *e, struct bench *b, const char *who,
		   const char *sid, int fd, bool sub, unsigned batch)
{
	int r;

	memset(e, 0, sizeof(*e));
	e->b = b;
	e->who = who;
	e->sid = sid;
	e->fd = -1;
	switch (b->o.sys) {
	case SYS_SESH:
		e->last_id = b->base;
		if (sub) {
			r = sesh_subscribe(b->d, sid, SESH_FROM_LATEST, &e->st);
			if (r) {
				say("%s: sesh_subscribe: %s", who,
				    sesh_strerror(r));
				return -1;
			}
			return 0;
		}
		/* A forked child registers on its first call: do it now. */
		r = sesh_session_get(b->d, sid, NULL, NULL, NULL, 0);
		if (r) {
			say("%s: sesh_session_get: %s", who, sesh_strerror(r));
			return -1;
		}
		if (batch > 1) {
			e->bufs = calloc(batch, sizeof(*e->bufs));
			e->ids = calloc(batch, sizeof(*e->ids));
			if (!e->bufs || !e->ids)
				goto nomem;
		}
		return 0;
	case SYS_UDS:
		e->fd = fd;
		if (sub && b->o.kind == THROUGHPUT) {
			unsigned i;

			e->mm = calloc(UDS_RECV_BATCH, sizeof(*e->mm));
			e->iov = calloc(UDS_RECV_BATCH, sizeof(*e->iov));
			e->rbuf = malloc(UDS_RECV_BATCH * b->o.size);
			if (!e->mm || !e->iov || !e->rbuf)
				goto nomem;
			for (i = 0; i < UDS_RECV_BATCH; i++) {
				e->iov[i].iov_base = e->rbuf + i * b->o.size;
				e->iov[i].iov_len = b->o.size;
				e->mm[i].msg_hdr.msg_iov = &e->iov[i];
				e->mm[i].msg_hdr.msg_iovlen = 1;
			}
		} else if (sub) {
			e->rbuf = malloc(b->o.size);
			if (!e->rbuf)
				goto nomem;
		} else if (batch > 1) {
			e->mm = calloc(batch, sizeof(*e->mm));
			e->iov = calloc(batch, sizeof(*e->iov));
			if (!e->mm || !e->iov)
				goto nomem;
		}
		return 0;
	case SYS_REDIS:
#ifdef HAVE_HIREDIS
		e->rc = redisConnectUnix(b->o.redis_socket);
		if (!e->rc || e->rc->err) {
			say("%s: cannot connect to Redis at %s: %s", who,
			    b->o.redis_socket,
			    e->rc ? e->rc->errstr : "out of memory");
			return -1;
		}
		strcpy(e->last, "0-0");
		return 0;
#endif
	case SYS_NONE:
		break;
	}
	say("%s: no such system", who);
	return -1;
nomem:
	say("%s: out of memory", who);
	return -1;
}

static void ep_close(struct ep *e)
{
	sesh_stream_close(e->st);
	free(e->bufs);
	free(e->ids);
	free(e->mm);
	free(e->iov);
	free(e->rbuf);
#ifdef HAVE_HIREDIS
	if (e->rep)
		freeReplyObject(e->rep);
	if (e->rc)
		redisFree(e->rc);
#endif
	memset(e, 0, sizeof(*e));
}

static int send_sesh(struct ep *e, const void *msg, size_t len, unsigned n)
{
	struct bench *b = e->b;
	unsigned k;
	int r;

	if (n == 1) {
		r = sesh_publish(b->d, e->sid, msg, len, &e->last_id);
		if (r) {
			say("%s: sesh_publish: %s", e->who, sesh_strerror(r));
			return -1;
		}
		return 0;
	}
	for (k = 0; k < n; k++) {
		e->bufs[k].data = msg;
		e->bufs[k].len = len;
	}
	r = sesh_publish_batch(b->d, e->sid, e->bufs, n, e->ids);
	if (r) {
		say("%s: sesh_publish_batch: %s", e->who, sesh_strerror(r));
		return -1;
	}
	e->last_id = e->ids[n - 1];
	return 0;
}

static int send_uds(struct ep *e, const void *msg, size_t len, unsigned n)
{
	unsigned k, done = 0;
	ssize_t r;
	int m;

	if (n == 1) {
		do
			r = send(e->fd, msg, len, 0);
		while (r < 0 && errno == EINTR);
		if (r < 0) {
			say("%s: send: %s", e->who, strerror(errno));
			return -1;
		}
		if ((size_t)r != len) {
			say("%s: send: %zd bytes of %zu", e->who, r, len);
			return -1;
		}
		return 0;
	}
	for (k = 0; k < n; k++) {
		e->iov[k].iov_base = (void *)msg;
		e->iov[k].iov_len = len;
		memset(&e->mm[k], 0, sizeof(e->mm[k]));
		e->mm[k].msg_hdr.msg_iov = &e->iov[k];
		e->mm[k].msg_hdr.msg_iovlen = 1;
	}
	while (done < n) {
		m = sendmmsg(e->fd, e->mm + done, n - done, 0);
		if (m < 0 && errno == EINTR)
			continue;
		if (m <= 0) {
			say("%s: sendmmsg: %s", e->who,
			    m < 0 ? strerror(errno) : "sent nothing");
			return -1;
		}
		done += (unsigned)m;
	}
	return 0;
}

#ifdef HAVE_HIREDIS
/* Check a reply to XADD, and free it. */
static int xadd_reply(struct ep *e, redisReply *rep)
{
	int r = -1;

	if (!rep)
		say("%s: XADD: %s", e->who, e->rc->errstr);
	else if (rep->type == REDIS_REPLY_ERROR)
		say("%s: XADD: %s", e->who, rep->str);
	else if (rep->type != REDIS_REPLY_STRING)
		say("%s: XADD: unexpected reply of type %d", e->who, rep->type);
	else
		r = 0;
	if (rep)
		freeReplyObject(rep);
	return r;
}

static int send_redis(struct ep *e, const void *msg, size_t len, unsigned n)
{
	struct bench *b = e->b;
	void *rep;
	unsigned k;

	if (n == 1) {
		rep = redisCommand(e->rc, "XADD %s MAXLEN ~ %llu * d %b",
				   b->key, b->maxlen, msg, len);
		return xadd_reply(e, rep);
	}
	for (k = 0; k < n; k++) {
		if (redisAppendCommand(e->rc, "XADD %s MAXLEN ~ %llu * d %b",
				       b->key, b->maxlen, msg,
				       len) != REDIS_OK) {
			say("%s: XADD: %s", e->who, e->rc->errstr);
			return -1;
		}
	}
	for (k = 0; k < n; k++) {
		rep = NULL;
		if (redisGetReply(e->rc, &rep) != REDIS_OK) {
			say("%s: XADD: %s", e->who, e->rc->errstr);
			if (rep)
				freeReplyObject(rep);
			return -1;
		}
		if (xadd_reply(e, rep))
			return -1;
	}
	return 0;
}
#endif

/* Send @p n copies of a message. */
static int ep_send(struct ep *e, const void *msg, size_t len, unsigned n)
{
	switch (e->b->o.sys) {
	case SYS_SESH:
		return send_sesh(e, msg, len, n);
	case SYS_UDS:
		return send_uds(e, msg, len, n);
#ifdef HAVE_HIREDIS
	case SYS_REDIS:
		return send_redis(e, msg, len, n);
#endif
	default:
		return -1;
	}
}

static int recv_sesh(struct ep *e, bool spin, const void **data, size_t *len)
{
	sesh_msg_t m;
	int r;

	for (;;) {
		r = sesh_stream_next(e->st, &m, spin ? 0 : -1);
		if (r == 0)
			break;
		if (r == -EAGAIN && spin)
			continue;
		if (r != -EOVERFLOW) {
			say("%s: sesh_stream_next: %s", e->who,
			    sesh_strerror(r));
			return -1;
		}
		/* Lapped: reading resumes at m.event_id. */
		e->lapped++;
		if (m.event_id > e->last_id + 1)
			e->lost += m.event_id - e->last_id - 1;
		e->last_id = m.event_id - 1;
	}
	e->last_id = m.event_id;
	*data = m.data;
	*len = m.len;
	return 0;
}

static int recv_uds(struct ep *e, bool spin, const void **data, size_t *len)
{
	struct mmsghdr *h;
	ssize_t r;
	int n;

	if (!e->mm) {
		for (;;) {
			r = recv(e->fd, e->rbuf, e->b->o.size,
				 spin ? MSG_DONTWAIT : 0);
			if (r > 0)
				break;
			if (r == 0) {
				say("%s: recv: the socket was closed", e->who);
				return -1;
			}
			if (errno == EINTR ||
			    (spin && (errno == EAGAIN || errno == EWOULDBLOCK)))
				continue;
			say("%s: recv: %s", e->who, strerror(errno));
			return -1;
		}
		*data = e->rbuf;
		*len = (size_t)r;
		return 0;
	}
	if (e->ri == e->rn) {
		do
			n = recvmmsg(e->fd, e->mm, UDS_RECV_BATCH,
				     MSG_WAITFORONE, NULL);
		while (n < 0 && errno == EINTR);
		if (n <= 0) {
			say("%s: recvmmsg: %s", e->who,
			    n < 0 ? strerror(errno) : "nothing received");
			return -1;
		}
		e->rn = (unsigned)n;
		e->ri = 0;
	}
	h = &e->mm[e->ri++];
	if (h->msg_len == 0) {
		say("%s: recvmmsg: the socket was closed", e->who);
		return -1;
	}
	if (h->msg_hdr.msg_flags & MSG_TRUNC) {
		say("%s: recvmmsg: a message longer than %zu bytes", e->who,
		    e->b->o.size);
		return -1;
	}
	*data = h->msg_hdr.msg_iov->iov_base;
	*len = h->msg_len;
	return 0;
}

#ifdef HAVE_HIREDIS
static bool is_array(const redisReply *r, size_t n)
{
	return r->type == REDIS_REPLY_ARRAY && r->elements == n;
}

/*
 * Messages come from the last XREAD reply; when it is used up, the next
 * XREAD asks for what follows its last id. @p data stays valid until the
 * next call, as with sesh_stream_next().
 */
static int recv_redis(struct ep *e, const void **data, size_t *len)
{
	struct bench *b = e->b;
	redisReply *r, *ents, *ent, *f;

	for (;;) {
		if (e->rep) {
			ents = e->rep->element[0]->element[1];
			if (e->rpos < ents->elements)
				break;
			freeReplyObject(e->rep);
			e->rep = NULL;
		}
		r = redisCommand(e->rc, "XREAD COUNT %d BLOCK 0 STREAMS %s %s",
				 REDIS_COUNT, b->key, e->last);
		if (!r) {
			say("%s: XREAD: %s", e->who, e->rc->errstr);
			return -1;
		}
		if (r->type == REDIS_REPLY_NIL) {
			freeReplyObject(r);
			continue;
		}
		if (r->type == REDIS_REPLY_ERROR) {
			say("%s: XREAD: %s", e->who, r->str);
			freeReplyObject(r);
			return -1;
		}
		if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
		    !is_array(r->element[0], 2) ||
		    r->element[0]->element[1]->type != REDIS_REPLY_ARRAY) {
			say("%s: XREAD: unexpected reply", e->who);
			freeReplyObject(r);
			return -1;
		}
		e->rep = r;
		e->rpos = 0;
	}
	ent = ents->element[e->rpos++];
	if (!is_array(ent, 2) || ent->element[0]->type != REDIS_REPLY_STRING ||
	    ent->element[0]->len >= sizeof(e->last) ||
	    !is_array(ent->element[1], 2) ||
	    ent->element[1]->element[1]->type != REDIS_REPLY_STRING) {
		say("%s: XREAD: unexpected entry", e->who);
		return -1;
	}
	memcpy(e->last, ent->element[0]->str, ent->element[0]->len);
	e->last[ent->element[0]->len] = 0;
	f = ent->element[1]->element[1];
	*data = f->str;
	*len = f->len;
	return 0;
}
#endif

/* Receive one message: poll when @p spin, else wait in the call. */
static int ep_recv(struct ep *e, bool spin, const void **data, size_t *len)
{
	switch (e->b->o.sys) {
	case SYS_SESH:
		return recv_sesh(e, spin, data, len);
	case SYS_UDS:
		return recv_uds(e, spin, data, len);
#ifdef HAVE_HIREDIS
	case SYS_REDIS:
		return recv_redis(e, data, len);
#endif
	default:
		return -1;
	}
}

/* Receive one message of the run's size and read its stamp. */
static int recv_stamp(struct ep *e, bool spin, uint64_t *stamp)
{
	const void *data;
	size_t len;

	if (ep_recv(e, spin, &data, &len))
		return -1;
	if (len != e->b->o.size) {
		say("%s: a message of %zu bytes, not %zu", e->who, len,
		    e->b->o.size);
		return -1;
	}
	memcpy(stamp, data, sizeof(*stamp));
	return 0;
}

/* ---------------------------------------------------------------------
 * Setting up and tearing down a system, in the parent.
 */

/*
 * Create session @p sid, and publish a first message in it: it commits the
 * ring's memory before anything is timed, and its id, in *@p id, is where
 * the ids of the run start from.
 */
static int make_session(struct bench *b, const char *sid, const uint8_t *msg,
			uint64_t *id)
{
	int r;

	r = sesh_session_create(b->d, sid, NULL, NULL, 0, SESH_TTL_S, NULL);
	if (r) {
		say("sesh_session_create %s: %s", sid, sesh_strerror(r));
		return -1;
	}
	r = sesh_publish(b->d, sid, msg, b->o.size, id);
	if (r) {
		say("sesh_publish: %s", sesh_strerror(r));
		return -1;
	}
	return 0;
}

static int setup_sesh(struct bench *b, uint8_t *msg)
{
	sesh_config_t cfg;
	uint64_t pong_base;
	int r;

	snprintf(b->dname, sizeof(b->dname), "%s", bench_name("bench-stream"));
	sesh_config_init(&cfg);
	cfg.max_sessions = SESH_SESSIONS;
	cfg.stream_bytes = b->o.kind == THROUGHPUT ? TP_RING : LAT_RING;
	cfg.max_message = MSG_MAX;
	r = sesh_open(b->dname, NULL, &cfg, SESH_CREATE | SESH_EXCL, &b->d);
	if (r == -EEXIST) {
		/* Left by an earlier process with our pid. */
		say("removing a stale domain %s", b->dname);
		(void)sesh_unlink(b->dname);
		r = sesh_open(b->dname, NULL, &cfg, SESH_CREATE | SESH_EXCL,
			      &b->d);
	}
	if (r) {
		say("sesh_open %s: %s", b->dname, sesh_strerror(r));
		return -1;
	}
	b->linked = true;
	if (b->o.kind == PINGPONG) {
		/* Ping-pong reads no base: a lap is an error there. */
		if (make_session(b, PING_SID, msg, &b->base) ||
		    make_session(b, PONG_SID, msg, &pong_base))
			return -1;
	} else if (make_session(b, SID, msg, &b->base)) {
		return -1;
	}
	if (b->o.kind != THROUGHPUT) {
		b->prefill = LAT_RING / align8(b->o.size) + 1;
	} else {
		uint64_t cap = TP_RING / align8(b->o.size);
		uint64_t pb = (uint64_t)b->o.publishers * b->o.batch;

		if (cap > TP_RING / RING_SLOT_BYTES)
			cap = TP_RING / RING_SLOT_BYTES;
		b->window = cap / 2 > pb ? cap / 2 - pb : 0;
		if (b->window < b->o.batch)
			b->window = b->o.batch;
		atomic_store(&b->ctl->acked, b->base);
	}
	return 0;
}

static int setup_uds(struct bench *b)
{
	int sz = UDS_BUF, got = 0;
	socklen_t len = sizeof(got);

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, b->fd)) {
		say("socketpair: %s", strerror(errno));
		return -1;
	}
	if (setsockopt(b->fd[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)) ||
	    setsockopt(b->fd[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)) ||
	    getsockopt(b->fd[0], SOL_SOCKET, SO_SNDBUF, &got, &len)) {
		say("socket buffers: %s", strerror(errno));
		return -1;
	}
	if ((size_t)got < 4 * b->o.size) {
		say("SO_SNDBUF is %d bytes, too small for %zu-byte messages",
		    got, b->o.size);
		return -1;
	}
	say("uds: SO_SNDBUF %d bytes", got);
	return 0;
}

#ifdef HAVE_HIREDIS
static int setup_redis(struct bench *b)
{
	redisReply *r;

	snprintf(b->key, sizeof(b->key), "%s", bench_name("bench-stream"));
	b->maxlen = REDIS_MAX_BYTES / b->o.size;
	if (b->maxlen > REDIS_MAXLEN)
		b->maxlen = REDIS_MAXLEN;
	b->window = b->maxlen / 4 < REDIS_WINDOW ? b->maxlen / 4 : REDIS_WINDOW;
	if (b->window < b->o.batch)
		b->window = b->o.batch;
	b->rc = redisConnectUnix(b->o.redis_socket);
	if (!b->rc || b->rc->err) {
		say("cannot connect to Redis at %s: %s", b->o.redis_socket,
		    b->rc ? b->rc->errstr : "out of memory");
		return -1;
	}
	b->key_made = true;
	r = redisCommand(b->rc, "DEL %s", b->key);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		say("DEL %s: %s", b->key, r ? r->str : b->rc->errstr);
		if (r)
			freeReplyObject(r);
		return -1;
	}
	freeReplyObject(r);
	return 0;
}
#endif

static int setup(struct bench *b)
{
	uint8_t *msg = calloc(1, b->o.size);
	uint64_t stamp = STAMP_WARM;
	int r = -1;

	if (!msg) {
		say("out of memory");
		return -1;
	}
	memcpy(msg, &stamp, sizeof(stamp));
	switch (b->o.sys) {
	case SYS_SESH:
		r = setup_sesh(b, msg);
		break;
	case SYS_UDS:
		r = setup_uds(b);
		break;
#ifdef HAVE_HIREDIS
	case SYS_REDIS:
		r = setup_redis(b);
		break;
#endif
	default:
		break;
	}
	free(msg);
	return r;
}

/* Undo setup(), as far as it went; leaves nothing behind. */
static int teardown(struct bench *b)
{
	int r, ret = 0;

	if (b->d) {
		sesh_close(b->d);
		b->d = NULL;
	}
	if (b->linked) {
		b->linked = false;
		r = sesh_unlink(b->dname);
		if (r) {
			say("sesh_unlink %s: %s", b->dname, sesh_strerror(r));
			ret = -1;
		}
	}
	if (b->fd[0] >= 0)
		close(b->fd[0]);
	if (b->fd[1] >= 0)
		close(b->fd[1]);
	b->fd[0] = b->fd[1] = -1;
#ifdef HAVE_HIREDIS
	if (b->rc && b->key_made) {
		redisReply *rep = redisCommand(b->rc, "DEL %s", b->key);

		if (!rep || rep->type == REDIS_REPLY_ERROR) {
			say("DEL %s: %s", b->key,
			    rep ? rep->str : b->rc->errstr);
			ret = -1;
		}
		if (rep)
			freeReplyObject(rep);
	}
	b->key_made = false;
	if (b->rc)
		redisFree(b->rc);
	b->rc = NULL;
#endif
	return ret;
}

/* Send the end mark from the parent, once the publishers are gone. */
static int send_end(struct bench *b)
{
	struct ep e;
	uint8_t *msg = calloc(1, b->o.size);
	uint64_t stamp = STAMP_END;
	int r;

	if (!msg) {
		say("out of memory");
		return -1;
	}
	memcpy(msg, &stamp, sizeof(stamp));
	memset(&e, 0, sizeof(e));
	e.b = b;
	e.who = "parent";
	e.sid = SID;
	e.fd = b->fd[0];
#ifdef HAVE_HIREDIS
	e.rc = b->rc;
#endif
	r = ep_send(&e, msg, b->o.size, 1);
	free(msg);
	return r;
}

/* ---------------------------------------------------------------------
 * Children: started, watched, killed.
 */

static int spawn(struct kids *k, struct bench *b, const char *role, child_fn fn,
		 unsigned idx)
{
	pid_t parent = getpid(), pid;
	int r;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		say("fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &old_set, NULL);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 ||
		    getppid() != parent)
			_exit(1);
		r = fn(b, idx);
		if (b->d)
			sesh_close(b->d);
		_exit(r ? 1 : 0);
	}
	k->pid[k->n] = pid;
	k->gone[k->n] = false;
	snprintf(k->role[k->n], sizeof(k->role[k->n]), "%s", role);
	k->n++;
	return 0;
}

/*
 * Wait until the children [lo, hi) have exited, or until CLOCK_MONOTONIC
 * reaches @p until_ns. Returns 0 when they have exited, 1 at the deadline,
 * -1 (said on stderr) when a child failed or a signal asks to stop.
 */
static int kids_wait(struct kids *k, unsigned lo, unsigned hi,
		     uint64_t until_ns)
{
	struct timespec ts;
	uint64_t now;
	unsigned i;
	pid_t pid;
	int st, sig;
	bool all;

	for (;;) {
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			for (i = 0; i < k->n && k->pid[i] != pid; i++)
				;
			if (i == k->n)
				continue;
			k->gone[i] = true;
			if (WIFSIGNALED(st)) {
				say("%s was killed by signal %d (%s)",
				    k->role[i], WTERMSIG(st),
				    strsignal(WTERMSIG(st)));
				return -1;
			}
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
				say("%s failed", k->role[i]);
				return -1;
			}
		}
		all = lo < hi;
		for (i = lo; i < hi; i++)
			all = all && k->gone[i];
		if (all)
			return 0;
		now = bench_mono_ns();
		if (now >= until_ns)
			return 1;
		ts.tv_sec = (time_t)((until_ns - now) / NS_PER_S);
		ts.tv_nsec = (long)((until_ns - now) % NS_PER_S);
		sig = sigtimedwait(&wait_set, NULL, &ts);
		if (sig < 0 && errno != EAGAIN && errno != EINTR) {
			say("sigtimedwait: %s", strerror(errno));
			return -1;
		}
		if (sig > 0 && sig != SIGCHLD) {
			say("interrupted by signal %d (%s)", sig,
			    strsignal(sig));
			return -1;
		}
	}
}

static void kids_kill(struct kids *k)
{
	unsigned i;

	for (i = 0; i < k->n; i++)
		if (!k->gone[i])
			kill(k->pid[i], SIGKILL);
	for (i = 0; i < k->n; i++) {
		if (!k->gone[i])
			while (waitpid(k->pid[i], NULL, 0) < 0 &&
			       errno == EINTR)
				;
		k->gone[i] = true;
	}
}

/* Wait, with a deadline, for ctl->ready to reach @p n. */
static int kids_ready(struct kids *k, struct ctl *c, int n)
{
	uint64_t end = bench_mono_ns() + READY_TIMEOUT_NS, t;
	int r;

	while (atomic_load_explicit(&c->ready, memory_order_acquire) < n) {
		t = bench_mono_ns();
		if (t >= end) {
			say("the children were not ready within %llu s",
			    READY_TIMEOUT_NS / NS_PER_S);
			return -1;
		}
		r = kids_wait(k, 0, 0, t + 1000000);
		if (r < 0)
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * stream.latency
 */

static void lat_window(struct ctl *c, uint64_t sent, uint64_t *acked)
{
	while (sent - *acked >= LAT_WINDOW)
		*acked = atomic_load_explicit(&c->acked, memory_order_relaxed);
}

static int lat_pub(struct bench *b, unsigned idx)
{
	struct ctl *c = b->ctl;
	struct ep e;
	uint8_t *msg = NULL;
	uint64_t sent = 0, acked = 0, t0, t, i, n = 0, t_end = 0, stamp;
	double iv = 0;
	int r = -1;

	(void)idx;
	pin(0, "publisher");
	if (ep_open(&e, b, "publisher", SID, b->fd[0], false, 1))
		goto out;
	msg = calloc(1, b->o.size);
	if (!msg) {
		say("publisher: out of memory");
		goto out;
	}
	wait_for(&c->ready, 1);

	stamp = STAMP_WARM;
	memcpy(msg, &stamp, sizeof(stamp));
	for (i = 0; i < b->prefill; i++) {
		lat_window(c, sent, &acked);
		if (ep_send(&e, msg, b->o.size, 1))
			goto out;
		sent++;
	}

	t0 = bench_now();
	atomic_store_explicit(&c->t0, t0, memory_order_release);
	if (b->o.rate > 0) {
		iv = (double)bench_ticks(NS_PER_S) / b->o.rate;
		n = (uint64_t)(b->o.rate * b->o.seconds + 0.5);
		if (n == 0)
			n = 1;
	} else {
		t_end = t0 + bench_ticks((uint64_t)(b->o.seconds * 1e9));
	}
	for (i = 0;; i++) {
		if (b->o.rate > 0) {
			if (i >= n)
				break;
			/*
			 * Message i is due at t, whatever came before. The
			 * window is looked at first, so that reading the
			 * ack does not delay a message already due.
			 */
			t = t0 + (uint64_t)(iv * (double)i);
			lat_window(c, sent, &acked);
			bench_wait_until(t);
		} else {
			lat_window(c, sent, &acked);
			t = bench_now();
			if (t >= t_end)
				break;
		}
		memcpy(msg, &t, sizeof(t));
		if (ep_send(&e, msg, b->o.size, 1))
			goto out;
		sent++;
	}
	stamp = STAMP_END;
	memcpy(msg, &stamp, sizeof(stamp));
	if (ep_send(&e, msg, b->o.size, 1))
		goto out;
	atomic_store(&c->sent, sent);
	r = 0;
out:
	free(msg);
	ep_close(&e);
	return r;
}

static int lat_sub(struct bench *b, unsigned idx)
{
	struct ctl *c = b->ctl;
	struct ep e;
	uint64_t got = 0, rec = 0, stamp, now, first = 0, last = 0;
	uint64_t warm = bench_ticks((uint64_t)(b->o.seconds * 1e8));
	uint64_t from = 0;
	bool have_t0 = false;
	int r = -1;

	(void)idx;
	pin(1, "subscriber");
	if (ep_open(&e, b, "subscriber", SID, b->fd[1], true, 1))
		goto out;
	atomic_fetch_add(&c->ready, 1);
	for (;;) {
		if (recv_stamp(&e, b->o.spin, &stamp))
			goto out;
		now = bench_now();
		if (stamp == STAMP_END)
			break;
		got++;
		/* Counts only: orders nothing but itself. */
		atomic_store_explicit(&c->acked, got + e.lost,
				      memory_order_relaxed);
		if (stamp == STAMP_WARM)
			continue;
		if (!have_t0) {
			/* Stored before the first timed message was sent. */
			from = atomic_load_explicit(&c->t0,
						    memory_order_acquire) +
			       warm;
			have_t0 = true;
		}
		if (stamp < from)
			continue;
		hist_add(&c->h, now > stamp ? bench_ns(now - stamp) : 0);
		if (rec++ == 0)
			first = now;
		last = now;
	}
	c->received = got;
	c->counted = rec;
	c->span_ticks = last - first;
	c->lapped = e.lapped;
	c->lost = e.lost;
	r = 0;
out:
	ep_close(&e);
	return r;
}

/* The sesh counters, for stderr: whether subscribers slept, laps. */
static void say_sesh_stats(struct bench *b)
{
	sesh_stats_t s;
	int r;

	if (b->o.sys != SYS_SESH)
		return;
	r = sesh_stats(b->d, &s);
	if (r) {
		say("sesh_stats: %s", sesh_strerror(r));
		return;
	}
	say("sesh: %" PRIu64 " published, %" PRIu64 " delivered, %" PRIu64
	    " lapped, %" PRIu64 " publishes failed, %" PRIu64
	    " futex waits, %" PRIu64 " wakes",
	    s.published, s.delivered, s.lapped, s.publish_failed, s.futex_waits,
	    s.futex_wakes);
}

/* What was sent and not received, if anything. */
static void say_losses(struct ctl *c)
{
	uint64_t sent = atomic_load(&c->sent);

	if (c->lapped || c->lost)
		say("the subscriber was lapped %" PRIu64
		    " times and lost %" PRIu64 " messages",
		    c->lapped, c->lost);
	if (sent != c->received + c->lost)
		say("%" PRIu64 " messages sent, %" PRIu64 " received, %" PRIu64
		    " lost: %" PRId64 " unaccounted",
		    sent, c->received, c->lost,
		    (int64_t)(sent - c->received - c->lost));
}

/*
 * Run the two children of a latency or ping-pong run (r0 first) and wait
 * for both; *secs is the span the recorder measured. A publisher behind
 * its rate, or warm-up exchanges, may take longer than --seconds: the
 * deadline is ten times it, plus a minute. Returns 0 or -1 (said why).
 */
static int run_two(struct bench *b, struct kids *k, const char *r0,
		   child_fn f0, const char *r1, child_fn f1, const char *what,
		   double *secs)
{
	struct ctl *c = b->ctl;
	uint64_t deadline;
	int r;

	if (spawn(k, b, r0, f0, 0) || spawn(k, b, r1, f1, 0))
		return -1;
	deadline = bench_mono_ns() + (uint64_t)((10 * b->o.seconds + 60) * 1e9);
	r = kids_wait(k, 0, 2, deadline);
	if (r > 0)
		say("timed out: the run took over ten times --seconds");
	if (r)
		return -1;
	if (c->h.count == 0) {
		say("no %s was recorded (is the run too short?)", what);
		return -1;
	}
	*secs = (double)bench_ns(c->span_ticks) / 1e9;
	return 0;
}

static int run_latency(struct bench *b, struct kids *k)
{
	struct ctl *c = b->ctl;
	char params[128];
	double secs, ops = -1;

	if (run_two(b, k, "the subscriber", lat_sub, "the publisher", lat_pub,
		    "message", &secs))
		return -1;
	if (c->counted > 1 && secs > 0)
		ops = (double)(c->counted - 1) / secs;
	snprintf(params, sizeof(params),
		 "\"size\": %zu, \"mode\": \"%s\", \"rate\": %.15g", b->o.size,
		 b->o.spin ? "spin" : "sleep", b->o.rate);
	bench_emit("stream.latency", sys_names[b->o.sys], params, &c->h, ops);
	say("stream.latency %s size %zu %s rate %.15g: %" PRIu64
	    " recorded of %" PRIu64 " received; p50 %" PRIu64
	    " ns, p99 %" PRIu64 " ns, max %" PRIu64 " ns; %.0f msg/s",
	    sys_names[b->o.sys], b->o.size, b->o.spin ? "spin" : "sleep",
	    b->o.rate, c->counted, c->received, hist_pct(&c->h, 50),
	    hist_pct(&c->h, 99), c->h.max, ops);
	say_losses(c);
	say_sesh_stats(b);
	return 0;
}

/* ---------------------------------------------------------------------
 * stream.pingpong
 */

/* Receive a message of the run's size, and read its stamp; a lap fails. */
static int pp_recv(struct ep *e, bool spin, uint64_t *stamp)
{
	if (recv_stamp(e, spin, stamp))
		return -1;
	if (e->lapped) {
		say("%s: lapped, with one message in flight", e->who);
		return -1;
	}
	return 0;
}

/* One exchange: send a message stamped @p stamp, receive its reply. */
static int pp_trip(struct ep *tx, struct ep *rx, uint8_t *msg, bool spin,
		   uint64_t stamp)
{
	uint64_t back;

	memcpy(msg, &stamp, sizeof(stamp));
	if (ep_send(tx, msg, tx->b->o.size, 1) || pp_recv(rx, spin, &back))
		return -1;
	if (back != stamp) {
		say("pinger: a reply stamped %" PRIu64 ", not %" PRIu64, back,
		    stamp);
		return -1;
	}
	return 0;
}

/*
 * One side of a ping-pong: pinned to `cpu`, receiving on rx_sid and
 * sending on tx_sid, with a message buffer. Returns 0, or -1 (said why)
 * with *tx zeroed or open, for the caller's ep_close().
 */
static int pp_open(struct bench *b, const char *role, int cpu,
		   const char *rx_sid, const char *tx_sid, int fd,
		   struct ep *rx, struct ep *tx, uint8_t **msg)
{
	memset(tx, 0, sizeof(*tx));
	pin(cpu, role);
	if (ep_open(rx, b, role, rx_sid, fd, true, 1) ||
	    ep_open(tx, b, role, tx_sid, fd, false, 1))
		return -1;
	*msg = calloc(1, b->o.size);
	if (*msg == NULL) {
		say("%s: out of memory", role);
		return -1;
	}
	return 0;
}

static int pp_ping(struct bench *b, unsigned idx)
{
	struct ctl *c = b->ctl;
	struct ep tx, rx;
	uint8_t *msg = NULL;
	uint64_t t, t1, from, t_end, i, n = 0, rec = 0, first = 0, last = 0;
	uint64_t stamp = STAMP_END;
	int r = -1;

	(void)idx;
	if (pp_open(b, "pinger", 0, PONG_SID, PING_SID, b->fd[0], &rx, &tx,
		    &msg))
		goto out;
	atomic_fetch_add(&c->ready, 1);
	/* Both subscriptions are open (acquire: the ponger's fetch_add). */
	wait_for(&c->ready, 2);

	for (i = 0; i < b->prefill; i++)
		if (pp_trip(&tx, &rx, msg, true, STAMP_WARM))
			goto out;

	t = bench_now();
	from = t + bench_ticks((uint64_t)(b->o.seconds * 1e8));
	t_end = t + bench_ticks((uint64_t)(b->o.seconds * 1e9));
	while (t < t_end) {
		/* The stamp is the start tick: no two exchanges share one. */
		if (pp_trip(&tx, &rx, msg, b->o.spin, t))
			goto out;
		t1 = bench_now();
		n++;
		if (t >= from) {
			hist_add(&c->h, bench_ns(t1 - t));
			if (rec++ == 0)
				first = t;
			last = t1;
		}
		t = t1;
	}
	memcpy(msg, &stamp, sizeof(stamp));
	if (ep_send(&tx, msg, b->o.size, 1))
		goto out;
	c->received = n;
	c->counted = rec;
	c->span_ticks = last - first;
	r = 0;
out:
	free(msg);
	ep_close(&tx);
	ep_close(&rx);
	return r;
}

static int pp_pong(struct bench *b, unsigned idx)
{
	struct ctl *c = b->ctl;
	struct ep tx, rx;
	uint8_t *msg = NULL;
	uint64_t i, stamp;
	int r = -1;

	(void)idx;
	if (pp_open(b, "ponger", 1, PING_SID, PONG_SID, b->fd[1], &rx, &tx,
		    &msg))
		goto out;
	/* Release: the subscription is open before the pinger sends. */
	atomic_fetch_add(&c->ready, 1);
	for (i = 0;; i++) {
		/* The warm-up exchanges poll, as the pinger's do. */
		if (pp_recv(&rx, b->o.spin || i < b->prefill, &stamp))
			goto out;
		if (stamp == STAMP_END)
			break;
		memcpy(msg, &stamp, sizeof(stamp));
		if (ep_send(&tx, msg, b->o.size, 1))
			goto out;
	}
	r = 0;
out:
	free(msg);
	ep_close(&tx);
	ep_close(&rx);
	return r;
}

static int run_pingpong(struct bench *b, struct kids *k)
{
	struct ctl *c = b->ctl;
	char params[64];
	double secs, ops = -1;

	if (run_two(b, k, "the ponger", pp_pong, "the pinger", pp_ping,
		    "round trip", &secs))
		return -1;
	if (secs > 0)
		ops = (double)c->counted / secs;
	snprintf(params, sizeof(params), "\"size\": %zu, \"mode\": \"%s\"",
		 b->o.size, b->o.spin ? "spin" : "sleep");
	bench_emit("stream.pingpong", sys_names[b->o.sys], params, &c->h, ops);
	say("stream.pingpong %s size %zu %s: %" PRIu64 " recorded of %" PRIu64
	    " round trips (%" PRIu64 " warm-up before); p50 %" PRIu64
	    " ns, p99 %" PRIu64 " ns, max %" PRIu64 " ns; %.0f round trips/s",
	    sys_names[b->o.sys], b->o.size, b->o.spin ? "spin" : "sleep",
	    c->counted, c->received, b->prefill, hist_pct(&c->h, 50),
	    hist_pct(&c->h, 99), c->h.max, ops);
	say_sesh_stats(b);
	return 0;
}

/* ---------------------------------------------------------------------
 * stream.throughput
 */

/*
 * Wait until a batch fits in the window (see the top). Returns 1 if told
 * to stop meanwhile.
 */
static int tp_window(struct bench *b, struct ep *e, uint64_t *acked)
{
	struct ctl *c = b->ctl;
	const struct timespec nap = {0, 20000};
	uint64_t want, w = b->window, resume;
	unsigned k;

	switch (b->o.sys) {
	case SYS_SESH:
		want = e->last_id + b->o.batch;
		break;
	case SYS_REDIS:
		want = atomic_fetch_add_explicit(&c->reserved, b->o.batch,
						 memory_order_relaxed) +
		       b->o.batch;
		break;
	default:
		return 0;
	}
	/* Signed: the subscriber may be past this publisher's last id. */
	if ((int64_t)(want - *acked) <= (int64_t)w)
		return 0;
	resume = w / 2 > b->o.batch ? w / 2 : b->o.batch;
	for (k = 1;; k++) {
		*acked = atomic_load_explicit(&c->acked, memory_order_relaxed);
		if ((int64_t)(want - *acked) <= (int64_t)resume)
			return 0;
		if (atomic_load_explicit(&c->phase, memory_order_relaxed) >=
		    PH_STOP)
			return 1;
		/*
		 * Give the CPU up now and then, and sleep once the wait is
		 * long: a subscriber, or redis-server, may need this CPU.
		 */
		if (k % 64)
			cpu_relax();
		else if (k < 4096)
			sched_yield();
		else
			nanosleep(&nap, NULL);
	}
}

static int tp_pub(struct bench *b, unsigned idx)
{
	struct ctl *c = b->ctl;
	struct ep e;
	char who[32];
	uint8_t *msg = NULL;
	uint64_t sent = 0, acked = atomic_load(&c->acked);
	int r = -1;

	snprintf(who, sizeof(who), "publisher %u", idx);
	pin((int)idx, who);
	if (ep_open(&e, b, who, SID, b->fd[0], false, b->o.batch))
		goto out;
	msg = calloc(1, b->o.size); /* stamp 0: an ordinary message */
	if (!msg) {
		say("%s: out of memory", who);
		goto out;
	}
	atomic_fetch_add(&c->ready, 1);
	wait_for(&c->phase, PH_WARM);
	while (atomic_load_explicit(&c->phase, memory_order_relaxed) <
	       PH_STOP) {
		if (tp_window(b, &e, &acked))
			break;
		if (ep_send(&e, msg, b->o.size, b->o.batch))
			goto out;
		sent += b->o.batch;
	}
	atomic_fetch_add(&c->sent, sent);
	r = 0;
out:
	free(msg);
	ep_close(&e);
	return r;
}

static int tp_sub(struct bench *b, unsigned idx)
{
	struct ctl *c = b->ctl;
	struct ep e;
	uint64_t total = 0, n = 0, stamp, now, t_start = 0, t_win = 0;
	uint64_t t_end = 0;
	unsigned w = 0;
	int state = 0, r = -1; /* 0 warm-up, 1 counting, 2 done */

	(void)idx;
	pin(bench_ncpu() - 1, "subscriber");
	if (ep_open(&e, b, "subscriber", SID, b->fd[1], true, 1))
		goto out;
	atomic_fetch_add(&c->ready, 1);
	for (;;) {
		if (recv_stamp(&e, false, &stamp))
			goto out;
		if (stamp == STAMP_END)
			break;
		total++;
		/* Counts only: orders nothing but itself. */
		if (b->o.sys == SYS_SESH)
			atomic_store_explicit(&c->acked, e.last_id,
					      memory_order_relaxed);
		else if (b->o.sys == SYS_REDIS)
			atomic_store_explicit(&c->acked, total,
					      memory_order_relaxed);
		if (state == 1) {
			n++;
			if (++w == TP_HIST_WINDOW) {
				now = bench_now();
				hist_add(&c->h, bench_ns(now - t_win) /
							TP_HIST_WINDOW);
				t_win = now;
				w = 0;
			}
			if (atomic_load_explicit(&c->phase,
						 memory_order_relaxed) >=
			    PH_STOP) {
				t_end = bench_now();
				state = 2;
			}
		} else if (state == 0 &&
			   atomic_load_explicit(&c->phase,
						memory_order_relaxed) >=
				   PH_MEASURE) {
			t_start = t_win = bench_now();
			state = 1;
		}
	}
	if (state == 0) {
		say("subscriber: no message after the warm-up");
		goto out;
	}
	/*
	 * No message came after stop: the subscriber had caught up, and the
	 * span ends when the publishers were told to stop.
	 */
	if (state == 1)
		t_end = atomic_load(&c->t_stop);
	c->received = total;
	c->counted = n;
	c->span_ticks = t_end - t_start;
	c->lapped = e.lapped;
	c->lost = e.lost;
	r = 0;
out:
	ep_close(&e);
	return r;
}

static int run_throughput(struct bench *b, struct kids *k)
{
	struct ctl *c = b->ctl;
	unsigned p = b->o.publishers, i;
	uint64_t go, total = (uint64_t)(b->o.seconds * 1e9);
	char params[128], role[24];
	double secs, ops = -1;
	int r;

	for (i = 0; i < p; i++) {
		snprintf(role, sizeof(role), "publisher %u", i);
		if (spawn(k, b, role, tp_pub, i))
			return -1;
	}
	if (spawn(k, b, "the subscriber", tp_sub, p))
		return -1;
	if (kids_ready(k, c, (int)p + 1))
		return -1;

	go = bench_mono_ns();
	atomic_store(&c->phase, PH_WARM);
	if (kids_wait(k, 0, 0, go + total / 10) < 0)
		return -1;
	atomic_store(&c->phase, PH_MEASURE);
	if (kids_wait(k, 0, 0, go + total) < 0)
		return -1;
	atomic_store(&c->t_stop, bench_now());
	atomic_store(&c->phase, PH_STOP);
	r = kids_wait(k, 0, p, bench_mono_ns() + EXIT_TIMEOUT_NS);
	if (r > 0)
		say("the publishers did not stop");
	if (r || send_end(b))
		return -1;
	r = kids_wait(k, p, p + 1, bench_mono_ns() + EXIT_TIMEOUT_NS);
	if (r > 0)
		say("the subscriber did not finish");
	if (r)
		return -1;

	secs = (double)bench_ns(c->span_ticks) / 1e9;
	if (secs > 0)
		ops = (double)c->counted / secs;
	snprintf(params, sizeof(params),
		 "\"publishers\": %u, \"size\": %zu, \"batch\": %u", p,
		 b->o.size, b->o.batch);
	bench_emit("stream.throughput", sys_names[b->o.sys], params, &c->h,
		   ops);
	say("stream.throughput %s publishers %u size %zu batch %u: %.0f "
	    "msg/s (%" PRIu64 " in %.3f s); window %" PRIu64,
	    sys_names[b->o.sys], p, b->o.size, b->o.batch, ops, c->counted,
	    secs, b->window);
	say_losses(c);
	say_sesh_stats(b);
	return 0;
}

/* ---------------------------------------------------------------------
 * Command line.
 */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench_stream latency --system sesh|uds|redis "
		"--size BYTES\n"
		"                    --mode spin|sleep --rate MSGS_PER_S "
		"--seconds S\n"
		"                    [--redis-socket PATH]\n"
		"       bench_stream pingpong --system sesh|uds --size BYTES\n"
		"                    --mode spin|sleep --seconds S\n"
		"       bench_stream throughput --system sesh|uds|redis "
		"--publishers P\n"
		"                    --size BYTES --batch B --seconds S "
		"[--redis-socket PATH]\n"
		"\n"
		"BYTES is %d..%d; --rate 0 sends as fast as the window of %d "
		"allows;\n"
		"P is 1..%d, B is 1..%d. Defaults: --size 64, --mode spin, "
		"--rate 0,\n"
		"--publishers 1, --batch 1, --seconds 1. redis needs "
		"--redis-socket and\n"
		"--mode sleep, and has no pingpong. One JSON line per result "
		"on stdout.\n",
		MSG_MIN, MSG_MAX, LAT_WINDOW, MAX_PUBLISHERS, MAX_BATCH);
}

static int bad_usage(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int bad_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("bench_stream: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr);
	return 2;
}

static bool parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static bool parse_double(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	if (!*s)
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !(v >= lo && v <= hi))
		return false;
	*out = v;
	return true;
}

/* Returns -1 when the options are good, else the exit status. */
static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{"system", required_argument, NULL, 's'},
		{"size", required_argument, NULL, 'n'},
		{"mode", required_argument, NULL, 'm'},
		{"rate", required_argument, NULL, 'r'},
		{"seconds", required_argument, NULL, 't'},
		{"publishers", required_argument, NULL, 'p'},
		{"batch", required_argument, NULL, 'b'},
		{"redis-socket", required_argument, NULL, 'R'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool mode_set = false, rate_set = false, tp_only = false;
	uint64_t v;
	int ch;

	memset(o, 0, sizeof(*o));
	o->sys = SYS_NONE;
	o->size = 64;
	o->spin = true;
	o->seconds = 1;
	o->publishers = 1;
	o->batch = 1;
	if (argc < 2)
		return bad_usage("say latency, pingpong or throughput");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "latency"))
		o->kind = LATENCY;
	else if (!strcmp(argv[1], "throughput"))
		o->kind = THROUGHPUT;
	else if (!strcmp(argv[1], "pingpong"))
		o->kind = PINGPONG;
	else
		return bad_usage("unknown benchmark '%s'", argv[1]);

	opterr = 0;
	while ((ch = getopt_long(argc - 1, argv + 1, "h", longopts, NULL)) !=
	       -1) {
		switch (ch) {
		case 's':
			if (!strcmp(optarg, "sesh"))
				o->sys = SYS_SESH;
			else if (!strcmp(optarg, "uds"))
				o->sys = SYS_UDS;
			else if (!strcmp(optarg, "redis"))
				o->sys = SYS_REDIS;
			else
				return bad_usage("unknown system '%s'", optarg);
			break;
		case 'n':
			if (!parse_u64(optarg, MSG_MIN, MSG_MAX, &v))
				return bad_usage("--size: %d..%d bytes",
						 MSG_MIN, MSG_MAX);
			o->size = (size_t)v;
			break;
		case 'm':
			mode_set = true;
			if (!strcmp(optarg, "spin"))
				o->spin = true;
			else if (!strcmp(optarg, "sleep"))
				o->spin = false;
			else
				return bad_usage("--mode: spin or sleep");
			break;
		case 'r':
			rate_set = true;
			if (!parse_double(optarg, 0, 1e9, &o->rate))
				return bad_usage("--rate: 0..1e9 messages "
						 "per second");
			break;
		case 't':
			if (!parse_double(optarg, 0.001, MAX_SECONDS,
					  &o->seconds))
				return bad_usage("--seconds: 0.001..%.0f",
						 MAX_SECONDS);
			break;
		case 'p':
			tp_only = true;
			if (!parse_u64(optarg, 1, MAX_PUBLISHERS, &v))
				return bad_usage("--publishers: 1..%d",
						 MAX_PUBLISHERS);
			o->publishers = (unsigned)v;
			break;
		case 'b':
			tp_only = true;
			if (!parse_u64(optarg, 1, MAX_BATCH, &v))
				return bad_usage("--batch: 1..%d", MAX_BATCH);
			o->batch = (unsigned)v;
			break;
		case 'R':
			o->redis_socket = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return bad_usage("bad option '%s'",
					 argv[optind] ? argv[optind] : "");
		}
	}
	if (optind + 1 < argc)
		return bad_usage("unexpected argument '%s'", argv[optind + 1]);
	if (o->sys == SYS_NONE)
		return bad_usage("--system is required");
	if (o->kind == LATENCY && tp_only)
		return bad_usage("--publishers and --batch are for throughput");
	if (o->kind == THROUGHPUT && (mode_set || rate_set))
		return bad_usage("--mode and --rate are not for throughput");
	if (o->kind == PINGPONG && (rate_set || tp_only))
		return bad_usage("pingpong takes no --rate, --publishers or "
				 "--batch");
	if (o->kind == PINGPONG && o->sys == SYS_REDIS)
		return bad_usage("pingpong: --system sesh or uds");
	if (o->sys == SYS_REDIS) {
		if (!o->redis_socket)
			return bad_usage("redis needs --redis-socket PATH");
		if (o->kind == LATENCY && o->spin)
			return bad_usage("redis can only wait: use --mode "
					 "sleep");
#ifndef HAVE_HIREDIS
		say("redis: this program was built without hiredis");
		return 1;
#endif
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct bench b;
	struct kids k;
	int r;

	memset(&b, 0, sizeof(b));
	memset(&k, 0, sizeof(k));
	b.fd[0] = b.fd[1] = -1;
	r = parse(argc, argv, &b.o);
	if (r >= 0)
		return r;

	/*
	 * The signals that end the wait are only ever taken by
	 * sigtimedwait(); children get the old mask back.
	 */
	sigemptyset(&wait_set);
	sigaddset(&wait_set, SIGCHLD);
	sigaddset(&wait_set, SIGINT);
	sigaddset(&wait_set, SIGTERM);
	sigaddset(&wait_set, SIGHUP);
	sigprocmask(SIG_BLOCK, &wait_set, &old_set);
	signal(SIGPIPE, SIG_IGN);

	bench_clock_init();
	b.ctl = bench_shared(sizeof(*b.ctl));
	hist_init(&b.ctl->h);

	r = setup(&b);
	if (r == 0) {
		switch (b.o.kind) {
		case LATENCY:
			r = run_latency(&b, &k);
			break;
		case PINGPONG:
			r = run_pingpong(&b, &k);
			break;
		case THROUGHPUT:
			r = run_throughput(&b, &k);
			break;
		}
	}
	kids_kill(&k);
	if (teardown(&b))
		r = -1;
	bench_unshare(b.ctl, sizeof(*b.ctl));
	return r ? 1 : 0;
}
