/*
 * persist.c - write-through of sessions to SQLite, and their restore.
 *
 * How it works. The shared-memory index is the truth; the database is a
 * copy kept close behind it. A writer that changed a session notes the
 * key, (namespace, id), in the journal: a ring of entries in SHM_R_JOURNAL
 * numbered by a log sequence number (LSN), appended under a robust
 * process-shared mutex. A commit copies the keys noted so far, looks each
 * one up in the index, and in one SQLite transaction writes what it finds
 * (INSERT OR REPLACE) or removes what it does not (DELETE). Since what is
 * written is the state of the index when the commit reads it, not the
 * change that was noted, the order of notes does not matter and a key
 * noted many times is written once per commit.
 *
 * One process commits at a time: it holds a lease, an OFD lock on byte
 * SHM_LOCK_PERSIST that the kernel drops if it dies, and each process has
 * its own SQLite connection. Group commit: a synchronous writer notes its
 * key and then either takes the lease and commits everything noted (the
 * keys of the writers waiting with it too), or, if another process holds
 * it, sleeps on the journal's futex until `committed` passes its LSN. The
 * journal's tail moves only after SQLite said COMMIT worked, so a commit
 * that fails, or a committer killed at any instruction, loses nothing:
 * the keys are still there for the next one.
 *
 * When the journal overflows (the database was down for long, or behind),
 * when a process died (it may have died between its change and its note),
 * and after a restore, the next commit rewrites the whole database from
 * the index instead: every session with a new generation number, then a
 * DELETE of the rows of older generations. Touches are not journaled: the
 * reaper's sweep writes the last-seen times (and last event ids) of the
 * sessions seen since its previous round.
 *
 * Event ids continue across a restart: every commit stores the domain's
 * event floor, the sweep stores each session's last event id, and the
 * restore puts the highest of them back as the floor of the new domain.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/futex.h>

#include "gc/epoch.h"
#include "index/persist.h"
#include "ring/ring.h"

#ifdef HAVE_SQLITE
#include <sqlite3.h>
#endif

/* Schema version this build writes, and the application id that marks a
 * database as ours ("SESH"). */
#define SCHEMA_VERSION 1
#define APP_ID	       0x53455348

/* How long SQLite retries a locked database inside one commit: short,
 * since a failed commit is retried by the next writer or pass anyway. */
#define BUSY_MS 100

/* Longest error text kept for health. */
#define ERR_MAX 120

/* The journal's header, the first page of SHM_R_JOURNAL. */
struct jr_hdr {
	pthread_mutex_t lock; /* robust: head, tail, overflow, since */
	_Alignas(SHM_CACHELINE) uint64_t head; /* next LSN */
	uint64_t tail;			       /* oldest LSN not committed */
	uint64_t overflow;		       /* notes that found no room */
	_Atomic int64_t since_ns; /* when the oldest pending change was
				   * noted; 0 = none */
	/* Every LSN below `committed` is in the database. Waiters sleep on
	 * `futex`, bumped after each commit. */
	_Alignas(SHM_CACHELINE) _Atomic uint64_t committed;
	_Atomic uint32_t futex;
	/* Rewrites asked for and done (counters: done = req when the last
	 * rewrite began after the last request). */
	_Atomic uint32_t resync_req;
	_Atomic uint32_t resync_done;
	/* How the last try went, for health. err is written by the lease
	 * holder under the sequence lock err_seq (odd while writing). */
	_Alignas(SHM_CACHELINE) _Atomic uint32_t ok;
	_Atomic uint32_t err_seq;
	_Atomic int64_t last_ok_ns;
	_Atomic int64_t last_err_ns;
	_Atomic uint64_t gen; /* of the rows of the last rewrite */
	char err[ERR_MAX + 8];
};

_Static_assert(sizeof(struct jr_hdr) <= SHM_PAGE, "the header fits a page");

struct jr_ent {
	_Atomic uint64_t lsn; /* the LSN stored here (checked on read) */
	int64_t noted_ns;
	uint16_t ns;
	uint8_t id_len;
	uint8_t pad[5];
	char id[SESH_ID_MAX];
	uint8_t pad2[SHM_JR_ENTRY - 24 - SESH_ID_MAX];
};

_Static_assert(sizeof(struct jr_ent) == SHM_JR_ENTRY, "journal entries");

static struct jr_hdr *jr_hdr(const struct shm_seg *s)
{
	return shm_ptr(s, SHM_R_JOURNAL, s->geom.region[SHM_R_JOURNAL].off,
		       sizeof(struct jr_hdr), SHM_CACHELINE);
}

static struct jr_ent *jr_ent(const struct shm_seg *s, uint64_t lsn)
{
	uint64_t cap = s->geom.jr_cap;

	if (cap == 0)
		return NULL;
	return shm_ptr(s, SHM_R_JOURNAL,
		       s->geom.region[SHM_R_JOURNAL].off + SHM_PAGE +
			       (lsn % cap) * SHM_JR_ENTRY,
		       SHM_JR_ENTRY, 8);
}

int persist_format(const struct shm_seg *s)
{
	struct jr_hdr *h = jr_hdr(s);

	if (h == NULL)
		return -EUCLEAN;
	atomic_init(&h->ok, 1);
	/* A new domain over an existing database rewrites it once. */
	atomic_init(&h->resync_req, persist_on(s) ? 1 : 0);
	return idx_robust_init(&h->lock);
}

void persist_resync(const struct shm_seg *s)
{
	struct jr_hdr *h = jr_hdr(s);

	if (h != NULL && persist_on(s))
		atomic_fetch_add(&h->resync_req, 1);
}

/* A dead appender left head and its entry as they were: an entry is
 * written before head moves past it, so there is nothing to repair. */
static int jr_lock(struct jr_hdr *h)
{
	return idx_robust_lock(&h->lock, NULL, NULL, 0);
}

uint64_t persist_note(struct sesh *d, uint16_t ns, const char *id, size_t len)
{
	const struct shm_seg *s = &d->seg;
	struct jr_hdr *h = jr_hdr(s);
	struct jr_ent *e;
	int64_t now = shm_now_ns();
	uint64_t lsn;

	if (h == NULL || !persist_on(s) || len == 0 || len > SESH_ID_MAX)
		return PERSIST_NO_LSN;
	if (jr_lock(h) < 0) {
		persist_resync(s);
		return PERSIST_NO_LSN;
	}
	if (h->head - h->tail >= s->geom.jr_cap || h->tail > h->head) {
		h->overflow++;
		persist_resync(s);
	} else if ((e = jr_ent(s, h->head)) != NULL) {
		e->noted_ns = now;
		e->ns = ns;
		e->id_len = (uint8_t)len;
		memcpy(e->id, id, len);
		atomic_store_explicit(&e->lsn, h->head, memory_order_relaxed);
	}
	if (atomic_load_explicit(&h->since_ns, memory_order_relaxed) == 0)
		atomic_store_explicit(&h->since_ns, now, memory_order_relaxed);
	lsn = h->head++;
	pthread_mutex_unlock(&h->lock);
	return lsn;
}

#ifdef HAVE_SQLITE

static void set_error(struct jr_hdr *h, int code, const char *what,
		      const char *msg)
{
	uint32_t seq = atomic_load_explicit(&h->err_seq, memory_order_relaxed);

	atomic_store_explicit(&h->err_seq, seq | 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	snprintf(h->err, ERR_MAX, "%s: %s (%d)", what, msg ? msg : "", code);
	atomic_store_explicit(&h->err_seq, (seq | 1) + 1, memory_order_release);
	atomic_store_explicit(&h->last_err_ns, shm_now_ns(),
			      memory_order_relaxed);
	atomic_store_explicit(&h->ok, 0, memory_order_relaxed);
}

/* This process's connection to the database. */
struct persist_conn {
	sqlite3 *db;
	pid_t pid; /* that opened it: a child opens its own */
	dev_t dev;
	ino_t ino;
	sqlite3_stmt *upsert, *del, *touch, *floor;
};

static const char *const schema[SCHEMA_VERSION] = {
	/* 0 -> 1 */
	"CREATE TABLE sessions ("
	" ns TEXT NOT NULL, id TEXT NOT NULL, user TEXT NOT NULL,"
	" meta BLOB NOT NULL, created_ns INTEGER NOT NULL,"
	" last_seen_ns INTEGER NOT NULL, ttl_s INTEGER NOT NULL,"
	" last_event_id INTEGER NOT NULL DEFAULT 0,"
	" gen INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY (ns, id)) WITHOUT ROWID;"
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)"
	" WITHOUT ROWID;",
};

static int exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static int query_int(sqlite3 *db, const char *sql, int64_t *v)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*v = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Bring the schema to SCHEMA_VERSION. -EPROTO for a database that is not
 * ours or is newer than this build; -EIO for SQLite errors. */
static int migrate(sqlite3 *db)
{
	int64_t ver = 0, app = 0, objects = 0;
	char sql[96];
	int rc;

	rc = query_int(db, "PRAGMA application_id", &app);
	if (rc == SQLITE_OK)
		rc = query_int(db, "PRAGMA user_version", &ver);
	if (rc == SQLITE_OK)
		rc = query_int(db, "SELECT count(*) FROM sqlite_master",
			       &objects);
	if (rc != SQLITE_OK)
		return rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT ? -EPROTO
								   : -EIO;
	if ((app != 0 && app != APP_ID) || (app == 0 && objects > 0) ||
	    ver > SCHEMA_VERSION)
		return -EPROTO;
	for (; ver < SCHEMA_VERSION; ver++) {
		if (exec(db, "BEGIN IMMEDIATE") != SQLITE_OK)
			return -EIO;
		snprintf(sql, sizeof(sql),
			 "PRAGMA user_version = %d; PRAGMA application_id = %d",
			 (int)ver + 1, APP_ID);
		if (exec(db, schema[ver]) != SQLITE_OK ||
		    exec(db, sql) != SQLITE_OK ||
		    exec(db, "COMMIT") != SQLITE_OK) {
			(void)exec(db, "ROLLBACK");
			return -EIO;
		}
	}
	return 0;
}

static void conn_free(struct persist_conn *c)
{
	if (c == NULL)
		return;
	sqlite3_finalize(c->upsert);
	sqlite3_finalize(c->del);
	sqlite3_finalize(c->touch);
	sqlite3_finalize(c->floor);
	sqlite3_close_v2(c->db);
	free(c);
}

/* Open (creating if missing) the database, bring its schema up to date
 * and prepare the statements. Errors are recorded in the journal. */
static int conn_open(struct sesh *d, struct persist_conn **out)
{
	const char *path = d->seg.geom.sqlite_path;
	struct jr_hdr *h = jr_hdr(&d->seg);
	struct persist_conn *c;
	struct stat st;
	int rc;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->pid = getpid();
	rc = sqlite3_open_v2(path, &c->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(c->db, BUSY_MS);
	/* Ours or refused, before anything is changed in the file. */
	rc = migrate(c->db);
	if (rc < 0) {
		if (h != NULL)
			set_error(h, rc, "schema",
				  rc == -EPROTO ? "not a sesh database, or "
						  "a newer schema"
						: sqlite3_errmsg(c->db));
		conn_free(c);
		return rc == -EPROTO ? -EPROTO : -EIO;
	}
	rc = exec(c->db, "PRAGMA journal_mode = WAL");
	if (rc == SQLITE_OK)
		rc = exec(c->db, d->seg.geom.sqlite_mode == SESH_SQLITE_SYNC
					 ? "PRAGMA synchronous = FULL"
					 : "PRAGMA synchronous = NORMAL");
	if (rc != SQLITE_OK)
		goto fail;
	{
		const struct {
			const char *sql;
			sqlite3_stmt **st;
		} prep[] = {
			{"INSERT OR REPLACE INTO sessions (ns, id, user, meta,"
			 " created_ns, last_seen_ns, ttl_s, last_event_id, gen)"
			 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
			 &c->upsert},
			{"DELETE FROM sessions WHERE ns = ?1 AND id = ?2",
			 &c->del},
			{"UPDATE sessions SET last_seen_ns = max(last_seen_ns,"
			 " ?3), last_event_id = max(last_event_id, ?4)"
			 " WHERE ns = ?1 AND id = ?2",
			 &c->touch},
			{"INSERT INTO meta VALUES (?1, ?2) ON CONFLICT (key)"
			 " DO UPDATE SET value = max(value, excluded.value)",
			 &c->floor},
		};
		size_t i;

		for (i = 0;
		     i < sizeof(prep) / sizeof(prep[0]) && rc == SQLITE_OK; i++)
			rc = sqlite3_prepare_v3(c->db, prep[i].sql, -1,
						SQLITE_PREPARE_PERSISTENT,
						prep[i].st, NULL);
	}
	if (rc != SQLITE_OK)
		goto fail;
	if (stat(path, &st) != 0) {
		rc = SQLITE_CANTOPEN;
		goto fail;
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	*out = c;
	return 0;
fail:
	if (h != NULL)
		set_error(h, rc, "open",
			  c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
	conn_free(c);
	return -EIO;
}

/* Our connection, fit for use: opened in this process, to the file that
 * the path names now. A database removed or replaced under us is opened
 * anew and rewritten whole. */
static int conn_get(struct sesh *d, struct persist_conn **out)
{
	struct persist_conn *c = d->pc;
	struct stat st;
	int rc;

	if (c != NULL && c->pid != getpid()) {
		/* The parent's, inherited by fork: never closed here, since
		 * that would disturb the parent's locks and WAL. */
		c = d->pc = NULL;
	}
	if (c != NULL && (stat(d->seg.geom.sqlite_path, &st) != 0 ||
			  st.st_dev != c->dev || st.st_ino != c->ino)) {
		conn_free(c);
		c = d->pc = NULL;
		persist_resync(&d->seg);
	}
	if (c == NULL) {
		rc = conn_open(d, &c);
		if (rc < 0)
			return rc;
		d->pc = c;
	}
	*out = c;
	return 0;
}

void persist_close(struct sesh *d)
{
	if (d->pc != NULL && d->pc->pid == getpid())
		conn_free(d->pc);
	d->pc = NULL;
}

/* --- the lease -------------------------------------------------------- */

static int lease_take(struct sesh *d)
{
	int rc;

	if (pthread_mutex_trylock(&d->persist_lock) != 0)
		return -EBUSY;
	rc = shm_ensure_registered(d);
	if (rc == 0)
		rc = shm_lock_byte(d->lock_fd, F_WRLCK, SHM_LOCK_PERSIST,
				   F_OFD_SETLK);
	if (rc == 0)
		return 0;
	pthread_mutex_unlock(&d->persist_lock);
	return rc == -EAGAIN ? -EBUSY : rc;
}

static void lease_drop(struct sesh *d)
{
	(void)shm_lock_byte(d->lock_fd, F_UNLCK, SHM_LOCK_PERSIST, F_OFD_SETLK);
	pthread_mutex_unlock(&d->persist_lock);
}

/* --- writing rows ------------------------------------------------------ */

/* row_ctx.rc once upsert() has bound a row that still needs its step. */
#define SQLITE_PENDING_STEP (-1)

/* A key copied out of the journal or the index. */
struct jkey {
	uint16_t ns;
	uint8_t len;
	char id[SESH_ID_MAX];
};

struct row_ctx {
	struct persist_conn *c;
	const struct shm_seg *s;
	uint64_t gen;
	int rc; /* SQLite's, of the last step */
	bool found;
	uint64_t rows;
};

static const char *ns_name(const struct shm_seg *s, uint16_t ns, int *len)
{
	struct idx_ns *e = idx_ns_entry(s, ns);

	if (e == NULL || e->name_len == 0 || e->name_len > SESH_NAME_MAX)
		return NULL;
	*len = (int)e->name_len;
	return e->name;
}

/* Write record v (inside a read-side section: everything is bound with
 * SQLITE_TRANSIENT, copied before the section ends). */
static void upsert(const struct idx_view *v, void *arg)
{
	struct row_ctx *x = arg;
	sqlite3_stmt *st = x->c->upsert;
	const char *ns;
	int nlen;

	x->found = true;
	ns = ns_name(x->s, v->ns, &nlen);
	if (ns == NULL)
		return;
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, ns, nlen, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, v->id, v->id_len, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, v->user, v->user_len, SQLITE_TRANSIENT);
	sqlite3_bind_blob(st, 4, v->meta_len ? v->meta : "", (int)v->meta_len,
			  SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 5, v->created_ns);
	sqlite3_bind_int64(st, 6,
			   atomic_load_explicit(&v->r->last_seen_ns,
						memory_order_relaxed));
	sqlite3_bind_int64(st, 7, v->ttl_s);
	sqlite3_bind_int64(st, 8, (int64_t)ring_last_id(x->s, v->stream));
	sqlite3_bind_int64(st, 9, (int64_t)x->gen);
	x->rc = SQLITE_PENDING_STEP;
}

static int step(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Write the state of key (ns, id): the row, or its removal. */
static int write_key(struct sesh *d, struct row_ctx *x, uint16_t ns,
		     const char *id, size_t len)
{
	const char *nsn;
	int nlen, rc;

	x->found = false;
	x->rc = SQLITE_OK;
	rc = idx_visit_key(d, ns, id, len, upsert, x);
	if (rc < 0)
		return SQLITE_OK; /* unreadable index: the rewrite covers it */
	if (x->found) {
		if (x->rc != SQLITE_PENDING_STEP)
			return SQLITE_OK;
		x->rows++;
		return step(x->c->upsert);
	}
	nsn = ns_name(x->s, ns, &nlen);
	if (nsn == NULL)
		return SQLITE_OK;
	sqlite3_bind_text(x->c->del, 1, nsn, nlen, SQLITE_TRANSIENT);
	sqlite3_bind_text(x->c->del, 2, id, (int)len, SQLITE_TRANSIENT);
	x->rows++;
	return step(x->c->del);
}

/* Rewrite: every session of the index with generation x->gen. */
struct bucket_rows {
	size_t n, cap;
	struct jkey *k;
};

static void collect_key(const struct idx_view *v, void *arg)
{
	struct bucket_rows *b = arg;

	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 16;
		void *k = realloc(b->k, cap * sizeof(*b->k));

		if (k == NULL)
			return;
		b->k = k;
		b->cap = cap;
	}
	b->k[b->n].ns = v->ns;
	b->k[b->n].len = v->id_len;
	memcpy(b->k[b->n].id, v->id, v->id_len);
	b->n++;
}

static int rewrite(struct sesh *d, struct row_ctx *x)
{
	const struct shm_seg *s = &d->seg;
	struct bucket_rows b = {0, 0, NULL};
	uint64_t i;
	char sql[96];
	size_t k;
	int rc = SQLITE_OK;

	for (i = 0; i < s->geom.nbuckets && rc == SQLITE_OK; i++) {
		b.n = 0;
		if (idx_visit_bucket(d, i, collect_key, &b) < 0)
			continue;
		for (k = 0; k < b.n && rc == SQLITE_OK; k++)
			rc = write_key(d, x, b.k[k].ns, b.k[k].id, b.k[k].len);
	}
	free(b.k);
	if (rc != SQLITE_OK)
		return rc;
	snprintf(sql, sizeof(sql), "DELETE FROM sessions WHERE gen < %llu",
		 (unsigned long long)x->gen);
	rc = exec(x->c->db, sql);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(x->c->floor, 1, "gen", -1, SQLITE_STATIC);
		sqlite3_bind_int64(x->c->floor, 2, (int64_t)x->gen);
		rc = step(x->c->floor);
	}
	return rc;
}

static int store_floor(const struct shm_seg *s, struct persist_conn *c)
{
	uint64_t f = atomic_load(&shm_hdr(s)->event_floor);

	sqlite3_bind_text(c->floor, 1, "event_floor", -1, SQLITE_STATIC);
	sqlite3_bind_int64(c->floor, 2, (int64_t)f);
	return step(c->floor);
}

static void wake_all(struct jr_hdr *h)
{
	atomic_fetch_add(&h->futex, 1);
	syscall(SYS_futex, &h->futex, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* The commit, with the lease held. */
static int flush_locked(struct sesh *d, uint64_t *rows)
{
	const struct shm_seg *s = &d->seg;
	struct jr_hdr *h = jr_hdr(s);
	struct row_ctx x = {0};
	struct persist_conn *c;
	struct jkey *keys = NULL;
	uint64_t head, tail, ovf, n = 0, lsn;
	uint32_t req;
	bool all;
	int rc;

	rc = conn_get(d, &c);
	if (rc < 0) {
		shm_stat_add(d, SHM_ST_PERSIST_ERRORS, 1);
		return rc == -ENOMEM ? rc : -EIO;
	}
	if (jr_lock(h) < 0)
		return -EUCLEAN;
	head = h->head;
	tail = h->tail;
	ovf = h->overflow;
	pthread_mutex_unlock(&h->lock);
	req = atomic_load(&h->resync_req);
	all = req != atomic_load(&h->resync_done) || ovf != 0 ||
	      head - tail > s->geom.jr_cap;
	if (!all && head == tail) {
		/* Nothing waits; a committer killed between moving the tail
		 * and `committed` left it behind: catch it up. */
		if (atomic_load(&h->committed) < head) {
			atomic_store_explicit(&h->committed, head,
					      memory_order_release);
			wake_all(h);
		}
		return 0;
	}
	if (!all) {
		keys = malloc((size_t)(head - tail) * sizeof(*keys));
		if (keys == NULL)
			return -ENOMEM;
		/* Entries below head are complete and only the lease holder
		 * frees them: no lock needed to read them. */
		for (lsn = tail; lsn < head; lsn++) {
			struct jr_ent *e = jr_ent(s, lsn);

			if (e == NULL ||
			    atomic_load_explicit(&e->lsn,
						 memory_order_relaxed) != lsn ||
			    e->id_len == 0 || e->id_len > SESH_ID_MAX) {
				all = true; /* scribbled: rewrite */
				break;
			}
			keys[n].ns = e->ns;
			keys[n].len = e->id_len;
			memcpy(keys[n].id, e->id, e->id_len);
			n++;
		}
	}
	x.c = c;
	x.s = s;
	x.gen = atomic_load(&h->gen);
	rc = exec(c->db, "BEGIN IMMEDIATE");
	if (rc == SQLITE_OK && all) {
		/* Above every generation the file holds, whichever domain
		 * (or incarnation of it) wrote them. */
		int64_t g = 0;

		rc = query_int(c->db,
			       "SELECT coalesce(max(value), 0) FROM meta"
			       " WHERE key = 'gen'",
			       &g);
		if ((uint64_t)g > x.gen)
			x.gen = (uint64_t)g;
		x.gen++;
	}
	if (rc == SQLITE_OK && all) {
		rc = rewrite(d, &x);
	} else if (rc == SQLITE_OK) {
		uint64_t i;

		for (i = 0; i < n && rc == SQLITE_OK; i++)
			rc = write_key(d, &x, keys[i].ns, keys[i].id,
				       keys[i].len);
	}
	if (rc == SQLITE_OK)
		rc = store_floor(s, c);
	if (rc == SQLITE_OK)
		rc = exec(c->db, "COMMIT");
	free(keys);
	if (rc != SQLITE_OK) {
		set_error(h, rc, "commit", sqlite3_errmsg(c->db));
		(void)exec(c->db, "ROLLBACK");
		shm_stat_add(d, SHM_ST_PERSIST_ERRORS, 1);
		return -EIO;
	}
	/* Committed: now, and only now, the journal lets go of it. */
	if (jr_lock(h) == 0) {
		struct jr_ent *e;

		h->tail = head;
		if (all && h->overflow == ovf)
			h->overflow = 0;
		e = h->head > head ? jr_ent(s, head) : NULL;
		atomic_store_explicit(&h->since_ns,
				      h->head == head ? 0
				      : e != NULL     ? e->noted_ns
						      : shm_now_ns(),
				      memory_order_relaxed);
		pthread_mutex_unlock(&h->lock);
	}
	if (all) {
		atomic_store(&h->gen, x.gen);
		atomic_store(&h->resync_done, req);
	}
	atomic_store_explicit(&h->ok, 1, memory_order_relaxed);
	atomic_store_explicit(&h->last_ok_ns, shm_now_ns(),
			      memory_order_relaxed);
	/* Release: the tail and counts above before a waiter sees it. */
	if (atomic_load(&h->committed) < head)
		atomic_store_explicit(&h->committed, head,
				      memory_order_release);
	wake_all(h);
	shm_stat_add(d, SHM_ST_PERSIST_COMMITS, 1);
	shm_stat_add(d, SHM_ST_PERSIST_ROWS, x.rows);
	if (rows != NULL)
		*rows = x.rows;
	return 0;
}

int persist_flush(struct sesh *d, uint64_t *rows)
{
	int rc;

	if (rows != NULL)
		*rows = 0;
	if (!persist_on(&d->seg) || jr_hdr(&d->seg) == NULL)
		return 0;
	rc = lease_take(d);
	if (rc < 0)
		return rc;
	rc = flush_locked(d, rows);
	lease_drop(d);
	return rc;
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Wait until the commit covers `lsn`: commit ourselves when nobody else
 * is committing, sleep while someone is. */
static int wait_commit(struct sesh *d, uint64_t lsn)
{
	struct jr_hdr *h = jr_hdr(&d->seg);
	int64_t end = mono_ns() + (int64_t)d->seg.geom.sqlite_wait_ms * 1000000;
	struct timespec ts = {0, 2000000};
	int rc;

	for (;;) {
		uint32_t f = atomic_load(&h->futex);

		/* Acquire: pairs with the committer's release. */
		if (atomic_load_explicit(&h->committed, memory_order_acquire) >
		    lsn)
			return 0;
		rc = persist_flush(d, NULL);
		if (rc == 0)
			continue;
		if (rc != -EBUSY)
			return -EIO;
		if (mono_ns() > end)
			return -EIO;
		/* A committer killed does not wake us: look again soon. */
		syscall(SYS_futex, &h->futex, FUTEX_WAIT, f, &ts, NULL, 0);
	}
}

int persist_after_write(struct sesh *d, uint16_t ns, const char *id, size_t len)
{
	const struct shm_seg *s = &d->seg;
	struct jr_hdr *h = jr_hdr(s);
	uint64_t lsn;
	int64_t since;

	if (h == NULL)
		return 0;
	lsn = persist_note(d, ns, id, len);
	if (s->geom.sqlite_mode == SESH_SQLITE_SYNC)
		/* Not noted (the journal's lock is broken): only the rewrite
		 * asked for covers it, so it is not acknowledged. */
		return lsn == PERSIST_NO_LSN ? -EIO : wait_commit(d, lsn);
	/* Asynchronous: commit ourselves once the oldest pending change
	 * is older than the bound, or the journal is half full; but not
	 * within a second of a failure, so that a database that is down
	 * does not slow every writer (the reaper and later writers try). */
	if (!atomic_load_explicit(&h->ok, memory_order_relaxed) &&
	    shm_now_ns() - atomic_load_explicit(&h->last_err_ns,
						memory_order_relaxed) <
		    1000000000)
		return 0;
	since = atomic_load_explicit(&h->since_ns, memory_order_relaxed);
	if ((since != 0 && shm_now_ns() - since >=
				   (int64_t)s->geom.sqlite_lag_ms * 1000000) ||
	    lsn - atomic_load(&h->committed) >= s->geom.jr_cap / 2)
		(void)persist_flush(d, NULL);
	return 0;
}

/* --- touches, from the reaper's sweep ---------------------------------- */

struct persist_touches {
	size_t n, cap;
	struct touch {
		uint16_t ns;
		uint8_t len;
		char id[SESH_ID_MAX];
		int64_t seen;
		uint64_t last_id;
	} t[];
};

struct touch_ctx {
	struct persist_touches **t;
	const struct shm_seg *s;
	int64_t since;
};

static void touch_one(const struct idx_view *v, void *arg)
{
	struct touch_ctx *x = arg;
	struct persist_touches *t = *x->t;
	int64_t seen =
		atomic_load_explicit(&v->r->last_seen_ns, memory_order_relaxed);
	struct touch *e;

	if (seen <= x->since)
		return;
	if (t == NULL || t->n == t->cap) {
		size_t cap = t ? 2 * t->cap : 256;
		struct persist_touches *nt =
			realloc(t, sizeof(*t) + cap * sizeof(t->t[0]));

		if (nt == NULL)
			return;
		if (t == NULL)
			nt->n = 0;
		nt->cap = cap;
		*x->t = t = nt;
	}
	e = &t->t[t->n++];
	e->ns = v->ns;
	e->len = v->id_len;
	memcpy(e->id, v->id, v->id_len);
	e->seen = seen;
	e->last_id = ring_last_id(x->s, v->stream);
}

void persist_touch_bucket(struct sesh *d, struct persist_touches **t,
			  uint64_t b, int64_t since_ns)
{
	struct touch_ctx x = {t, &d->seg, since_ns};

	if (persist_on(&d->seg))
		(void)idx_visit_bucket(d, b, touch_one, &x);
}

int persist_touch_flush(struct sesh *d, struct persist_touches **tp,
			uint64_t *rows)
{
	struct persist_touches *t = *tp;
	struct persist_conn *c;
	struct jr_hdr *h = jr_hdr(&d->seg);
	size_t i;
	int rc;

	*rows = 0;
	*tp = NULL;
	if (t == NULL)
		return 0;
	/* A committer holds the lease for a transaction's time: wait for
	 * it a little, since touches not written cost a rewrite. */
	for (i = 0; (rc = lease_take(d)) == -EBUSY && i < 100; i++) {
		struct timespec ts = {0, 2000000};

		nanosleep(&ts, NULL);
	}
	if (rc == 0) {
		rc = conn_get(d, &c);
		if (rc == 0) {
			int sq = exec(c->db, "BEGIN IMMEDIATE");

			for (i = 0; i < t->n && sq == SQLITE_OK; i++) {
				const char *ns;
				int nlen;

				ns = ns_name(&d->seg, t->t[i].ns, &nlen);
				if (ns == NULL)
					continue;
				sqlite3_bind_text(c->touch, 1, ns, nlen,
						  SQLITE_TRANSIENT);
				sqlite3_bind_text(c->touch, 2, t->t[i].id,
						  t->t[i].len,
						  SQLITE_TRANSIENT);
				sqlite3_bind_int64(c->touch, 3, t->t[i].seen);
				sqlite3_bind_int64(c->touch, 4,
						   (int64_t)t->t[i].last_id);
				sq = step(c->touch);
			}
			if (sq == SQLITE_OK)
				sq = store_floor(&d->seg, c);
			if (sq == SQLITE_OK)
				sq = exec(c->db, "COMMIT");
			if (sq != SQLITE_OK) {
				set_error(h, sq, "touch",
					  sqlite3_errmsg(c->db));
				(void)exec(c->db, "ROLLBACK");
				rc = -EIO;
			} else {
				*rows = t->n;
				shm_stat_add(d, SHM_ST_PERSIST_ROWS, t->n);
				shm_stat_add(d, SHM_ST_PERSIST_COMMITS, 1);
			}
		}
		lease_drop(d);
	}
	if (rc < 0 && rc != -EBUSY)
		shm_stat_add(d, SHM_ST_PERSIST_ERRORS, 1);
	/* Not written: the next rewrite carries them. */
	if (rc < 0)
		persist_resync(&d->seg);
	free(t);
	return rc;
}

/* --- restore ------------------------------------------------------------ */

int persist_restore(struct sesh *d)
{
	struct persist_conn *c = NULL;
	sqlite3_stmt *st = NULL;
	uint64_t floor = 0;
	int64_t now = shm_now_ns();
	int rc, sq;

	if (!persist_on(&d->seg))
		return 0;
	/* Opened even when it does not exist yet: a path that cannot be a
	 * database fails the creation now, not the first write. */
	rc = conn_open(d, &c);
	if (rc < 0)
		return rc;
	sq = sqlite3_prepare_v2(c->db,
				"SELECT ns, id, user, meta, created_ns,"
				" last_seen_ns, ttl_s, last_event_id"
				" FROM sessions ORDER BY ns",
				-1, &st, NULL);
	while (sq == SQLITE_OK) {
		const char *ns, *id, *user;
		const void *meta;
		int meta_len;
		int64_t created, seen, ttl, last;

		sq = sqlite3_step(st);
		if (sq != SQLITE_ROW)
			break;
		sq = SQLITE_OK;
		ns = (const char *)sqlite3_column_text(st, 0);
		id = (const char *)sqlite3_column_text(st, 1);
		user = (const char *)sqlite3_column_text(st, 2);
		meta = sqlite3_column_blob(st, 3);
		meta_len = sqlite3_column_bytes(st, 3);
		created = sqlite3_column_int64(st, 4);
		seen = sqlite3_column_int64(st, 5);
		ttl = sqlite3_column_int64(st, 6);
		last = sqlite3_column_int64(st, 7);

		if (last > 0 && (uint64_t)last > floor)
			floor = (uint64_t)last;
		if (ttl < 1 || ttl > UINT32_MAX || ns == NULL || id == NULL ||
		    !shm_name_valid(ns))
			continue; /* not something we wrote */
		if (seen + ttl * 1000000000 < now)
			continue; /* expired while we were away */
		if (strcmp(ns, d->ns) != 0) {
			snprintf(d->ns, sizeof(d->ns), "%s", ns);
			atomic_store(&d->ns_idx, -1);
		}
		rc = idx_restore(d, id, user && user[0] ? user : NULL,
				 meta_len > 0 ? meta : NULL, (size_t)meta_len,
				 (uint32_t)ttl, created, seen);
		if (rc == -ENOSPC || rc == -E2BIG)
			break;
		rc = 0; /* a row we could not take (a bad id) is skipped */
	}
	if (sq == SQLITE_DONE)
		sq = SQLITE_OK;
	sqlite3_finalize(st);
	if (sq == SQLITE_OK) {
		sqlite3_stmt *m;

		if (sqlite3_prepare_v2(c->db,
				       "SELECT value FROM meta WHERE key ="
				       " 'event_floor'",
				       -1, &m, NULL) == SQLITE_OK) {
			if (sqlite3_step(m) == SQLITE_ROW &&
			    (uint64_t)sqlite3_column_int64(m, 0) > floor)
				floor = (uint64_t)sqlite3_column_int64(m, 0);
			sqlite3_finalize(m);
		}
		atomic_store(&shm_hdr(&d->seg)->event_floor, floor);
	}
	conn_free(c);
	if (rc < 0)
		return rc;
	return sq == SQLITE_OK ? 0 : -EIO;
}

#else /* !HAVE_SQLITE */

void persist_close(struct sesh *d)
{
	(void)d;
}

int persist_flush(struct sesh *d, uint64_t *rows)
{
	if (rows != NULL)
		*rows = 0;
	return persist_on(&d->seg) ? -ENOTSUP : 0;
}

int persist_after_write(struct sesh *d, uint16_t ns, const char *id, size_t len)
{
	(void)ns;
	(void)id;
	(void)len;
	return persist_on(&d->seg) ? -ENOTSUP : 0;
}

void persist_touch_bucket(struct sesh *d, struct persist_touches **t,
			  uint64_t b, int64_t since_ns)
{
	(void)d;
	(void)t;
	(void)b;
	(void)since_ns;
}

int persist_touch_flush(struct sesh *d, struct persist_touches **t,
			uint64_t *rows)
{
	(void)d;
	*t = NULL;
	*rows = 0;
	return 0;
}

int persist_restore(struct sesh *d)
{
	return persist_on(&d->seg) ? -ENOTSUP : 0;
}

#endif /* HAVE_SQLITE */

int persist_health(struct sesh *d, sesh_health_t *hl, char *why, size_t n)
{
	const struct shm_seg *s = &d->seg;
	struct jr_hdr *h = jr_hdr(s);
	uint32_t seq;
	int64_t since;

	if (!persist_on(s) || h == NULL)
		return 0;
	hl->persist = s->geom.sqlite_mode == SESH_SQLITE_SYNC ? 1 : 2;
	hl->persist_ok = (int)atomic_load(&h->ok);
	hl->persist_resync =
		atomic_load(&h->resync_req) != atomic_load(&h->resync_done);
	hl->persist_last_ns = atomic_load(&h->last_ok_ns);
	if (jr_lock(h) == 0) {
		hl->persist_pending = h->head - h->tail;
		pthread_mutex_unlock(&h->lock);
	}
	since = atomic_load(&h->since_ns);
	if (hl->persist_pending > 0 && since > 0 && shm_now_ns() > since)
		hl->persist_lag_ns = (uint64_t)(shm_now_ns() - since);
	if (!hl->persist_ok) {
		do {
			seq = atomic_load_explicit(&h->err_seq,
						   memory_order_acquire);
			memcpy(hl->persist_error, h->err,
			       sizeof(hl->persist_error) - 1);
			atomic_thread_fence(memory_order_acquire);
		} while ((seq & 1) || seq != atomic_load(&h->err_seq));
		hl->persist_error[sizeof(hl->persist_error) - 1] = '\0';
		snprintf(why, n, "database: %s", hl->persist_error);
		return 1;
	}
	if (hl->persist == 2 &&
	    hl->persist_lag_ns >
		    10 * (uint64_t)s->geom.sqlite_lag_ms * 1000000) {
		snprintf(why, n, "database: %llu changes waiting for %llu ms",
			 (unsigned long long)hl->persist_pending,
			 (unsigned long long)(hl->persist_lag_ns / 1000000));
		return 1;
	}
	return 0;
}
