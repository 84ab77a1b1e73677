/*
 * bench/bench_session.c - session operations of sesh, Redis and SQLite,
 * measured the same way, side by side.
 *
 *   bench_session ops    --system sesh|redis|sqlite --resident N
 *                        --procs 1|2 --ops K [--reaper] [--redis-socket P]
 *   bench_session reaper --resident N --passes K
 *   bench_session memory --resident N [--redis-socket P]
 *   bench_session machine
 *
 * ops fills a store with N resident sessions, then runs three cases in
 * one or two worker processes (forked, pinned to CPUs 0 and 1, each
 * attached on its own and started together by a flag in shared memory),
 * K operations per worker and case:
 *
 *   session.get            a uniformly random resident session, with the
 *                          owner check, its metadata copied out;
 *   session.touch          mark a random resident session used;
 *   session.create_delete  create a fresh session, then delete it. One op
 *                          is the pair, timed as one, so that N stay
 *                          resident.
 *
 * With --reaper (sesh only) only session.get runs, while a process pinned
 * to CPU 1 calls sesh_reap() back to back for the whole run: get latency
 * while a reaper pass runs.
 *
 * A session has a 32-hex-digit id derived from its index (it looks like
 * a generated one), user "u<index mod 1000>", 64 bytes of metadata and a
 * TTL of a day, so that nothing expires while we run. The systems:
 *
 *   sesh    a fresh domain, max_sessions N + 64 (the create/delete ids of
 *           two workers need two more at most; more slack could double
 *           the bucket array), max_metadata 256, stream_bytes 4096.
 *           sesh_session_get (with the user, into a sesh_session_t and a
 *           metadata buffer), sesh_session_touch, sesh_session_create +
 *           sesh_session_delete.
 *   redis   hiredis over a Unix socket to a server private to the run
 *           (FLUSHDB at the start and at the end); a hash per session,
 *           key "sess:<id>". get: HMGET user created last_seen meta, the
 *           owner checked by the client. touch: EXPIRE key ttl alone, the
 *           minimal equivalent, and what Redis session stores do
 *           (connect-redis). create: HSET of the four fields and EXPIRE
 *           sent as one pipeline without MULTI (one round trip), then DEL
 *           (a second).
 *   sqlite  a database file on tmpfs (a mkdtemp directory under /dev/shm)
 *           in WAL mode with synchronous=NORMAL, the common production
 *           setting, and the default page cache. The table is WITHOUT
 *           ROWID: the row lives in the primary key's B-tree, so a lookup
 *           is one descent. One connection per process (opened NOMUTEX:
 *           one thread uses it), prepared statements, each in
 *           autocommit. get: SELECT ... WHERE id = ? AND user = ? AND
 *           not idle past its TTL; touch: UPDATE last_seen; create:
 *           INSERT, then DELETE. Writers of two
 *           processes wait for the write lock in a busy handler that
 *           follows SQLite's own busy_timeout schedule (1, 2, 5 ... 100
 *           ms, 5 s in all) and counts the waits; an SQLITE_BUSY past it
 *           is counted and the statement retried.
 *
 * Fills are quick: sesh in a loop; Redis pipelined, 1000 commands a round
 * trip with two round trips in flight; SQLite in one transaction with a
 * large page cache, then a checkpoint.
 *
 * Timing: each op is timed alone, t0 = bench_now(); op; t1 = bench_now(),
 * not chained, so that building the id (from a precomputed array of
 * xorshift random indices) and recording the value stay outside the
 * interval. A figure includes about one clock read (see "machine"). The
 * first 10 % of a worker's ops are warm-up and not recorded. ops_per_s is
 * the ops recorded by all workers over the wall time from the first
 * recorded op of any to the end of the last, loop overhead included.
 *
 * reaper fills a domain with N sessions and times K sesh_reap() passes
 * back to back: the histogram holds each pass's own duration_ns (checked
 * against the wall time of the call); ops_per_s is passes per second.
 *
 * memory reports the memory a session costs, with 64 bytes of metadata as
 * for ops: sesh, the growth of sesh_info()'s committed_bytes over the
 * fill, after a warm-up session (as regtest_million measures); Redis, the
 * growth of INFO memory's used_memory; SQLite, the growth of the database
 * and WAL files, each measured after a truncating checkpoint.
 *
 * machine prints the clock the figures come from.
 *
 * Results go to standard output, a JSON line each; progress and errors to
 * standard error. Exit status 0, 1 on failure, 2 on bad usage. On every
 * exit the domain, the SQLite directory and the Redis keys are removed and
 * the children killed (they also die with the parent); SIGINT, SIGTERM and
 * SIGHUP remove the files too, and leave the keys to the next FLUSHDB.
 */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif
#ifdef HAVE_SQLITE
#include <sqlite3.h>
#endif

#include "bench/bench.h"
#include "sesh.h"

#define MAX_PROCS   2
#define META_LEN    64
#define META_CAP    256	   /* the domain's max_metadata */
#define TTL_S	    86400u /* a day: nothing expires */
#define NUSERS	    1000
#define SLACK	    64			/* max_sessions beyond N */
#define REDIS_BATCH 500			/* sessions (x2 commands) a trip */
#define BUSY_MS	    5000		/* SQLite's busy timeout */
#define CD_BASE	    ((uint64_t)1 << 40) /* indices of create/delete ids */
#define MAX_OPS	    100000000u

enum sys { SYS_SESH, SYS_REDIS, SYS_SQLITE };
static const char *const sys_name[] = {"sesh", "redis", "sqlite"};

enum kase { K_GET, K_TOUCH, K_CREATE_DELETE };
static const char *const kase_name[] = {"session.get", "session.touch",
					"session.create_delete"};

struct opts {
	enum sys sys;
	size_t resident;
	int procs;
	uint64_t ops;
	uint64_t passes;
	int reaper;
	const char *redis_socket;
};

/* What the parent removes on every exit; the signal handler reads it. */
static struct {
	pid_t parent;
	char domain[SESH_NAME_MAX + 1]; /* created by us; "" none */
	char domain_path[PATH_MAX];	/* its file, for the signal handler */
	char sqlite_dir[64];		/* "" none */
	char sqlite_db[80];
	char sqlite_wal[96];
	char sqlite_shm[96];
	pid_t kids[MAX_PROCS + 1]; /* 0 once reaped */
	volatile sig_atomic_t nkids;
#ifdef HAVE_HIREDIS
	redisContext *redis; /* the parent's connection */
#endif
} g;

static void fail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

/* Print the error; the parent exits through cleanup(), a child at once. */
static void fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "bench_session: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (getpid() != g.parent)
		_exit(1);
	exit(1);
}

static void usage(const char *why) __attribute__((noreturn));

static void usage(const char *why)
{
	if (why)
		fprintf(stderr, "bench_session: %s\n", why);
	fputs("usage: bench_session ops --system sesh|redis|sqlite "
	      "--resident N --procs 1|2\n"
	      "                         --ops K [--reaper] "
	      "[--redis-socket PATH]\n"
	      "       bench_session reaper --resident N --passes K\n"
	      "       bench_session memory --resident N "
	      "[--redis-socket PATH]\n"
	      "       bench_session machine\n",
	      stderr);
	exit(2);
}

/* --- cleanup -------------------------------------------------------------- */

/* Kill and wait for the children: async-signal-safe (on_signal()). */
static void kill_kids(void)
{
	int i;

	for (i = 0; i < g.nkids; i++)
		if (g.kids[i] > 0)
			kill(g.kids[i], SIGKILL);
	for (i = 0; i < g.nkids; i++)
		if (g.kids[i] > 0)
			waitpid(g.kids[i], NULL, 0);
	g.nkids = 0;
}

static void remove_domain(void)
{
	int rc;

	if (!g.domain[0])
		return;
	rc = sesh_unlink(g.domain);
	if (rc != 0)
		fprintf(stderr, "bench_session: sesh_unlink %s: %s\n", g.domain,
			sesh_strerror(rc));
	g.domain[0] = 0;
	g.domain_path[0] = 0;
}

static void remove_sqlite(void)
{
	if (!g.sqlite_dir[0])
		return;
	unlink(g.sqlite_db);
	unlink(g.sqlite_wal);
	unlink(g.sqlite_shm);
	if (rmdir(g.sqlite_dir) != 0)
		fprintf(stderr, "bench_session: rmdir %s: %s\n", g.sqlite_dir,
			strerror(errno));
	g.sqlite_dir[0] = 0;
}

#ifdef HAVE_HIREDIS
static void flush_redis(void)
{
	redisReply *r;

	if (!g.redis)
		return;
	r = redisCommand(g.redis, "FLUSHDB");
	if (!r || r->type == REDIS_REPLY_ERROR)
		fprintf(stderr, "bench_session: redis: FLUSHDB: %s\n",
			r ? r->str : g.redis->errstr);
	if (r)
		freeReplyObject(r);
}
#endif

/* Run at exit, by the parent only: whatever the run leaves goes. */
static void cleanup(void)
{
	if (getpid() != g.parent)
		return;
	kill_kids();
	remove_domain();
	remove_sqlite();
#ifdef HAVE_HIREDIS
	if (g.redis) {
		flush_redis();
		redisFree(g.redis);
		g.redis = NULL;
	}
#endif
}

/* Interrupted: only async-signal-safe calls, on paths known in advance.
 * The Redis server is private to the run and flushed by the next one. */
static void on_signal(int sig)
{
	if (getpid() != g.parent)
		goto out; /* a child not yet past child_init() */
	kill_kids();
	if (g.domain_path[0])
		unlink(g.domain_path);
	if (g.sqlite_dir[0]) {
		unlink(g.sqlite_db);
		unlink(g.sqlite_wal);
		unlink(g.sqlite_shm);
		rmdir(g.sqlite_dir);
	}
out:
	signal(sig, SIG_DFL);
	raise(sig);
}

static void catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) != 0 ||
	    sigaction(SIGTERM, &sa, NULL) != 0 ||
	    sigaction(SIGHUP, &sa, NULL) != 0)
		fail("sigaction: %s", strerror(errno));
	/* A Redis server that goes away is an error, not a death. */
	signal(SIGPIPE, SIG_IGN);
}

/* --- keys ----------------------------------------------------------------- */

static char users[NUSERS][8];

/* A session's strings, built from its index before the op is timed. */
struct key {
	char rkey[5 + 32 + 1]; /* "sess:" and the id */
	const char *id;	       /* rkey + 5: 32 hex digits */
	const char *user;
	unsigned char meta[META_LEN];
};

/* splitmix64's finaliser: a bijection, so distinct indices give distinct
 * ids. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static void users_init(void)
{
	int i;

	for (i = 0; i < NUSERS; i++)
		snprintf(users[i], sizeof(users[i]), "u%d", i);
}

static void key_init(struct key *k)
{
	int i;

	memcpy(k->rkey, "sess:", 5);
	k->id = k->rkey + 5;
	for (i = 0; i < META_LEN; i++)
		k->meta[i] = (unsigned char)('a' + i % 26);
}

static void key_of(struct key *k, uint64_t i)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t a = mix64(i), b = mix64(~i);
	char *p = k->rkey + 5;
	int j;

	for (j = 0; j < 16; j++, a <<= 4)
		p[j] = hex[a >> 60];
	for (j = 16; j < 32; j++, b <<= 4)
		p[j] = hex[b >> 60];
	p[32] = 0;
	k->user = users[i % NUSERS];
	memcpy(k->meta, &i, sizeof(i));
}

/* @p n indices uniform in [0, range), from xorshift64. */
static uint32_t *random_indices(uint64_t n, size_t range, uint64_t seed)
{
	uint32_t *v = malloc(n * sizeof(*v));
	uint64_t x = mix64(seed) | 1, i;

	if (!v)
		fail("out of memory for %llu indices", (unsigned long long)n);
	for (i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		v[i] = (uint32_t)(((x >> 32) * (uint64_t)range) >> 32);
	}
	return v;
}

#if defined(HAVE_HIREDIS) || defined(HAVE_SQLITE)
static int64_t now_real_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}
#endif

/* --- the stores ----------------------------------------------------------- */

struct store {
	enum sys sys;
	sesh_t *d;
#ifdef HAVE_HIREDIS
	redisContext *rc;
#endif
#ifdef HAVE_SQLITE
	sqlite3 *db;
	sqlite3_stmt *get, *touch, *ins, *del;
	uint64_t busy_waits;  /* waits in the busy handler */
	uint64_t busy_errors; /* SQLITE_BUSY returned all the same */
#endif
};

static void domain_config(sesh_config_t *cfg, size_t resident)
{
	sesh_config_init(cfg);
	cfg->max_sessions = resident + SLACK;
	cfg->max_metadata = META_CAP;
	cfg->stream_bytes = 4096; /* streams are not what this measures */
}

/* Create the domain (@p create) or attach to it. */
static void open_sesh(struct store *s, size_t resident, int create)
{
	sesh_config_t cfg;
	const char *dir;
	char name[SESH_NAME_MAX + 1];
	int rc;

	domain_config(&cfg, resident);
	if (!create) {
		rc = sesh_open(g.domain, NULL, NULL, 0, &s->d);
		if (rc != 0)
			fail("sesh_open %s: %s", g.domain, sesh_strerror(rc));
		return;
	}
	snprintf(name, sizeof(name), "%s", bench_name("bench-sess"));
	rc = sesh_open(name, NULL, &cfg, SESH_CREATE | SESH_EXCL, &s->d);
	if (rc != 0)
		fail("sesh_open %s (create, %zu sessions): %s", name,
		     cfg.max_sessions, sesh_strerror(rc));
	dir = secure_getenv("SESH_SHM_DIR");
	if (!dir || !*dir)
		dir = "/dev/shm";
	snprintf(g.domain_path, sizeof(g.domain_path), "%s/sesh.%s", dir, name);
	memcpy(g.domain, name, sizeof(name));
}

#ifdef HAVE_HIREDIS
static void redis_fail(redisContext *c, redisReply *r, const char *what)
	__attribute__((noreturn));

static void redis_fail(redisContext *c, redisReply *r, const char *what)
{
	if (!r)
		fail("redis: %s: %s", what,
		     c->errstr[0] ? c->errstr : "no reply");
	if (r->type == REDIS_REPLY_ERROR)
		fail("redis: %s: %s", what, r->str);
	fail("redis: %s: unexpected reply (type %d)", what, r->type);
}

/* Whether @p r is the integer @p want; frees it if so, else keeps it for
 * the error message. */
static int redis_is_int(redisReply *r, long long want)
{
	if (!r || r->type != REDIS_REPLY_INTEGER || r->integer != want)
		return 0;
	freeReplyObject(r);
	return 1;
}

static redisReply *redis_next(redisContext *c)
{
	void *r = NULL;

	if (redisGetReply(c, &r) != REDIS_OK)
		return NULL;
	return r;
}

static void open_redis(struct store *s, const char *path, int create)
{
	redisReply *r;

	s->rc = redisConnectUnix(path);
	if (!s->rc || s->rc->err)
		fail("redis: connect to %s: %s", path,
		     s->rc ? s->rc->errstr : "out of memory");
	if (!create)
		return;
	g.redis = s->rc;
	r = redisCommand(s->rc, "FLUSHDB");
	if (!r || r->type != REDIS_REPLY_STATUS)
		redis_fail(s->rc, r, "FLUSHDB");
	freeReplyObject(r);
}

static uint64_t redis_used_memory(redisContext *c)
{
	redisReply *r = redisCommand(c, "INFO memory");
	const char *p;
	uint64_t v;

	if (!r || r->type != REDIS_REPLY_STRING)
		redis_fail(c, r, "INFO memory");
	p = strstr(r->str, "used_memory:");
	if (!p)
		fail("redis: INFO memory has no used_memory");
	v = strtoull(p + strlen("used_memory:"), NULL, 10);
	freeReplyObject(r);
	return v;
}
#endif

#ifdef HAVE_SQLITE
/* SQLite's busy_timeout schedule (sqliteDefaultBusyCallback), counted. */
static int busy_wait(void *arg, int n)
{
	static const int ms[] = {1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100};
	struct store *s = arg;
	int i, d = n < 12 ? ms[n] : 100, prior = 0;

	for (i = 0; i < n; i++)
		prior += i < 12 ? ms[i] : 100;
	if (prior + d > BUSY_MS) {
		d = BUSY_MS - prior;
		if (d <= 0)
			return 0;
	}
	s->busy_waits++;
	sqlite3_sleep(d);
	return 1;
}

static void sql_exec(struct store *s, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail("sqlite: %s: %s", sql, err ? err : sqlite3_errmsg(s->db));
}

/* Step, retrying an SQLITE_BUSY that outlasted the busy handler. */
static int sql_step(struct store *s, sqlite3_stmt *st)
{
	int rc, tries;

	for (tries = 0;; tries++) {
		rc = sqlite3_step(st);
		if (rc != SQLITE_BUSY || tries == 10)
			return rc;
		s->busy_errors++;
		(void)sqlite3_reset(st); /* returns the same SQLITE_BUSY */
	}
}

static void sql_prepare(struct store *s, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st,
			       NULL) != SQLITE_OK)
		fail("sqlite: prepare %s: %s", sql, sqlite3_errmsg(s->db));
}

static int journal_mode_row(void *arg, int n, char **v, char **col)
{
	char *mode = arg;

	if (n > 0 && v[0])
		snprintf(mode, 16, "%s", v[0]);
	return 0;
}

static void checkpoint(struct store *s)
{
	int rc = sqlite3_wal_checkpoint_v2(
		s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);

	if (rc != SQLITE_OK)
		fail("sqlite: checkpoint: %s", sqlite3_errmsg(s->db));
}

/* Bytes of the database and its WAL. */
static uint64_t sqlite_bytes(void)
{
	struct stat st;
	uint64_t n;

	if (stat(g.sqlite_db, &st) != 0)
		fail("stat %s: %s", g.sqlite_db, strerror(errno));
	n = (uint64_t)st.st_size;
	if (stat(g.sqlite_wal, &st) == 0)
		n += (uint64_t)st.st_size;
	else if (errno != ENOENT)
		fail("stat %s: %s", g.sqlite_wal, strerror(errno));
	return n;
}

static void open_sqlite(struct store *s, int create)
{
	char mode[16] = "";
	char *err = NULL;
	int rc, flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;

	if (create) {
		snprintf(g.sqlite_dir, sizeof(g.sqlite_dir),
			 "/dev/shm/bench-sess-sqlite-XXXXXX");
		if (!mkdtemp(g.sqlite_dir)) {
			g.sqlite_dir[0] = 0;
			fail("mkdtemp /dev/shm/bench-sess-sqlite-XXXXXX: %s",
			     strerror(errno));
		}
		snprintf(g.sqlite_db, sizeof(g.sqlite_db), "%s/sessions.db",
			 g.sqlite_dir);
		snprintf(g.sqlite_wal, sizeof(g.sqlite_wal), "%s-wal",
			 g.sqlite_db);
		snprintf(g.sqlite_shm, sizeof(g.sqlite_shm), "%s-shm",
			 g.sqlite_db);
		flags |= SQLITE_OPEN_CREATE;
	}
	rc = sqlite3_open_v2(g.sqlite_db, &s->db, flags, NULL);
	if (rc != SQLITE_OK)
		fail("sqlite: open %s: %s", g.sqlite_db,
		     s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
	if (sqlite3_busy_handler(s->db, busy_wait, s) != SQLITE_OK)
		fail("sqlite: busy handler: %s", sqlite3_errmsg(s->db));
	if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", journal_mode_row,
			 mode, &err) != SQLITE_OK)
		fail("sqlite: journal_mode=WAL: %s",
		     err ? err : sqlite3_errmsg(s->db));
	if (strcmp(mode, "wal") != 0)
		fail("sqlite: journal_mode is %s, not wal", mode);
	sql_exec(s, "PRAGMA synchronous=NORMAL");
	if (create)
		sql_exec(s, "CREATE TABLE sessions (id TEXT PRIMARY KEY, "
			    "user TEXT NOT NULL, created INTEGER, "
			    "last_seen INTEGER, ttl INTEGER, meta BLOB) "
			    "WITHOUT ROWID");
	sql_prepare(s,
		    "SELECT created, last_seen, ttl, meta FROM sessions "
		    "WHERE id = ?1 AND user = ?2 "
		    "AND last_seen + ttl * 1000000000 > ?3",
		    &s->get);
	sql_prepare(s, "UPDATE sessions SET last_seen = ?1 WHERE id = ?2",
		    &s->touch);
	sql_prepare(s,
		    "INSERT INTO sessions (id, user, created, last_seen, "
		    "ttl, meta) VALUES (?1, ?2, ?3, ?3, ?4, ?5)",
		    &s->ins);
	sql_prepare(s, "DELETE FROM sessions WHERE id = ?1", &s->del);
}
#endif

/* Attach @p s to the store of @p sys; @p create makes it (parent only). */
static void store_open(struct store *s, enum sys sys, const struct opts *o,
		       int create)
{
	memset(s, 0, sizeof(*s));
	s->sys = sys;
	switch (sys) {
	case SYS_SESH:
		open_sesh(s, o->resident, create);
		return;
#ifdef HAVE_HIREDIS
	case SYS_REDIS:
		open_redis(s, o->redis_socket, create);
		return;
#endif
#ifdef HAVE_SQLITE
	case SYS_SQLITE:
		open_sqlite(s, create);
		return;
#endif
	default:
		fail("system %d: not compiled in", (int)sys);
	}
}

/* Detach; the parent's Redis connection stays for the final FLUSHDB. */
static void store_close(struct store *s)
{
	switch (s->sys) {
	case SYS_SESH:
		sesh_close(s->d);
		break;
#ifdef HAVE_HIREDIS
	case SYS_REDIS:
		if (s->rc != g.redis || getpid() != g.parent)
			redisFree(s->rc);
		break;
#endif
#ifdef HAVE_SQLITE
	case SYS_SQLITE:
		sqlite3_finalize(s->get);
		sqlite3_finalize(s->touch);
		sqlite3_finalize(s->ins);
		sqlite3_finalize(s->del);
		if (sqlite3_close(s->db) != SQLITE_OK)
			fail("sqlite: close: %s", sqlite3_errmsg(s->db));
		break;
#endif
	default:
		break;
	}
	memset(s, 0, sizeof(*s));
}

/* --- filling -------------------------------------------------------------- */

static void fill_sesh(struct store *s, size_t n, struct key *k)
{
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		key_of(k, i);
		rc = sesh_session_create(s->d, k->id, k->user, k->meta,
					 META_LEN, TTL_S, NULL);
		if (rc != 0)
			fail("sesh_session_create %s (%zu of %zu): %s", k->id,
			     i, n, sesh_strerror(rc));
	}
}

#ifdef HAVE_HIREDIS
static int redis_append_create(redisContext *c, const struct key *k,
			       int64_t now)
{
	if (redisAppendCommand(c,
			       "HSET %s user %s created %lld last_seen %lld "
			       "meta %b",
			       k->rkey, k->user, (long long)now, (long long)now,
			       k->meta, (size_t)META_LEN) != REDIS_OK)
		return -1;
	return redisAppendCommand(c, "EXPIRE %s %u", k->rkey, TTL_S);
}

/* Append sessions [i, i + b) and write them out. */
static void fill_redis_send(struct store *s, struct key *k, size_t i, size_t b)
{
	size_t j;
	int done = 0;

	for (j = 0; j < b; j++) {
		key_of(k, i + j);
		if (redis_append_create(s->rc, k, now_real_ns()) != REDIS_OK)
			redis_fail(s->rc, NULL, "fill: append");
	}
	while (!done)
		if (redisBufferWrite(s->rc, &done) != REDIS_OK)
			redis_fail(s->rc, NULL, "fill: write");
}

static size_t batch_at(size_t i, size_t n)
{
	return n - i < REDIS_BATCH ? n - i : REDIS_BATCH;
}

/* Two batches in flight: we build the next while the server runs one. */
static void fill_redis(struct store *s, size_t n, struct key *k)
{
	redisReply *r;
	size_t i, j, b;

	fill_redis_send(s, k, 0, batch_at(0, n));
	for (i = 0; i < n; i += b) {
		b = batch_at(i, n);
		if (i + b < n)
			fill_redis_send(s, k, i + b, batch_at(i + b, n));
		for (j = 0; j < b; j++) {
			r = redis_next(s->rc);
			if (!redis_is_int(r, 4))
				redis_fail(s->rc, r, "fill: HSET");
			r = redis_next(s->rc);
			if (!redis_is_int(r, 1))
				redis_fail(s->rc, r, "fill: EXPIRE");
		}
	}
}
#endif

#ifdef HAVE_SQLITE
static void fill_sqlite(struct store *s, size_t n, struct key *k)
{
	sqlite3_stmt *st = s->ins;
	int64_t now;
	size_t i;
	int rc;

	/* A page cache that holds the table: the fill is not spilled to
	 * the WAL page by page. This connection is closed after. */
	sql_exec(s, "PRAGMA cache_size = -1048576");
	sql_exec(s, "BEGIN");
	for (i = 0; i < n; i++) {
		key_of(k, i);
		now = now_real_ns();
		rc = sqlite3_bind_text(st, 1, k->id, 32, SQLITE_STATIC) |
		     sqlite3_bind_text(st, 2, k->user, -1, SQLITE_STATIC) |
		     sqlite3_bind_int64(st, 3, now) |
		     sqlite3_bind_int64(st, 4, TTL_S) |
		     sqlite3_bind_blob(st, 5, k->meta, META_LEN, SQLITE_STATIC);
		if (rc != SQLITE_OK || sql_step(s, st) != SQLITE_DONE)
			fail("sqlite: fill: insert %s: %s", k->id,
			     sqlite3_errmsg(s->db));
		if (sqlite3_reset(st) != SQLITE_OK)
			fail("sqlite: fill: reset: %s", sqlite3_errmsg(s->db));
	}
	sql_exec(s, "COMMIT");
	checkpoint(s);
}
#endif

static void store_fill(struct store *s, size_t n)
{
	struct key k;
	uint64_t t0 = bench_mono_ns();

	key_init(&k);
	fprintf(stderr, "bench_session: %s: filling %zu sessions\n",
		sys_name[s->sys], n);
	switch (s->sys) {
	case SYS_SESH:
		fill_sesh(s, n, &k);
		break;
#ifdef HAVE_HIREDIS
	case SYS_REDIS:
		fill_redis(s, n, &k);
		break;
#endif
#ifdef HAVE_SQLITE
	case SYS_SQLITE:
		fill_sqlite(s, n, &k);
		break;
#endif
	default:
		fail("system %d: not compiled in", (int)s->sys);
	}
	fprintf(stderr, "bench_session: %s: filled in %.2f s\n",
		sys_name[s->sys], (double)(bench_mono_ns() - t0) / 1e9);
}

/* --- one op, timed -----------------------------------------------------------
 *
 * Each returns the ticks of the op alone. Checks come after t1; a failed
 * op ends the process.
 */

static uint64_t op_sesh(struct store *s, enum kase c, const struct key *k)
{
	sesh_session_t out;
	char meta[META_CAP];
	uint64_t t0, t1;
	int rc, rc2 = 0;

	switch (c) {
	case K_GET:
		t0 = bench_now();
		rc = sesh_session_get(s->d, k->id, k->user, &out, meta,
				      sizeof(meta));
		t1 = bench_now();
		if (rc != 0)
			fail("sesh_session_get %s: %s", k->id,
			     sesh_strerror(rc));
		if (out.meta_len != META_LEN || memcmp(meta, k->meta, 8))
			fail("sesh_session_get %s: wrong metadata", k->id);
		return t1 - t0;
	case K_TOUCH:
		t0 = bench_now();
		rc = sesh_session_touch(s->d, k->id);
		t1 = bench_now();
		if (rc != 0)
			fail("sesh_session_touch %s: %s", k->id,
			     sesh_strerror(rc));
		return t1 - t0;
	case K_CREATE_DELETE:
		t0 = bench_now();
		rc = sesh_session_create(s->d, k->id, k->user, k->meta,
					 META_LEN, TTL_S, NULL);
		if (rc == 0)
			rc2 = sesh_session_delete(s->d, k->id);
		t1 = bench_now();
		if (rc != 0)
			fail("sesh_session_create %s: %s", k->id,
			     sesh_strerror(rc));
		if (rc2 != 0)
			fail("sesh_session_delete %s: %s", k->id,
			     sesh_strerror(rc2));
		return t1 - t0;
	}
	fail("bad case %d", (int)c);
}

#ifdef HAVE_HIREDIS
static uint64_t op_redis(struct store *s, enum kase c, const struct key *k)
{
	redisContext *rc = s->rc;
	redisReply *r = NULL, **e;
	unsigned char meta[META_CAP];
	long long created, last_seen;
	const char *what;
	uint64_t t0, t1;

	switch (c) {
	case K_GET:
		what = "HMGET";
		t0 = bench_now();
		r = redisCommand(rc, "HMGET %s user created last_seen meta",
				 k->rkey);
		if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 4)
			goto bad;
		e = r->element;
		if (e[0]->type != REDIS_REPLY_STRING ||
		    strcmp(e[0]->str, k->user) != 0 ||
		    e[1]->type != REDIS_REPLY_STRING ||
		    e[2]->type != REDIS_REPLY_STRING ||
		    e[3]->type != REDIS_REPLY_STRING || e[3]->len != META_LEN)
			goto bad;
		created = strtoll(e[1]->str, NULL, 10);
		last_seen = strtoll(e[2]->str, NULL, 10);
		memcpy(meta, e[3]->str, META_LEN);
		freeReplyObject(r);
		t1 = bench_now();
		if (created <= 0 || last_seen < created ||
		    memcmp(meta, k->meta, 8))
			fail("redis: HMGET %s: wrong fields", k->rkey);
		return t1 - t0;
	case K_TOUCH:
		what = "EXPIRE";
		t0 = bench_now();
		r = redisCommand(rc, "EXPIRE %s %u", k->rkey, TTL_S);
		if (!redis_is_int(r, 1))
			goto bad;
		t1 = bench_now();
		return t1 - t0;
	case K_CREATE_DELETE:
		what = "append";
		t0 = bench_now();
		if (redis_append_create(rc, k, now_real_ns()) != REDIS_OK)
			goto bad;
		what = "HSET";
		r = redis_next(rc);
		if (!redis_is_int(r, 4))
			goto bad;
		what = "EXPIRE";
		r = redis_next(rc);
		if (!redis_is_int(r, 1))
			goto bad;
		what = "DEL";
		r = redisCommand(rc, "DEL %s", k->rkey);
		if (!redis_is_int(r, 1))
			goto bad;
		t1 = bench_now();
		return t1 - t0;
	}
	fail("bad case %d", (int)c);
bad:
	redis_fail(rc, r, what);
}
#endif

#ifdef HAVE_SQLITE
static uint64_t op_sqlite(struct store *s, enum kase c, const struct key *k)
{
	unsigned char meta[META_CAP];
	int64_t created = 0, last_seen = 0;
	const void *blob;
	uint64_t t0, t1;
	int rc, step, step2 = SQLITE_DONE, len = 0, changes = 0, changes2 = 1;

	switch (c) {
	case K_GET:
		t0 = bench_now();
		rc = sqlite3_bind_text(s->get, 1, k->id, 32, SQLITE_STATIC) |
		     sqlite3_bind_text(s->get, 2, k->user, -1, SQLITE_STATIC) |
		     sqlite3_bind_int64(s->get, 3, now_real_ns());
		step = sql_step(s, s->get);
		if (step == SQLITE_ROW) {
			created = sqlite3_column_int64(s->get, 0);
			last_seen = sqlite3_column_int64(s->get, 1);
			blob = sqlite3_column_blob(s->get, 3);
			len = sqlite3_column_bytes(s->get, 3);
			if (blob && len > 0 && len <= META_CAP)
				memcpy(meta, blob, (size_t)len);
		}
		rc |= sqlite3_reset(s->get);
		t1 = bench_now();
		if (rc != SQLITE_OK || step != SQLITE_ROW)
			fail("sqlite: get %s: %s", k->id,
			     step == SQLITE_DONE ? "no row"
						 : sqlite3_errmsg(s->db));
		if (len != META_LEN || created <= 0 || last_seen < created ||
		    memcmp(meta, k->meta, 8))
			fail("sqlite: get %s: wrong row", k->id);
		return t1 - t0;
	case K_TOUCH:
		t0 = bench_now();
		rc = sqlite3_bind_int64(s->touch, 1, now_real_ns()) |
		     sqlite3_bind_text(s->touch, 2, k->id, 32, SQLITE_STATIC);
		step = sql_step(s, s->touch);
		if (step == SQLITE_DONE)
			changes = sqlite3_changes(s->db);
		rc |= sqlite3_reset(s->touch);
		t1 = bench_now();
		if (rc != SQLITE_OK || step != SQLITE_DONE || changes != 1)
			fail("sqlite: touch %s: %s", k->id,
			     step == SQLITE_DONE ? "no row"
						 : sqlite3_errmsg(s->db));
		return t1 - t0;
	case K_CREATE_DELETE:
		t0 = bench_now();
		rc = sqlite3_bind_text(s->ins, 1, k->id, 32, SQLITE_STATIC) |
		     sqlite3_bind_text(s->ins, 2, k->user, -1, SQLITE_STATIC) |
		     sqlite3_bind_int64(s->ins, 3, now_real_ns()) |
		     sqlite3_bind_int64(s->ins, 4, TTL_S) |
		     sqlite3_bind_blob(s->ins, 5, k->meta, META_LEN,
				       SQLITE_STATIC);
		step = sql_step(s, s->ins);
		if (step == SQLITE_DONE)
			changes = sqlite3_changes(s->db);
		rc |= sqlite3_reset(s->ins);
		if (rc == SQLITE_OK && step == SQLITE_DONE) {
			rc = sqlite3_bind_text(s->del, 1, k->id, 32,
					       SQLITE_STATIC);
			step2 = sql_step(s, s->del);
			if (step2 == SQLITE_DONE)
				changes2 = sqlite3_changes(s->db);
			rc |= sqlite3_reset(s->del);
		}
		t1 = bench_now();
		if (rc != SQLITE_OK || step != SQLITE_DONE ||
		    step2 != SQLITE_DONE)
			fail("sqlite: %s %s: %s",
			     step != SQLITE_DONE ? "insert" : "delete", k->id,
			     sqlite3_errmsg(s->db));
		if (changes != 1 || changes2 != 1)
			fail("sqlite: create/delete %s: %d and %d rows", k->id,
			     changes, changes2);
		return t1 - t0;
	}
	fail("bad case %d", (int)c);
}
#endif

static uint64_t store_op(struct store *s, enum kase c, const struct key *k)
{
	switch (s->sys) {
	case SYS_SESH:
		return op_sesh(s, c, k);
#ifdef HAVE_HIREDIS
	case SYS_REDIS:
		return op_redis(s, c, k);
#endif
#ifdef HAVE_SQLITE
	case SYS_SQLITE:
		return op_sqlite(s, c, k);
#endif
	default:
		fail("system %d: not compiled in", (int)s->sys);
	}
}

/* --- processes ------------------------------------------------------------ */

/* What the children share with the parent. */
struct shm {
	atomic_int ready; /* children attached and prepared */
	atomic_int go;	  /* set once by the parent: start */
	atomic_int done;  /* workers finished */
	uint64_t reaper_passes, reaper_busy, reaper_expired;
	uint64_t reaper_max_ns;
	struct wout {
		uint64_t t_first, t_last; /* ticks: the measured phase */
		uint64_t busy_waits, busy_errors;
		struct hist h;
	} w[MAX_PROCS];
};

/* In a child just forked: die with the parent, leave cleanup to it. */
static void child_init(void)
{
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		fail("prctl PR_SET_PDEATHSIG: %s", strerror(errno));
	if (getppid() != g.parent)
		_exit(1);
}

static void wait_go(struct shm *sh)
{
	atomic_fetch_add(&sh->ready, 1);
	while (!atomic_load_explicit(&sh->go, memory_order_acquire))
		sched_yield();
}

static void pin(int cpu)
{
	int rc = bench_pin(cpu);

	if (rc != 0)
		fprintf(stderr, "bench_session: pin to cpu %d: %s (unpinned)\n",
			cpu, strerror(-rc));
}

static void worker(const struct opts *o, enum kase c, int w, struct shm *sh)
{
	struct wout *out = &sh->w[w];
	struct store s;
	struct key k;
	uint32_t *idx = NULL;
	uint64_t j, t, warm = o->ops / 10;

	pin(w);
	hist_init(&out->h);
	key_init(&k);
	if (c != K_CREATE_DELETE)
		idx = random_indices(o->ops, o->resident,
				     (uint64_t)c << 8 | (uint64_t)(w + 1));
	store_open(&s, o->sys, o, 0);
	wait_go(sh);
	for (j = 0; j < o->ops; j++) {
		key_of(&k, idx ? idx[j] : CD_BASE + ((uint64_t)w << 32) + j);
		if (j == warm)
			out->t_first = bench_now();
		t = store_op(&s, c, &k);
		if (j >= warm)
			hist_add(&out->h, bench_ns(t));
	}
	out->t_last = bench_now();
#ifdef HAVE_SQLITE
	out->busy_waits = s.busy_waits;
	out->busy_errors = s.busy_errors;
#endif
	store_close(&s);
	free(idx);
	atomic_fetch_add(&sh->done, 1);
}

/* sesh_reap() back to back until every worker is done. */
static void reaper_loop(struct shm *sh, int nworkers)
{
	sesh_reap_report_t r;
	sesh_t *d;
	int rc;

	pin(1);
	rc = sesh_open(g.domain, NULL, NULL, 0, &d);
	if (rc != 0)
		fail("reaper: sesh_open %s: %s", g.domain, sesh_strerror(rc));
	wait_go(sh);
	while (atomic_load(&sh->done) < nworkers) {
		rc = sesh_reap(d, &r);
		if (rc == -EBUSY) {
			sh->reaper_busy++;
			continue;
		}
		if (rc != 0)
			fail("reaper: sesh_reap: %s", sesh_strerror(rc));
		sh->reaper_passes++;
		sh->reaper_expired += r.sessions_expired;
		if (r.duration_ns > sh->reaper_max_ns)
			sh->reaper_max_ns = r.duration_ns;
	}
	sesh_close(d);
}

/* Reap the children that have exited; with @p block, wait for all. Any
 * that failed, or exited before the start (!block), is an error. */
static void wait_kids(int block)
{
	int i, st, left;
	pid_t pid;

	for (;;) {
		pid = waitpid(-1, &st, block ? 0 : WNOHANG);
		if (pid == 0)
			return;
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ECHILD)
				break;
			fail("waitpid: %s", strerror(errno));
		}
		for (i = 0; i < g.nkids; i++)
			if (g.kids[i] == pid)
				g.kids[i] = 0;
		if (WIFSIGNALED(st))
			fail("child %d killed by signal %d", (int)pid,
			     WTERMSIG(st));
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fail("child %d failed", (int)pid);
		if (!block)
			fail("child %d exited before the start", (int)pid);
		for (i = 0, left = 0; i < g.nkids; i++)
			left += g.kids[i] > 0;
		if (!left)
			break;
	}
	g.nkids = 0;
}

static void run_case(const struct opts *o, enum kase c, int reaper)
{
	static struct hist all;
	struct timespec ms = {0, 1000000};
	struct shm *sh = bench_shared(sizeof(*sh));
	int i, nkids = o->procs + (reaper ? 1 : 0);
	uint64_t first = UINT64_MAX, last = 0, waits = 0, errs = 0;
	char params[128];
	double secs, rate;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	for (i = 0; i < nkids; i++) {
		pid = fork();
		if (pid < 0)
			fail("fork: %s", strerror(errno));
		if (pid == 0) {
			child_init();
			if (i < o->procs)
				worker(o, c, i, sh);
			else
				reaper_loop(sh, o->procs);
			_exit(0);
		}
		g.kids[i] = pid;
		g.nkids = i + 1;
	}
	while (atomic_load(&sh->ready) < nkids) {
		wait_kids(0);
		nanosleep(&ms, NULL);
	}
	atomic_store_explicit(&sh->go, 1, memory_order_release);
	wait_kids(1);

	hist_init(&all);
	for (i = 0; i < o->procs; i++) {
		hist_merge(&all, &sh->w[i].h);
		if (sh->w[i].t_first < first)
			first = sh->w[i].t_first;
		if (sh->w[i].t_last > last)
			last = sh->w[i].t_last;
		waits += sh->w[i].busy_waits;
		errs += sh->w[i].busy_errors;
	}
	secs = last > first ? (double)bench_ns(last - first) / 1e9 : 0;
	rate = secs > 0 ? (double)all.count / secs : -1;
	snprintf(params, sizeof(params), "\"resident\": %zu, \"procs\": %d%s",
		 o->resident, o->procs,
		 reaper ? ", \"reaper\": \"running\"" : "");
	bench_emit(kase_name[c], sys_name[o->sys], params, &all, rate);
	fprintf(stderr,
		"bench_session: %s %s: p50 %llu ns, p99 %llu ns, "
		"max %llu ns, %.0f ops/s\n",
		sys_name[o->sys], kase_name[c],
		(unsigned long long)hist_pct(&all, 50),
		(unsigned long long)hist_pct(&all, 99),
		(unsigned long long)all.max, rate);
	if (o->sys == SYS_SQLITE)
		fprintf(stderr,
			"bench_session: sqlite %s: %llu lock waits, %llu "
			"SQLITE_BUSY\n",
			kase_name[c], (unsigned long long)waits,
			(unsigned long long)errs);
	if (reaper) {
		fprintf(stderr,
			"bench_session: reaper: %llu passes during the run "
			"(longest %.1f us), %llu refused busy\n",
			(unsigned long long)sh->reaper_passes,
			(double)sh->reaper_max_ns / 1e3,
			(unsigned long long)sh->reaper_busy);
		if (sh->reaper_expired)
			fail("reaper: %llu sessions expired during the run",
			     (unsigned long long)sh->reaper_expired);
	}
	bench_unshare(sh, sizeof(*sh));
}

/* --- the modes ------------------------------------------------------------ */

static int cmd_ops(const struct opts *o)
{
	struct store s;

	bench_clock_init();
	store_open(&s, o->sys, o, 1);
	store_fill(&s, o->resident);
	/* Children attach on their own; an SQLite connection must not
	 * cross fork(). */
	store_close(&s);
	if (o->reaper) {
		run_case(o, K_GET, 1);
	} else {
		run_case(o, K_GET, 0);
		run_case(o, K_TOUCH, 0);
		run_case(o, K_CREATE_DELETE, 0);
	}
	cleanup();
	return 0;
}

static int cmd_reaper(const struct opts *o)
{
	static struct hist h, wall;
	sesh_reap_report_t r;
	struct store s;
	uint64_t i, t0, t1, start, end, bmin = UINT64_MAX, bmax = 0;
	uint64_t bsum = 0, wraps = 0, expired = 0;
	char params[64];
	double secs;
	int rc;

	bench_clock_init();
	pin(0);
	store_open(&s, SYS_SESH, o, 1);
	store_fill(&s, o->resident);
	hist_init(&h);
	hist_init(&wall);
	start = bench_now();
	for (i = 0; i < o->passes; i++) {
		t0 = bench_now();
		rc = sesh_reap(s.d, &r);
		t1 = bench_now();
		if (rc != 0)
			fail("sesh_reap (pass %llu): %s", (unsigned long long)i,
			     sesh_strerror(rc));
		hist_add(&h, r.duration_ns);
		hist_add(&wall, bench_ns(t1 - t0));
		if (r.buckets_scanned < bmin)
			bmin = r.buckets_scanned;
		if (r.buckets_scanned > bmax)
			bmax = r.buckets_scanned;
		bsum += r.buckets_scanned;
		wraps += r.sweep_wrapped;
		expired += r.sessions_expired;
	}
	end = bench_now();
	if (expired)
		fail("%llu sessions expired during the run",
		     (unsigned long long)expired);
	secs = (double)bench_ns(end - start) / 1e9;
	snprintf(params, sizeof(params), "\"resident\": %zu", o->resident);
	bench_emit("reaper.pass", "sesh", params, &h,
		   secs > 0 ? (double)o->passes / secs : -1);
	fprintf(stderr,
		"bench_session: reaper: buckets_scanned per pass %.0f "
		"(min %llu, max %llu), sweep wrapped %llu times in %llu "
		"passes\n",
		(double)bsum / (double)o->passes, (unsigned long long)bmin,
		(unsigned long long)bmax, (unsigned long long)wraps,
		(unsigned long long)o->passes);
	fprintf(stderr,
		"bench_session: reaper: duration_ns p50 %llu, max %llu; "
		"wall time of the call p50 %llu, max %llu\n",
		(unsigned long long)hist_pct(&h, 50), (unsigned long long)h.max,
		(unsigned long long)hist_pct(&wall, 50),
		(unsigned long long)wall.max);
	/* The pass times itself inside the call: it cannot take longer. */
	if (hist_pct(&h, 50) > hist_pct(&wall, 50) * 1.05 + 1000)
		fail("reaper: duration_ns p50 above the call's wall time");
	store_close(&s);
	cleanup();
	return 0;
}

static void emit_memory(const char *system, size_t n, double per)
{
	printf("{\"case\": \"session.memory\", \"system\": \"%s\", "
	       "\"params\": {\"resident\": %zu}, \"p50_ns\": null, "
	       "\"p95_ns\": null, \"p99_ns\": null, \"p999_ns\": null, "
	       "\"max_ns\": null, \"mean_ns\": null, \"count\": 0, "
	       "\"ops_per_s\": null, \"bytes_per_session\": %.1f, "
	       "\"curve\": []}\n",
	       system, n, per);
	fflush(stdout);
	fprintf(stderr, "bench_session: %s: %.1f bytes per session\n", system,
		per);
}

static uint64_t committed(sesh_t *d)
{
	sesh_info_t in;
	int rc = sesh_info(d, &in);

	if (rc != 0)
		fail("sesh_info: %s", sesh_strerror(rc));
	return in.committed_bytes;
}

static void memory_sesh(const struct opts *o)
{
	struct store s;
	struct key k;
	uint64_t base, full;
	int rc;

	store_open(&s, SYS_SESH, o, 1);
	/* The namespace entry and the first pages of the record class
	 * exist before we count. */
	key_init(&k);
	key_of(&k, CD_BASE);
	rc = sesh_session_create(s.d, k.id, k.user, k.meta, META_LEN, TTL_S,
				 NULL);
	if (rc != 0)
		fail("sesh_session_create (warm-up): %s", sesh_strerror(rc));
	rc = sesh_session_delete(s.d, k.id);
	if (rc != 0)
		fail("sesh_session_delete (warm-up): %s", sesh_strerror(rc));
	base = committed(s.d);
	store_fill(&s, o->resident);
	full = committed(s.d);
	emit_memory("sesh", o->resident,
		    ((double)full - (double)base) / (double)o->resident);
	store_close(&s);
	remove_domain();
}

#ifdef HAVE_HIREDIS
static void memory_redis(const struct opts *o)
{
	struct store s;
	uint64_t base, full;

	store_open(&s, SYS_REDIS, o, 1);
	base = redis_used_memory(s.rc);
	store_fill(&s, o->resident);
	full = redis_used_memory(s.rc);
	emit_memory("redis", o->resident,
		    ((double)full - (double)base) / (double)o->resident);
	flush_redis();
}
#endif

#ifdef HAVE_SQLITE
static void memory_sqlite(const struct opts *o)
{
	struct store s;
	uint64_t base, full;

	store_open(&s, SYS_SQLITE, o, 1);
	checkpoint(&s);
	base = sqlite_bytes();
	store_fill(&s, o->resident); /* ends with a checkpoint */
	full = sqlite_bytes();
	emit_memory("sqlite", o->resident,
		    ((double)full - (double)base) / (double)o->resident);
	store_close(&s);
	remove_sqlite();
}
#endif

static int cmd_memory(const struct opts *o)
{
	bench_clock_init();
	memory_sesh(o);
	if (o->redis_socket) {
#ifdef HAVE_HIREDIS
		memory_redis(o);
#endif
	}
#ifdef HAVE_SQLITE
	memory_sqlite(o);
#else
	fprintf(stderr, "bench_session: sqlite not compiled in, skipped\n");
#endif
	cleanup();
	return 0;
}

static int cmd_machine(void)
{
	bench_clock_init();
	printf("{\"clock\": \"%s\", \"clock_cost_ns\": %.1f, \"ncpu\": %d}\n",
	       bench_clock_name(), bench_clock_cost_ns(), bench_ncpu());
	return 0;
}

/* --- the command line ----------------------------------------------------- */

enum {
	O_SYSTEM = 1 << 0,
	O_RESIDENT = 1 << 1,
	O_PROCS = 1 << 2,
	O_OPS = 1 << 3,
	O_PASSES = 1 << 4,
	O_REAPER = 1 << 5,
	O_SOCKET = 1 << 6,
};

static uint64_t parse_num(const char *s, uint64_t min, uint64_t max,
			  const char *name)
{
	char *end, why[160];
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max) {
		snprintf(why, sizeof(why), "--%s %s: want %llu..%llu", name, s,
			 (unsigned long long)min, (unsigned long long)max);
		usage(why);
	}
	return v;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"system", required_argument, NULL, O_SYSTEM},
		{"resident", required_argument, NULL, O_RESIDENT},
		{"procs", required_argument, NULL, O_PROCS},
		{"ops", required_argument, NULL, O_OPS},
		{"passes", required_argument, NULL, O_PASSES},
		{"reaper", no_argument, NULL, O_REAPER},
		{"redis-socket", required_argument, NULL, O_SOCKET},
		{NULL, 0, NULL, 0},
	};
	struct opts o = {SYS_SESH, 0, 1, 0, 0, 0, NULL};
	const char *mode, *system = NULL;
	int opt, seen = 0, need, allowed;

	g.parent = getpid();
	if (argc < 2)
		usage(NULL);
	mode = argv[1];
	while ((opt = getopt_long(argc - 1, argv + 1, "", longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case O_SYSTEM:
			system = optarg;
			break;
		case O_RESIDENT:
			o.resident =
				parse_num(optarg, 1, SESH_MAX_SESSIONS - SLACK,
					  "resident");
			break;
		case O_PROCS:
			o.procs = (int)parse_num(optarg, 1, MAX_PROCS, "procs");
			break;
		case O_OPS:
			o.ops = parse_num(optarg, 1, MAX_OPS, "ops");
			break;
		case O_PASSES:
			o.passes = parse_num(optarg, 1, MAX_OPS, "passes");
			break;
		case O_REAPER:
			o.reaper = 1;
			break;
		case O_SOCKET:
			o.redis_socket = optarg;
			break;
		default:
			usage(NULL);
		}
		seen |= opt;
	}
	if (optind != argc - 1)
		usage("unexpected argument");

	if (strcmp(mode, "ops") == 0) {
		need = O_SYSTEM | O_RESIDENT | O_PROCS | O_OPS;
		allowed = need | O_REAPER | O_SOCKET;
	} else if (strcmp(mode, "reaper") == 0) {
		need = allowed = O_RESIDENT | O_PASSES;
	} else if (strcmp(mode, "memory") == 0) {
		need = O_RESIDENT;
		allowed = need | O_SOCKET;
	} else if (strcmp(mode, "machine") == 0) {
		need = allowed = 0;
	} else {
		usage("unknown mode");
	}
	if ((seen & need) != need)
		usage("missing option");
	if (seen & ~allowed)
		usage("option not taken by this mode");

	if (system) {
		if (strcmp(system, "sesh") == 0)
			o.sys = SYS_SESH;
		else if (strcmp(system, "redis") == 0)
			o.sys = SYS_REDIS;
		else if (strcmp(system, "sqlite") == 0)
			o.sys = SYS_SQLITE;
		else
			usage("unknown system");
		if (o.sys == SYS_REDIS && !o.redis_socket)
			usage("--system redis needs --redis-socket");
		if (o.reaper && o.sys != SYS_SESH)
			usage("--reaper is for --system sesh only");
	}
#ifndef HAVE_HIREDIS
	if ((system && o.sys == SYS_REDIS) ||
	    (strcmp(mode, "memory") == 0 && o.redis_socket))
		fail("redis: not compiled in (no hiredis)");
#endif
#ifndef HAVE_SQLITE
	if (system && o.sys == SYS_SQLITE)
		fail("sqlite: not compiled in");
#endif
	if (o.reaper && o.procs == 2)
		fprintf(stderr, "bench_session: note: the reaper shares cpu 1 "
				"with worker 1\n");

	if (strcmp(mode, "machine") == 0)
		return cmd_machine();
	users_init();
	if (atexit(cleanup) != 0)
		fail("atexit failed");
	catch_signals();
	if (strcmp(mode, "ops") == 0)
		return cmd_ops(&o);
	if (strcmp(mode, "reaper") == 0)
		return cmd_reaper(&o);
	return cmd_memory(&o);
}
