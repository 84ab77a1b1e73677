/*
 * seshd.c - the sesh reaper daemon: runs sesh_reap() on one domain at a
 * fixed interval for as long as it lives.
 *
 * The library works without it (expiry is lazy), but only a reaper removes
 * expired sessions for good, frees memory whose owners went quiet and
 * recovers what dead processes left behind; see sesh_reap(3) and seshd(8).
 *
 * How it works. The daemon keeps no state of its own: everything a pass
 * needs is in the segment, and the lease that keeps two passes apart is a
 * kernel lock, so seshd killed with SIGKILL and started again simply goes
 * on, and two of them on one domain take turns. It attaches once, then
 * loops: one pass, then a wait until the next deadline on CLOCK_MONOTONIC
 * (deadlines are start + k * interval, so a slow pass does not push the
 * schedule back). The wait is sigtimedwait() on SIGTERM, SIGINT and SIGHUP,
 * which stay blocked the whole time: a signal that comes during a pass
 * waits for it to finish, one that comes during the wait ends it at once,
 * and no code runs in a signal handler. A pass that fails is logged and
 * the loop goes on; the same error is logged at most once a minute.
 *
 * Before each pass it checks, with one stat(), that the domain's name
 * still leads to the segment it has mapped. A domain removed (and perhaps
 * created again) must not be kept alive by its reaper, which would pin its
 * memory and reap a segment no one uses any more: seshd detaches and
 * attaches to whatever the name leads to, as often as it takes.
 *
 * Without --foreground it daemonizes (fork, setsid, fork) and the first
 * process waits, on a pipe, for the daemon to say whether it attached, so
 * that a failure is reported where seshd was started and with exit status
 * 1. Exit status: 0 after SIGTERM or SIGINT; 1 when it cannot start, with
 * one line "seshd: NAME: reason" on stderr; 2 on a usage error.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "sesh.h"

#define EXIT_USAGE 2

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define NS_PER_MS  1000000ll
#define NS_PER_SEC 1000000000ll

#define INTERVAL_MS_DEFAULT 1000u
#define INTERVAL_MS_MIN	    10u
#define INTERVAL_MS_MAX	    3600000u

/* The same error is logged at most once in this long. */
#define QUIET_NS (60 * NS_PER_SEC)

/* Values of the long options. The options of creating come first, in the
 * order of `sesh create`: the capacities, from OPT_MAX_SESSIONS to
 * OPT_MODE, then the database, from OPT_SQLITE to OPT_SQLITE_WAIT_MS. */
enum {
	OPT_MAX_SESSIONS = 256,
	OPT_STREAM_BYTES,
	OPT_MAX_MESSAGE,
	OPT_MAX_METADATA,
	OPT_IDLE_TTL,
	OPT_MAX_PROCESSES,
	OPT_UNBLOCK_MS,
	OPT_MAX_SUBSCRIPTIONS,
	OPT_MODE,
	OPT_SQLITE,
	OPT_SQLITE_ASYNC,
	OPT_SQLITE_LAG_MS,
	OPT_SQLITE_WAIT_MS,
	OPT_INTERVAL_MS,
	OPT_CREATE,
	OPT_FOREGROUND,
	OPT_SYSLOG,
	OPT_VERBOSE,
};

static const struct option long_opts[] = {
	{"max-sessions", required_argument, NULL, OPT_MAX_SESSIONS},
	{"stream-bytes", required_argument, NULL, OPT_STREAM_BYTES},
	{"max-message", required_argument, NULL, OPT_MAX_MESSAGE},
	{"max-metadata", required_argument, NULL, OPT_MAX_METADATA},
	{"idle-ttl", required_argument, NULL, OPT_IDLE_TTL},
	{"max-processes", required_argument, NULL, OPT_MAX_PROCESSES},
	{"unblock-ms", required_argument, NULL, OPT_UNBLOCK_MS},
	{"max-subscriptions", required_argument, NULL, OPT_MAX_SUBSCRIPTIONS},
	{"mode", required_argument, NULL, OPT_MODE},
	{"sqlite", required_argument, NULL, OPT_SQLITE},
	{"sqlite-async", no_argument, NULL, OPT_SQLITE_ASYNC},
	{"sqlite-lag-ms", required_argument, NULL, OPT_SQLITE_LAG_MS},
	{"sqlite-wait-ms", required_argument, NULL, OPT_SQLITE_WAIT_MS},
	{"interval-ms", required_argument, NULL, OPT_INTERVAL_MS},
	{"create", no_argument, NULL, OPT_CREATE},
	{"foreground", no_argument, NULL, OPT_FOREGROUND},
	{"syslog", no_argument, NULL, OPT_SYSLOG},
	{"verbose", no_argument, NULL, OPT_VERBOSE},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

/* The command line. */
struct opts {
	const char *name;
	uint32_t interval_ms;
	bool create;
	bool foreground;
	bool use_syslog;
	bool verbose;
	sesh_config_t cfg;
	int first_capacity; /* the first option of creating given, or 0 */
	bool lag_given;	    /* --sqlite-lag-ms */
	bool wait_given;    /* --sqlite-wait-ms */
};

/* One error of one step and when it was last logged, for log_error(). */
struct quiet {
	const char *what;
	int err;
	int64_t logged_ns;
	uint64_t held; /* occurrences not logged since */
};

/* The running daemon. */
struct seshd {
	const struct opts *o;
	sesh_t *d; /* NULL while detached */
	/* What the name led to when it was last found to be ours. */
	char path[PATH_MAX];
	bool have_path;
	dev_t dev;
	ino_t ino;
	bool have_ident;
	uint64_t domain_id;
	/* Log state: lease, failures, detachment. */
	bool standing_by;
	bool standby_quiet; /* standing by was not logged */
	int64_t standby_logged_ns;
	uint64_t failed_passes; /* in a row */
	uint64_t failed_writes; /* passes in a row that could not write to
				 * the database */
	uint64_t passes;	/* completed by this process */
	struct quiet quiet[8];
};

/* ----------------------------------------------------------------------
 * Logging
 */

static const char *log_name = "?"; /* the domain name, cleaned */
static bool log_to_syslog;
static bool log_to_stderr = true;

/* Copy @s into @buf with bytes that are not printable ASCII, and the
 * backslash, written as \xNN, so that a name cannot break a log line. */
static const char *clean(char *buf, size_t size, const char *s)
{
	size_t o = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char tmp[5];
		int len;

		if (c < 0x20 || c >= 0x7f || c == '\\')
			len = snprintf(tmp, sizeof(tmp), "\\x%02x", c);
		else
			len = snprintf(tmp, sizeof(tmp), "%c", c);
		if (o + (size_t)len + 4 > size) {
			memcpy(buf + o, "...", 4);
			return buf;
		}
		memcpy(buf + o, tmp, (size_t)len);
		o += (size_t)len;
	}
	buf[o] = '\0';
	return buf;
}

static void logmsg(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Log one line about the domain: "seshd: NAME: message" on stderr, or
 * "NAME: message" to syslog, whose ident and pid say the rest. */
static void logmsg(int prio, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_to_syslog)
		syslog(prio, "%s: %s", log_name, msg);
	if (log_to_stderr)
		fprintf(stderr, "seshd: %s: %s\n", log_name, msg);
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

/*
 * Log that @what failed with @reason (the words for @err), unless the
 * same step failed with the same error less than a minute ago: a reaper
 * that fails on every pass must not flood the log. Eight errors are
 * tracked at a time; the oldest makes room.
 */
static void log_error(struct seshd *sd, const char *what, int err,
		      const char *reason)
{
	int64_t now = mono_ns();
	struct quiet *q = NULL, *oldest = &sd->quiet[0];

	for (size_t i = 0; i < ARRAY_SIZE(sd->quiet); i++) {
		struct quiet *e = &sd->quiet[i];

		if (e->what == what && e->err == err && e->logged_ns != 0) {
			q = e;
			break;
		}
		if (e->logged_ns < oldest->logged_ns)
			oldest = e;
	}
	if (q && now - q->logged_ns < QUIET_NS) {
		q->held++;
		return;
	}
	if (q && q->held)
		logmsg(LOG_ERR, "%s: %s (and %" PRIu64 " times in a minute)",
		       what, reason, q->held);
	else
		logmsg(LOG_ERR, "%s: %s", what, reason);
	if (!q) {
		q = oldest;
		q->what = what;
		q->err = err;
	}
	q->logged_ns = now;
	q->held = 0;
}

/* ----------------------------------------------------------------------
 * The command line
 */

static void help(void)
{
	sesh_config_t def;

	sesh_config_init(&def);
	printf("usage: seshd NAME [OPTIONS]\n"
	       "\n"
	       "Run the reaper of the sesh domain NAME: every interval, one "
	       "sesh_reap() pass\n"
	       "removes the sessions idle past their TTL, with their streams, "
	       "frees memory\n"
	       "that no reader can still see, and recovers what dead processes "
	       "left behind.\n"
	       "Without --foreground, seshd becomes a daemon that logs to "
	       "syslog, once it\n"
	       "has attached to the domain.\n"
	       "\n"
	       "options:\n");
	printf("  --interval-ms MS     time between passes, %u to %u "
	       "(default %u)\n",
	       INTERVAL_MS_MIN, INTERVAL_MS_MAX, INTERVAL_MS_DEFAULT);
	printf("  --create             create the domain if it does not exist, "
	       "with the\n"
	       "                       capacities and the database below; they "
	       "are usage\n"
	       "                       errors without it\n");
	printf("  --max-sessions N     sessions the domain holds (default "
	       "%zu)\n",
	       def.max_sessions);
	printf("  --stream-bytes N     stream capacity of a session, a "
	       "power of two\n"
	       "                       (default %zu)\n",
	       def.stream_bytes);
	printf("  --max-message N      largest message, 0 for stream-bytes/4 "
	       "(default %zu)\n",
	       def.max_message);
	printf("  --max-metadata N     largest metadata of a session (default "
	       "%zu)\n",
	       def.max_metadata);
	printf("  --idle-ttl SECONDS   idle TTL of sessions made without one "
	       "(default %" PRIu32 ")\n",
	       def.idle_ttl_s);
	printf("  --max-processes N    processes attached at once (default "
	       "%" PRIu32 ")\n",
	       def.max_processes);
	printf("  --unblock-ms MS      how long a stream waits for a stalled "
	       "publisher\n"
	       "                       (default %" PRIu32 ")\n",
	       def.unblock_ms);
	printf("  --max-subscriptions N\n"
	       "                       streams one process may have open "
	       "(default %" PRIu32 ")\n",
	       def.max_subscriptions);
	printf("  --mode OCTAL         permissions of the shared-memory object "
	       "(default %04o)\n",
	       (unsigned)def.mode);
	printf("  --sqlite PATH        write the sessions through to the "
	       "SQLite database PATH,\n"
	       "                       an absolute path; the sessions it holds "
	       "are restored\n");
	printf("  --sqlite-async       commit in the background; by default, "
	       "each create,\n"
	       "                       update or delete waits for its commit"
	       "\n");
	printf("  --sqlite-lag-ms MS   with --sqlite-async: how long a change "
	       "may wait to be\n"
	       "                       committed (default %" PRIu32 ")\n",
	       def.sqlite_lag_ms);
	printf("  --sqlite-wait-ms MS  without --sqlite-async: how long a "
	       "change waits for\n"
	       "                       another process's commit (default "
	       "%" PRIu32 ")\n",
	       def.sqlite_wait_ms);
	printf("  --foreground         do not become a daemon; log to stderr\n"
	       "  --syslog             log to syslog, in the foreground too\n"
	       "  --verbose            log every pass, not only those that did "
	       "something\n"
	       "  -h, --help           show this help\n"
	       "  -V, --version        show the version\n"
	       "\n"
	       "SIGTERM or SIGINT ends seshd after the pass under way; SIGHUP "
	       "is ignored.\n"
	       "Exit status: 0 stopped by a signal, 1 failure (one line on "
	       "stderr), 2 usage\n"
	       "error.\n");
}

/* Print a usage error and the hint; return the usage exit status. */
static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("seshd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\ntry 'seshd --help'\n", stderr);
	return EXIT_USAGE;
}

/* Parse an unsigned number strictly, as `sesh create` does: digits of
 * @base only, then, if @scaled, one optional k, m or g (powers of 1024);
 * at most @max. */
static bool parse_number(const char *s, int base, bool scaled,
			 unsigned long long max, unsigned long long *out)
{
	unsigned long long v, mul = 1;
	char *end;

	if (!isdigit((unsigned char)s[0]))
		return false;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno || end == s)
		return false;
	if (scaled && *end) {
		switch (*end++) {
		case 'k':
		case 'K':
			mul = 1ull << 10;
			break;
		case 'm':
		case 'M':
			mul = 1ull << 20;
			break;
		case 'g':
		case 'G':
			mul = 1ull << 30;
			break;
		default:
			return false;
		}
	}
	if (*end || v > max / mul)
		return false;
	*out = v * mul;
	return true;
}

/* The long name of option @id. */
static const char *opt_name(int id)
{
	for (const struct option *o = long_opts; o->name; o++)
		if (o->val == id)
			return o->name;
	return "?";
}

/*
 * Store the value of the numeric option @id. Which capacities are allowed
 * is the library's to say when it creates the domain; this only checks
 * that the number fits its field. Returns 0 or the usage exit status.
 */
static int set_number(struct opts *o, int id, const char *arg)
{
	bool scaled = id == OPT_STREAM_BYTES || id == OPT_MAX_MESSAGE ||
		      id == OPT_MAX_METADATA;
	unsigned long long max = UINT32_MAX, n;
	char q[128];

	if (scaled || id == OPT_MAX_SESSIONS)
		max = SIZE_MAX;
	else if (id == OPT_MODE)
		max = 07777;
	if (!parse_number(arg, id == OPT_MODE ? 8 : 10, scaled, max, &n))
		return usage_error("bad number for --%s: '%s'", opt_name(id),
				   clean(q, sizeof(q), arg));
	switch (id) {
	case OPT_MAX_SESSIONS:
		o->cfg.max_sessions = (size_t)n;
		break;
	case OPT_STREAM_BYTES:
		o->cfg.stream_bytes = (size_t)n;
		break;
	case OPT_MAX_MESSAGE:
		o->cfg.max_message = (size_t)n;
		break;
	case OPT_MAX_METADATA:
		o->cfg.max_metadata = (size_t)n;
		break;
	case OPT_IDLE_TTL:
		o->cfg.idle_ttl_s = (uint32_t)n;
		break;
	case OPT_MAX_PROCESSES:
		o->cfg.max_processes = (uint32_t)n;
		break;
	case OPT_UNBLOCK_MS:
		o->cfg.unblock_ms = (uint32_t)n;
		break;
	case OPT_MAX_SUBSCRIPTIONS:
		o->cfg.max_subscriptions = (uint32_t)n;
		break;
	case OPT_MODE:
		o->cfg.mode = (mode_t)n;
		break;
	case OPT_SQLITE_LAG_MS:
		o->cfg.sqlite_lag_ms = (uint32_t)n;
		o->lag_given = true;
		break;
	case OPT_SQLITE_WAIT_MS:
		o->cfg.sqlite_wait_ms = (uint32_t)n;
		o->wait_given = true;
		break;
	case OPT_INTERVAL_MS:
		if (n < INTERVAL_MS_MIN || n > INTERVAL_MS_MAX)
			return usage_error("--interval-ms must be %u to %u, "
					   "not '%s'",
					   INTERVAL_MS_MIN, INTERVAL_MS_MAX,
					   clean(q, sizeof(q), arg));
		o->interval_ms = (uint32_t)n;
		break;
	}
	if (id <= OPT_SQLITE_WAIT_MS && !o->first_capacity)
		o->first_capacity = id;
	return 0;
}

/*
 * --sqlite PATH, which must be absolute, as every process of the domain
 * opens the file by the name kept in the segment, from whatever directory
 * it runs in. Returns 0 or the usage exit status.
 */
static int set_sqlite(struct opts *o, const char *arg)
{
	char q[128];

	if (arg[0] != '/')
		return usage_error("--sqlite needs an absolute path, not '%s'",
				   clean(q, sizeof(q), arg));
	if (strlen(arg) > SESH_SQLITE_PATH_MAX)
		return usage_error("--sqlite: the path is longer than %d bytes",
				   SESH_SQLITE_PATH_MAX);
	o->cfg.sqlite_path = arg;
	if (!o->first_capacity)
		o->first_capacity = OPT_SQLITE;
	return 0;
}

/*
 * The options of creating that cannot take effect are usage errors, as
 * `sesh create` has them: any of them without --create; --sqlite above
 * all, since the database of a domain that exists is the one it was
 * created with, which no call reports (sesh_info() does not), so seshd
 * could not even check it. Then the database options without --sqlite,
 * the lag without --sqlite-async, the wait with it. Returns 0 or the
 * usage exit status.
 */
static int check_create(const struct opts *o)
{
	bool async = o->cfg.sqlite_mode == SESH_SQLITE_ASYNC;

	if (o->cfg.sqlite_path && !o->create)
		return usage_error("--sqlite is for creating the domain: it "
				   "needs --create (the database of a domain "
				   "that exists is the one it was created "
				   "with, and seshd cannot learn which)");
	if (o->first_capacity && !o->create)
		return usage_error("--%s is for creating the domain: it needs "
				   "--create",
				   opt_name(o->first_capacity));
	if (!o->cfg.sqlite_path && (async || o->lag_given || o->wait_given))
		return usage_error("--%s is for a database: it needs --sqlite",
				   async	  ? "sqlite-async"
				   : o->lag_given ? "sqlite-lag-ms"
						  : "sqlite-wait-ms");
	if (o->lag_given && !async)
		return usage_error("--sqlite-lag-ms is for the asynchronous "
				   "mode: it needs --sqlite-async");
	if (o->wait_given && async)
		return usage_error("--sqlite-wait-ms is for the synchronous "
				   "mode: not with --sqlite-async");
	return 0;
}

/* Take the operand @arg: the domain name, of which there is one. */
static int take_operand(struct opts *o, const char *arg)
{
	char q[128];

	if (o->name)
		return usage_error("unexpected argument '%s'",
				   clean(q, sizeof(q), arg));
	o->name = arg;
	return 0;
}

/* Turn what getopt_long() returned for a bad option into a usage error;
 * argv[optind - 1] is the word it examined (no permutation). */
static int option_error(int c, char **argv)
{
	const char *word = argv[optind - 1];
	char q[128];

	if (c == ':')
		return usage_error("option '%s' needs an argument",
				   clean(q, sizeof(q), word));
	if (optopt >= 256)
		return usage_error("option '--%s' takes no argument",
				   opt_name(optopt));
	if (optopt > 0 && strncmp(word, "--", 2) != 0) {
		char s[2] = {(char)optopt, '\0'};

		return usage_error("unknown option '-%s'",
				   clean(q, sizeof(q), s));
	}
	return usage_error("unknown or ambiguous option '%s'",
			   clean(q, sizeof(q), word));
}

/*
 * Parse the command line into @o. Options and the operand come in any
 * order; "--" ends the options. Returns -1 when seshd should run, or the
 * exit status (after --help, --version or a usage error).
 */
static int parse_args(int argc, char **argv, struct opts *o)
{
	int c, err = 0;

	memset(o, 0, sizeof(*o));
	o->interval_ms = INTERVAL_MS_DEFAULT;
	sesh_config_init(&o->cfg);
	/* '-': operands in order; ':': tell a missing argument apart */
	while (!err &&
	       (c = getopt_long(argc, argv, "-:hV", long_opts, NULL)) != -1) {
		switch (c) {
		case 1:
			err = take_operand(o, optarg);
			break;
		case 'h':
			help();
			return fflush(stdout) == 0 ? EXIT_SUCCESS
						   : EXIT_FAILURE;
		case 'V':
			printf("seshd %s\n", PACKAGE_VERSION);
			return fflush(stdout) == 0 ? EXIT_SUCCESS
						   : EXIT_FAILURE;
		case OPT_CREATE:
			o->create = true;
			break;
		case OPT_FOREGROUND:
			o->foreground = true;
			break;
		case OPT_SYSLOG:
			o->use_syslog = true;
			break;
		case OPT_VERBOSE:
			o->verbose = true;
			break;
		case OPT_SQLITE:
			err = set_sqlite(o, optarg);
			break;
		case OPT_SQLITE_ASYNC:
			o->cfg.sqlite_mode = SESH_SQLITE_ASYNC;
			if (!o->first_capacity)
				o->first_capacity = OPT_SQLITE_ASYNC;
			break;
		case ':':
		case '?':
			err = option_error(c, argv);
			break;
		default:
			err = set_number(o, c, optarg);
			break;
		}
	}
	while (!err && optind < argc)
		err = take_operand(o, argv[optind++]);
	if (err)
		return err;
	if (!o->name)
		return usage_error("missing domain name");
	err = check_create(o);
	return err ? err : -1;
}

/* ----------------------------------------------------------------------
 * Attaching, and following the name
 */

/* The file of the domain: SESH_SHM_DIR (or /dev/shm), then sesh.NAME, as
 * sesh(7) describes it. */
static void set_path(struct seshd *sd)
{
	const char *dir = secure_getenv("SESH_SHM_DIR");
	int n;

	if (!dir || !dir[0])
		dir = "/dev/shm";
	n = snprintf(sd->path, sizeof(sd->path), "%s/sesh.%s", dir,
		     sd->o->name);
	sd->have_path = n > 0 && (size_t)n < sizeof(sd->path);
}

/*
 * Take the identity of the domain the handle @d maps: its id, and the file
 * @st that the name led to just before @d was opened. If the name was
 * replaced in between, @st is another file than @d's, and the next
 * check_name() finds it out and asks the library.
 */
static int take_ident(struct seshd *sd, sesh_t *d, const struct stat *st,
		      bool have_st)
{
	sesh_info_t in;
	int err;

	err = sesh_info(d, &in);
	if (err < 0)
		return err;
	sd->domain_id = in.domain_id;
	sd->have_ident = have_st;
	if (have_st) {
		sd->dev = st->st_dev;
		sd->ino = st->st_ino;
	}
	return 0;
}

/*
 * With --create and --sqlite, a domain that existed keeps the database it
 * was created with, or none: say so when its mode is not what the options
 * ask for. Its path cannot be compared, as no call reports it.
 */
static void check_database(struct seshd *sd)
{
	const sesh_config_t *c = &sd->o->cfg;
	int want = c->sqlite_mode == SESH_SQLITE_ASYNC ? 2 : 1;
	sesh_health_t h;

	memset(&h, 0, sizeof(h));
	if (sesh_health(sd->d, &h) != 0 || h.persist == want)
		return;
	if (h.persist == 0)
		logmsg(LOG_WARNING, "--sqlite not used: the domain existed, "
				    "and writes to no database");
	else
		logmsg(LOG_WARNING,
		       "the domain existed, and writes to its database %s, "
		       "not %s",
		       h.persist == 1 ? "synchronously" : "asynchronously",
		       want == 1 ? "synchronously" : "asynchronously");
}

/* Attach to the domain, creating it with --create. Returns 0 or a
 * negative errno. */
static int attach(struct seshd *sd)
{
	const struct opts *o = sd->o;
	struct stat st;
	bool have_st;
	sesh_t *d;
	int err;

	have_st = sd->have_path && stat(sd->path, &st) == 0;
	err = sesh_open(o->name, NULL, o->create ? &o->cfg : NULL,
			o->create ? SESH_CREATE : 0, &d);
	if (err < 0)
		return err;
	err = take_ident(sd, d, &st, have_st);
	if (err < 0) {
		sesh_close(d);
		return err;
	}
	sd->d = d;
	/* The name led to a file before the open: this one, most likely,
	 * and not made by us. */
	if (o->create && o->cfg.sqlite_path && have_st)
		check_database(sd);
	return 0;
}

/*
 * Tell whether the name still leads to the domain attached: 1 if it does,
 * 0 if it was removed or now leads to another domain, or a negative errno
 * if that cannot be told. One stat() answers when the file is the one
 * seen before; otherwise a second handle is opened to compare domain ids.
 */
static int check_name(struct seshd *sd)
{
	struct stat st;
	sesh_info_t in;
	bool have_st;
	sesh_t *d;
	int err;

	if (!sd->have_path)
		return 1;
	have_st = stat(sd->path, &st) == 0;
	if (have_st && sd->have_ident && st.st_dev == sd->dev &&
	    st.st_ino == sd->ino)
		return 1;
	err = sesh_open(sd->o->name, NULL, NULL, 0, &d);
	if (err == -ENOENT || err == -EPROTO)
		return 0; /* gone, or now something else than a domain */
	if (err < 0)
		return err;
	err = sesh_info(d, &in);
	sesh_close(d);
	if (err < 0)
		return err;
	if (in.domain_id != sd->domain_id)
		return 0;
	sd->have_ident = have_st;
	if (have_st) {
		sd->dev = st.st_dev;
		sd->ino = st.st_ino;
	}
	return 1;
}

/* Why the directory of the absolute @path cannot hold a file, as far as
 * stat() tells, or NULL. */
static const char *dir_problem(const char *path)
{
	char dir[SESH_SQLITE_PATH_MAX + 1];
	const char *slash = strrchr(path, '/');
	size_t len = slash == path ? 1 : (size_t)(slash - path);
	struct stat st;

	if (len > SESH_SQLITE_PATH_MAX)
		return NULL;
	memcpy(dir, path, len);
	dir[len] = '\0';
	if (stat(dir, &st) != 0)
		return strerror(errno);
	return S_ISDIR(st.st_mode) ? NULL : strerror(ENOTDIR);
}

/*
 * Why attaching failed, in words: -ENOENT and -EINVAL can say more here
 * than the library's words for them, and so can -EIO, -EPROTO, -ENOSPC
 * and -ENOTSUP when creating with a database, which may be its errors.
 * The words may be in a static buffer, valid until the next call.
 */
static const char *attach_error(const struct seshd *sd, int err)
{
	static char buf[4 * SESH_SQLITE_PATH_MAX + 256];
	const char *path = sd->o->create ? sd->o->cfg.sqlite_path : NULL, *dir;
	char q[4 * SESH_SQLITE_PATH_MAX + 8];

	if (err == -EINVAL && path)
		return "invalid argument: a bad name, or a capacity or a "
		       "database option out of range (see sesh_open(3))";
	if (err == -EINVAL && sd->o->create)
		return "invalid argument: a bad name, or a capacity out of "
		       "range (see sesh_open(3))";
	if (err == -EINVAL)
		return "invalid argument: a bad name";
	if (err == -ENOENT && sd->o->create)
		return "no such directory (SESH_SHM_DIR)";
	if (err == -ENOENT)
		return "no such domain (--create makes it)";
	if (!path)
		return sesh_strerror(err);
	if (err == -ENOTSUP)
		return "--sqlite: this sesh library was built without SQLite";
	if (err == -EIO && (dir = dir_problem(path)) != NULL)
		snprintf(buf, sizeof(buf),
			 "the database %s cannot be created: its directory: %s",
			 clean(q, sizeof(q), path), dir);
	else if (err == -EIO)
		snprintf(buf, sizeof(buf),
			 "the database %s cannot be opened, created or read "
			 "(or an unexpected system error)",
			 clean(q, sizeof(q), path));
	else if (err == -EPROTO)
		snprintf(buf, sizeof(buf),
			 "%s is not a sesh database, or has a newer schema "
			 "(or the domain's object is not a sesh domain)",
			 clean(q, sizeof(q), path));
	else if (err == -ENOSPC)
		snprintf(buf, sizeof(buf),
			 "no space left: the database %s holds more live "
			 "sessions than --max-sessions or metadata larger than "
			 "--max-metadata, or the segment is too large, or the "
			 "registry is full",
			 clean(q, sizeof(q), path));
	else
		return sesh_strerror(err);
	return buf;
}

/* Detach from a domain that is no longer NAME's. */
static void detach(struct seshd *sd)
{
	sesh_close(sd->d);
	sd->d = NULL;
	sd->have_ident = false;
	sd->standing_by = false;
	sd->failed_passes = 0;
	sd->failed_writes = 0;
}

/* ----------------------------------------------------------------------
 * Passes
 */

/*
 * Log what a pass did: with the numbers of the report, when it did
 * something or with --verbose. Rows written to the database are routine
 * (the last-seen times of sessions in use), so they alone do not make a
 * pass worth a line; they are on the line when there are any.
 */
static void log_pass(struct seshd *sd, const sesh_reap_report_t *r)
{
	bool did = r->processes_recovered || r->full_recovery ||
		   r->sessions_expired || r->holes_unblocked ||
		   r->rings_freed || r->blocks_freed;
	char rows[48] = "";

	if (!did && !sd->o->verbose)
		return;
	if (r->persist_rows)
		snprintf(rows, sizeof(rows), " persist_rows=%zu",
			 r->persist_rows);
	logmsg(LOG_INFO,
	       "pass %" PRIu64 ": processes_recovered=%" PRIu32
	       " full_recovery=%" PRIu32 " sessions_expired=%zu"
	       " holes_unblocked=%zu rings_freed=%zu blocks_freed=%zu"
	       " buckets_scanned=%zu sweep_wrapped=%" PRIu32 "%s"
	       " duration_us=%" PRIu64,
	       r->pass, r->processes_recovered, r->full_recovery,
	       r->sessions_expired, r->holes_unblocked, r->rings_freed,
	       r->blocks_freed, r->buckets_scanned, r->sweep_wrapped, rows,
	       r->duration_ns / 1000);
}

/*
 * A pass that could not write to the database is no failed pass: the
 * changes stay noted, and the next pass retries. It is logged as an error
 * all the same, at most once a minute, with the database's own words,
 * which sesh_health() has (the report says only -EIO).
 */
static void log_persist(struct seshd *sd, const sesh_reap_report_t *r)
{
	char reason[4 * sizeof(((sesh_health_t *)0)->persist_error) + 64];
	char q[4 * sizeof(((sesh_health_t *)0)->persist_error) + 8];
	sesh_health_t h;

	if (r->persist_error == 0 && sd->failed_writes == 0)
		return;
	memset(&h, 0, sizeof(h));
	if (sesh_health(sd->d, &h) != 0)
		h.persist_ok = r->persist_error == 0;
	if (r->persist_error == 0) {
		/* A pass that found another process committing did not
		 * write: only the database's state says it works. */
		if (h.persist_ok) {
			logmsg(LOG_NOTICE,
			       "the database works again, after %" PRIu64
			       " passes that could not write to it",
			       sd->failed_writes);
			sd->failed_writes = 0;
		}
		return;
	}
	sd->failed_writes++;
	if (!h.persist_ok && h.persist_error[0])
		snprintf(reason, sizeof(reason),
			 "writing to the database failed: %s; see sesh health",
			 clean(q, sizeof(q), h.persist_error));
	else
		snprintf(reason, sizeof(reason),
			 "writing to the database failed; see sesh health");
	log_error(sd, "persistence", r->persist_error, reason);
}

/*
 * -EBUSY: another process holds the lease, for the length of its pass.
 * Standing by is logged once, and taking over when a later pass runs; two
 * reapers whose passes keep meeting would say so on every other pass, so
 * standing by again within a minute is not logged (nor what follows).
 */
static void stand_by(struct seshd *sd)
{
	int64_t now = mono_ns();

	if (sd->standing_by) {
		if (sd->o->verbose)
			logmsg(LOG_INFO, "pass skipped: another reaper holds "
					 "the lease");
		return;
	}
	sd->standing_by = true;
	sd->standby_quiet = sd->standby_logged_ns != 0 &&
			    now - sd->standby_logged_ns < QUIET_NS &&
			    !sd->o->verbose;
	if (sd->standby_quiet)
		return;
	sd->standby_logged_ns = now;
	logmsg(LOG_NOTICE, "another reaper holds the lease; standing by");
}

/* Run one pass on the attached domain and log it. */
static void reap(struct seshd *sd)
{
	sesh_reap_report_t r;
	int err;

	err = sesh_reap(sd->d, &r);
	if (err == -EBUSY) {
		stand_by(sd);
		return;
	}
	if (err < 0) {
		sd->failed_passes++;
		log_error(sd, "pass failed", err, sesh_strerror(err));
		return;
	}
	sd->passes++;
	if (sd->standing_by) {
		sd->standing_by = false;
		if (!sd->standby_quiet)
			logmsg(LOG_NOTICE, "took over, at pass %" PRIu64,
			       r.pass);
	}
	if (sd->failed_passes) {
		logmsg(LOG_NOTICE, "passes run again, after %" PRIu64 " failed",
		       sd->failed_passes);
		sd->failed_passes = 0;
	}
	log_pass(sd, &r);
	log_persist(sd, &r);
}

/*
 * One turn of the loop: make sure the handle is NAME's domain, attaching
 * or re-attaching as needed, and run a pass on it.
 */
static void turn(struct seshd *sd)
{
	int err;

	if (sd->d) {
		err = check_name(sd);
		if (err < 0) {
			/* Cannot tell: keep reaping what is attached. */
			log_error(sd, "checking the name", err,
				  sesh_strerror(err));
		} else if (err == 0) {
			logmsg(LOG_WARNING, "the domain was removed or "
					    "replaced; detaching");
			detach(sd);
		}
	}
	if (!sd->d) {
		err = attach(sd);
		if (err < 0) {
			log_error(sd, "attaching", err, attach_error(sd, err));
			return;
		}
		logmsg(LOG_NOTICE, "attached again");
	}
	reap(sd);
}

/* ----------------------------------------------------------------------
 * Signals and the wait
 */

static const char *signame(int sig)
{
	switch (sig) {
	case SIGTERM:
		return "SIGTERM";
	case SIGINT:
		return "SIGINT";
	case SIGHUP:
		return "SIGHUP";
	}
	return "a signal";
}

static sigset_t old_mask;

/*
 * Block the signals seshd waits for, into @set: SIGTERM and SIGINT, which
 * stop it, and SIGHUP, which is logged and ignored. A stop signal that was
 * ignored when seshd started (as a shell does for SIGINT in background
 * jobs) stays ignored and out of the set. SIGPIPE is ignored: a log on a
 * closed pipe fails without killing the reaper. The mask seshd started
 * with is kept in old_mask.
 */
static int block_signals(sigset_t *set)
{
	static const int stop[] = {SIGTERM, SIGINT};
	struct sigaction sa, old;

	sigemptyset(set);
	for (size_t i = 0; i < ARRAY_SIZE(stop); i++)
		if (sigaction(stop[i], NULL, &old) != 0 ||
		    old.sa_handler != SIG_IGN)
			sigaddset(set, stop[i]);
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	/* Default, not ignored: POSIX leaves waiting for an ignored signal
	 * unspecified. Blocked, it is never delivered anyway. */
	sa.sa_handler = SIG_DFL;
	sigaction(SIGHUP, &sa, NULL);
	sigaddset(set, SIGHUP);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	return sigprocmask(SIG_BLOCK, set, &old_mask) == 0 ? 0 : -errno;
}

/*
 * Wait until @deadline, on CLOCK_MONOTONIC, or a stop signal. Returns the
 * signal, or 0 at the deadline.
 */
static int wait_until(const sigset_t *set, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - mono_ns();
		struct timespec ts;
		int sig;

		if (left <= 0)
			return 0;
		ts.tv_sec = (time_t)(left / NS_PER_SEC);
		ts.tv_nsec = (long)(left % NS_PER_SEC);
		sig = sigtimedwait(set, NULL, &ts);
		if (sig == SIGHUP) {
			logmsg(LOG_NOTICE, "SIGHUP ignored");
		} else if (sig > 0) {
			return sig;
		} else if (errno != EAGAIN && errno != EINTR) {
			/* Cannot happen with a valid set and timeout; sleep
			 * rather than spin, and see signals at the next
			 * wait. */
			logmsg(LOG_ERR, "sigtimedwait: %s", strerror(errno));
			ts.tv_sec = (time_t)(deadline / NS_PER_SEC);
			ts.tv_nsec = (long)(deadline % NS_PER_SEC);
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
					NULL);
		}
		/* EAGAIN: the timeout ran out; the clock decides. EINTR: a
		 * stop and continue (SIGSTOP, SIGCONT); wait on. */
	}
}

/*
 * The loop: a pass, then a wait until the next deadline. Deadlines are
 * start + k * interval; those a slow pass (or a stopped process) missed
 * are skipped rather than run in a burst. Returns the signal that ended
 * it.
 */
static int run(struct seshd *sd, const sigset_t *set)
{
	int64_t interval = (int64_t)sd->o->interval_ms * NS_PER_MS;
	int64_t next = mono_ns(), now;
	int sig;

	reap(sd);
	for (;;) {
		next += interval;
		now = mono_ns();
		if (next <= now)
			next += ((now - next) / interval + 1) * interval;
		sig = wait_until(set, next);
		if (sig)
			return sig;
		turn(sd);
	}
}

/* ----------------------------------------------------------------------
 * Daemon
 */

/* Open /dev/null on fds 0, 1 and 2 where they are closed, so that no
 * descriptor the library opens can be taken for stderr. */
static void fill_std_fds(void)
{
	int fd;

	do {
		fd = open("/dev/null", O_RDWR);
	} while (fd >= 0 && fd <= 2);
	if (fd > 2)
		close(fd);
}

/*
 * In the first process: wait for the daemon's word on @fd, and reap the
 * intermediate child @pid. The word is a byte, 0 if the daemon attached,
 * else 1 and the reason. Returns the exit status.
 */
static int await_daemon(int fd, pid_t pid, const char *qname)
{
	char buf[512];
	size_t n = 0;
	ssize_t r;

	while (n < sizeof(buf) - 1) {
		r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	close(fd);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (n > 0 && buf[0] == 0)
		return EXIT_SUCCESS;
	fprintf(stderr, "seshd: %s: %s\n", qname,
		n > 1 ? buf + 1 : "the daemon exited before it attached");
	return EXIT_FAILURE;
}

/* In a child: send the first process the word (see await_daemon()); a
 * NULL @reason says the daemon attached. */
static void tell_parent(int fd, const char *reason)
{
	char buf[512];
	size_t len;

	const char *p = buf;

	buf[0] = reason ? 1 : 0;
	len = 1;
	if (reason) {
		snprintf(buf + 1, sizeof(buf) - 1, "%s", reason);
		len += strlen(buf + 1);
	}
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break; /* the parent is gone (SIGPIPE is ignored) */
		p += w;
		len -= (size_t)w;
	}
	close(fd);
}

/* Report a system call of daemonizing that failed to the first process,
 * and exit. */
static void daemon_failed(int fd, const char *call) __attribute__((noreturn));

static void daemon_failed(int fd, const char *call)
{
	char reason[256];

	snprintf(reason, sizeof(reason), "%s: %s", call, strerror(errno));
	tell_parent(fd, reason);
	_exit(EXIT_FAILURE);
}

/*
 * Become a daemon: fork, setsid, fork, chdir("/"), standard descriptors on
 * /dev/null (the umask is left as it is). The first process does not
 * return: it exits with what await_daemon() says. The daemon gets the
 * write end of the pipe, for tell_parent(), in *@fd. Returns 0 in the
 * daemon, or the exit status if not even the first fork worked.
 */
static int daemonize(const char *qname, int *fd)
{
	int p[2], null;
	pid_t pid;

	fflush(NULL); /* nothing buffered is written twice */
	if (pipe2(p, O_CLOEXEC) < 0)
		pid = -1;
	else
		pid = fork();
	if (pid < 0) {
		fprintf(stderr, "seshd: %s: cannot become a daemon: %s\n",
			qname, strerror(errno));
		return EXIT_FAILURE;
	}
	if (pid > 0) {
		/* The signals the daemon waits for end this one at once,
		 * should its attach take long. */
		sigprocmask(SIG_SETMASK, &old_mask, NULL);
		close(p[1]);
		exit(await_daemon(p[0], pid, qname));
	}
	close(p[0]);
	if (setsid() < 0)
		daemon_failed(p[1], "setsid");
	pid = fork();
	if (pid < 0)
		daemon_failed(p[1], "fork");
	if (pid > 0)
		_exit(EXIT_SUCCESS);
	if (chdir("/") < 0)
		daemon_failed(p[1], "chdir /");
	null = open("/dev/null", O_RDWR);
	if (null < 0)
		daemon_failed(p[1], "/dev/null");
	if (dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0 ||
	    dup2(null, STDERR_FILENO) < 0)
		daemon_failed(p[1], "dup2");
	if (null > STDERR_FILENO)
		close(null);
	*fd = p[1];
	return 0;
}

int main(int argc, char **argv)
{
	static char qname[4 * SESH_NAME_MAX + 8];
	struct seshd sd;
	struct opts o;
	sigset_t set;
	int status, err, sig, fd = -1;

	status = parse_args(argc, argv, &o);
	if (status >= 0)
		return status;
	fill_std_fds();
	log_name = clean(qname, sizeof(qname), o.name);
	err = block_signals(&set);
	if (err < 0) {
		fprintf(stderr, "seshd: %s: cannot block signals: %s\n",
			log_name, strerror(-err));
		return EXIT_FAILURE;
	}
	if (!o.foreground) {
		status = daemonize(log_name, &fd);
		if (status)
			return status;
	}
	log_to_syslog = !o.foreground || o.use_syslog;
	log_to_stderr = !log_to_syslog;
	if (log_to_syslog)
		openlog("seshd", LOG_PID, LOG_DAEMON);

	memset(&sd, 0, sizeof(sd));
	sd.o = &o;
	set_path(&sd);
	err = attach(&sd);
	if (err < 0) {
		logmsg(LOG_ERR, "%s", attach_error(&sd, err));
		if (fd >= 0)
			tell_parent(fd, attach_error(&sd, err));
		else if (!log_to_stderr)
			fprintf(stderr, "seshd: %s: %s\n", log_name,
				attach_error(&sd, err));
		return EXIT_FAILURE;
	}
	if (fd >= 0)
		tell_parent(fd, NULL);
	logmsg(LOG_NOTICE, "started: pid %ld, interval %" PRIu32 " ms%s",
	       (long)getpid(), o.interval_ms,
	       sd.have_path ? "" : "; the path is too long to notice removal");

	sig = run(&sd, &set);

	sesh_close(sd.d);
	logmsg(LOG_NOTICE, "exiting on %s, after %" PRIu64 " passes here",
	       signame(sig), sd.passes);
	if (log_to_syslog)
		closelog();
	return EXIT_SUCCESS;
}
