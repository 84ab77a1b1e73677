/*
 * test_session.c - the public session API: create, get, touch, update,
 * delete, count, list and expired; bad arguments refused with the exact
 * errno and nothing changed; namespaces kept apart; quotas and the domain
 * limit; the owner check; idle expiry; atomic metadata updates seen from
 * other processes and threads; reclamation under churn; sesh_check and
 * sesh_recover on a healthy domain; and a corrupt index reported as
 * -EUCLEAN, never a crash.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "shm/shm.h"
#include "index/index.h"

/* --- helpers -------------------------------------------------------------- */

/* A fresh domain with small capacities and the given metadata limit. */
static sesh_t *open_dom(const char *name, size_t max_meta)
{
	sesh_config_t c;

	tu_small(&c);
	c.max_metadata = max_meta;
	return tu_create(name, &c);
}

/* A second handle on an existing domain, bound to namespace ns. */
static sesh_t *open_ns(const char *name, const char *ns)
{
	sesh_t *d = NULL;
	int rc = sesh_open(name, ns, NULL, 0, &d);

	if (rc != 0)
		fail_msg("sesh_open(%s, %s): %s", name, ns, sesh_strerror(rc));
	return d;
}

static size_t count_of(sesh_t *d)
{
	size_t n = (size_t)-1;

	assert_int_equal(sesh_session_count(d, &n), 0);
	return n;
}

static size_t total_of(sesh_t *d)
{
	sesh_info_t inf;

	assert_int_equal(sesh_info(d, &inf), 0);
	return inf.sessions;
}

/* Slack for the coarse clock, which lags the precise one by a tick. */
#define COARSE_SLACK_NS 50000000

static void assert_check_ok(sesh_t *d, sesh_check_t *chk)
{
	int rc = sesh_check(d, chk);

	if (rc != 0)
		fail_msg("sesh_check: %s (%zu problems, first: %s)",
			 sesh_strerror(rc), chk->problems, chk->first_problem);
	assert_int_equal(chk->problems, 0);
	assert_string_equal(chk->first_problem, "");
	assert_int_equal(chk->blocks_live, chk->sessions);
	assert_int_equal(chk->blocks_owned, 0);
	assert_int_equal(chk->blocks_dead, 0);
}

/* What the visitors saw. */
#define SEEN_MAX 128

struct seen {
	int n;
	char id[SEEN_MAX][SESH_ID_MAX + 1];
	char user[SEEN_MAX][SESH_USER_MAX + 1];
	size_t meta_len[SEEN_MAX];
	char meta[SEEN_MAX][64];
	int64_t last_seen[SEEN_MAX];
	int ret;     /* returned by the visitor */
	sesh_t *del; /* delete each visited session through this handle */
	int del_bad; /* deletes that did not return 0 */
};

static int visit(const sesh_session_t *s, const void *meta, void *arg)
{
	struct seen *w = arg;

	if (w->n < SEEN_MAX) {
		snprintf(w->id[w->n], sizeof(w->id[0]), "%s", s->id);
		snprintf(w->user[w->n], sizeof(w->user[0]), "%s", s->user);
		w->meta_len[w->n] = s->meta_len;
		memset(w->meta[w->n], 0, sizeof(w->meta[0]));
		memcpy(w->meta[w->n], meta,
		       s->meta_len < sizeof(w->meta[0]) - 1
			       ? s->meta_len
			       : sizeof(w->meta[0]) - 1);
		w->last_seen[w->n] = s->last_seen_ns;
	}
	w->n++;
	if (w->del != NULL && sesh_session_delete(w->del, s->id) != 0)
		w->del_bad++;
	return w->ret;
}

static int seen_index(const struct seen *w, const char *id)
{
	int i, at = -1;

	for (i = 0; i < w->n && i < SEEN_MAX; i++) {
		if (strcmp(w->id[i], id) == 0) {
			if (at >= 0)
				fail_msg("%s visited twice", id);
			at = i;
		}
	}
	return at;
}

/* --- 1. basics ------------------------------------------------------------ */

static void test_basics(void **state)
{
	char name[64], idout[SESH_ID_MAX + 1], g1[SESH_ID_MAX + 1],
		g2[SESH_ID_MAX + 1], buf[64];
	sesh_session_t s;
	sesh_config_t c;
	sesh_info_t inf;
	sesh_t *d, *o;
	int64_t t0, t1;
	int i;

	tu_name(name, sizeof(name), "sbas");
	tu_small(&c);
	c.idle_ttl_s = 777;
	d = tu_create(name, &c);
	assert_int_equal(count_of(d), 0);

	/* Create with a given id; id_out receives it. */
	memset(idout, 'x', sizeof(idout));
	t0 = tu_real_ns();
	assert_int_equal(
		sesh_session_create(d, "s1", "alice", "hello", 5, 60, idout),
		0);
	t1 = tu_real_ns();
	assert_string_equal(idout, "s1");
	assert_int_equal(count_of(d), 1);

	memset(&s, 0x55, sizeof(s));
	memset(buf, 0, sizeof(buf));
	assert_int_equal(sesh_session_get(d, "s1", NULL, &s, buf, sizeof(buf)),
			 0);
	assert_string_equal(s.id, "s1");
	assert_string_equal(s.user, "alice");
	assert_true(s.created_ns >= t0 - COARSE_SLACK_NS);
	assert_true(s.created_ns <= t1);
	assert_true(s.last_seen_ns >= t0 - COARSE_SLACK_NS);
	assert_true(s.last_seen_ns <= t1);
	assert_int_equal(s.ttl_s, 60);
	assert_int_equal(s.last_event_id, 0);
	assert_int_equal(s.meta_len, 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(buf[5], 0); /* nothing past meta_len */

	/* ttl 0 takes the domain's idle_ttl_s; no metadata, no user. */
	assert_int_equal(sesh_session_create(d, "s2", NULL, NULL, 0, 0, NULL),
			 0);
	assert_int_equal(sesh_info(d, &inf), 0);
	assert_int_equal(inf.idle_ttl_s, 777);
	memset(&s, 0x55, sizeof(s));
	assert_int_equal(sesh_session_get(d, "s2", NULL, &s, NULL, 0), 0);
	assert_int_equal(s.ttl_s, 777);
	assert_int_equal(s.meta_len, 0);
	assert_string_equal(s.user, "");
	assert_string_equal(s.id, "s2");
	assert_int_equal(count_of(d), 2);

	/* meta_cap smaller than meta_len: a prefix, and the full length. */
	memset(buf, 0xee, sizeof(buf));
	memset(&s, 0, sizeof(s));
	assert_int_equal(sesh_session_get(d, "s1", NULL, &s, buf, 3), 0);
	assert_int_equal(s.meta_len, 5);
	assert_memory_equal(buf, "hel", 3);
	for (i = 3; i < (int)sizeof(buf); i++)
		assert_int_equal((unsigned char)buf[i], 0xee);
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(sesh_session_get(d, "s1", NULL, &s, buf, 0), 0);
	assert_int_equal(s.meta_len, 5);
	assert_int_equal((unsigned char)buf[0], 0xee);

	/* out and meta may be NULL. */
	assert_int_equal(sesh_session_get(d, "s1", NULL, NULL, NULL, 0), 0);
	assert_int_equal(sesh_session_get(d, "s1", "alice", NULL, NULL, 100),
			 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(
		sesh_session_get(d, "s1", NULL, NULL, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(sesh_session_get(d, "s1", NULL, &s, NULL, 0), 0);
	assert_int_equal(s.meta_len, 5);

	/* Existing id: -EEXIST, the original untouched. */
	memset(idout, 0, sizeof(idout));
	assert_int_equal(
		sesh_session_create(d, "s1", "bob", "other", 5, 5, idout),
		-EEXIST);
	assert_int_equal(count_of(d), 2);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(sesh_session_get(d, "s1", NULL, &s, buf, sizeof(buf)),
			 0);
	assert_string_equal(s.user, "alice");
	assert_int_equal(s.ttl_s, 60);
	assert_memory_equal(buf, "hello", 6);

	/* Delete, then gone; twice is -ENOENT. */
	assert_int_equal(sesh_session_delete(d, "s1"), 0);
	assert_int_equal(sesh_session_get(d, "s1", NULL, &s, NULL, 0), -ENOENT);
	assert_int_equal(sesh_session_touch(d, "s1"), -ENOENT);
	assert_int_equal(sesh_session_update(d, "s1", "x", 1), -ENOENT);
	assert_int_equal(sesh_session_delete(d, "s1"), -ENOENT);
	assert_int_equal(count_of(d), 1);
	/* ... and the id can be used again. */
	assert_int_equal(
		sesh_session_create(d, "s1", NULL, "again", 5, 0, NULL), 0);
	assert_int_equal(count_of(d), 2);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(sesh_session_get(d, "s1", NULL, &s, buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "again");
	assert_string_equal(s.user, "");

	/* Generated ids: 32 lower-case hex digits, different each time. */
	memset(g1, 'x', sizeof(g1));
	memset(g2, 'x', sizeof(g2));
	assert_int_equal(sesh_session_create(d, NULL, "gen", "g", 1, 0, g1), 0);
	assert_int_equal(sesh_session_create(d, NULL, "gen", "g", 1, 0, g2), 0);
	assert_int_equal(strlen(g1), 32);
	assert_int_equal(strlen(g2), 32);
	for (i = 0; i < 32; i++) {
		assert_true((g1[i] >= '0' && g1[i] <= '9') ||
			    (g1[i] >= 'a' && g1[i] <= 'f'));
		assert_true((g2[i] >= '0' && g2[i] <= '9') ||
			    (g2[i] >= 'a' && g2[i] <= 'f'));
	}
	assert_string_not_equal(g1, g2);
	assert_int_equal(sesh_session_get(d, g1, "gen", &s, NULL, 0), 0);
	assert_string_equal(s.id, g1);
	assert_int_equal(sesh_session_get(d, g2, "gen", &s, NULL, 0), 0);
	assert_string_equal(s.id, g2);
	assert_int_equal(count_of(d), 4);

	/* The domain total is the sum over namespaces. */
	o = open_ns(name, "other");
	assert_int_equal(count_of(o), 0);
	assert_int_equal(total_of(d), 4);
	assert_int_equal(sesh_session_create(o, "o1", NULL, NULL, 0, 0, NULL),
			 0);
	assert_int_equal(sesh_session_create(o, "o2", NULL, NULL, 0, 0, NULL),
			 0);
	assert_int_equal(sesh_session_create(o, "s1", NULL, NULL, 0, 0, NULL),
			 0);
	assert_int_equal(count_of(o), 3);
	assert_int_equal(count_of(d), 4);
	assert_int_equal(total_of(d), 7);
	assert_int_equal(total_of(o), 7);
	assert_int_equal(sesh_session_delete(d, g1), 0);
	assert_int_equal(sesh_session_delete(o, "o1"), 0);
	assert_int_equal(count_of(d), 3);
	assert_int_equal(count_of(o), 2);
	assert_int_equal(total_of(d), 5);

	sesh_close(o);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 2. bad inputs -------------------------------------------------------- */

#define BAD_MAX_META 256

/* The state every refused call must leave: n sessions, "keep" intact. */
static void intact(sesh_t *d, size_t n)
{
	sesh_session_t s;
	char m[64];

	assert_int_equal(count_of(d), n);
	memset(m, 0, sizeof(m));
	memset(&s, 0, sizeof(s));
	assert_int_equal(sesh_session_get(d, "keep", "owner", &s, m, sizeof(m)),
			 0);
	assert_string_equal(s.id, "keep");
	assert_string_equal(s.user, "owner");
	assert_int_equal(s.meta_len, 8);
	assert_string_equal(m, "keepmeta");
	assert_int_equal(s.ttl_s, 100);
}

#define REFUSED(d, n, call, err)                                               \
	do {                                                                   \
		assert_int_equal((call), (err));                               \
		intact((d), (n));                                              \
	} while (0)

static void test_bad_inputs(void **state)
{
	char name[64], id128[SESH_ID_MAX + 1], id129[SESH_ID_MAX + 2],
		out[SESH_ID_MAX + 1], big[BAD_MAX_META + 1],
		big2[BAD_MAX_META + 1], rd[BAD_MAX_META + 8];
	const char *bad[8];
	struct seen w;
	sesh_session_t s;
	size_t n;
	sesh_t *d;
	int i;

	tu_name(name, sizeof(name), "sbad");
	d = open_dom(name, BAD_MAX_META);
	assert_int_equal(sesh_session_create(d, "keep", "owner", "keepmeta", 8,
					     100, NULL),
			 0);
	intact(d, 1);

	memset(id128, 'k', SESH_ID_MAX);
	id128[SESH_ID_MAX] = '\0';
	memset(id129, 'k', SESH_ID_MAX + 1);
	id129[SESH_ID_MAX + 1] = '\0';
	bad[0] = "";
	bad[1] = id129;
	bad[2] = "a b";
	bad[3] = "a\x7f"
		 "b";
	bad[4] = "a\x80"
		 "b";
	bad[5] = "a\tb";
	bad[6] = "a\nb";
	bad[7] = " ";

	/* NULL handle. */
	REFUSED(d, 1, sesh_session_create(NULL, "n", NULL, NULL, 0, 0, NULL),
		-EINVAL);
	REFUSED(d, 1, sesh_session_create(NULL, NULL, NULL, NULL, 0, 0, out),
		-EINVAL);
	REFUSED(d, 1, sesh_session_get(NULL, "keep", NULL, &s, NULL, 0),
		-EINVAL);
	REFUSED(d, 1, sesh_session_touch(NULL, "keep"), -EINVAL);
	REFUSED(d, 1, sesh_session_update(NULL, "keep", "x", 1), -EINVAL);
	REFUSED(d, 1, sesh_session_delete(NULL, "keep"), -EINVAL);
	REFUSED(d, 1, sesh_session_count(NULL, &n), -EINVAL);
	memset(&w, 0, sizeof(w));
	REFUSED(d, 1, sesh_session_list(NULL, NULL, visit, &w), -EINVAL);
	REFUSED(d, 1, sesh_session_expired(NULL, 0, visit, &w), -EINVAL);
	assert_int_equal(w.n, 0);
	REFUSED(d, 1, sesh_ns_set_quota(NULL, 1), -EINVAL);

	/* NULL id: with id_out NULL for create; always for the others. */
	REFUSED(d, 1, sesh_session_create(d, NULL, NULL, NULL, 0, 0, NULL),
		-EINVAL);
	REFUSED(d, 1, sesh_session_create(d, NULL, "owner", "m", 1, 0, NULL),
		-EINVAL);
	REFUSED(d, 1, sesh_session_get(d, NULL, NULL, &s, NULL, 0), -EINVAL);
	REFUSED(d, 1, sesh_session_touch(d, NULL), -EINVAL);
	REFUSED(d, 1, sesh_session_update(d, NULL, "x", 1), -EINVAL);
	REFUSED(d, 1, sesh_session_delete(d, NULL), -EINVAL);

	/* Bad ids, everywhere. */
	for (i = 0; i < 8; i++) {
		REFUSED(d, 1,
			sesh_session_create(d, bad[i], NULL, NULL, 0, 0, NULL),
			-EINVAL);
		REFUSED(d, 1,
			sesh_session_create(d, bad[i], "owner", "m", 1, 5, out),
			-EINVAL);
		REFUSED(d, 1, sesh_session_get(d, bad[i], NULL, &s, rd, 8),
			-EINVAL);
		REFUSED(d, 1,
			sesh_session_get(d, bad[i], "owner", NULL, NULL, 0),
			-EINVAL);
		REFUSED(d, 1, sesh_session_touch(d, bad[i]), -EINVAL);
		REFUSED(d, 1, sesh_session_update(d, bad[i], "x", 1), -EINVAL);
		REFUSED(d, 1, sesh_session_delete(d, bad[i]), -EINVAL);
	}

	/* Bad user ids, everywhere a user is taken. */
	for (i = 0; i < 8; i++) {
		REFUSED(d, 1,
			sesh_session_create(d, "newid", bad[i], NULL, 0, 0,
					    NULL),
			-EINVAL);
		REFUSED(d, 1,
			sesh_session_create(d, NULL, bad[i], "m", 1, 0, out),
			-EINVAL);
		REFUSED(d, 1, sesh_session_get(d, "keep", bad[i], &s, rd, 8),
			-EINVAL);
		memset(&w, 0, sizeof(w));
		REFUSED(d, 1, sesh_session_list(d, bad[i], visit, &w), -EINVAL);
		assert_int_equal(w.n, 0);
	}
	assert_int_equal(sesh_session_get(d, "newid", NULL, NULL, NULL, 0),
			 -ENOENT);

	/* 128 bytes is the longest id and user id. */
	assert_int_equal(sesh_session_create(d, id128, id128, "l", 1, 0, out),
			 0);
	assert_string_equal(out, id128);
	memset(&s, 0, sizeof(s));
	assert_int_equal(sesh_session_get(d, id128, id128, &s, NULL, 0), 0);
	assert_string_equal(s.id, id128);
	assert_string_equal(s.user, id128);
	assert_int_equal(sesh_session_touch(d, id128), 0);
	assert_int_equal(sesh_session_update(d, id128, "ll", 2), 0);
	memset(&w, 0, sizeof(w));
	assert_int_equal(sesh_session_list(d, id128, visit, &w), 0);
	assert_int_equal(w.n, 1);
	assert_string_equal(w.id[0], id128);
	assert_int_equal(sesh_session_delete(d, id128), 0);
	intact(d, 1);

	/* meta NULL with meta_len > 0. */
	REFUSED(d, 1, sesh_session_create(d, "newid", NULL, NULL, 5, 0, NULL),
		-EINVAL);
	REFUSED(d, 1, sesh_session_update(d, "keep", NULL, 5), -EINVAL);

	/* max_metadata bytes fit; one more is -E2BIG. */
	memset(big, 'M', sizeof(big));
	memset(big2, 'N', sizeof(big2));
	assert_int_equal(
		sesh_session_create(d, "big", NULL, big, BAD_MAX_META, 0, NULL),
		0);
	intact(d, 2);
	memset(rd, 0, sizeof(rd));
	assert_int_equal(sesh_session_get(d, "big", NULL, &s, rd, sizeof(rd)),
			 0);
	assert_int_equal(s.meta_len, BAD_MAX_META);
	assert_memory_equal(rd, big, BAD_MAX_META);
	assert_int_equal(rd[BAD_MAX_META], 0);
	REFUSED(d, 2,
		sesh_session_create(d, "big2", NULL, big, BAD_MAX_META + 1, 0,
				    NULL),
		-E2BIG);
	REFUSED(d, 2,
		sesh_session_create(d, NULL, NULL, big, BAD_MAX_META + 1, 0,
				    out),
		-E2BIG);
	assert_int_equal(sesh_session_get(d, "big2", NULL, NULL, NULL, 0),
			 -ENOENT);
	assert_int_equal(sesh_session_update(d, "big", big2, BAD_MAX_META), 0);
	REFUSED(d, 2, sesh_session_update(d, "big", big, BAD_MAX_META + 1),
		-E2BIG);
	REFUSED(d, 2, sesh_session_update(d, "keep", big, BAD_MAX_META + 1),
		-E2BIG);
	memset(rd, 0, sizeof(rd));
	assert_int_equal(sesh_session_get(d, "big", NULL, &s, rd, sizeof(rd)),
			 0);
	assert_int_equal(s.meta_len, BAD_MAX_META);
	assert_memory_equal(rd, big2, BAD_MAX_META);
	assert_int_equal(sesh_session_delete(d, "big"), 0);
	intact(d, 1);

	/* count, list, expired, check with NULL arguments. */
	REFUSED(d, 1, sesh_session_count(d, NULL), -EINVAL);
	REFUSED(d, 1, sesh_session_list(d, NULL, NULL, NULL), -EINVAL);
	REFUSED(d, 1, sesh_session_list(d, "owner", NULL, &w), -EINVAL);
	REFUSED(d, 1, sesh_session_expired(d, 0, NULL, NULL), -EINVAL);
	REFUSED(d, 1, sesh_session_expired(d, 3600, NULL, &w), -EINVAL);
	REFUSED(d, 1, sesh_check(d, NULL), -EINVAL);
	REFUSED(d, 1, sesh_check(NULL, NULL), -EINVAL);
	REFUSED(d, 1, sesh_recover(NULL), -EINVAL);

	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 3. namespaces -------------------------------------------------------- */

/* Everything a handle of `a` may try on an id only `b` holds. */
static void foreign_invisible(sesh_t *a, const char *id)
{
	sesh_session_t s;
	struct seen w;
	size_t n = count_of(a);

	assert_int_equal(sesh_session_get(a, id, NULL, &s, NULL, 0), -ENOENT);
	assert_int_equal(sesh_session_get(a, id, "ub", &s, NULL, 0), -ENOENT);
	assert_int_equal(sesh_session_touch(a, id), -ENOENT);
	assert_int_equal(sesh_session_update(a, id, "hijack", 6), -ENOENT);
	assert_int_equal(sesh_session_delete(a, id), -ENOENT);
	memset(&w, 0, sizeof(w));
	assert_int_equal(sesh_session_list(a, NULL, visit, &w), 0);
	assert_int_equal(seen_index(&w, id), -1);
	assert_int_equal(w.n, (int)n);
	memset(&w, 0, sizeof(w));
	assert_int_equal(sesh_session_list(a, "ub", visit, &w), 0);
	assert_int_equal(w.n, 0);
	memset(&w, 0, sizeof(w));
	assert_int_equal(sesh_session_expired(a, 0, visit, &w), 0);
	assert_int_equal(w.n, 0);
	assert_int_equal(count_of(a), n);
}

static void test_namespaces(void **state)
{
	char name[64], m[64];
	sesh_session_t s;
	sesh_info_t inf;
	struct seen w;
	sesh_t *d, *a, *b;

	tu_name(name, sizeof(name), "sns");
	d = open_dom(name, 1024);
	a = open_ns(name, "a");
	b = open_ns(name, "b");
	assert_int_equal(sesh_info(a, &inf), 0);
	assert_string_equal(inf.ns, "a");

	/* Only b holds sessions; a never held one. */
	assert_int_equal(
		sesh_session_create(b, "only-b", "ub", "bee", 3, 0, NULL), 0);
	assert_int_equal(count_of(a), 0);
	assert_int_equal(count_of(d), 0);
	assert_int_equal(count_of(b), 1);
	foreign_invisible(a, "only-b");
	foreign_invisible(d, "only-b");

	/* The same id in both: two sessions. */
	assert_int_equal(
		sesh_session_create(a, "same", "ua", "A-meta", 6, 50, NULL), 0);
	assert_int_equal(sesh_session_create(b, "same", "ub", "B-meta-long", 11,
					     70, NULL),
			 0);
	assert_int_equal(sesh_session_create(a, "same", NULL, NULL, 0, 0, NULL),
			 -EEXIST);
	assert_int_equal(count_of(a), 1);
	assert_int_equal(count_of(b), 2);
	assert_int_equal(total_of(d), 3);
	memset(m, 0, sizeof(m));
	assert_int_equal(sesh_session_get(a, "same", NULL, &s, m, sizeof(m)),
			 0);
	assert_string_equal(m, "A-meta");
	assert_string_equal(s.user, "ua");
	assert_int_equal(s.ttl_s, 50);
	memset(m, 0, sizeof(m));
	assert_int_equal(sesh_session_get(b, "same", NULL, &s, m, sizeof(m)),
			 0);
	assert_string_equal(m, "B-meta-long");
	assert_string_equal(s.user, "ub");
	assert_int_equal(s.ttl_s, 70);
	/* The owner check is per namespace's record. */
	assert_int_equal(sesh_session_get(a, "same", "ub", NULL, NULL, 0),
			 -ENOENT);
	assert_int_equal(sesh_session_get(b, "same", "ua", NULL, NULL, 0),
			 -ENOENT);

	/* Now that a has sessions, b's are still out of its reach. */
	foreign_invisible(a, "only-b");
	memset(&w, 0, sizeof(w));
	assert_int_equal(sesh_session_list(a, NULL, visit, &w), 0);
	assert_int_equal(w.n, 1);
	assert_string_equal(w.id[0], "same");
	assert_string_equal(w.meta[0], "A-meta");
	memset(&w, 0, sizeof(w));
	assert_int_equal(sesh_session_list(b, NULL, visit, &w), 0);
	assert_int_equal(w.n, 2);
	assert_true(seen_index(&w, "same") >= 0);
	assert_string_equal(w.meta[seen_index(&w, "same")], "B-meta-long");
	assert_true(seen_index(&w, "only-b") >= 0);

	/* Update in a changes only a's. */
	assert_int_equal(sesh_session_update(a, "same", "A2", 2), 0);
	memset(m, 0, sizeof(m));
	assert_int_equal(sesh_session_get(b, "same", NULL, &s, m, sizeof(m)),
			 0);
	assert_string_equal(m, "B-meta-long");
	memset(m, 0, sizeof(m));
	assert_int_equal(sesh_session_get(a, "same", NULL, &s, m, sizeof(m)),
			 0);
	assert_string_equal(m, "A2");

	/* Delete in a leaves b's intact. */
	assert_int_equal(sesh_session_delete(a, "same"), 0);
	assert_int_equal(sesh_session_get(a, "same", NULL, &s, NULL, 0),
			 -ENOENT);
	memset(m, 0, sizeof(m));
	assert_int_equal(sesh_session_get(b, "same", "ub", &s, m, sizeof(m)),
			 0);
	assert_string_equal(m, "B-meta-long");
	assert_int_equal(count_of(a), 0);
	assert_int_equal(count_of(b), 2);
	assert_int_equal(total_of(d), 2);
	assert_int_equal(sesh_session_delete(a, "same"), -ENOENT);
	assert_int_equal(sesh_session_touch(b, "same"), 0);

	/* A second handle on b sees b's sessions. */
	sesh_close(d);
	d = open_ns(name, "b");
	memset(m, 0, sizeof(m));
	assert_int_equal(sesh_session_get(d, "only-b", "ub", &s, m, sizeof(m)),
			 0);
	assert_string_equal(m, "bee");
	assert_int_equal(count_of(d), 2);

	sesh_close(a);
	sesh_close(b);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 4. quota ------------------------------------------------------------- */

static void test_quota(void **state)
{
	char name[64], id[SESH_ID_MAX + 1];
	sesh_check_t chk;
	sesh_t *d, *a, *b;
	int i, made;

	tu_name(name, sizeof(name), "squo");
	d = open_dom(name, 1024); /* 64 sessions */
	a = open_ns(name, "a");
	b = open_ns(name, "b");

	assert_int_equal(sesh_ns_set_quota(a, 3), 0);
	for (i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "a%d", i);
		assert_int_equal(sesh_session_create(a, id, NULL, id,
						     strlen(id), 0, NULL),
				 0);
	}
	assert_int_equal(sesh_session_create(a, "a3", NULL, "a3", 2, 0, NULL),
			 -ENOSPC);
	assert_int_equal(sesh_session_create(a, NULL, NULL, NULL, 0, 0, id),
			 -ENOSPC);
	assert_int_equal(sesh_session_get(a, "a3", NULL, NULL, NULL, 0),
			 -ENOENT);
	assert_int_equal(count_of(a), 3);
	assert_int_equal(total_of(a), 3);
	assert_check_ok(d, &chk);
	assert_int_equal(chk.sessions, 3);
	for (i = 0; i < 3; i++) {
		char m[8] = {0};

		snprintf(id, sizeof(id), "a%d", i);
		assert_int_equal(
			sesh_session_get(a, id, NULL, NULL, m, sizeof(m)), 0);
		assert_string_equal(m, id);
	}

	/* b is not limited by a's quota. */
	for (i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "b%d", i);
		assert_int_equal(
			sesh_session_create(b, id, NULL, NULL, 0, 0, NULL), 0);
	}
	assert_int_equal(count_of(b), 5);

	/* Deleting one lets a new one in, and only one. */
	assert_int_equal(sesh_session_delete(a, "a1"), 0);
	assert_int_equal(sesh_session_create(a, "a3", NULL, "a3", 2, 0, NULL),
			 0);
	assert_int_equal(sesh_session_create(a, "a4", NULL, NULL, 0, 0, NULL),
			 -ENOSPC);
	assert_int_equal(count_of(a), 3);

	/* A quota below the count keeps what is stored. */
	assert_int_equal(sesh_ns_set_quota(a, 2), 0);
	assert_int_equal(count_of(a), 3);
	assert_int_equal(sesh_session_get(a, "a0", NULL, NULL, NULL, 0), 0);
	assert_int_equal(sesh_session_create(a, "a4", NULL, NULL, 0, 0, NULL),
			 -ENOSPC);

	/* Quota 0 removes the limit. */
	assert_int_equal(sesh_ns_set_quota(a, 0), 0);
	for (i = 4; i < 10; i++) {
		snprintf(id, sizeof(id), "a%d", i);
		assert_int_equal(
			sesh_session_create(a, id, NULL, NULL, 0, 0, NULL), 0);
	}
	assert_int_equal(count_of(a), 9);
	assert_check_ok(d, &chk);
	assert_int_equal(chk.sessions, 14);

	/* The domain limit: 64 sessions across namespaces. */
	made = 0;
	while (total_of(d) < 64) {
		sesh_t *h = made % 2 ? b : a;

		snprintf(id, sizeof(id), "f%d", made++);
		assert_int_equal(
			sesh_session_create(h, id, NULL, NULL, 0, 0, NULL), 0);
		assert_true(made <= 64);
	}
	assert_int_equal(count_of(a) + count_of(b), 64);
	assert_int_equal(sesh_session_create(a, "over", NULL, NULL, 0, 0, NULL),
			 -ENOSPC);
	assert_int_equal(sesh_session_create(b, "over", NULL, NULL, 0, 0, NULL),
			 -ENOSPC);
	assert_int_equal(sesh_session_create(d, "over", NULL, NULL, 0, 0, NULL),
			 -ENOSPC);
	assert_int_equal(sesh_session_create(d, NULL, NULL, NULL, 0, 0, id),
			 -ENOSPC);
	assert_int_equal(total_of(d), 64);
	assert_int_equal(count_of(d), 0);
	assert_int_equal(sesh_session_get(a, "over", NULL, NULL, NULL, 0),
			 -ENOENT);
	assert_check_ok(d, &chk);
	assert_int_equal(chk.sessions, 64);

	/* Free five (in b); five creates succeed again, the sixth not. */
	for (i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "b%d", i);
		assert_int_equal(sesh_session_delete(b, id), 0);
	}
	assert_int_equal(total_of(d), 59);
	for (i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "again%d", i);
		assert_int_equal(sesh_session_create(i % 2 ? a : d, id, NULL,
						     NULL, 0, 0, NULL),
				 0);
	}
	assert_int_equal(sesh_session_create(b, "over", NULL, NULL, 0, 0, NULL),
			 -ENOSPC);
	assert_int_equal(total_of(d), 64);
	assert_check_ok(d, &chk);
	assert_int_equal(chk.sessions, 64);
	assert_int_equal(count_of(a) + count_of(b) + count_of(d), 64);

	sesh_close(a);
	sesh_close(b);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 5. owner check ------------------------------------------------------- */

static void test_owner(void **state)
{
	char name[64];
	sesh_session_t s;
	struct seen w;
	sesh_t *d;

	tu_name(name, sizeof(name), "sown");
	d = open_dom(name, 1024);
	assert_int_equal(sesh_session_create(d, "o1", "alice", "m", 1, 0, NULL),
			 0);
	assert_int_equal(sesh_session_create(d, "o2", NULL, "m", 1, 0, NULL),
			 0);

	memset(&s, 0, sizeof(s));
	assert_int_equal(sesh_session_get(d, "o1", "alice", &s, NULL, 0), 0);
	assert_string_equal(s.user, "alice");
	/* Another user: exactly what a missing id gives. */
	assert_int_equal(sesh_session_get(d, "o1", "bob", &s, NULL, 0),
			 -ENOENT);
	assert_int_equal(sesh_session_get(d, "nope", "alice", &s, NULL, 0),
			 -ENOENT);
	assert_int_equal(sesh_session_get(d, "nope", NULL, &s, NULL, 0),
			 -ENOENT);
	/* A prefix or an extension of the owner is another user. */
	assert_int_equal(sesh_session_get(d, "o1", "alic", &s, NULL, 0),
			 -ENOENT);
	assert_int_equal(sesh_session_get(d, "o1", "alicee", &s, NULL, 0),
			 -ENOENT);
	assert_int_equal(sesh_session_get(d, "o1", "Alice", &s, NULL, 0),
			 -ENOENT);
	/* NULL skips the check. */
	assert_int_equal(sesh_session_get(d, "o1", NULL, &s, NULL, 0), 0);
	assert_string_equal(s.user, "alice");
	/* A session without an owner is no one's. */
	assert_int_equal(sesh_session_get(d, "o2", "x", &s, NULL, 0), -ENOENT);
	assert_int_equal(sesh_session_get(d, "o2", NULL, &s, NULL, 0), 0);
	assert_string_equal(s.user, "");

	memset(&w, 0, sizeof(w));
	assert_int_equal(sesh_session_list(d, "alice", visit, &w), 0);
	assert_int_equal(w.n, 1);
	assert_string_equal(w.id[0], "o1");
	assert_string_equal(w.user[0], "alice");
	memset(&w, 0, sizeof(w));
	assert_int_equal(sesh_session_list(d, "bob", visit, &w), 0);
	assert_int_equal(w.n, 0);

	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 6. TTL --------------------------------------------------------------- */

static void test_ttl(void **state)
{
	char name[64], m[16];
	sesh_session_t s;
	struct seen w;
	int64_t ls0, ls1, before;
	double t0, next;
	size_t n;
	sesh_t *d;

	tu_name(name, sizeof(name), "sttl");
	d = open_dom(name, 1024);

	/* touch advances last_seen_ns. */
	assert_int_equal(sesh_session_create(d, "keep", NULL, NULL, 0, 0, NULL),
			 0);
	assert_int_equal(sesh_session_get(d, "keep", NULL, &s, NULL, 0), 0);
	ls0 = s.last_seen_ns;
	tu_sleep_ms(30);
	before = tu_real_ns();
	assert_int_equal(sesh_session_touch(d, "keep"), 0);
	assert_int_equal(sesh_session_get(d, "keep", NULL, &s, NULL, 0), 0);
	ls1 = s.last_seen_ns;
	assert_true(ls1 > ls0);
	assert_true(ls1 >= before - COARSE_SLACK_NS);
	assert_true(ls1 <= tu_real_ns());
	assert_true(s.created_ns <= ls0);

	t0 = tu_mono_s();
	assert_int_equal(
		sesh_session_create(d, "short", NULL, "s1", 2, 1, NULL), 0);
	assert_int_equal(
		sesh_session_create(d, "short2", NULL, NULL, 0, 1, NULL), 0);
	assert_int_equal(
		sesh_session_create(d, "alive", NULL, NULL, 0, 2, NULL), 0);
	n = count_of(d);
	assert_int_equal(n, 4);

	/* Touch "alive" every 0.5 s for 3 s; "short" is left alone. */
	next = t0 + 0.5;
	while (tu_mono_s() - t0 < 3.0) {
		double now = tu_mono_s();

		if (now < next) {
			tu_sleep_ms((long)((next - now) * 1000) + 1);
			continue;
		}
		next += 0.5;
		assert_int_equal(sesh_session_touch(d, "alive"), 0);
		assert_int_equal(
			sesh_session_get(d, "alive", NULL, &s, NULL, 0), 0);
		if (tu_mono_s() - t0 < 0.8) /* well inside its second */
			assert_int_equal(sesh_session_get(d, "short", NULL,
							  NULL, NULL, 0),
					 0);
	}
	assert_true(tu_mono_s() - t0 >= 2.2);

	/* "short" is idle past its TTL: gone to get and touch. */
	assert_int_equal(sesh_session_get(d, "short", NULL, &s, NULL, 0),
			 -ENOENT);
	assert_int_equal(sesh_session_touch(d, "short"), -ENOENT);
	assert_int_equal(sesh_session_update(d, "short", "x", 1), -ENOENT);
	assert_int_equal(sesh_session_get(d, "alive", NULL, &s, NULL, 0), 0);
	assert_int_equal(sesh_session_get(d, "keep", NULL, &s, NULL, 0), 0);
	/* ... still counted until someone removes it. */
	assert_int_equal(count_of(d), 4);
	assert_int_equal(total_of(d), 4);

	/* expired(0) visits the expired ones, list the others. */
	memset(&w, 0, sizeof(w));
	assert_int_equal(sesh_session_expired(d, 0, visit, &w), 0);
	assert_int_equal(w.n, 2);
	assert_true(seen_index(&w, "short") >= 0);
	assert_true(seen_index(&w, "short2") >= 0);
	assert_int_equal(w.meta_len[seen_index(&w, "short")], 2);
	assert_string_equal(w.meta[seen_index(&w, "short")], "s1");
	memset(&w, 0, sizeof(w));
	assert_int_equal(sesh_session_list(d, NULL, visit, &w), 0);
	assert_int_equal(w.n, 2);
	assert_true(seen_index(&w, "alive") >= 0);
	assert_true(seen_index(&w, "keep") >= 0);
	/* Idle for more than 2 s: the two expired ones and "keep" (last
	 * touched just before t0), not "alive" (touched 0.5 s ago). */
	memset(&w, 0, sizeof(w));
	assert_int_equal(sesh_session_expired(d, 2, visit, &w), 0);
	assert_true(seen_index(&w, "short") >= 0);
	assert_true(seen_index(&w, "short2") >= 0);
	assert_true(seen_index(&w, "keep") >= 0);
	assert_int_equal(seen_index(&w, "alive"), -1);
	assert_int_equal(w.n, 3);

	/* Create with the id of an expired session replaces it. */
	assert_int_equal(
		sesh_session_create(d, "short", "new", "s2!", 3, 0, NULL), 0);
	assert_int_equal(count_of(d), 4);
	assert_int_equal(total_of(d), 4);
	memset(m, 0, sizeof(m));
	assert_int_equal(sesh_session_get(d, "short", "new", &s, m, sizeof(m)),
			 0);
	assert_string_equal(m, "s2!");
	assert_int_equal(s.ttl_s, 1800);
	assert_int_equal(sesh_session_touch(d, "short"), 0);
	assert_int_equal(
		sesh_session_create(d, "short", NULL, NULL, 0, 0, NULL),
		-EEXIST);

	/* Delete of an expired session works. */
	assert_int_equal(sesh_session_delete(d, "short2"), 0);
	assert_int_equal(count_of(d), 3);
	assert_int_equal(sesh_session_delete(d, "short2"), -ENOENT);
	memset(&w, 0, sizeof(w));
	assert_int_equal(sesh_session_expired(d, 0, visit, &w), 0);
	assert_int_equal(w.n, 0);

	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 7. update ------------------------------------------------------------ */

static void test_update(void **state)
{
	enum { MAXM = 512 };
	char name[64], m[MAXM + 8], big[MAXM];
	sesh_session_t s, s0;
	pid_t parent = getpid(), pid;
	sesh_t *d;
	int i;

	tu_name(name, sizeof(name), "supd");
	d = open_dom(name, MAXM);
	assert_int_equal(sesh_session_create(d, "u", "usr", "v1", 2, 90, NULL),
			 0);
	assert_int_equal(sesh_session_get(d, "u", NULL, &s0, NULL, 0), 0);
	tu_sleep_ms(20);

	assert_int_equal(sesh_session_update(d, "u", "version-two", 11), 0);
	memset(m, 0, sizeof(m));
	assert_int_equal(sesh_session_get(d, "u", "usr", &s, m, sizeof(m)), 0);
	assert_string_equal(m, "version-two");
	assert_int_equal(s.meta_len, 11);
	assert_int_equal(s.created_ns, s0.created_ns);
	assert_string_equal(s.user, "usr");
	assert_int_equal(s.ttl_s, 90);
	assert_true(s.last_seen_ns > s0.last_seen_ns);
	assert_int_equal(count_of(d), 1);

	/* Grow to the limit, shrink to nothing, grow again. */
	for (i = 0; i < MAXM; i++)
		big[i] = (char)('a' + i % 26);
	assert_int_equal(sesh_session_update(d, "u", big, MAXM), 0);
	memset(m, 0, sizeof(m));
	assert_int_equal(sesh_session_get(d, "u", NULL, &s, m, sizeof(m)), 0);
	assert_int_equal(s.meta_len, MAXM);
	assert_memory_equal(m, big, MAXM);
	assert_int_equal(s.created_ns, s0.created_ns);
	assert_int_equal(sesh_session_update(d, "u", NULL, 0), 0);
	memset(m, 0x77, sizeof(m));
	assert_int_equal(sesh_session_get(d, "u", NULL, &s, m, sizeof(m)), 0);
	assert_int_equal(s.meta_len, 0);
	assert_int_equal((unsigned char)m[0], 0x77);
	assert_int_equal(sesh_session_update(d, "u", big, 0), 0);
	assert_int_equal(sesh_session_get(d, "u", NULL, &s, m, sizeof(m)), 0);
	assert_int_equal(s.meta_len, 0);
	for (i = 1; i <= MAXM; i += 37) {
		assert_int_equal(sesh_session_update(d, "u", big, (size_t)i),
				 0);
		memset(m, 0, sizeof(m));
		assert_int_equal(
			sesh_session_get(d, "u", NULL, &s, m, sizeof(m)), 0);
		assert_int_equal(s.meta_len, i);
		assert_memory_equal(m, big, (size_t)i);
		assert_int_equal(s.created_ns, s0.created_ns);
	}
	assert_int_equal(count_of(d), 1);

	/* Missing id. */
	assert_int_equal(sesh_session_update(d, "missing", "x", 1), -ENOENT);
	assert_int_equal(sesh_session_get(d, "missing", NULL, NULL, NULL, 0),
			 -ENOENT);

	/* Another process sees the update, and we see its. */
	assert_int_equal(sesh_session_update(d, "u", "from-parent", 11), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		sesh_t *k = NULL;
		char cm[64] = {0};
		sesh_session_t cs;

		tu_die_with(parent);
		if (sesh_open(name, NULL, NULL, 0, &k) != 0)
			_exit(2);
		if (sesh_session_get(k, "u", "usr", &cs, cm, sizeof(cm)) != 0)
			_exit(3);
		if (cs.meta_len != 11 || strcmp(cm, "from-parent") != 0)
			_exit(4);
		if (cs.created_ns != s0.created_ns)
			_exit(5);
		if (sesh_session_update(k, "u", "from-child", 10) != 0)
			_exit(6);
		sesh_close(k);
		_exit(0);
	}
	assert_int_equal(tu_wait(pid), 0);
	memset(m, 0, sizeof(m));
	assert_int_equal(sesh_session_get(d, "u", "usr", &s, m, sizeof(m)), 0);
	assert_string_equal(m, "from-child");
	assert_int_equal(s.meta_len, 10);
	assert_int_equal(s.created_ns, s0.created_ns);
	assert_int_equal(count_of(d), 1);

	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 8. atomic updates across processes ----------------------------------- */

#define LEN_A 100
#define LEN_B 700

struct reader {
	sesh_t *d;
	_Atomic int *stop;
	double until; /* main thread: stop at this time; threads: 0 */
	uint64_t reads, a, b, torn, errs;
	int first_err;
	size_t bad_len;
};

static void read_once(struct reader *r, char *buf, size_t cap)
{
	sesh_session_t s;
	size_t i, len;
	char want;
	int rc;

	memset(buf, 0, cap);
	rc = sesh_session_get(r->d, "hot", NULL, &s, buf, cap);
	r->reads++;
	if (rc != 0) {
		if (r->errs++ == 0)
			r->first_err = rc;
		return;
	}
	len = s.meta_len;
	if (len == LEN_A) {
		want = 'A';
	} else if (len == LEN_B) {
		want = 'B';
	} else {
		r->torn++;
		r->bad_len = len;
		return;
	}
	for (i = 0; i < len; i++)
		if (buf[i] != want)
			break;
	if (i != len || buf[len] != 0 || strcmp(s.id, "hot") != 0) {
		r->torn++;
		return;
	}
	if (want == 'A')
		r->a++;
	else
		r->b++;
}

static void *reader_thread(void *arg)
{
	struct reader *r = arg;
	char buf[1024 + 8];

	while (!atomic_load_explicit(r->stop, memory_order_relaxed))
		read_once(r, buf, sizeof(buf));
	return NULL;
}

struct upd_report {
	int rc;		       /* first error other than -ENOSPC, or 0 */
	uint64_t updates;      /* that succeeded */
	uint64_t enospc;       /* updates refused with -ENOSPC */
	uint64_t first_enospc; /* at which attempt */
};

/* Update "hot" in a loop until told to stop. An update refused with
 * -ENOSPC is counted and the loop goes on, so that the readers' checks
 * are exercised whatever happens; any other error stops it. */
static void updater_main(const char *name, int stop_fd, int ready_fd,
			 int out_fd)
{
	struct upd_report rep = {0, 0, 0, 0};
	char a[LEN_A], b[LEN_B], c = 1;
	sesh_t *k = NULL;
	uint64_t i;

	memset(a, 'A', sizeof(a));
	memset(b, 'B', sizeof(b));
	if (sesh_open(name, NULL, NULL, 0, &k) != 0)
		_exit(2);
	tu_put(ready_fd, &c, 1);
	for (i = 0;; i++) {
		int rc = (i & 1) ? sesh_session_update(k, "hot", b, LEN_B)
				 : sesh_session_update(k, "hot", a, LEN_A);

		if (rc == -ENOSPC) {
			if (rep.enospc++ == 0)
				rep.first_enospc = i;
		} else if (rc != 0) {
			rep.rc = rc;
			break;
		} else {
			rep.updates++;
		}
		if ((i & 63) == 63 && read(stop_fd, &c, 1) >= 0)
			break; /* a byte or EOF: stop */
	}
	tu_put(out_fd, &rep, sizeof(rep));
	sesh_close(k);
	_exit(0);
}

static void test_atomic_update(void **state)
{
	enum { THREADS = 2 };
	int stop_p[2], ready_p[2], out_p[2], i;
	struct reader rd[THREADS + 1];
	struct upd_report rep;
	pthread_t th[THREADS];
	_Atomic int stop = 0;
	char name[64], a[LEN_A], buf[1024 + 8], c;
	pid_t parent = getpid(), pid;
	sesh_check_t chk;
	sesh_t *d;

	tu_name(name, sizeof(name), "satom");
	d = open_dom(name, 1024);
	memset(a, 'A', sizeof(a));
	assert_int_equal(sesh_session_create(d, "hot", NULL, a, LEN_A, 0, NULL),
			 0);
	assert_int_equal(pipe(stop_p), 0);
	assert_int_equal(pipe(ready_p), 0);
	assert_int_equal(pipe(out_p), 0);
	assert_int_equal(fcntl(stop_p[0], F_SETFL, O_NONBLOCK), 0);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		tu_die_with(parent);
		close(stop_p[1]);
		updater_main(name, stop_p[0], ready_p[1], out_p[1]);
	}
	close(stop_p[0]);
	assert_int_equal(tu_get(ready_p[0], &c, 1), 0);

	memset(rd, 0, sizeof(rd));
	for (i = 0; i < THREADS + 1; i++) {
		rd[i].d = d;
		rd[i].stop = &stop;
	}
	for (i = 0; i < THREADS; i++)
		assert_int_equal(
			pthread_create(&th[i], NULL, reader_thread, &rd[i]), 0);
	rd[THREADS].until = tu_mono_s() + 1.0;
	while (tu_mono_s() < rd[THREADS].until)
		read_once(&rd[THREADS], buf, sizeof(buf));
	atomic_store(&stop, 1);
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	close(stop_p[1]); /* EOF: the updater stops */
	assert_int_equal(tu_get(out_p[0], &rep, sizeof(rep)), 0);
	assert_int_equal(tu_wait(pid), 0);

	print_message("updater: %llu updates, %llu refused with -ENOSPC, "
		      "rc %d\n",
		      (unsigned long long)rep.updates,
		      (unsigned long long)rep.enospc, rep.rc);
	if (rep.rc != 0)
		fail_msg("update failed after %llu updates: %s",
			 (unsigned long long)rep.updates,
			 sesh_strerror(rep.rc));
	assert_true(rep.updates > 100);
	for (i = 0; i < THREADS + 1; i++) {
		print_message("reader %d: %llu reads, %llu A, %llu B, "
			      "%llu torn, %llu errors\n",
			      i, (unsigned long long)rd[i].reads,
			      (unsigned long long)rd[i].a,
			      (unsigned long long)rd[i].b,
			      (unsigned long long)rd[i].torn,
			      (unsigned long long)rd[i].errs);
		if (rd[i].errs)
			fail_msg("reader %d: get failed: %s", i,
				 sesh_strerror(rd[i].first_err));
		if (rd[i].torn)
			fail_msg("reader %d: %llu torn reads (a length %zu)", i,
				 (unsigned long long)rd[i].torn, rd[i].bad_len);
		assert_true(rd[i].a > 0);
		assert_true(rd[i].b > 0);
		assert_int_equal(rd[i].a + rd[i].b, rd[i].reads);
	}
	close(ready_p[0]);
	close(ready_p[1]);
	close(out_p[0]);
	close(out_p[1]);

	assert_int_equal(count_of(d), 1);
	assert_int_equal(sesh_recover(d), 0);
	assert_check_ok(d, &chk);
	assert_int_equal(chk.sessions, 1);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);

	/* One session of 64: the allocator has room for far more than the
	 * blocks a live reader can hold back for the moment it is inside a
	 * get, so an update must never be refused for space. */
	if (rep.enospc != 0)
		fail_msg("%llu updates of a domain holding 1 session of 64 "
			 "refused with -ENOSPC (the first at attempt %llu) "
			 "while only live readers were reading",
			 (unsigned long long)rep.enospc,
			 (unsigned long long)rep.first_enospc);
}

/* --- 9. reclamation ------------------------------------------------------- */

static void test_reclaim(void **state)
{
	enum { CYCLES = 20000, UPDATES = 50000, WINDOW = 32, IDS = 64 };
	char name[64], id[32], meta[1024], rd[1024];
	uint64_t total_blocks = 0;
	sesh_session_t s;
	sesh_check_t chk;
	unsigned c;
	sesh_t *d;
	int i, rc;

	tu_name(name, sizeof(name), "srec");
	d = open_dom(name, 1024); /* 64 sessions */
	assert_int_equal(sesh_session_create(d, "pinned", "p", "p", 1, 0, NULL),
			 0);

	/* Create and delete, cycling through the ids, up to WINDOW + 1 of
	 * them alive at once. */
	for (i = 0; i < CYCLES; i++) {
		snprintf(id, sizeof(id), "c%d", i % IDS);
		rc = sesh_session_create(d, id, NULL, id, strlen(id), 0, NULL);
		if (rc != 0)
			fail_msg("create %d (%s): %s", i, id,
				 sesh_strerror(rc));
		if (i >= WINDOW) {
			snprintf(id, sizeof(id), "c%d", (i - WINDOW) % IDS);
			rc = sesh_session_delete(d, id);
			if (rc != 0)
				fail_msg("delete %d (%s): %s", i, id,
					 sesh_strerror(rc));
		}
	}
	assert_int_equal(count_of(d), WINDOW + 1);
	for (i = CYCLES - WINDOW; i < CYCLES; i++) {
		snprintf(id, sizeof(id), "c%d", i % IDS);
		assert_int_equal(sesh_session_delete(d, id), 0);
	}
	assert_int_equal(count_of(d), 1);

	/* Update one session over and over, with lengths of every class. */
	for (i = 0; i < UPDATES; i++) {
		size_t len = (size_t)(i * 37) % (sizeof(meta) + 1);

		memset(meta, 'a' + i % 26, len);
		rc = sesh_session_update(d, "pinned", meta, len);
		if (rc != 0)
			fail_msg("update %d (len %zu): %s", i, len,
				 sesh_strerror(rc));
		if (i % 997 == 0) {
			memset(rd, 0, sizeof(rd));
			assert_int_equal(sesh_session_get(d, "pinned", "p", &s,
							  rd, sizeof(rd)),
					 0);
			assert_int_equal(s.meta_len, len);
			assert_memory_equal(rd, meta, len);
		}
	}
	assert_int_equal(count_of(d), 1);
	assert_int_equal(total_of(d), 1);

	for (c = 0; c < d->seg.geom.nclasses; c++)
		total_blocks += d->seg.geom.cls[c].cap;
	assert_check_ok(d, &chk);
	print_message("blocks: %zu live, %zu retired, %zu free, %llu total\n",
		      chk.blocks_live, chk.blocks_retired, chk.blocks_free,
		      (unsigned long long)total_blocks);
	assert_int_equal(chk.sessions, 1);
	assert_int_equal(chk.blocks_live, 1);
	assert_int_equal(chk.blocks_live + chk.blocks_retired + chk.blocks_free,
			 total_blocks);
	/* No reader is inside a section: recovery frees every retired
	 * block. */
	assert_int_equal(sesh_recover(d), 0);
	assert_check_ok(d, &chk);
	assert_int_equal(chk.blocks_live, 1);
	assert_int_equal(chk.blocks_retired, 0);
	assert_int_equal(chk.blocks_free, total_blocks - 1);
	memset(rd, 0, sizeof(rd));
	assert_int_equal(sesh_session_get(d, "pinned", "p", &s, rd, sizeof(rd)),
			 0);

	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 10. list and expired ------------------------------------------------- */

static void test_list(void **state)
{
	enum { N = 40 };
	char name[64], id[16], meta[16];
	struct seen w;
	sesh_t *d, *e;
	int i, at;

	tu_name(name, sizeof(name), "slst");
	d = open_dom(name, 1024);
	for (i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "L%02d", i);
		snprintf(meta, sizeof(meta), "meta-%d", i);
		assert_int_equal(sesh_session_create(d, id, i % 2 ? "u1" : "u0",
						     meta, strlen(meta), 0,
						     NULL),
				 0);
	}
	assert_int_equal(count_of(d), N);

	/* All of them, each once, with their metadata. */
	memset(&w, 0, sizeof(w));
	assert_int_equal(sesh_session_list(d, NULL, visit, &w), 0);
	assert_int_equal(w.n, N);
	for (i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "L%02d", i);
		snprintf(meta, sizeof(meta), "meta-%d", i);
		at = seen_index(&w, id);
		assert_true(at >= 0);
		assert_string_equal(w.meta[at], meta);
		assert_int_equal(w.meta_len[at], strlen(meta));
		assert_string_equal(w.user[at], i % 2 ? "u1" : "u0");
	}

	/* One user's. */
	memset(&w, 0, sizeof(w));
	assert_int_equal(sesh_session_list(d, "u1", visit, &w), 0);
	assert_int_equal(w.n, N / 2);
	for (i = 0; i < w.n; i++) {
		assert_string_equal(w.user[i], "u1");
		assert_int_equal((w.id[i][2] - '0') % 2, 1);
	}
	for (i = 1; i < N; i += 2) {
		snprintf(id, sizeof(id), "L%02d", i);
		assert_true(seen_index(&w, id) >= 0);
	}
	memset(&w, 0, sizeof(w));
	assert_int_equal(sesh_session_list(d, "u2", visit, &w), 0);
	assert_int_equal(w.n, 0);

	/* A visitor's non-zero return stops the walk and is returned. */
	memset(&w, 0, sizeof(w));
	w.ret = 7;
	assert_int_equal(sesh_session_list(d, NULL, visit, &w), 7);
	assert_int_equal(w.n, 1);
	memset(&w, 0, sizeof(w));
	w.ret = 7;
	assert_int_equal(sesh_session_list(d, "u0", visit, &w), 7);
	assert_int_equal(w.n, 1);
	assert_string_equal(w.user[0], "u0");
	memset(&w, 0, sizeof(w));
	w.ret = 3;
	assert_int_equal(sesh_session_expired(d, 0, visit, &w), 0);
	assert_int_equal(w.n, 0);

	/* Nobody has been idle an hour. */
	memset(&w, 0, sizeof(w));
	assert_int_equal(sesh_session_expired(d, 3600, visit, &w), 0);
	assert_int_equal(w.n, 0);

	/* A namespace that never held a session. */
	e = open_ns(name, "empty");
	memset(&w, 0, sizeof(w));
	assert_int_equal(sesh_session_list(e, NULL, visit, &w), 0);
	assert_int_equal(sesh_session_list(e, "u1", visit, &w), 0);
	assert_int_equal(sesh_session_expired(e, 0, visit, &w), 0);
	assert_int_equal(sesh_session_expired(e, 1, visit, &w), 0);
	assert_int_equal(w.n, 0);
	assert_int_equal(count_of(e), 0);
	sesh_close(e);

	/* A visitor that deletes what it visits. */
	memset(&w, 0, sizeof(w));
	w.del = d;
	assert_int_equal(sesh_session_list(d, NULL, visit, &w), 0);
	assert_int_equal(w.n, N);
	assert_int_equal(w.del_bad, 0);
	assert_int_equal(count_of(d), 0);
	assert_int_equal(total_of(d), 0);
	memset(&w, 0, sizeof(w));
	assert_int_equal(sesh_session_list(d, NULL, visit, &w), 0);
	assert_int_equal(w.n, 0);

	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 11. check and recover on a healthy domain ---------------------------- */

static void test_check_healthy(void **state)
{
	char name[64], id[16];
	sesh_check_t chk;
	sesh_t *d, *x;
	int i;

	tu_name(name, sizeof(name), "schk");
	d = open_dom(name, 1024);
	assert_check_ok(d, &chk);
	assert_int_equal(chk.sessions, 0);

	x = open_ns(name, "x");
	for (i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "k%d", i);
		assert_int_equal(sesh_session_create(d, id, "u", id, strlen(id),
						     0, NULL),
				 0);
	}
	for (i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "k%d", i);
		assert_int_equal(
			sesh_session_create(x, id, NULL, NULL, 0, 0, NULL), 0);
	}
	assert_int_equal(sesh_session_update(d, "k3", "new", 3), 0);
	assert_int_equal(sesh_session_delete(d, "k9"), 0);

	assert_check_ok(d, &chk);
	assert_int_equal(chk.sessions, 14);
	assert_int_equal(chk.sessions, count_of(d) + count_of(x));
	assert_int_equal(chk.sessions, total_of(d));
	assert_int_equal(chk.namespaces, 2);
	assert_int_equal(chk.blocks_live, 14);

	assert_int_equal(sesh_recover(d), 0);
	assert_int_equal(sesh_recover(x), 0);
	assert_check_ok(x, &chk);
	assert_int_equal(chk.sessions, 14);
	assert_int_equal(count_of(d), 9);
	assert_int_equal(count_of(x), 5);
	assert_int_equal(sesh_session_get(d, "k3", "u", NULL, NULL, 0), 0);

	sesh_close(x);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* --- 12. corruption ------------------------------------------------------- */

/* With the bucket word of "victim" scribbled: every call that walks it
 * says -EUCLEAN, and so does the validator. */
static void corrupt_refused(sesh_t *d)
{
	sesh_session_t s;
	sesh_check_t chk;
	struct seen w;
	char m[16];

	assert_int_equal(sesh_session_get(d, "victim", NULL, &s, m, sizeof(m)),
			 -EUCLEAN);
	assert_int_equal(sesh_session_get(d, "victim", "v", NULL, NULL, 0),
			 -EUCLEAN);
	assert_int_equal(sesh_session_touch(d, "victim"), -EUCLEAN);
	assert_int_equal(sesh_session_update(d, "victim", "zz", 2), -EUCLEAN);
	assert_int_equal(sesh_session_delete(d, "victim"), -EUCLEAN);
	assert_int_equal(
		sesh_session_create(d, "victim", NULL, NULL, 0, 0, NULL),
		-EUCLEAN);
	memset(&w, 0, sizeof(w));
	assert_int_equal(sesh_session_list(d, NULL, visit, &w), -EUCLEAN);
	assert_int_equal(sesh_session_expired(d, 0, visit, &w), -EUCLEAN);
	memset(&chk, 0, sizeof(chk));
	assert_int_equal(sesh_check(d, &chk), -EUCLEAN);
	assert_true(chk.problems > 0);
	assert_true(chk.first_problem[0] != '\0');
	print_message("check: %zu problems, first: %s\n", chk.problems,
		      chk.first_problem);
}

static void restored(sesh_t *d, size_t n)
{
	sesh_check_t chk;
	char m[16];

	assert_check_ok(d, &chk);
	assert_int_equal(chk.sessions, n);
	memset(m, 0, sizeof(m));
	assert_int_equal(sesh_session_get(d, "victim", "v", NULL, m, sizeof(m)),
			 0);
	assert_string_equal(m, "vmeta");
	assert_int_equal(count_of(d), n);
}

static void test_corruption(void **state)
{
	char name[64], probe[32];
	_Atomic uint64_t *bw;
	struct idx_rec *r;
	uint64_t saved, b, mask;
	uint16_t ns;
	sesh_t *d;
	int i;

	tu_name(name, sizeof(name), "scor");
	d = open_dom(name, 1024);
	assert_int_equal(
		sesh_session_create(d, "victim", "v", "vmeta", 5, 0, NULL), 0);
	/* The first namespace of a fresh domain is entry 0. */
	assert_int_equal(atomic_load(&d->ns_idx), 0);
	ns = 0;
	mask = d->seg.geom.nbuckets - 1;
	b = idx_hash(d->seg.geom.hash_key, ns, "victim", 6) & mask;
	bw = idx_bucket(&d->seg, b);
	assert_non_null(bw);
	saved = atomic_load(bw);
	assert_int_not_equal(saved, 0);
	restored(d, 1);

	/* An offset that is no block. */
	atomic_store(bw, 12345);
	corrupt_refused(d);
	atomic_store(bw, saved);
	restored(d, 1);

	/* The segment's size: past the end. */
	atomic_store(bw, d->seg.geom.total_bytes);
	corrupt_refused(d);
	atomic_store(bw, saved);
	restored(d, 1);

	/* Inside the record's block, not at its start. */
	atomic_store(bw, saved + 8);
	corrupt_refused(d);
	atomic_store(bw, saved);
	restored(d, 1);

	/* All ones. */
	atomic_store(bw, UINT64_MAX);
	corrupt_refused(d);
	atomic_store(bw, saved);
	restored(d, 1);

	/* A cycle: the record points at itself. An id of the same bucket
	 * that is not stored walks it forever unless the walk is bounded. */
	for (i = 0; i < 1000000; i++) {
		snprintf(probe, sizeof(probe), "probe%d", i);
		if ((idx_hash(d->seg.geom.hash_key, ns, probe, strlen(probe)) &
		     mask) == b)
			break;
	}
	assert_true(i < 1000000);
	r = shm_ptr(&d->seg, SHM_R_BLOCKS, saved, sizeof(*r), SHM_CACHELINE);
	assert_non_null(r);
	assert_int_equal(atomic_load(&r->next), 0);
	atomic_store(&r->next, saved);
	assert_int_equal(sesh_session_get(d, probe, NULL, NULL, NULL, 0),
			 -EUCLEAN);
	assert_int_equal(sesh_session_touch(d, probe), -EUCLEAN);
	assert_int_equal(sesh_session_update(d, probe, "p", 1), -EUCLEAN);
	assert_int_equal(sesh_session_delete(d, probe), -EUCLEAN);
	assert_int_equal(sesh_session_create(d, probe, NULL, NULL, 0, 0, NULL),
			 -EUCLEAN);
	{
		sesh_check_t chk;

		memset(&chk, 0, sizeof(chk));
		assert_int_equal(sesh_check(d, &chk), -EUCLEAN);
		assert_true(chk.problems > 0);
		assert_true(chk.first_problem[0] != '\0');
		print_message("check: %zu problems, first: %s\n", chk.problems,
			      chk.first_problem);
	}
	atomic_store(&r->next, 0);
	restored(d, 1);
	/* Nothing was left locked or leaked: the probe id goes in now. */
	assert_int_equal(sesh_session_create(d, probe, NULL, NULL, 0, 0, NULL),
			 0);
	restored(d, 2);
	assert_int_equal(sesh_session_delete(d, probe), 0);
	restored(d, 1);

	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* Ids are checked eight bytes at a time: a bad byte is found at every
 * position of every length, and every printable byte passes anywhere. */
static void test_id_bytes(void **state)
{
	static const unsigned char badb[] = {0x01, 0x09, 0x20, 0x7f, 0x80,
					     0xa0, 0xfe, 0xff};
	char name[64], id[SESH_ID_MAX + 2];
	size_t len, p, k;
	sesh_t *d;

	tu_name(name, sizeof(name), "sbyte");
	d = open_dom(name, 16);
	for (len = 1; len <= SESH_ID_MAX; len++) {
		memset(id, 'a', len);
		id[len] = '\0';
		for (p = 0; p < len; p++) {
			for (k = 0; k < sizeof(badb); k++) {
				id[p] = (char)badb[k];
				assert_int_equal(sesh_session_touch(d, id),
						 -EINVAL);
			}
			for (k = 0x21; k <= 0x7e; k++) {
				id[p] = (char)k;
				assert_int_equal(sesh_session_touch(d, id),
						 -ENOENT);
			}
			id[p] = 'a';
		}
	}
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basics),
		cmocka_unit_test(test_bad_inputs),
		cmocka_unit_test(test_id_bytes),
		cmocka_unit_test(test_namespaces),
		cmocka_unit_test(test_quota),
		cmocka_unit_test(test_owner),
		cmocka_unit_test(test_ttl),
		cmocka_unit_test(test_update),
		cmocka_unit_test(test_atomic_update),
		cmocka_unit_test(test_reclaim),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_check_healthy),
		cmocka_unit_test(test_corruption),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
