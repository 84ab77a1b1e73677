/*
 * sesh.c - the sesh command-line tool: create, describe, check and remove
 * domains; create, read, list and remove their sessions; publish to and
 * follow the sessions' streams; show counters and health, run the reaper.
 *
 * Each verb parses its own options with getopt_long(), calls the public API
 * of include/sesh.h and prints a report for people or, with --json, JSON
 * for programs (stats also speaks the Prometheus text format). Exit status:
 * 0 on success; 1 when the library refuses, with one line
 * "sesh: VERB: NAME: reason" on stderr; 2 on a usage error (unknown verb or
 * option, missing or bad argument). health is the exception, as a probe
 * needs: its status is its verdict, 0 healthy, 1 degraded, 2 down, and any
 * failure to judge (the domain cannot be attached, ...) counts as down.
 *
 * The verbs are rows of a table. Most work on one domain: a row names the
 * options and operands the verb takes and the function that acts on the
 * attached handle, and cmd_domain() does the parsing, attaching, reporting
 * and detaching for all of them.
 *
 * What it has in common with seshd(8), the options of create, escaping,
 * usage errors and the words for why attaching or creating failed, is in
 * tool.c.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sesh.h"
#include "tool.h"

const char tool_prog[] = "sesh";

/* Largest metadata of any domain (sesh_config_t.max_metadata): a bigger
 * --meta-file can never be stored. */
#define META_FILE_MAX ((size_t)1 << 20)

/* Values of the long options that have no short form. The options of
 * create come first (see tool.h): the capacities, from
 * TOOL_OPT_MAX_SESSIONS to TOOL_OPT_MODE, then the database, from
 * TOOL_OPT_SQLITE to TOOL_OPT_SQLITE_WAIT_MS. */
enum {
	OPT_NS = TOOL_OPT_END,
	OPT_JSON,
	OPT_USER,
	OPT_META,
	OPT_META_FILE,
	OPT_TTL,
	OPT_EXPIRED,
	OPT_AFTER,
	OPT_OLDEST,
	OPT_FOLLOW, /* also -f */
	OPT_LINES,
	OPT_PROMETHEUS,
	OPT_END /* past the last */
};

/* A verb lists the options it takes as a set of these bits. */
#define OPT_BIT(id) TOOL_OPT_BIT(id)
_Static_assert(OPT_END - TOOL_OPT_MAX_SESSIONS <= 32,
	       "the options of a verb no longer fit an unsigned");
#define CREATE_OPTS (OPT_BIT(OPT_NS) - 1) /* up to TOOL_OPT_SQLITE_WAIT_MS */

/* Every long option of the verbs but --help, which all of them take. */
static const struct option all_opts[] = {
	TOOL_CREATE_LONG_OPTS,
	{"ns", required_argument, NULL, OPT_NS},
	{"json", no_argument, NULL, OPT_JSON},
	{"user", required_argument, NULL, OPT_USER},
	{"meta", required_argument, NULL, OPT_META},
	{"meta-file", required_argument, NULL, OPT_META_FILE},
	{"ttl", required_argument, NULL, OPT_TTL},
	{"expired", required_argument, NULL, OPT_EXPIRED},
	{"after", required_argument, NULL, OPT_AFTER},
	{"oldest", no_argument, NULL, OPT_OLDEST},
	{"follow", no_argument, NULL, OPT_FOLLOW},
	{"lines", no_argument, NULL, OPT_LINES},
	{"prometheus", no_argument, NULL, OPT_PROMETHEUS},
};

struct args;

/*
 * A verb. One that works on a domain has cmd_domain() as run, and says
 * which options (OPT_BIT()s) and how many operands it takes, and what to
 * do on the attached handle: act returns 0, a negative errno that the
 * library returned, or an exit status it has already reported. Operands
 * are NAME, then a session ID, then a message (publish); the topic of help.
 */
struct verb {
	const char *name; /* as typed; "session get" for a sub-command */
	int (*run)(const struct verb *v, int argc, char **argv);
	void (*help)(void);
	int (*act)(sesh_t *d, struct args *a);
	unsigned opts;	     /* OPT_BIT()s of the options taken */
	size_t need, max;    /* operands required, allowed (at most 3) */
	unsigned open_flags; /* sesh_open() flags; never create if 0 */
	bool needs_meta;     /* --meta or --meta-file is required */
	int fail_status;     /* exit status of a failure; 0 for
			      * EXIT_FAILURE */
};

/* A verb's arguments, as parse_verb() found them. */
struct args {
	const struct verb *v;
	const char *operand[3];
	size_t operands;
	struct tool_create create; /* capacities and database */
	const char *ns;
	const char *user;
	const char *meta_file;
	const char *meta; /* --meta, or what --meta-file holds */
	size_t meta_len;
	char *meta_buf; /* owns meta when read from a file */
	bool meta_given;
	uint32_t ttl_s;
	uint32_t idle_s; /* --expired */
	bool expired;
	bool json;
	uint64_t after; /* --after */
	bool after_given;
	bool oldest;
	bool follow;
	bool lines;
	bool prometheus;
	int status; /* exit status when all went well: health's verdict */
};

/* ----------------------------------------------------------------------
 * Messages
 */

/* Print @len bytes at @p to stdout, each escaped as tool_escape_byte()
 * does. */
static void print_escaped(const void *p, size_t len)
{
	const unsigned char *b = p;
	char tmp[5];

	for (size_t i = 0; i < len; i++)
		fwrite(tmp, 1, tool_escape_byte(tmp, b[i]), stdout);
}

/* The letter of a short option, cleaned as tool_clean() does. */
static const char *short_name(char *buf, size_t size, int c)
{
	char s[2] = {(char)c, '\0'};

	return tool_clean(buf, size, s, 1);
}

/*
 * Say something on stderr, on one line: "sesh: VERB: NAME: reason", or
 * "sesh: VERB: reason" when @name is NULL.
 */
static void say(const char *verb, const char *name, const char *reason)
{
	char q[4 * SESH_NAME_MAX + 8];

	if (name)
		fprintf(stderr, "sesh: %s: %s: %s\n", verb,
			tool_clean(q, sizeof(q), name, SIZE_MAX), reason);
	else
		fprintf(stderr, "sesh: %s: %s\n", verb, reason);
}

/* Report a failure on one line, as say() does. */
static int fail_because(const char *verb, const char *name, const char *reason)
{
	say(verb, name, reason);
	return EXIT_FAILURE;
}

/* Report that the library refused, with its own words for @err. */
static int fail(const char *verb, const char *name, int err)
{
	return fail_because(verb, name, sesh_strerror(err));
}

/* ----------------------------------------------------------------------
 * Describing a domain
 */

/* The registry as sesh_proc_list() walked it. */
struct procs {
	sesh_proc_t *v;
	size_t n;
	size_t cap;
};

static int collect_proc(const sesh_proc_t *p, void *arg)
{
	struct procs *ps = arg;

	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? 2 * ps->cap : 16;
		sesh_proc_t *v = realloc(ps->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM; /* stops the walk; returned as is */
		ps->v = v;
		ps->cap = cap;
	}
	ps->v[ps->n++] = *p;
	return 0;
}

/* ISO 8601 UTC with milliseconds, from CLOCK_REALTIME nanoseconds. */
static const char *iso_time(char *buf, size_t size, int64_t ns)
{
	int64_t sec = ns / 1000000000, rem = ns % 1000000000;
	time_t t;
	struct tm tm;
	char day[32];

	if (rem < 0) {
		sec--;
		rem += 1000000000;
	}
	t = (time_t)sec;
	if (!gmtime_r(&t, &tm) ||
	    !strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm)) {
		snprintf(buf, size, "?");
		return buf;
	}
	snprintf(buf, size, "%s.%03dZ", day, (int)(rem / 1000000));
	return buf;
}

/* A byte count for people: 1536 -> "1.5 KiB". */
static const char *human_size(char *buf, size_t size, uint64_t bytes)
{
	static const char prefix[] = "KMGTPE";
	double x = (double)bytes;
	size_t u = 0;

	while (x >= 1024 && u < sizeof(prefix) - 1) {
		x /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, size, "%.1f %ciB", x, prefix[u - 1]);
	return buf;
}

/* The name of a write-through mode, sesh_info_t.sqlite_mode. */
static const char *sqlite_mode_name(uint32_t mode)
{
	return mode == SESH_SQLITE_ASYNC ? "asynchronous" : "synchronous";
}

/* The database a domain writes through to, for people: its path, or
 * none, then the mode, the lag and the wait it was created with. */
static void print_database_text(const sesh_info_t *in)
{
	char q[4 * sizeof(in->sqlite_path) + 8];

	if (!in->sqlite_path[0]) {
		printf("database:          none\n");
		return;
	}
	printf("database:          %s\n",
	       tool_clean(q, sizeof(q), in->sqlite_path,
			  sizeof(in->sqlite_path)));
	printf("database mode:     %s\n", sqlite_mode_name(in->sqlite_mode));
	printf("database lag:      %" PRIu32 " ms\n", in->sqlite_lag_ms);
	printf("database wait:     %" PRIu32 " ms\n", in->sqlite_wait_ms);
}

static void print_text(const sesh_info_t *in, const struct procs *ps)
{
	char t[64], h[32], q[4 * sizeof(ps->v->comm) + 8];

	printf("domain:            %s\n", in->name);
	printf("namespace:         %s\n", in->ns);
	printf("layout version:    %" PRIu32 "\n", in->layout_version);
	printf("domain id:         0x%016" PRIx64 "\n", in->domain_id);
	printf("created:           %s\n",
	       iso_time(t, sizeof(t), in->created_ns));
	printf("max sessions:      %zu\n", in->max_sessions);
	printf("stream bytes:      %zu (%s)\n", in->stream_bytes,
	       human_size(h, sizeof(h), in->stream_bytes));
	printf("max message:       %zu (%s)\n", in->max_message,
	       human_size(h, sizeof(h), in->max_message));
	printf("max metadata:      %zu (%s)\n", in->max_metadata,
	       human_size(h, sizeof(h), in->max_metadata));
	printf("idle ttl:          %" PRIu32 " s\n", in->idle_ttl_s);
	printf("max processes:     %" PRIu32 "\n", in->max_processes);
	printf("unblock after:     %" PRIu32 " ms\n", in->unblock_ms);
	printf("max subscriptions: %" PRIu32 " per process\n",
	       in->max_subscriptions);
	printf("mode:              %04o\n", (unsigned)in->mode & 07777);
	printf("segment size:      %" PRIu64 " bytes (%s) virtual\n",
	       in->segment_bytes, human_size(h, sizeof(h), in->segment_bytes));
	printf("committed:         %" PRIu64 " bytes (%s)\n",
	       in->committed_bytes,
	       human_size(h, sizeof(h), in->committed_bytes));
	printf("processes:         %" PRIu32 " alive, %" PRIu32 " dead\n",
	       in->processes_alive, in->processes_dead);
	printf("sessions:          %zu\n", in->sessions);
	printf("streams open:      %zu\n", in->streams_open);
	print_database_text(in);

	printf("\n%-6s %-8s %-16s %-6s %s\n", "SLOT", "PID", "COMM", "STATE",
	       "ATTACHED");
	for (size_t i = 0; i < ps->n; i++) {
		const sesh_proc_t *p = &ps->v[i];

		printf("%-6" PRIu32 " %-8ld %-16s %-6s %s%s\n", p->slot,
		       (long)p->pid,
		       tool_clean(q, sizeof(q), p->comm, sizeof(p->comm)),
		       p->alive ? "alive" : "dead",
		       iso_time(t, sizeof(t), p->attached_ns),
		       p->self ? "  (this process)" : "");
	}
}

/* A JSON string of @len bytes; those outside printable ASCII are written
 * as \u00XX. */
static void json_bytes(const void *p, size_t len)
{
	const unsigned char *b = p;

	putchar('"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = b[i];

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* A JSON string of the NUL-terminated @s, at most @max bytes. */
static void json_string(const char *s, size_t max)
{
	json_bytes(s, strnlen(s, max));
}

/* A time as two members, each after @sep: "KEY_ns", in nanoseconds, and
 * "KEY", in ISO 8601. */
static void json_time(const char *sep, const char *key, int64_t ns)
{
	char t[64];

	printf("%s\"%s_ns\": %" PRId64 "%s\"%s\": \"%s\"", sep, key, ns, sep,
	       key, iso_time(t, sizeof(t), ns));
}

/* The database as four members: "sqlite_path", a string, and
 * "sqlite_mode", "sqlite_lag_ms" and "sqlite_wait_ms"; with no database,
 * the path is null, the mode "none", the lag and the wait null. */
static void print_database_json(const sesh_info_t *in)
{
	if (!in->sqlite_path[0]) {
		fputs(",\n  \"sqlite_path\": null,\n  \"sqlite_mode\": \"none\""
		      ",\n  \"sqlite_lag_ms\": null,\n  \"sqlite_wait_ms\": "
		      "null",
		      stdout);
		return;
	}
	fputs(",\n  \"sqlite_path\": ", stdout);
	json_string(in->sqlite_path, sizeof(in->sqlite_path));
	printf(",\n  \"sqlite_mode\": \"%s\"",
	       sqlite_mode_name(in->sqlite_mode));
	printf(",\n  \"sqlite_lag_ms\": %" PRIu32, in->sqlite_lag_ms);
	printf(",\n  \"sqlite_wait_ms\": %" PRIu32, in->sqlite_wait_ms);
}

static void print_json(const sesh_info_t *in, const struct procs *ps)
{
	printf("{\n  \"name\": ");
	json_string(in->name, sizeof(in->name));
	printf(",\n  \"ns\": ");
	json_string(in->ns, sizeof(in->ns));
	printf(",\n  \"layout_version\": %" PRIu32, in->layout_version);
	printf(",\n  \"domain_id\": \"%016" PRIx64 "\"", in->domain_id);
	json_time(",\n  ", "created", in->created_ns);
	printf(",\n  \"max_sessions\": %zu", in->max_sessions);
	printf(",\n  \"stream_bytes\": %zu", in->stream_bytes);
	printf(",\n  \"max_message\": %zu", in->max_message);
	printf(",\n  \"max_metadata\": %zu", in->max_metadata);
	printf(",\n  \"idle_ttl_s\": %" PRIu32, in->idle_ttl_s);
	printf(",\n  \"max_processes\": %" PRIu32, in->max_processes);
	printf(",\n  \"unblock_ms\": %" PRIu32, in->unblock_ms);
	printf(",\n  \"max_subscriptions\": %" PRIu32, in->max_subscriptions);
	printf(",\n  \"mode\": \"%04o\"", (unsigned)in->mode & 07777);
	printf(",\n  \"segment_bytes\": %" PRIu64, in->segment_bytes);
	printf(",\n  \"committed_bytes\": %" PRIu64, in->committed_bytes);
	printf(",\n  \"processes_alive\": %" PRIu32, in->processes_alive);
	printf(",\n  \"processes_dead\": %" PRIu32, in->processes_dead);
	printf(",\n  \"sessions\": %zu", in->sessions);
	printf(",\n  \"streams_open\": %zu", in->streams_open);
	print_database_json(in);
	printf(",\n  \"processes\": [");
	for (size_t i = 0; i < ps->n; i++) {
		const sesh_proc_t *p = &ps->v[i];

		printf("%s\n    {\"slot\": %" PRIu32
		       ", \"pid\": %ld, \"comm\": ",
		       i ? "," : "", p->slot, (long)p->pid);
		json_string(p->comm, sizeof(p->comm));
		printf(", \"alive\": %s, \"self\": %s, \"attached_ns\": "
		       "%" PRId64 ", \"incarnation\": %" PRIu64 "}",
		       p->alive ? "true" : "false", p->self ? "true" : "false",
		       p->attached_ns, p->incarnation);
	}
	printf("%s]\n}\n", ps->n ? "\n  " : "");
}

/* Print what sesh_info() and sesh_proc_list() say about @d. */
static int act_describe(sesh_t *d, struct args *a)
{
	struct procs ps = {NULL, 0, 0};
	sesh_info_t in;
	int err;

	err = sesh_info(d, &in);
	if (!err)
		err = sesh_proc_list(d, collect_proc, &ps);
	if (!err) {
		if (a->json)
			print_json(&in, &ps);
		else
			print_text(&in, &ps);
	}
	free(ps.v);
	return err;
}

/*
 * Flush stdout and turn a write error into a failure of the verb; @name as
 * for fail_because(). The error is the system's, not the library's, so
 * strerror() names it.
 */
static int finish(const char *verb, const char *name)
{
	char reason[128];

	if (fflush(stdout) == 0 && !ferror(stdout))
		return EXIT_SUCCESS;
	snprintf(reason, sizeof(reason), "standard output: %s",
		 strerror(errno ? errno : EIO));
	return fail_because(verb, name, reason);
}

/* ----------------------------------------------------------------------
 * Sessions
 */

/* A session for people, one "key: value" line per field. */
static void print_session_text(const sesh_session_t *s, const void *meta)
{
	char t[64];

	fputs("id:              ", stdout);
	print_escaped(s->id, strnlen(s->id, sizeof(s->id)));
	fputs("\nuser:            ", stdout);
	if (s->user[0])
		print_escaped(s->user, strnlen(s->user, sizeof(s->user)));
	else
		fputs("(none)", stdout);
	printf("\ncreated:         %s\n",
	       iso_time(t, sizeof(t), s->created_ns));
	printf("last seen:       %s\n",
	       iso_time(t, sizeof(t), s->last_seen_ns));
	printf("ttl:             %" PRIu32 " s\n", s->ttl_s);
	printf("last event id:   %" PRIu64 "\n", s->last_event_id);
	printf("meta length:     %zu\n", s->meta_len);
	fputs("meta:            ", stdout);
	print_escaped(meta, s->meta_len);
	putchar('\n');
}

/*
 * A session as a JSON object: with @full, one member per line and the
 * metadata last (get); without, on one line and without the metadata, as
 * an element of the array of ls.
 */
static void print_session_json(const sesh_session_t *s, const void *meta,
			       bool full)
{
	const char *sep = full ? ",\n  " : ", ";

	fputs(full ? "{\n  \"id\": " : "{\"id\": ", stdout);
	json_string(s->id, sizeof(s->id));
	printf("%s\"user\": ", sep);
	json_string(s->user, sizeof(s->user));
	json_time(sep, "created", s->created_ns);
	json_time(sep, "last_seen", s->last_seen_ns);
	printf("%s\"ttl_s\": %" PRIu32, sep, s->ttl_s);
	printf("%s\"last_event_id\": %" PRIu64, sep, s->last_event_id);
	printf("%s\"meta_len\": %zu", sep, s->meta_len);
	if (full) {
		printf("%s\"meta\": ", sep);
		json_bytes(meta, s->meta_len);
		fputs("\n}\n", stdout);
	} else {
		putchar('}');
	}
}

/* A database error text, cleaned: room for sesh_health_t.persist_error
 * with every byte escaped. */
#define DB_WHY_SIZE (4 * sizeof(((sesh_health_t *)0)->persist_error) + 8)

/*
 * Report -EIO from a create, update or delete of @d, whose change, @done,
 * may be made all the same. With synchronous write-through, the call
 * returns -EIO once the change is made and visible, when the database
 * failed the commit, or when no commit covered the change within the
 * domain's wait (another process was committing, slowly): the library's
 * general words for -EIO would not tell which.
 * sesh_health() tells which, unless a commit of another process has
 * changed it since. Returns the exit status.
 */
static int not_durable(sesh_t *d, const struct args *a, int err,
		       const char *done)
{
	char reason[DB_WHY_SIZE + 256], q[DB_WHY_SIZE];
	sesh_health_t h;

	memset(&h, 0, sizeof(h));
	if (err != -EIO || sesh_health(d, &h) != 0 || h.persist != 1)
		return fail(a->v->name, a->operand[0], err);
	if (!h.persist_ok)
		snprintf(reason, sizeof(reason),
			 "%s, but not written to the database yet: %s "
			 "(retried at every commit; see 'sesh health')",
			 done,
			 tool_clean(q, sizeof(q), h.persist_error,
				    sizeof(h.persist_error)));
	else
		snprintf(reason, sizeof(reason),
			 "%s, but no commit covered it within the domain's "
			 "wait (sqlite_wait_ms); the next one will (see 'sesh "
			 "health')",
			 done);
	fflush(stdout);
	return fail_because(a->v->name, a->operand[0], reason);
}

/* create: the id. On -EIO, the session may exist all the same (see
 * not_durable()): then its id too, as no one could learn it otherwise,
 * and the failure. */
static int act_session_create(sesh_t *d, struct args *a)
{
	char id[SESH_ID_MAX + 1] = "";
	sesh_session_t s;
	int err;

	err = sesh_session_create(d, a->operand[1], a->user, a->meta,
				  a->meta_len, a->ttl_s, id);
	if (err && (err != -EIO || !id[0] ||
		    sesh_session_get(d, id, NULL, &s, NULL, 0) != 0))
		return err;
	if (a->json) {
		fputs("{\"id\": ", stdout);
		json_string(id, sizeof(id));
		fputs("}\n", stdout);
	} else {
		print_escaped(id, strnlen(id, sizeof(id)));
		putchar('\n');
	}
	return err ? not_durable(d, a, err, "created") : 0;
}

static int act_session_get(sesh_t *d, struct args *a)
{
	sesh_session_t s;
	char *meta = NULL, *m;
	size_t cap = 0;
	int err;

	/* Learn the length, then read again: an update in between may have
	 * made the metadata longer still, so until it fits. */
	for (;;) {
		err = sesh_session_get(d, a->operand[1], a->user, &s, meta,
				       cap);
		if (err || s.meta_len <= cap)
			break;
		m = realloc(meta, s.meta_len);
		if (!m) {
			err = -ENOMEM;
			break;
		}
		meta = m;
		cap = s.meta_len;
	}
	if (!err) {
		if (a->json)
			print_session_json(&s, meta, true);
		else
			print_session_text(&s, meta);
	}
	free(meta);
	return err;
}

static int act_session_touch(sesh_t *d, struct args *a)
{
	return sesh_session_touch(d, a->operand[1]);
}

static int act_session_update(sesh_t *d, struct args *a)
{
	int err;

	err = sesh_session_update(d, a->operand[1], a->meta, a->meta_len);
	return err == -EIO ? not_durable(d, a, err, "updated") : err;
}

static int act_session_rm(sesh_t *d, struct args *a)
{
	int err;

	err = sesh_session_delete(d, a->operand[1]);
	return err == -EIO ? not_durable(d, a, err, "removed") : err;
}

/* Where ls is in its output. */
struct listing {
	const struct args *a;
	size_t shown;
	bool started;
};

/* Print the header, or open the array, once. */
static void ls_start(struct listing *l)
{
	if (l->started)
		return;
	l->started = true;
	if (l->a->json)
		putchar('[');
	else
		printf("%-32s %-16s %-24s %8s %s\n", "ID", "USER", "LAST SEEN",
		       "TTL", "META");
}

static int ls_one(const sesh_session_t *s, const void *meta, void *arg)
{
	struct listing *l = arg;
	char t[64], q[4 * SESH_ID_MAX + 8], u[4 * SESH_USER_MAX + 8];

	/* sesh_session_expired() does not filter by user: do it here. */
	if (l->a->user && strcmp(s->user, l->a->user) != 0)
		return 0;
	ls_start(l);
	if (l->a->json) {
		fputs(l->shown ? ",\n  " : "\n  ", stdout);
		print_session_json(s, meta, false);
	} else {
		printf("%-32s %-16s %-24s %8" PRIu32 " %zu\n",
		       tool_clean(q, sizeof(q), s->id, sizeof(s->id)),
		       s->user[0] ? tool_clean(u, sizeof(u), s->user,
					       sizeof(s->user))
				  : "-",
		       iso_time(t, sizeof(t), s->last_seen_ns), s->ttl_s,
		       s->meta_len);
	}
	l->shown++;
	return 0;
}

/* The output starts with the first session, so a walk that fails at once
 * prints nothing but the error. */
static int act_ls(sesh_t *d, struct args *a)
{
	struct listing l = {a, 0, false};
	int err;

	if (a->expired)
		err = sesh_session_expired(d, a->idle_s, ls_one, &l);
	else
		err = sesh_session_list(d, a->user, ls_one, &l);
	if (err)
		return err;
	ls_start(&l);
	if (a->json)
		fputs(l.shown ? "\n]\n" : "]\n", stdout);
	return 0;
}

/* The counters of sesh_check_t, in the order they are printed. */
static const struct {
	const char *key;
	size_t off;
} check_counts[] = {
	{"sessions", offsetof(sesh_check_t, sessions)},
	{"namespaces", offsetof(sesh_check_t, namespaces)},
	{"blocks_live", offsetof(sesh_check_t, blocks_live)},
	{"blocks_retired", offsetof(sesh_check_t, blocks_retired)},
	{"blocks_owned", offsetof(sesh_check_t, blocks_owned)},
	{"blocks_dead", offsetof(sesh_check_t, blocks_dead)},
	{"blocks_free", offsetof(sesh_check_t, blocks_free)},
	{"problems", offsetof(sesh_check_t, problems)},
};

/* The label of a line "key: value" of a report: @key with blanks for its
 * underscores, and a colon. */
static const char *label_of(char *buf, size_t size, const char *key)
{
	snprintf(buf, size, "%s:", key);
	for (char *p = buf; *p; p++)
		if (*p == '_')
			*p = ' ';
	return buf;
}

/*
 * One counter of a report: a line "key: value", the value in column
 * @width, or, with @json, a member of the object that the @first counter
 * opens.
 */
static void print_count(bool json, bool first, int width, const char *key,
			uint64_t n)
{
	char label[32];

	if (json) {
		printf("%s\n  \"%s\": %" PRIu64, first ? "{" : ",", key, n);
		return;
	}
	printf("%-*s%" PRIu64 "\n", width, label_of(label, sizeof(label), key),
	       n);
}

static void print_check(const sesh_check_t *c, bool json)
{
	char q[4 * sizeof(c->first_problem) + 8];

	for (size_t i = 0; i < ARRAY_SIZE(check_counts); i++) {
		size_t n;

		memcpy(&n, (const char *)c + check_counts[i].off, sizeof(n));
		print_count(json, i == 0, 17, check_counts[i].key, n);
	}
	if (json) {
		fputs(",\n  \"first_problem\": ", stdout);
		json_string(c->first_problem, sizeof(c->first_problem));
		fputs("\n}\n", stdout);
	} else {
		printf("first problem:   %s\n",
		       c->first_problem[0]
			       ? tool_clean(q, sizeof(q), c->first_problem,
					    sizeof(c->first_problem))
			       : "none");
	}
}

/* A broken invariant is a failure that still prints the report, and names
 * the first problem on stderr. */
static int act_check(sesh_t *d, struct args *a)
{
	char q[4 * sizeof(((sesh_check_t *)0)->first_problem) + 8];
	sesh_check_t c;
	int err;

	memset(&c, 0, sizeof(c));
	err = sesh_check(d, &c);
	if (err && err != -EUCLEAN)
		return err;
	print_check(&c, a->json);
	if (!err)
		return 0;
	fflush(stdout);
	if (!c.first_problem[0])
		return fail(a->v->name, a->operand[0], err);
	return fail_because(a->v->name, a->operand[0],
			    tool_clean(q, sizeof(q), c.first_problem,
				       sizeof(c.first_problem)));
}

static int act_recover(sesh_t *d, struct args *a)
{
	int n = sesh_recover(d);

	if (n < 0)
		return n;
	printf("recovered %d dead process%s\n", n, n == 1 ? "" : "es");
	return 0;
}

/* ----------------------------------------------------------------------
 * Streams
 */

/* How long tail -f waits for a message at a time: the longest it takes
 * to notice SIGINT or SIGTERM should the wait not be interrupted. */
#define TAIL_WAIT_MS 200

/* publish --lines: most messages given to one sesh_publish_batch(). */
#define BATCH_MAX 64

/*
 * Read standard input whole into *@out (malloc'd), @max bytes at most:
 * -E2BIG if there is more, without reading it all. Returns 0, a negative
 * errno, or the exit status of a read error, reported.
 */
static int read_input(struct args *a, size_t max, char **out, size_t *len)
{
	char *buf = NULL, *b;
	size_t n = 0, cap = 0, got;

	errno = 0;
	for (;;) {
		if (n > max) {
			free(buf);
			return -E2BIG;
		}
		if (n == cap) {
			/* max + 1: one byte more tells that there is more */
			size_t want = cap ? 2 * cap : 4096;

			cap = want > max + 1 || want < cap ? max + 1 : want;
			b = realloc(buf, cap);
			if (!b) {
				free(buf);
				return -ENOMEM;
			}
			buf = b;
		}
		got = fread(buf + n, 1, cap - n, stdin);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(stdin)) {
		char reason[128];

		snprintf(reason, sizeof(reason), "standard input: %s",
			 strerror(errno ? errno : EIO));
		free(buf);
		return fail_because(a->v->name, a->operand[0], reason);
	}
	*out = buf;
	*len = n;
	return 0;
}

/* Publish the @n lines of @bufs with one sesh_publish_batch() and print
 * the ids of those published, which on an error may be the first few. */
static int batch_publish(sesh_t *d, struct args *a, const sesh_buf_t *bufs,
			 size_t *n)
{
	uint64_t ids[BATCH_MAX];
	int err;

	if (*n == 0)
		return 0;
	err = sesh_publish_batch(d, a->operand[1], bufs, *n, ids);
	for (size_t i = 0; i < *n && (!err || ids[i]); i++)
		printf("%" PRIu64 "\n", ids[i]);
	*n = 0;
	fflush(stdout);
	return err;
}

/*
 * publish --lines: each line of standard input, without its newline, is a
 * message of up to @max bytes; a last line without a newline is one too.
 * The whole lines that one read(2) brings are published at once, in
 * batches, so that a slow writer's lines are not held back and a fast
 * one's go BATCH_MAX at a time. A line too long fails once the lines
 * before it are published.
 */
static int publish_lines(sesh_t *d, struct args *a, size_t max)
{
	sesh_buf_t bufs[BATCH_MAX];
	char *buf = NULL, *b, *nl;
	size_t start = 0, end = 0, cap = 0, n = 0, len;
	ssize_t got;
	bool eof = false;
	int err = 0, e, read_err = 0;

	while (!err && !eof) {
		if (end == cap) {
			cap = cap ? 2 * cap : 65536;
			b = realloc(buf, cap);
			if (!b) {
				err = -ENOMEM;
				break;
			}
			buf = b;
		}
		got = read(STDIN_FILENO, buf + end, cap - end);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			read_err = errno;
			break; /* a line cut short is no message */
		}
		eof = got == 0;
		end += (size_t)got;
		/* bufs point into buf: publish them before buf moves. */
		while (!err && start < end) {
			nl = memchr(buf + start, '\n', end - start);
			if (!nl && !eof)
				break;
			len = nl ? (size_t)(nl - (buf + start)) : end - start;
			if (len > max) {
				err = -E2BIG;
				break;
			}
			bufs[n].data = buf + start;
			bufs[n].len = len;
			n++;
			start += len + (nl != NULL);
			if (n == BATCH_MAX)
				err = batch_publish(d, a, bufs, &n);
		}
		if (!err && end - start > max) /* the line read so far */
			err = -E2BIG;
		e = batch_publish(d, a, bufs, &n);
		err = e ? e : err;
		memmove(buf, buf + start, end - start);
		end -= start;
		start = 0;
	}
	free(buf);
	if (!err && read_err) {
		char reason[128];

		snprintf(reason, sizeof(reason), "standard input: %s",
			 strerror(read_err));
		err = fail_because(a->v->name, a->operand[0], reason);
	}
	return err;
}

/* publish: MESSAGE, or standard input as one message, or, with --lines,
 * one message per line; the event ids, one per line. */
static int act_publish(sesh_t *d, struct args *a)
{
	const char *msg = a->operands > 2 ? a->operand[2] : "-";
	sesh_info_t in;
	uint64_t id;
	char *buf = NULL;
	size_t len;
	int err;

	if (strcmp(msg, "-") != 0) {
		len = strlen(msg);
	} else {
		/* Read no more than the domain takes. */
		err = sesh_info(d, &in);
		if (err)
			return err;
		if (a->lines)
			return publish_lines(d, a, in.max_message);
		err = read_input(a, in.max_message, &buf, &len);
		if (err)
			return err;
		msg = buf;
	}
	err = sesh_publish(d, a->operand[1], msg, len, &id);
	if (!err)
		printf("%" PRIu64 "\n", id);
	free(buf);
	return err;
}

/* The signal that asked tail to stop, or 0. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
	stop_signal = sig;
}

/*
 * Have SIGINT and SIGTERM set stop_signal, without SA_RESTART so that a
 * wait returns early, unless they were ignored when sesh started (as a
 * shell does for its background jobs). Ignore SIGPIPE: a reader gone is a
 * write error, and tail detaches before it exits.
 */
static void catch_stop_signals(void)
{
	static const int stop[] = {SIGINT, SIGTERM};
	struct sigaction sa, old;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop_signal;
	for (size_t i = 0; i < ARRAY_SIZE(stop); i++) {
		if (sigaction(stop[i], NULL, &old) == 0 &&
		    old.sa_handler == SIG_IGN)
			continue;
		sigaction(stop[i], &sa, NULL);
	}
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

/* Print @len bytes at @p on one line: \n, \t and \\ for the newline, the
 * tab and the backslash, \xNN for other bytes not printable ASCII. */
static void print_line_escaped(const void *p, size_t len)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = b[i];

		if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c == '\\')
			fputs("\\\\", stdout);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
}

static void print_msg(const sesh_msg_t *m, bool json)
{
	if (json) {
		printf("{\"id\": %" PRIu64 ", \"published_ns\": %" PRId64
		       ", \"data\": ",
		       m->event_id, m->published_ns);
		json_bytes(m->data, m->len);
		fputs("}\n", stdout);
	} else {
		printf("%" PRIu64 "\t", m->event_id);
		print_line_escaped(m->data, m->len);
		putchar('\n');
	}
}

/*
 * tail: print the messages of a stream, from where the options say, until
 * none is left or, with --follow, until the session goes or a signal
 * comes. Being lapped is said on stderr and is no failure.
 */
static int act_tail(sesh_t *d, struct args *a)
{
	sesh_stream_t *s;
	sesh_msg_t m;
	uint64_t after;
	char reason[64];
	int err, wait = 0;

	if (a->after_given)
		after = a->after;
	else if (a->oldest || !a->follow)
		after = SESH_FROM_OLDEST;
	else
		after = SESH_FROM_LATEST;
	catch_stop_signals();
	err = sesh_subscribe(d, a->operand[1], after, &s);
	if (err)
		return err;
	for (;;) {
		if (stop_signal || ferror(stdout)) {
			err = 0; /* a write error is finish()'s to report */
			break;
		}
		err = sesh_stream_next(s, &m, wait);
		if (err == 0) {
			print_msg(&m, a->json);
			wait = 0;
		} else if (err == -EOVERFLOW) {
			fflush(stdout);
			snprintf(reason, sizeof(reason),
				 "lapped, resuming at %" PRIu64, m.event_id);
			say(a->v->name, a->operand[0], reason);
			wait = 0;
		} else if (err == -EAGAIN || err == -ETIMEDOUT) {
			/* Drained: show what came before waiting. */
			if (!a->follow) {
				err = 0;
				break;
			}
			fflush(stdout);
			wait = TAIL_WAIT_MS;
		} else {
			/* -ENOENT: the session went, after its last
			 * message; anything else is a failure, unless a
			 * signal asked to stop. */
			if (err == -ENOENT || stop_signal)
				err = 0;
			break;
		}
	}
	sesh_stream_close(s);
	return err;
}

/* ----------------------------------------------------------------------
 * Counters, health and the reaper
 */

/* The counters of sesh_stats_t, in the order they are printed: the key of
 * the text and JSON reports, and the name and help of the Prometheus
 * metric. */
static const struct {
	const char *key;
	const char *metric;
	const char *help;
	size_t off;
} stats_counts[] = {
#define COUNT(field, name, text)                                               \
	{                                                                      \
		.key = #field, .metric = name, .help = text,                   \
		.off = offsetof(sesh_stats_t, field)                           \
	}
	COUNT(published, "sesh_messages_published_total",
	      "Messages committed to streams."),
	COUNT(published_bytes, "sesh_published_bytes_total",
	      "Payload bytes of the messages committed."),
	COUNT(publish_failed, "sesh_publish_failed_total",
	      "Publishes that lost their claim or found the ring blocked."),
	COUNT(delivered, "sesh_messages_delivered_total",
	      "Messages returned to subscribers."),
	COUNT(delivered_bytes, "sesh_delivered_bytes_total",
	      "Payload bytes of the messages returned to subscribers."),
	COUNT(lapped, "sesh_lapped_total",
	      "Times subscribers found unread messages overwritten."),
	COUNT(holes_unblocked, "sesh_holes_unblocked_total",
	      "Claims of dead or stalled publishers turned into padding."),
	COUNT(futex_waits, "sesh_futex_waits_total",
	      "Times subscribers went to sleep."),
	COUNT(futex_wakes, "sesh_futex_wakes_total",
	      "Wake-up calls made by publishers and by deletes."),
	COUNT(subscriptions, "sesh_subscriptions_total", "Streams opened."),
	COUNT(sessions_created, "sesh_sessions_created_total",
	      "Sessions created, replacements of expired ones included."),
	COUNT(sessions_deleted, "sesh_sessions_deleted_total",
	      "Sessions deleted."),
	COUNT(sessions_expired, "sesh_sessions_expired_total",
	      "Sessions removed after their idle TTL, by the reaper or by a "
	      "create that replaced them."),
	COUNT(reaper_passes, "sesh_reaper_passes_total",
	      "Reaper passes completed."),
	COUNT(persist_rows, "sesh_persist_rows_total",
	      "Rows written to the SQLite database, or removed from it."),
	COUNT(persist_commits, "sesh_persist_commits_total",
	      "Transactions committed to the SQLite database."),
	COUNT(persist_errors, "sesh_persist_errors_total",
	      "Attempts to write to the SQLite database that failed."),
#undef COUNT
};

/*
 * The Prometheus text exposition format, version 0.0.4: each metric has a
 * "# HELP" and a "# TYPE" line, then its samples, "name{labels} value", one
 * per line. Every sample is labelled domain="NAME". The help texts hold no
 * backslash or newline, so they need no escaping.
 */

/* A label value, quoted, with the backslash, the double quote and the
 * newline escaped as the format asks. */
static void prom_label_value(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			printf("\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", stdout);
		else
			putchar(*s);
	}
	putchar('"');
}

static void prom_metric(const char *name, const char *type, const char *help)
{
	printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A sample of @name up to its value: labelled domain="@domain" and, when
 * @state is not NULL, state="@state". */
static void prom_sample(const char *name, const char *domain, const char *state)
{
	printf("%s{domain=", name);
	prom_label_value(domain);
	if (state) {
		fputs(",state=", stdout);
		prom_label_value(state);
	}
	putchar('}');
	putchar(' ');
}

/* A metric of one sample, an integer. */
static void prom_one(const char *name, const char *type, const char *help,
		     const char *domain, uint64_t v)
{
	prom_metric(name, type, help);
	prom_sample(name, domain, NULL);
	printf("%" PRIu64 "\n", v);
}

static void print_prometheus(const char *domain, const sesh_stats_t *st,
			     const sesh_health_t *h)
{
	for (size_t i = 0; i < ARRAY_SIZE(stats_counts); i++) {
		uint64_t n;

		memcpy(&n, (const char *)st + stats_counts[i].off, sizeof(n));
		prom_one(stats_counts[i].metric, "counter",
			 stats_counts[i].help, domain, n);
	}
	prom_one("sesh_sessions", "gauge",
		 "Sessions stored, in all namespaces.", domain, h->sessions);
	prom_one("sesh_sessions_max", "gauge", "Sessions the domain can hold.",
		 domain, h->max_sessions);
	prom_metric("sesh_processes", "gauge",
		    "Processes in the registry: alive, or dead and awaiting "
		    "recovery.");
	prom_sample("sesh_processes", domain, "alive");
	printf("%" PRIu32 "\n", h->processes_alive);
	prom_sample("sesh_processes", domain, "dead");
	printf("%" PRIu32 "\n", h->processes_dead);
	prom_one("sesh_processes_max", "gauge",
		 "Slots of the process registry.", domain, h->max_processes);
	prom_one("sesh_streams_open", "gauge",
		 "Streams (subscriptions) open, in all processes.", domain,
		 h->streams_open);
	prom_one("sesh_segment_bytes", "gauge",
		 "Virtual size of the shared-memory segment.", domain,
		 h->segment_bytes);
	prom_one("sesh_committed_bytes", "gauge",
		 "Memory the pages of the segment use.", domain,
		 h->committed_bytes);
	prom_one("sesh_reaper_up", "gauge",
		 "1 if a reaper runs: the process of the last pass lives and "
		 "the pass is recent.",
		 domain, h->reaper_alive != 0);
	if (h->reaper_last_ns != 0) {
		prom_metric("sesh_reaper_last_pass_timestamp_seconds", "gauge",
			    "End of the last reaper pass, in seconds since "
			    "the Epoch.");
		prom_sample("sesh_reaper_last_pass_timestamp_seconds", domain,
			    NULL);
		printf("%.3f\n", (double)h->reaper_last_ns / 1e9);
	}
	prom_one("sesh_stuck_readers", "gauge",
		 "Threads inside one read-side section for over about a "
		 "second, as of the last reaper pass.",
		 domain, h->stuck_readers);
	prom_one("sesh_retired_blocks", "gauge",
		 "Record blocks awaiting their grace period.", domain,
		 h->retired_blocks);
	if (h->persist != 0) {
		prom_one("sesh_persist_pending", "gauge",
			 "Changes noted for the SQLite database and not yet "
			 "committed.",
			 domain, h->persist_pending);
		prom_metric("sesh_persist_lag_seconds", "gauge",
			    "Age of the oldest change not yet committed to "
			    "the SQLite database; 0 if none.");
		prom_sample("sesh_persist_lag_seconds", domain, NULL);
		printf("%.3f\n", (double)h->persist_lag_ns / 1e9);
		prom_one("sesh_persist_ok", "gauge",
			 "1 if the last attempt to write to the SQLite "
			 "database worked, else 0.",
			 domain, h->persist_ok != 0);
	}
	prom_metric("sesh_health_status", "gauge",
		    "Health of the domain: 0 healthy, 1 degraded, 2 down.");
	prom_sample("sesh_health_status", domain, NULL);
	printf("%d\n", h->status);
}

/* stats: the counters; with --prometheus, the gauges of health too. */
static int act_stats(sesh_t *d, struct args *a)
{
	sesh_health_t h;
	sesh_stats_t st;
	int err;

	err = sesh_stats(d, &st);
	if (!err && a->prometheus)
		err = sesh_health(d, &h);
	if (err)
		return err;
	if (a->prometheus) {
		print_prometheus(a->operand[0], &st, &h);
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(stats_counts); i++) {
		uint64_t n;

		memcpy(&n, (const char *)&st + stats_counts[i].off, sizeof(n));
		print_count(a->json, i == 0, 18, stats_counts[i].key, n);
	}
	if (a->json)
		fputs("\n}\n", stdout);
	return 0;
}

/* The name of a health status; anything but the three known values is
 * "unknown", and judged down. */
static const char *health_name(int status)
{
	static const char *const names[] = {
		[SESH_HEALTHY] = "healthy",
		[SESH_DEGRADED] = "degraded",
		[SESH_DOWN] = "down",
	};

	if (status < 0 || (size_t)status >= ARRAY_SIZE(names))
		return "unknown";
	return names[status];
}

/* @part in percent of @whole; 0 when @whole is. */
static double percent(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* Seconds from @ns, of CLOCK_REALTIME, to now; 0 if @ns is not past (the
 * clock was stepped back). */
static double age_s(int64_t ns)
{
	struct timespec ts;
	int64_t now;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	return now > ns ? (double)(now - ns) / 1e9 : 0.0;
}

/* A line "LABEL N.N s ago, TIME" for the moment @ns, of CLOCK_REALTIME, or
 * "LABEL never" when @ns is 0. */
static void print_when(const char *label, int64_t ns)
{
	char t[64];

	if (ns)
		printf("%s%.1f s ago, %s\n", label, age_s(ns),
		       iso_time(t, sizeof(t), ns));
	else
		printf("%snever\n", label);
}

/* The moment @ns as three members, each after @sep: "KEY_ns" and "KEY",
 * as json_time() writes them, and "AGE_KEY", its age in seconds; 0, null
 * and null when @ns is 0 (never). */
static void json_when(const char *sep, const char *key, const char *age_key,
		      int64_t ns)
{
	if (!ns) {
		printf("%s\"%s_ns\": 0%s\"%s\": null%s\"%s\": null", sep, key,
		       sep, key, sep, age_key);
		return;
	}
	json_time(sep, key, ns);
	printf("%s\"%s\": %.3f", sep, age_key, age_s(ns));
}

/* The name of a write-through mode, sesh_health_t.persist. */
static const char *persist_name(int persist)
{
	static const char *const names[] = {"none", "synchronous",
					    "asynchronous"};

	if (persist < 0 || (size_t)persist >= ARRAY_SIZE(names))
		return "unknown";
	return names[persist];
}

/* The persistence part of the health report, for people. */
static void print_persist_text(const sesh_health_t *h)
{
	char q[DB_WHY_SIZE];

	printf("persistence:     %s\n", persist_name(h->persist));
	if (h->persist == 0)
		return;
	if (h->persist_ok)
		printf("database:        ok\n");
	else
		printf("database:        failing: %s\n",
		       tool_clean(q, sizeof(q), h->persist_error,
				  sizeof(h->persist_error)));
	printf("pending changes: %" PRIu64 "\n", h->persist_pending);
	printf("lag:             %" PRIu64 " ms\n",
	       h->persist_lag_ns / 1000000);
	printf("resync due:      %s\n", h->persist_resync ? "yes" : "no");
	print_when("last commit:     ", h->persist_last_ns);
}

static void print_health_text(const sesh_health_t *h)
{
	char q[4 * sizeof(h->reason) + 8], hs[32];
	uint32_t slots = h->processes_alive + h->processes_dead;

	printf("status:          %s\n", health_name(h->status));
	printf("reason:          %s\n",
	       h->reason[0]
		       ? tool_clean(q, sizeof(q), h->reason, sizeof(h->reason))
		       : "none");
	printf("sessions:        %zu of %zu (%.1f%%)\n", h->sessions,
	       h->max_sessions, percent(h->sessions, h->max_sessions));
	printf("processes:       %" PRIu32 " alive, %" PRIu32
	       " dead, of %" PRIu32 " (%.1f%%)\n",
	       h->processes_alive, h->processes_dead, h->max_processes,
	       percent(slots, h->max_processes));
	printf("streams open:    %zu\n", h->streams_open);
	printf("reaper:          %s\n", h->reaper_alive ? "alive" : "absent");
	if (h->reaper_pid)
		printf("reaper pid:      %ld\n", (long)h->reaper_pid);
	else
		printf("reaper pid:      none\n");
	printf("reaper passes:   %" PRIu64 "\n", h->reaper_passes);
	print_when("last pass:       ", h->reaper_last_ns);
	printf("stuck readers:   %" PRIu32 "\n", h->stuck_readers);
	printf("retired blocks:  %" PRIu64 "\n", h->retired_blocks);
	printf("committed:       %" PRIu64 " bytes (%s)\n", h->committed_bytes,
	       human_size(hs, sizeof(hs), h->committed_bytes));
	printf("segment size:    %" PRIu64 " bytes (%s) virtual\n",
	       h->segment_bytes, human_size(hs, sizeof(hs), h->segment_bytes));
	print_persist_text(h);
}

/* The persistence part of the health report, as the JSON member
 * "persistence": an object, with only "mode" when there is none. */
static void print_persist_json(const sesh_health_t *h)
{
	printf(",\n  \"persistence\": {\n    \"mode\": \"%s\"",
	       persist_name(h->persist));
	if (h->persist == 0) {
		fputs("\n  }", stdout);
		return;
	}
	printf(",\n    \"ok\": %s", h->persist_ok ? "true" : "false");
	fputs(",\n    \"error\": ", stdout);
	json_string(h->persist_error, sizeof(h->persist_error));
	printf(",\n    \"pending\": %" PRIu64, h->persist_pending);
	printf(",\n    \"lag_ms\": %" PRIu64, h->persist_lag_ns / 1000000);
	printf(",\n    \"resync\": %s", h->persist_resync ? "true" : "false");
	json_when(",\n    ", "last_commit", "last_commit_age_s",
		  h->persist_last_ns);
	fputs("\n  }", stdout);
}

static void print_health_json(const sesh_health_t *h)
{
	printf("{\n  \"status\": \"%s\"", health_name(h->status));
	printf(",\n  \"status_code\": %d", h->status);
	fputs(",\n  \"reason\": ", stdout);
	json_string(h->reason, sizeof(h->reason));
	printf(",\n  \"sessions\": %zu", h->sessions);
	printf(",\n  \"max_sessions\": %zu", h->max_sessions);
	printf(",\n  \"sessions_percent\": %.1f",
	       percent(h->sessions, h->max_sessions));
	printf(",\n  \"processes_alive\": %" PRIu32, h->processes_alive);
	printf(",\n  \"processes_dead\": %" PRIu32, h->processes_dead);
	printf(",\n  \"max_processes\": %" PRIu32, h->max_processes);
	printf(",\n  \"processes_percent\": %.1f",
	       percent((uint64_t)h->processes_alive + h->processes_dead,
		       h->max_processes));
	printf(",\n  \"streams_open\": %zu", h->streams_open);
	printf(",\n  \"reaper_alive\": %s", h->reaper_alive ? "true" : "false");
	printf(",\n  \"reaper_pid\": %ld", (long)h->reaper_pid);
	printf(",\n  \"reaper_passes\": %" PRIu64, h->reaper_passes);
	json_when(",\n  ", "reaper_last", "reaper_age_s", h->reaper_last_ns);
	printf(",\n  \"stuck_readers\": %" PRIu32, h->stuck_readers);
	printf(",\n  \"retired_blocks\": %" PRIu64, h->retired_blocks);
	printf(",\n  \"committed_bytes\": %" PRIu64, h->committed_bytes);
	printf(",\n  \"segment_bytes\": %" PRIu64, h->segment_bytes);
	print_persist_json(h);
	fputs("\n}\n", stdout);
}

/* health: the report, and the verdict as the exit status. */
static int act_health(sesh_t *d, struct args *a)
{
	sesh_health_t h;
	int err;

	memset(&h, 0, sizeof(h));
	err = sesh_health(d, &h);
	if (err)
		return err;
	if (a->json)
		print_health_json(&h);
	else
		print_health_text(&h);
	a->status = h.status == SESH_HEALTHY || h.status == SESH_DEGRADED
			    ? h.status
			    : SESH_DOWN;
	return 0;
}

/*
 * Why the pass could not write to the database, into @buf, or "": the
 * report says only -EIO, sesh_health() the database's own words.
 */
static void reap_db_error(sesh_t *d, const sesh_reap_report_t *r, char *buf,
			  size_t size)
{
	char q[DB_WHY_SIZE];
	sesh_health_t h;

	memset(&h, 0, sizeof(h));
	if (r->persist_error == 0)
		buf[0] = '\0';
	else if (sesh_health(d, &h) == 0 && !h.persist_ok && h.persist_error[0])
		snprintf(buf, size, "writing to the database failed: %s",
			 tool_clean(q, sizeof(q), h.persist_error,
				    sizeof(h.persist_error)));
	else
		snprintf(buf, size,
			 "writing to the database failed; see "
			 "'sesh health'");
}

static void print_reap_text(const sesh_reap_report_t *r, const char *db_error)
{
	char t[64];

	printf("pass:                %" PRIu64 "\n", r->pass);
	printf("started:             %s\n",
	       iso_time(t, sizeof(t), r->started_ns));
	printf("duration:            %" PRIu64 " ns\n", r->duration_ns);
	printf("processes recovered: %" PRIu32 "\n", r->processes_recovered);
	printf("recovery walk:       %s\n",
	       !r->recovery_walk ? "no" : r->recovery_done ? "yes, finished"
							   : "yes, goes on");
	printf("sessions expired:    %zu\n", r->sessions_expired);
	printf("buckets scanned:     %zu\n", r->buckets_scanned);
	printf("sweep wrapped:       %s\n", r->sweep_wrapped ? "yes" : "no");
	printf("blocks freed:        %zu\n", r->blocks_freed);
	printf("rings freed:         %zu\n", r->rings_freed);
	printf("holes unblocked:     %zu\n", r->holes_unblocked);
	printf("persist rows:        %zu\n", r->persist_rows);
	printf("persist error:       %s\n", db_error[0] ? db_error : "none");
}

static void print_reap_json(const sesh_reap_report_t *r, const char *db_error)
{
	printf("{\n  \"pass\": %" PRIu64, r->pass);
	json_time(",\n  ", "started", r->started_ns);
	printf(",\n  \"duration_ns\": %" PRIu64, r->duration_ns);
	printf(",\n  \"processes_recovered\": %" PRIu32,
	       r->processes_recovered);
	printf(",\n  \"recovery_walk\": %s",
	       r->recovery_walk ? "true" : "false");
	printf(",\n  \"recovery_done\": %s",
	       r->recovery_done ? "true" : "false");
	printf(",\n  \"sessions_expired\": %zu", r->sessions_expired);
	printf(",\n  \"buckets_scanned\": %zu", r->buckets_scanned);
	printf(",\n  \"sweep_wrapped\": %s",
	       r->sweep_wrapped ? "true" : "false");
	printf(",\n  \"blocks_freed\": %zu", r->blocks_freed);
	printf(",\n  \"rings_freed\": %zu", r->rings_freed);
	printf(",\n  \"holes_unblocked\": %zu", r->holes_unblocked);
	printf(",\n  \"persist_rows\": %zu", r->persist_rows);
	fputs(",\n  \"persist_error\": ", stdout);
	json_bytes(db_error, strlen(db_error));
	fputs("\n}\n", stdout);
}

/* reap: one pass, and what it did. A pass already running (-EBUSY) is a
 * failure like any other; a pass that could not write to the database is
 * none (the report says so, and the next pass retries). */
static int act_reap(sesh_t *d, struct args *a)
{
	char db_error[DB_WHY_SIZE + 64];
	sesh_reap_report_t r;
	int err;

	memset(&r, 0, sizeof(r));
	err = sesh_reap(d, &r);
	if (err)
		return err;
	reap_db_error(d, &r, db_error, sizeof(db_error));
	if (a->json)
		print_reap_json(&r, db_error);
	else
		print_reap_text(&r, db_error);
	return 0;
}

/* ----------------------------------------------------------------------
 * Verbs
 */

static void help_create(void)
{
	printf("usage: sesh create NAME [OPTIONS]\n"
	       "\n"
	       "Create the domain NAME, which must not exist yet, and describe "
	       "it as\n"
	       "'sesh info' does. Capacities are fixed for the domain's "
	       "lifetime.\n"
	       "\n"
	       "options:\n");
	tool_create_help(20);
	printf("  --json              print one JSON object\n"
	       "  -h, --help          show this help\n"
	       "\n"
	       "Sizes (--stream-bytes, --max-message, --max-metadata) take a "
	       "k, m or g\n"
	       "suffix: powers of 1024. The library checks the ranges; see "
	       "sesh_open(3).\n");
}

static void help_info(void)
{
	printf("usage: sesh info NAME [OPTIONS]\n"
	       "\n"
	       "Describe the domain NAME: layout, capacities, sizes, the "
	       "processes of its\n"
	       "registry, alive or dead, how many sessions it stores and how "
	       "many streams\n"
	       "are open. The tool attaches for the time it takes, so it lists "
	       "itself too.\n"
	       "\n"
	       "options:\n"
	       "  --ns NS     namespace to attach to (default: \"default\")\n"
	       "  --json      print one JSON object\n"
	       "  -h, --help  show this help\n");
}

static void help_rm(void)
{
	printf("usage: sesh rm NAME\n"
	       "\n"
	       "Remove the name of the domain NAME. Attached processes keep "
	       "working on\n"
	       "their mapping; the memory is released when the last one "
	       "detaches.\n"
	       "\n"
	       "options:\n"
	       "  -h, --help  show this help\n");
}

static void help_session(void)
{
	printf("usage: sesh session COMMAND NAME [ID] [OPTIONS]\n"
	       "\n"
	       "Work on one session of the domain NAME, in the namespace of "
	       "--ns. The domain\n"
	       "must exist.\n"
	       "\n"
	       "commands:\n"
	       "  create NAME [ID]  create a session and print its id; "
	       "without ID, the\n"
	       "                    library makes one of 32 hex digits\n"
	       "  get NAME ID       print a session and its metadata\n"
	       "  touch NAME ID     mark a session used now, which holds off "
	       "its expiry\n"
	       "  update NAME ID    replace the metadata of a session\n"
	       "  rm NAME ID        remove a session\n"
	       "\n"
	       "options:\n"
	       "  --ns NS           namespace of the session (default: "
	       "\"default\")\n"
	       "  --user U          create: the user who owns the session;\n"
	       "                    get: fail unless U owns it\n"
	       "  --meta STRING     create, update: the metadata\n"
	       "  --meta-file FILE  create, update: the metadata, read from "
	       "FILE (at most\n"
	       "                    1 MiB); update needs one of the two\n"
	       "  --ttl SECONDS     create: the idle TTL (default: the "
	       "domain's)\n"
	       "  --json            create, get: print one JSON object\n"
	       "  -h, --help        show this help\n"
	       "\n"
	       "get prints bytes of the metadata that are not printable ASCII, "
	       "and the\n"
	       "backslash, as \\xNN.\n");
}

static void help_ls(void)
{
	printf("usage: sesh ls NAME [OPTIONS]\n"
	       "\n"
	       "List the sessions of the domain NAME in one namespace, after a "
	       "header, one\n"
	       "line each: id, user, last seen, idle TTL in seconds, length of "
	       "the metadata.\n"
	       "Sessions idle past their TTL are left out, unless --expired "
	       "asks for them.\n"
	       "\n"
	       "options:\n"
	       "  --ns NS            namespace to list (default: \"default\")\n"
	       "  --user U           only the sessions of user U\n"
	       "  --expired SECONDS  only the sessions idle for more than "
	       "SECONDS; 0 for\n"
	       "                     those idle past their own TTL\n"
	       "  --json             print one JSON array of objects\n"
	       "  -h, --help         show this help\n");
}

static void help_check(void)
{
	printf("usage: sesh check NAME [OPTIONS]\n"
	       "\n"
	       "Validate the session index of the domain NAME, every "
	       "namespace, and print\n"
	       "what it holds. Exit status 1, with the first broken invariant "
	       "on stderr,\n"
	       "if it is corrupt. Writers of the domain wait while it runs. It "
	       "repairs\n"
	       "nothing; see 'sesh recover'.\n"
	       "\n"
	       "options:\n"
	       "  --json      print one JSON object\n"
	       "  -h, --help  show this help\n");
}

static void help_recover(void)
{
	printf("usage: sesh recover NAME\n"
	       "\n"
	       "Recover what processes that died attached to the domain NAME "
	       "left behind:\n"
	       "registry slots, locks, records half made, memory held back. "
	       "Live processes\n"
	       "are not disturbed. Prints how many dead processes were "
	       "recovered.\n"
	       "\n"
	       "options:\n"
	       "  -h, --help  show this help\n");
}

static void help_publish(void)
{
	printf("usage: sesh publish NAME ID [MESSAGE | -] [OPTIONS]\n"
	       "\n"
	       "Publish a message to the stream of the session ID of the "
	       "domain NAME, and\n"
	       "print its event id. The message is MESSAGE or, when it is - or "
	       "left out,\n"
	       "the whole of standard input, which may hold any bytes; more "
	       "than the\n"
	       "domain's max message is refused. A MESSAGE that starts with - "
	       "goes after --.\n"
	       "\n"
	       "options:\n"
	       "  --ns NS     namespace of the session (default: "
	       "\"default\")\n"
	       "  --lines     publish each line of standard input, without its "
	       "newline, as\n"
	       "              one message, in batches; print one id per line\n"
	       "  -h, --help  show this help\n");
}

static void help_tail(void)
{
	printf("usage: sesh tail NAME ID [OPTIONS]\n"
	       "\n"
	       "Print the messages of the stream of the session ID of the "
	       "domain NAME, one\n"
	       "line each: the event id, a tab, the bytes, with \\n, \\t, \\\\ "
	       "and \\xNN for\n"
	       "the newline, the tab, the backslash and other bytes that are "
	       "not printable\n"
	       "ASCII. Without --follow, it starts from the oldest message "
	       "retained and\n"
	       "stops when none is left; with --follow, it starts from the "
	       "next message\n"
	       "published and waits for more until the session is removed or "
	       "expires, or\n"
	       "SIGINT or SIGTERM comes. Messages overwritten before they "
	       "were read are\n"
	       "skipped with a line on stderr, \"sesh: tail: NAME: lapped, "
	       "resuming at ID\".\n"
	       "\n"
	       "options:\n"
	       "  --ns NS        namespace of the session (default: "
	       "\"default\")\n"
	       "  --after EVENT  start after the message EVENT (a "
	       "Last-Event-ID)\n"
	       "  --oldest       start from the oldest message retained\n"
	       "  -f, --follow   wait for new messages\n"
	       "  --json         print one JSON object per message: id, "
	       "published_ns, data\n"
	       "  -h, --help     show this help\n");
}

static void help_stats(void)
{
	printf("usage: sesh stats NAME [--json | --prometheus]\n"
	       "\n"
	       "Print the counters of the domain NAME, summed over every "
	       "process that ever\n"
	       "attached: messages and bytes published and delivered, failed "
	       "publishes,\n"
	       "subscribers lapped, claims of stalled or dead publishers "
	       "unblocked, futex\n"
	       "waits and wakes, streams opened, sessions created, deleted and "
	       "expired,\n"
	       "reaper passes, rows and transactions written to the SQLite "
	       "database and\n"
	       "attempts that failed.\n"
	       "\n"
	       "options:\n"
	       "  --json        print one JSON object\n"
	       "  --prometheus  print the counters and the gauges of 'sesh "
	       "health' in the\n"
	       "                Prometheus text format 0.0.4, labelled "
	       "domain=\"NAME\"\n"
	       "  -h, --help    show this help\n");
}

static void help_health(void)
{
	printf("usage: sesh health NAME [--json]\n"
	       "\n"
	       "Judge the health of the domain NAME and print it: the status, "
	       "healthy,\n"
	       "degraded or down, and why; sessions and processes against "
	       "their capacity;\n"
	       "streams open; whether a reaper runs, the pid and the age of "
	       "its last pass;\n"
	       "readers stuck in a read-side section; records awaiting "
	       "reclamation; the\n"
	       "committed and the virtual size of the segment; the write-"
	       "through to SQLite:\n"
	       "none, synchronous or asynchronous, whether the database works "
	       "(or its\n"
	       "error), changes waiting and the age of the oldest, whether a "
	       "rewrite of the\n"
	       "whole database is due, the age of the last commit. Degraded: a "
	       "dead process\n"
	       "awaits recovery, no reaper runs, a reader is stuck, the "
	       "database fails or\n"
	       "changes wait ten times the lag allowed, or sessions or "
	       "registry slots are\n"
	       "90%% or more in use. Down: the index is corrupt.\n"
	       "\n"
	       "The exit status is the verdict, for probes: 0 healthy, 1 "
	       "degraded, 2 down.\n"
	       "A domain that cannot be attached (missing, not a sesh domain, "
	       "corrupt,\n"
	       "refused), or any other failure, counts as down: one line on "
	       "stderr, exit\n"
	       "status 2. A usage error is 2 as well.\n"
	       "\n"
	       "options:\n"
	       "  --json      print one JSON object\n"
	       "  -h, --help  show this help\n");
}

static void help_reap(void)
{
	printf("usage: sesh reap NAME [--json]\n"
	       "\n"
	       "Run one reaper pass over the domain NAME, every namespace, and "
	       "print what it\n"
	       "did: dead processes recovered, sessions idle past their TTL "
	       "removed with\n"
	       "their streams, index buckets swept, record blocks and rings "
	       "freed, claims\n"
	       "of dead publishers unblocked, rows written to the SQLite "
	       "database, and why\n"
	       "writing to it failed (no failure of the pass: the next one "
	       "retries). A pass\n"
	       "sweeps a bounded share of the index; seshd(8) runs passes all "
	       "the time. A\n"
	       "reaper counts as running only while the process of its last "
	       "pass lives, so\n"
	       "once 'sesh reap' exits, 'sesh health' says the reaper is "
	       "absent, even beside\n"
	       "a running seshd until its next pass. Fails if another pass is "
	       "running.\n"
	       "\n"
	       "options:\n"
	       "  --json      print one JSON object\n"
	       "  -h, --help  show this help\n");
}

static void help_top(void)
{
	printf("usage: sesh [--help | --version] COMMAND [ARGS]\n"
	       "\n"
	       "Create, inspect and remove sesh domains, shared-memory objects "
	       "through\n"
	       "which the processes of this host share sessions and message "
	       "streams, and\n"
	       "the sessions and streams they hold.\n"
	       "\n"
	       "commands:\n"
	       "  create NAME [OPTIONS]       create a domain and describe it\n"
	       "  info NAME [OPTIONS]         describe a domain and its "
	       "processes\n"
	       "  rm NAME                     remove a domain\n"
	       "  session COMMAND NAME [ID]   create, get, touch, update or rm "
	       "a session\n"
	       "  ls NAME [OPTIONS]           list the sessions of a "
	       "namespace\n"
	       "  check NAME [OPTIONS]        validate the session index\n"
	       "  recover NAME                clean up after dead processes\n"
	       "  publish NAME ID [MESSAGE]   publish a message to a session's "
	       "stream\n"
	       "  tail NAME ID [OPTIONS]      print a session's stream, or "
	       "follow it\n"
	       "  stats NAME [OPTIONS]        show the counters\n"
	       "  health NAME [OPTIONS]       judge a domain's health\n"
	       "  reap NAME [OPTIONS]         run one reaper pass\n"
	       "  help [COMMAND]              show this help, or a command's\n"
	       "\n"
	       "options:\n"
	       "  -h, --help     show this help\n"
	       "  -V, --version  show the version\n"
	       "\n"
	       "'sesh COMMAND --help' lists a command's options. Exit status: "
	       "0 success,\n"
	       "1 failure (one line on stderr), 2 usage error; for health, 0 "
	       "healthy,\n"
	       "1 degraded, 2 down, a failure or a usage error.\n");
}

/* Take an operand, if the verb has room for one. Returns 0, or the usage
 * exit status. */
static int take_operand(struct args *a, const char *arg)
{
	char q[128];

	if (a->operands == a->v->max)
		return tool_usage_error(
			a->v->name, "unexpected argument '%s'",
			tool_clean(q, sizeof(q), arg, SIZE_MAX));
	a->operand[a->operands++] = arg;
	return 0;
}

/* The numeric options of the verbs but create (whose options tool.c
 * takes): how each is parsed and where it goes. */
static const struct num_opt {
	int id;
	const char *name;
	uint64_t max; /* largest value the field holds */
	size_t off, width;
} num_opts[] = {
#define NUM(id, name, max, field)                                              \
	{                                                                      \
		id, name, max, offsetof(struct args, field),                   \
			sizeof(((struct args *)0)->field)                      \
	}
	NUM(OPT_TTL, "ttl", UINT32_MAX, ttl_s),
	NUM(OPT_EXPIRED, "expired", UINT32_MAX, idle_s),
	NUM(OPT_AFTER, "after", UINT64_MAX, after),
#undef NUM
};

/* Parse option `id`'s argument, decimal digits only, into @a. Returns ""
 * when done, the option's name when the number is bad, NULL when `id` is
 * not numeric. */
static const char *set_number(struct args *a, int id, const char *arg)
{
	unsigned long long n;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(num_opts); i++) {
		const struct num_opt *o = &num_opts[i];
		char *field = (char *)a + o->off;

		if (o->id != id)
			continue;
		if (!tool_parse_number(arg, 10, false, o->max, &n))
			return o->name;
		if (o->width == sizeof(uint64_t)) {
			uint64_t v = n;

			memcpy(field, &v, sizeof(v));
		} else {
			uint32_t v = (uint32_t)n;

			memcpy(field, &v, sizeof(v));
		}
		return "";
	}
	return NULL;
}

/* Take option @c of any verb (getopt_long() has checked that this verb
 * takes it). Returns 0, the usage exit status, or -1 for a bad option. */
static int parse_opt(struct args *a, int c, const char *arg)
{
	const char *bad;

	if (TOOL_IS_CREATE_OPT(c))
		return tool_create_opt(&a->create, a->v->name, c, arg);
	switch (c) {
	case OPT_NS:
		a->ns = arg;
		return 0;
	case OPT_USER:
		a->user = arg;
		return 0;
	case OPT_JSON:
	case OPT_PROMETHEUS:
		if ((c == OPT_JSON && a->prometheus) ||
		    (c == OPT_PROMETHEUS && a->json))
			return tool_usage_error(
				a->v->name, "give one --json or --prometheus");
		if (c == OPT_JSON)
			a->json = true;
		else
			a->prometheus = true;
		return 0;
	case OPT_META:
	case OPT_META_FILE:
		if (a->meta_given)
			return tool_usage_error(
				a->v->name, "give one --meta or --meta-file");
		a->meta_given = true;
		if (c == OPT_META_FILE) {
			a->meta_file = arg;
		} else {
			a->meta = arg;
			a->meta_len = strlen(arg);
		}
		return 0;
	case OPT_FOLLOW:
		a->follow = true;
		return 0;
	case OPT_LINES:
		a->lines = true;
		return 0;
	case OPT_AFTER:
	case OPT_OLDEST:
		if (a->after_given || a->oldest)
			return tool_usage_error(a->v->name,
						"give one --after or --oldest");
		if (c == OPT_OLDEST) {
			a->oldest = true;
			return 0;
		}
		a->after_given = true;
		break;
	case OPT_EXPIRED:
		a->expired = true;
		break;
	}
	bad = set_number(a, c, arg);
	if (bad == NULL)
		return -1;
	return *bad == '\0' ? 0 : tool_bad_number(a->v->name, bad, arg);
}

/* The getopt_long() table of the options in @bits, and --help; the
 * short options, in @shorts. */
static void build_opts(unsigned bits, struct option *out, char shorts[8])
{
	static const struct option help = {"help", no_argument, NULL, 'h'};
	size_t n = 0;

	/* '-': operands in order; ':': tell a missing argument apart */
	strcpy(shorts, "-:h");
	if (bits & OPT_BIT(OPT_FOLLOW))
		strcat(shorts, "f");

	for (size_t i = 0; i < ARRAY_SIZE(all_opts); i++)
		if (bits & OPT_BIT(all_opts[i].val))
			out[n++] = all_opts[i];
	out[n++] = help;
	memset(&out[n], 0, sizeof(out[n]));
}

/*
 * Parse a verb's arguments into @a: operands, anywhere among the options
 * or after "--", at least v->need and at most v->max of them; --help,
 * which prints the verb's help; and the options the verb takes. Returns
 * true when the verb should run, false when it should exit with *status.
 */
static bool parse_verb(const struct verb *v, int argc, char **argv,
		       struct args *a, int *status)
{
	static const char *const what[] = {"domain name", "session id",
					   "message"};
	struct option opts[ARRAY_SIZE(all_opts) + 2];
	char shorts[8];
	int c, err = 0;

	memset(a, 0, sizeof(*a));
	a->v = v;
	tool_create_init(&a->create);
	build_opts(v->opts, opts, shorts);
	while (!err &&
	       (c = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
		if (c == 'f')
			c = OPT_FOLLOW;
		if (c == 1) {
			err = take_operand(a, optarg);
		} else if (c == 'h') {
			v->help();
			*status = finish(v->name, NULL);
			return false;
		} else {
			err = parse_opt(a, c, optarg);
			if (err < 0)
				err = tool_option_error(v->name, opts, c, argv);
		}
	}
	while (!err && optind < argc)
		err = take_operand(a, argv[optind++]);
	if (!err && a->operands < v->need)
		err = tool_usage_error(v->name, "missing %s",
				       what[a->operands]);
	if (!err && v->needs_meta && !a->meta_given)
		err = tool_usage_error(v->name,
				       "missing --meta or --meta-file");
	if (!err)
		err = tool_create_check(&a->create, v->name);
	if (!err && a->lines && a->operands > 2 && strcmp(a->operand[2], "-"))
		err = tool_usage_error(v->name, "--lines reads standard input: "
						"give no MESSAGE, or -");
	*status = err;
	return err == 0;
}

/*
 * Read the whole file of --meta-file into @a. One larger than any domain
 * takes is refused here, before it is sent. Returns 0 or the exit status
 * of the failure, reported.
 */
static int read_meta(struct args *a)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f;
	int err = 0;

	f = fopen(a->meta_file, "rb");
	if (!f)
		return fail_because(a->v->name, a->meta_file, strerror(errno));
	buf = malloc(META_FILE_MAX + 1);
	if (!buf)
		err = ENOMEM;
	else
		n = fread(buf, 1, META_FILE_MAX + 1, f);
	if (!err && ferror(f))
		err = errno ? errno : EIO;
	fclose(f);
	if (!err && n > META_FILE_MAX) {
		free(buf);
		return fail_because(a->v->name, a->meta_file,
				    "larger than 1 MiB, the limit of "
				    "metadata");
	}
	if (err) {
		free(buf);
		return fail_because(a->v->name, a->meta_file, strerror(err));
	}
	a->meta_buf = buf;
	a->meta = buf;
	a->meta_len = n;
	return 0;
}

/* The exit status @status of verb @v, a failure (EXIT_FAILURE) turned into
 * the verb's own status for failures, if it has one. */
static int exit_status(const struct verb *v, int status)
{
	return status == EXIT_FAILURE && v->fail_status ? v->fail_status
							: status;
}

/*
 * Report that attaching to the domain, or creating it, failed: in the
 * words of tool_open_error() where the library's are too general (with
 * --sqlite, -EIO, -EPROTO, -ENOSPC and -E2BIG may be the database's).
 * Returns the exit status.
 */
static int fail_open(const struct args *a, int err)
{
	char buf[TOOL_OPEN_ERROR_SIZE];
	const char *why;

	why = tool_open_error(buf, sizeof(buf), err, a->create.cfg.sqlite_path,
			      a->v->open_flags);
	if (!why)
		return fail(a->v->name, a->operand[0], err);
	return fail_because(a->v->name, a->operand[0], why);
}

/*
 * Run a verb that works on one domain: parse its arguments, attach to the
 * domain (creating it only if the verb says so), act, detach; the exit
 * status: that of a failure, else what the verb set in a.status (0 but for
 * health).
 */
static int cmd_domain(const struct verb *v, int argc, char **argv)
{
	struct args a;
	const char *name;
	sesh_t *d;
	int err;

	if (!parse_verb(v, argc, argv, &a, &err))
		return exit_status(v, err);
	if (a.meta_file) {
		err = read_meta(&a);
		if (err)
			return exit_status(v, err);
	}
	name = a.operand[0];
	err = sesh_open(name, a.ns, v->open_flags ? &a.create.cfg : NULL,
			v->open_flags, &d);
	if (!err) {
		err = v->act(d, &a);
		sesh_close(d);
	} else {
		err = fail_open(&a, err);
	}
	free(a.meta_buf);
	if (err < 0)
		err = fail(v->name, name, err);
	else if (err == 0)
		err = finish(v->name, name);
	return err ? exit_status(v, err) : a.status;
}

static int cmd_rm(const struct verb *v, int argc, char **argv)
{
	struct args a;
	int status, err;

	if (!parse_verb(v, argc, argv, &a, &status))
		return status;
	err = sesh_unlink(a.operand[0]);
	if (err)
		return fail(v->name, a.operand[0], err);
	return finish(v->name, a.operand[0]);
}

/* The verb of @table called @word (a sub-command by its last word), or
 * NULL after a usage error of @verb; *status is set either way. */
static const struct verb *lookup(const char *verb, const struct verb *table,
				 size_t n, const char *word, int *status)
{
	char q[128];

	*status = 0;
	for (size_t i = 0; i < n; i++) {
		const char *last = strrchr(table[i].name, ' ');

		if (!strcmp(last ? last + 1 : table[i].name, word))
			return &table[i];
	}
	*status = tool_usage_error(verb, "unknown command '%s'",
				   tool_clean(q, sizeof(q), word, SIZE_MAX));
	return NULL;
}

/* A session sub-command: NAME, then an ID, required if @need is 2. */
#define SESSION_VERB(sub, need_, ...)                                          \
	{                                                                      \
		.name = "session " sub, .run = cmd_domain,                     \
		.help = help_session, .need = need_, .max = 2, __VA_ARGS__     \
	}

static const struct verb session_verbs[] = {
	SESSION_VERB("create", 1, .act = act_session_create,
		     .opts = OPT_BIT(OPT_NS) | OPT_BIT(OPT_USER) |
			     OPT_BIT(OPT_META) | OPT_BIT(OPT_META_FILE) |
			     OPT_BIT(OPT_TTL) | OPT_BIT(OPT_JSON)),
	SESSION_VERB("get", 2, .act = act_session_get,
		     .opts = OPT_BIT(OPT_NS) | OPT_BIT(OPT_USER) |
			     OPT_BIT(OPT_JSON)),
	SESSION_VERB("touch", 2, .act = act_session_touch,
		     .opts = OPT_BIT(OPT_NS)),
	SESSION_VERB("update", 2, .act = act_session_update, .needs_meta = true,
		     .opts = OPT_BIT(OPT_NS) | OPT_BIT(OPT_META) |
			     OPT_BIT(OPT_META_FILE)),
	SESSION_VERB("rm", 2, .act = act_session_rm, .opts = OPT_BIT(OPT_NS)),
};

/* "session COMMAND ...": hand the sub-command its own argv. */
static int cmd_session(const struct verb *v, int argc, char **argv)
{
	const struct verb *sub;
	int status;

	if (argc < 2)
		return tool_usage_error(v->name, "missing command");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		v->help();
		return finish(v->name, NULL);
	}
	sub = lookup(v->name, session_verbs, ARRAY_SIZE(session_verbs), argv[1],
		     &status);
	if (!sub)
		return status;
	return sub->run(sub, argc - 1, argv + 1);
}

static const struct verb *find_verb(const char *verb, const char *word,
				    int *status);

static int cmd_help(const struct verb *v, int argc, char **argv)
{
	const struct verb *topic_verb = v;
	struct args a;
	int status;

	if (!parse_verb(v, argc, argv, &a, &status))
		return status;
	if (a.operands) {
		topic_verb = find_verb(v->name, a.operand[0], &status);
		if (topic_verb == NULL)
			return status;
	}
	topic_verb->help();
	return finish(v->name, NULL);
}

static const struct verb verbs[] = {
	{.name = "create",
	 .run = cmd_domain,
	 .help = help_create,
	 .act = act_describe,
	 .opts = CREATE_OPTS | OPT_BIT(OPT_JSON),
	 .need = 1,
	 .max = 1,
	 .open_flags = SESH_CREATE | SESH_EXCL},
	{.name = "info",
	 .run = cmd_domain,
	 .help = help_info,
	 .act = act_describe,
	 .opts = OPT_BIT(OPT_NS) | OPT_BIT(OPT_JSON),
	 .need = 1,
	 .max = 1},
	{.name = "rm", .run = cmd_rm, .help = help_rm, .need = 1, .max = 1},
	{.name = "session", .run = cmd_session, .help = help_session},
	{.name = "ls",
	 .run = cmd_domain,
	 .help = help_ls,
	 .act = act_ls,
	 .opts = OPT_BIT(OPT_NS) | OPT_BIT(OPT_USER) | OPT_BIT(OPT_EXPIRED) |
		 OPT_BIT(OPT_JSON),
	 .need = 1,
	 .max = 1},
	{.name = "check",
	 .run = cmd_domain,
	 .help = help_check,
	 .act = act_check,
	 .opts = OPT_BIT(OPT_JSON),
	 .need = 1,
	 .max = 1},
	{.name = "recover",
	 .run = cmd_domain,
	 .help = help_recover,
	 .act = act_recover,
	 .need = 1,
	 .max = 1},
	{.name = "publish",
	 .run = cmd_domain,
	 .help = help_publish,
	 .act = act_publish,
	 .opts = OPT_BIT(OPT_NS) | OPT_BIT(OPT_LINES),
	 .need = 2,
	 .max = 3},
	{.name = "tail",
	 .run = cmd_domain,
	 .help = help_tail,
	 .act = act_tail,
	 .opts = OPT_BIT(OPT_NS) | OPT_BIT(OPT_AFTER) | OPT_BIT(OPT_OLDEST) |
		 OPT_BIT(OPT_FOLLOW) | OPT_BIT(OPT_JSON),
	 .need = 2,
	 .max = 2},
	{.name = "stats",
	 .run = cmd_domain,
	 .help = help_stats,
	 .act = act_stats,
	 .opts = OPT_BIT(OPT_JSON) | OPT_BIT(OPT_PROMETHEUS),
	 .need = 1,
	 .max = 1},
	{.name = "health",
	 .run = cmd_domain,
	 .help = help_health,
	 .act = act_health,
	 .opts = OPT_BIT(OPT_JSON),
	 .need = 1,
	 .max = 1,
	 .fail_status = SESH_DOWN},
	{.name = "reap",
	 .run = cmd_domain,
	 .help = help_reap,
	 .act = act_reap,
	 .opts = OPT_BIT(OPT_JSON),
	 .need = 1,
	 .max = 1},
	{.name = "help", .run = cmd_help, .help = help_top, .max = 1},
};

static const struct verb *find_verb(const char *verb, const char *word,
				    int *status)
{
	return lookup(verb, verbs, ARRAY_SIZE(verbs), word, status);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const struct verb *v;
	char q[128];
	int c, status;

	/* '+': stop at the verb; its options are the verb's to parse. */
	while ((c = getopt_long(argc, argv, "+:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			help_top();
			return finish("help", NULL);
		case 'V':
			printf("sesh %s\n", PACKAGE_VERSION);
			return finish("version", NULL);
		case ':':
		case '?':
			/* No top-level option takes an argument: both mean
			 * a word we do not know. */
			if (optopt > 0 && strncmp(argv[optind - 1], "--", 2))
				return tool_usage_error(
					NULL, "unknown option '-%s'",
					short_name(q, sizeof(q), optopt));
			return tool_usage_error(NULL, "unknown option '%s'",
						tool_clean(q, sizeof(q),
							   argv[optind - 1],
							   SIZE_MAX));
		}
	}
	if (optind >= argc)
		return tool_usage_error(NULL, "missing command");
	v = find_verb(NULL, argv[optind], &status);
	if (!v)
		return status;

	/* Hand the verb its own argv (argv[0] is the verb itself) and make
	 * getopt start over: optind = 0 asks glibc for a full reset. */
	argc -= optind;
	argv += optind;
	optind = 0;
	return v->run(v, argc, argv);
}
