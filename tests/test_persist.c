/*
 * test_persist.c - write-through to SQLite: a round trip through a
 * removed and re-created domain (sessions back, event ids continue),
 * expired sessions left out, asynchronous mode and its lag, group commit
 * across processes, writers killed mid-way, and a database that is
 * locked, removed or corrupt mid-run: the store keeps serving, health
 * says degraded, and once the database works again it holds everything.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#include <cmocka.h>

#ifdef HAVE_SQLITE
#include <sqlite3.h>

static char g_dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/sesh-persist-XXXXXX");
	return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void db_path(char *buf, size_t n, const char *tag)
{
	snprintf(buf, n, "%s/%s.db", g_dir, tag);
}

static void rm_db(const char *path)
{
	char p[256];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

static sesh_t *open_db(const char *name, const char *path, unsigned mode,
		       const char *ns)
{
	sesh_config_t cfg;
	sesh_t *d = NULL;
	int rc;

	tu_small(&cfg);
	cfg.max_sessions = 512;
	cfg.sqlite_path = path;
	cfg.sqlite_mode = mode;
	cfg.sqlite_lag_ms = 50;
	rc = sesh_open(name, ns, &cfg, SESH_CREATE, &d);
	if (rc != 0)
		fail_msg("sesh_open(%s, %s): %s", name, path,
			 sesh_strerror(rc));
	return d;
}

/* Rows of the database, read with a connection of our own. */
static int64_t db_count(const char *path, const char *where)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char sql[256];
	int64_t n = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK) {
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, 2000);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM sessions%s%s",
		 where ? " WHERE " : "", where ? where : "");
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return n;
}

static void mkid(char *buf, size_t n, const char *tag, int i)
{
	snprintf(buf, n, "%s-%d", tag, i);
}

static void reap_ok(sesh_t *d, sesh_reap_report_t *r)
{
	sesh_reap_report_t tmp;
	int rc, tries = 0;

	while ((rc = sesh_reap(d, r ? r : &tmp)) == -EBUSY && tries++ < 1000)
		tu_sleep_ms(2);
	assert_int_equal(rc, 0);
}

/* --- round trip -------------------------------------------------------------
 */

static void test_round_trip(void **state)
{
	char name[64], path[128], meta[64];
	sesh_session_t s;
	sesh_health_t h;
	sesh_stats_t st;
	uint64_t id1 = 0, id2 = 0;
	sesh_t *d, *d2;

	(void)state;
	tu_name(name, sizeof(name), "rt");
	db_path(path, sizeof(path), "rt");
	d = open_db(name, path, SESH_SQLITE_SYNC, NULL);
	d2 = open_db(name, path, SESH_SQLITE_SYNC, "tenant2");
	assert_int_equal(
		sesh_session_create(d, "a", "alice", "meta-a", 6, 600, NULL),
		0);
	assert_int_equal(
		sesh_session_create(d, "b", "bob", "meta-b", 6, 600, NULL), 0);
	assert_int_equal(
		sesh_session_create(d2, "a", "carol", NULL, 0, 300, NULL), 0);
	/* Synchronous: committed before the calls returned. */
	assert_int_equal(db_count(path, NULL), 3);
	assert_int_equal(sesh_session_update(d, "a", "META-A2", 7), 0);
	assert_int_equal(sesh_session_delete(d, "b"), 0);
	assert_int_equal(db_count(path, NULL), 2);
	assert_int_equal(db_count(path, "meta = CAST('META-A2' AS BLOB)"), 1);
	assert_int_equal(sesh_publish(d, "a", "m1", 2, &id1), 0);
	assert_int_equal(sesh_publish(d, "a", "m2", 2, &id1), 0);
	assert_int_equal(sesh_session_get(d, "a", NULL, &s, NULL, 0), 0);
	assert_int_equal(s.last_event_id, id1);
	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.persist, 1);
	assert_int_equal(h.persist_ok, 1);
	assert_int_equal(h.persist_pending, 0);
	assert_string_equal(h.persist_error, "");
	assert_int_equal(sesh_stats(d, &st), 0);
	assert_true(st.persist_commits >= 1);
	assert_true(st.persist_rows >= 5);
	assert_int_equal(st.persist_errors, 0);
	{
		int64_t created = s.created_ns;

		sesh_close(d2);
		sesh_close(d);
		assert_int_equal(sesh_unlink(name), 0);

		/* A new domain over the same database. */
		d = open_db(name, path, SESH_SQLITE_SYNC, NULL);
		memset(meta, 0, sizeof(meta));
		assert_int_equal(sesh_session_get(d, "a", "alice", &s, meta,
						  sizeof(meta)),
				 0);
		assert_string_equal(meta, "META-A2");
		assert_int_equal(s.ttl_s, 600);
		assert_int_equal(s.created_ns, created);
		assert_int_equal(s.last_event_id, 0); /* bodies not kept */
		assert_int_equal(sesh_session_get(d, "b", NULL, NULL, NULL, 0),
				 -ENOENT);
	}
	d2 = open_db(name, path, SESH_SQLITE_SYNC, "tenant2");
	assert_int_equal(sesh_session_get(d2, "a", "carol", &s, NULL, 0), 0);
	assert_int_equal(s.ttl_s, 300);
	/* Event ids continue above every id issued before. */
	assert_int_equal(sesh_publish(d, "a", "m3", 2, &id2), 0);
	assert_true(id2 > id1);
	sesh_close(d2);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* Sessions idle past their TTL while the domain was gone stay gone. */
static void test_expired_skipped(void **state)
{
	char name[64], path[128];
	sesh_t *d;

	(void)state;
	tu_name(name, sizeof(name), "exp");
	db_path(path, sizeof(path), "exp");
	d = open_db(name, path, SESH_SQLITE_SYNC, NULL);
	assert_int_equal(
		sesh_session_create(d, "short", NULL, NULL, 0, 1, NULL), 0);
	assert_int_equal(
		sesh_session_create(d, "long", NULL, NULL, 0, 600, NULL), 0);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
	tu_sleep_ms(1200);
	d = open_db(name, path, SESH_SQLITE_SYNC, NULL);
	assert_int_equal(sesh_session_get(d, "short", NULL, NULL, NULL, 0),
			 -ENOENT);
	assert_int_equal(sesh_session_get(d, "long", NULL, NULL, NULL, 0), 0);
	/* The restore's rewrite drops the expired row too. */
	reap_ok(d, NULL);
	assert_int_equal(db_count(path, NULL), 1);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* Touches reach the database through the reaper's sweep. */
static void test_touch_swept(void **state)
{
	char name[64], path[128];
	sesh_reap_report_t r;
	sesh_session_t s;
	int64_t before;
	sesh_t *d;

	(void)state;
	tu_name(name, sizeof(name), "touch");
	db_path(path, sizeof(path), "touch");
	d = open_db(name, path, SESH_SQLITE_SYNC, NULL);
	assert_int_equal(sesh_session_create(d, "t", NULL, NULL, 0, 600, NULL),
			 0);
	reap_ok(d, &r);
	tu_sleep_ms(50);
	assert_int_equal(sesh_session_touch(d, "t"), 0);
	assert_int_equal(sesh_session_get(d, "t", NULL, &s, NULL, 0), 0);
	before = s.last_seen_ns;
	reap_ok(d, &r);
	reap_ok(d, &r);
	assert_true(r.persist_error == 0);
	{
		char where[96];

		snprintf(where, sizeof(where), "last_seen_ns >= %lld",
			 (long long)before);
		assert_int_equal(db_count(path, where), 1);
	}
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- asynchronous ------------------------------------------------------------
 */

static void test_async(void **state)
{
	char name[64], path[128], id[32];
	sesh_reap_report_t r;
	sesh_health_t h;
	sesh_t *d;
	int i;

	(void)state;
	tu_name(name, sizeof(name), "async");
	db_path(path, sizeof(path), "async");
	d = open_db(name, path, SESH_SQLITE_ASYNC, NULL);
	for (i = 0; i < 100; i++) {
		mkid(id, sizeof(id), "s", i);
		assert_int_equal(
			sesh_session_create(d, id, NULL, NULL, 0, 600, NULL),
			0);
	}
	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.persist, 2);
	/* A pass commits what waits. */
	reap_ok(d, &r);
	assert_int_equal(r.persist_error, 0);
	assert_int_equal(db_count(path, NULL), 100);
	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.persist_pending, 0);
	assert_int_equal(h.persist_lag_ns, 0);

	/* Without a reaper, a writer commits once the lag passes 50 ms. */
	assert_int_equal(sesh_session_delete(d, "s-0"), 0);
	tu_sleep_ms(80);
	assert_int_equal(sesh_session_delete(d, "s-1"), 0);
	assert_int_equal(db_count(path, NULL), 98);
	/* Closing commits what waits (if the lag had not already). */
	assert_int_equal(sesh_session_delete(d, "s-2"), 0);
	sesh_close(d);
	assert_int_equal(db_count(path, NULL), 97);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- many processes ---------------------------------------------------------
 */

#define GC_WORKERS 4
#define GC_EACH	   50

/* Writers of several processes at once: every create returns 0 only
 * once committed, and commits are shared. */
static void test_group_commit(void **state)
{
	char name[64], path[128];
	sesh_stats_t st;
	pid_t parent = getpid(), pid[GC_WORKERS];
	sesh_t *d;
	int k;

	(void)state;
	tu_name(name, sizeof(name), "group");
	db_path(path, sizeof(path), "group");
	d = open_db(name, path, SESH_SQLITE_SYNC, NULL);
	for (k = 0; k < GC_WORKERS; k++) {
		pid[k] = fork();
		assert_true(pid[k] >= 0);
		if (pid[k] == 0) {
			char id[32];
			sesh_t *c = NULL;
			int i;

			tu_die_with(parent);
			if (sesh_open(name, NULL, NULL, 0, &c) != 0)
				_exit(2);
			for (i = 0; i < GC_EACH; i++) {
				snprintf(id, sizeof(id), "w%d-%d", k, i);
				if (sesh_session_create(c, id, NULL, NULL, 0,
							600, NULL) != 0)
					_exit(3);
			}
			sesh_close(c);
			_exit(0);
		}
	}
	for (k = 0; k < GC_WORKERS; k++)
		assert_int_equal(tu_wait(pid[k]), 0);
	assert_int_equal(db_count(path, NULL), GC_WORKERS * GC_EACH);
	assert_int_equal(sesh_stats(d, &st), 0);
	assert_int_equal(st.persist_errors, 0);
	print_message("group commit: %llu rows in %llu commits\n",
		      (unsigned long long)st.persist_rows,
		      (unsigned long long)st.persist_commits);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* Writers killed at random: after a pass, the database holds exactly the
 * sessions of the index. */
static void test_killed_writers(void **state)
{
	char name[64], path[128];
	size_t n;
	pid_t parent = getpid(), pid;
	sesh_t *d;
	int round;

	(void)state;
	tu_name(name, sizeof(name), "killed");
	db_path(path, sizeof(path), "killed");
	d = open_db(name, path, SESH_SQLITE_SYNC, NULL);
	for (round = 0; round < 8; round++) {
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			char id[32];
			sesh_t *c = NULL;
			unsigned i;

			tu_die_with(parent);
			if (sesh_open(name, NULL, NULL, 0, &c) != 0)
				_exit(2);
			for (i = 0;; i++) {
				snprintf(id, sizeof(id), "k%d-%u", round,
					 i % 40);
				if (i % 3 == 2)
					(void)sesh_session_delete(c, id);
				else
					(void)sesh_session_create(
						c, id, NULL, "x", 1, 600, NULL);
			}
		}
		tu_sleep_ms(20 + 7 * round);
		kill(pid, SIGKILL);
		assert_int_equal(tu_wait(pid), 128 + SIGKILL);
	}
	reap_ok(d, NULL);
	assert_int_equal(sesh_session_count(d, &n), 0);
	assert_int_equal(db_count(path, NULL), (int64_t)n);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- the database failing
 * ------------------------------------------------------ */

/* Locked by another connection: synchronous writes return -EIO but are
 * made; health says degraded; once unlocked, everything is written. */
static void test_locked(void **state)
{
	char name[64], path[128];
	sesh_health_t h;
	sqlite3 *other;
	sesh_t *d;

	(void)state;
	tu_name(name, sizeof(name), "locked");
	db_path(path, sizeof(path), "locked");
	d = open_db(name, path, SESH_SQLITE_SYNC, NULL);
	reap_ok(d, NULL); /* a reaper on record: health names the database */
	assert_int_equal(
		sesh_session_create(d, "before", NULL, NULL, 0, 600, NULL), 0);
	assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
	assert_int_equal(
		sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL),
		SQLITE_OK);
	assert_int_equal(
		sesh_session_create(d, "during", NULL, NULL, 0, 600, NULL),
		-EIO);
	/* Made all the same, and served. */
	assert_int_equal(sesh_session_get(d, "during", NULL, NULL, NULL, 0), 0);
	assert_int_equal(sesh_session_update(d, "before", "u", 1), -EIO);
	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.status, SESH_DEGRADED);
	assert_int_equal(h.persist_ok, 0);
	assert_true(h.persist_pending >= 2);
	assert_non_null(strstr(h.reason, "database"));
	assert_true(strlen(h.persist_error) > 0);

	assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(other);
	assert_int_equal(
		sesh_session_create(d, "after", NULL, NULL, 0, 600, NULL), 0);
	assert_int_equal(db_count(path, NULL), 3);
	assert_int_equal(db_count(path, "meta = CAST('u' AS BLOB)"), 1);
	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.persist_ok, 1);
	assert_int_equal(h.persist_pending, 0);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* Removed while in use: created anew, and rewritten whole. */
static void test_removed(void **state)
{
	char name[64], path[128], id[32];
	sesh_t *d;
	int i;

	(void)state;
	tu_name(name, sizeof(name), "removed");
	db_path(path, sizeof(path), "removed");
	d = open_db(name, path, SESH_SQLITE_SYNC, NULL);
	for (i = 0; i < 10; i++) {
		mkid(id, sizeof(id), "s", i);
		assert_int_equal(
			sesh_session_create(d, id, NULL, NULL, 0, 600, NULL),
			0);
	}
	rm_db(path);
	assert_int_equal(
		sesh_session_create(d, "new", NULL, NULL, 0, 600, NULL), 0);
	assert_int_equal(db_count(path, NULL), 11);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* Overwritten with garbage: degraded while it is; once the file is
 * removed (an operator's fix), everything is written again. */
static void test_corrupt(void **state)
{
	char name[64], path[128], junk[8192];
	sesh_health_t h;
	sesh_reap_report_t r;
	sesh_t *d;
	int fd;

	(void)state;
	tu_name(name, sizeof(name), "corrupt");
	db_path(path, sizeof(path), "corrupt");
	d = open_db(name, path, SESH_SQLITE_SYNC, NULL);
	assert_int_equal(sesh_session_create(d, "a", NULL, NULL, 0, 600, NULL),
			 0);
	/* Checkpoint-free garbage: a new file with nothing of SQLite. */
	rm_db(path);
	memset(junk, 0x5a, sizeof(junk));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, junk, sizeof(junk)), sizeof(junk));
	close(fd);
	assert_int_equal(sesh_session_create(d, "b", NULL, NULL, 0, 600, NULL),
			 -EIO);
	reap_ok(d, &r);
	assert_int_equal(r.persist_error, -EIO);
	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.status, SESH_DEGRADED);
	assert_int_equal(h.persist_ok, 0);
	assert_int_equal(sesh_session_get(d, "b", NULL, NULL, NULL, 0), 0);

	unlink(path);
	reap_ok(d, &r);
	assert_int_equal(r.persist_error, 0);
	assert_int_equal(db_count(path, NULL), 2);
	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.persist_ok, 1);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* Set or clear the immutable attribute of a file: writes through any
 * descriptor, even root's, then fail. 0, or -errno (not supported, not
 * permitted). */
static int set_immutable(const char *path, bool on)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK), flags, rc = 0;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
		rc = -errno;
	} else {
		flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
		if (ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0)
			rc = -errno;
	}
	close(fd);
	return rc;
}

/* Made unwritable mid-run (the database and its WAL immutable): writes
 * return -EIO and are made, health says degraded; made writable again,
 * the next commit writes everything. */
static void test_unwritable(void **state)
{
	char name[64], path[128], wal[160];
	sesh_health_t h;
	sesh_reap_report_t r;
	sesh_t *d;
	int rc;

	(void)state;
	tu_name(name, sizeof(name), "unwritable");
	db_path(path, sizeof(path), "unwritable");
	snprintf(wal, sizeof(wal), "%s-wal", path);
	d = open_db(name, path, SESH_SQLITE_SYNC, NULL);
	reap_ok(d, NULL);
	assert_int_equal(sesh_session_create(d, "a", NULL, NULL, 0, 600, NULL),
			 0);
	rc = set_immutable(path, true);
	if (rc == 0)
		rc = set_immutable(wal, true);
	if (rc < 0) {
		(void)set_immutable(path, false);
		sesh_close(d);
		assert_int_equal(sesh_unlink(name), 0);
		print_message("unwritable: skipped: %s cannot be made "
			      "immutable here (%s)\n",
			      path, strerror(-rc));
		return;
	}
	assert_int_equal(sesh_session_create(d, "b", NULL, NULL, 0, 600, NULL),
			 -EIO);
	assert_int_equal(sesh_session_delete(d, "a"), -EIO);
	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.status, SESH_DEGRADED);
	assert_int_equal(h.persist_ok, 0);
	assert_non_null(strstr(h.reason, "database"));
	assert_int_equal(set_immutable(wal, false), 0);
	assert_int_equal(set_immutable(path, false), 0);
	reap_ok(d, &r);
	assert_int_equal(r.persist_error, 0);
	assert_int_equal(db_count(path, NULL), 1);
	assert_int_equal(db_count(path, "id = 'b'"), 1);
	assert_int_equal(sesh_health(d, &h), 0);
	assert_int_equal(h.persist_ok, 1);
	assert_int_equal(h.persist_pending, 0);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* A database that is not ours, or newer, is refused at creation; a
 * relative path is refused at once. */
static void test_foreign(void **state)
{
	char name[64], path[128];
	sesh_config_t cfg;
	sqlite3 *db;
	sesh_t *d = NULL;

	(void)state;
	tu_name(name, sizeof(name), "foreign");
	db_path(path, sizeof(path), "foreign");
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
		sqlite3_exec(db, "CREATE TABLE t (x)", NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(db);
	tu_small(&cfg);
	cfg.sqlite_path = path;
	assert_int_equal(sesh_open(name, NULL, &cfg, SESH_CREATE, &d), -EPROTO);
	assert_false(tu_exists(name));

	db_path(path, sizeof(path), "newer");
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "PRAGMA application_id = 1397051464;"
				      "PRAGMA user_version = 99",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(sesh_open(name, NULL, &cfg, SESH_CREATE, &d), -EPROTO);

	/* Not SQLite at all. */
	db_path(path, sizeof(path), "junk");
	{
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, "not a database, not at all....",
				       30),
				 30);
		close(fd);
	}
	assert_int_equal(sesh_open(name, NULL, &cfg, SESH_CREATE, &d),
			 -EPROTO);

	cfg.sqlite_path = "relative.db";
	assert_int_equal(sesh_open(name, NULL, &cfg, SESH_CREATE, &d), -EINVAL);
	cfg.sqlite_path = "/nonexistent-dir-sesh/x.db";
	assert_int_equal(sesh_open(name, NULL, &cfg, SESH_CREATE, &d), -EIO);
	assert_false(tu_exists(name));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_expired_skipped),
		cmocka_unit_test(test_touch_swept),
		cmocka_unit_test(test_async),
		cmocka_unit_test(test_group_commit),
		cmocka_unit_test(test_killed_writers),
		cmocka_unit_test(test_locked),
		cmocka_unit_test(test_removed),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_unwritable),
		cmocka_unit_test(test_foreign),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

#else

int main(void)
{
	return 77; /* built without SQLite */
}

#endif
