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
 * attaches to whatever the name leads to, as often as it takes. With
 * --sqlite, every attach checks that the domain writes to that database
 * (sesh_info() names it), and refuses the domain otherwise.
 *
 * Without --foreground it daemonizes (fork, setsid, fork) and the first
 * process waits, on a pipe, for the daemon to say whether it attached, so
 * that a failure is reported where seshd was started and with exit status
 * 1. Exit status: 0 after SIGTERM or SIGINT; 1 when it cannot start, with
 * one line "seshd: NAME: reason" on stderr; 2 on a usage error.
 *
 * The options of creating are those of `sesh create`, parsed, checked and
 * explained by tool.c, which both programs share.
 */
#include "config.h"

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
#include "tool.h"

const char tool_prog[] = "seshd";

#define NS_PER_MS  1000000ll
#define NS_PER_SEC 1000000000ll

#define INTERVAL_MS_DEFAULT 1000u
#define INTERVAL_MS_MIN	    10u
#define INTERVAL_MS_MAX	    3600000u

/* The same error is logged at most once in this long. */
#define QUIET_NS (60 * NS_PER_SEC)

/* Values of the long options. The options of creating come first (see
 * tool.h), as `sesh create` has them: the capacities, from
 * TOOL_OPT_MAX_SESSIONS to TOOL_OPT_MODE, then the database, from
 * TOOL_OPT_SQLITE to TOOL_OPT_SQLITE_WAIT_MS. */
enum {
	OPT_INTERVAL_MS = TOOL_OPT_END,
	OPT_CREATE,
	OPT_FOREGROUND,
	OPT_SYSLOG,
	OPT_VERBOSE,
};

static const struct option long_opts[] = {
	TOOL_CREATE_LONG_OPTS,
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
	struct tool_create domain; /* what --create makes; --sqlite also
				    * what the domain must write to */
	int first_capacity;	   /* the first option of creating given but
				    * --sqlite, or 0 */
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
	/* Why the domain's database is not that of --sqlite. */
	char why[2 * (4 * SESH_SQLITE_PATH_MAX + 8) + 128];
};

/* ----------------------------------------------------------------------
 * Logging
 */

static const char *log_name = "?"; /* the domain name, cleaned */
static bool log_to_syslog;
static bool log_to_stderr = true;

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
	       "                       errors without it, but --sqlite, which "
	       "then only\n"
	       "                       checks that the domain writes to "
	       "PATH\n");
	tool_create_help(21);
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

/* --interval-ms MS. Returns 0 or the usage exit status. */
static int set_interval(struct opts *o, const char *arg)
{
	unsigned long long n;
	char q[128];

	if (!tool_parse_number(arg, 10, false, UINT32_MAX, &n))
		return tool_bad_number(NULL, "interval-ms", arg);
	if (n < INTERVAL_MS_MIN || n > INTERVAL_MS_MAX)
		return tool_usage_error(
			NULL, "--interval-ms must be %u to %u, not '%s'",
			INTERVAL_MS_MIN, INTERVAL_MS_MAX,
			tool_clean(q, sizeof(q), arg, SIZE_MAX));
	o->interval_ms = (uint32_t)n;
	return 0;
}

/*
 * The options of creating that cannot take effect are usage errors, as
 * `sesh create` has them: any of them without --create, but --sqlite,
 * which then names the database the domain must write to (checked once
 * attached, see check_database()); then the database options where they
 * have no effect. Returns 0 or the usage exit status.
 */
static int check_create(const struct opts *o)
{
	if (o->first_capacity && !o->create)
		return tool_usage_error(
			NULL,
			"--%s is for creating the domain: it needs --create",
			tool_create_opt_name(o->first_capacity));
	return tool_create_check(&o->domain, NULL);
}

/* Take the operand @arg: the domain name, of which there is one. */
static int take_operand(struct opts *o, const char *arg)
{
	char q[128];

	if (o->name)
		return tool_usage_error(
			NULL, "unexpected argument '%s'",
			tool_clean(q, sizeof(q), arg, SIZE_MAX));
	o->name = arg;
	return 0;
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
	tool_create_init(&o->domain);
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
		case OPT_INTERVAL_MS:
			err = set_interval(o, optarg);
			break;
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
		default:
			err = tool_create_opt(&o->domain, NULL, c, optarg);
			if (err < 0) /* '?' or ':' */
				err = tool_option_error(NULL, long_opts, c,
							argv);
			else if (c != TOOL_OPT_SQLITE && !o->first_capacity)
				o->first_capacity = c;
			break;
		}
	}
	while (!err && optind < argc)
		err = take_operand(o, argv[optind++]);
	if (err)
		return err;
	if (!o->name)
		return tool_usage_error(NULL, "missing domain name");
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
 * Take the identity of the domain that sesh_info() described in @in: its
 * id, and the file @st that the name led to just before it was opened. If
 * the name was replaced in between, @st is another file than the
 * domain's, and the next check_name() finds it out and asks the library.
 */
static void take_ident(struct seshd *sd, const sesh_info_t *in,
		       const struct stat *st, bool have_st)
{
	sd->domain_id = in->domain_id;
	sd->have_ident = have_st;
	if (have_st) {
		sd->dev = st->st_dev;
		sd->ino = st->st_ino;
	}
}

/* Whether the database paths @a and @b name one file: the same name, or
 * two names of a file that exists. */
static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	if (strcmp(a, b) == 0)
		return true;
	return stat(a, &sa) == 0 && stat(b, &sb) == 0 &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* attach(): the domain does not write to the database of --sqlite; sd->why
 * says what it writes to. */
#define OTHER_DATABASE 1

/*
 * With --sqlite, the domain described in @in must write to that database:
 * the operator named the file the sessions must reach, and a domain's
 * database is fixed when it is created, so a domain that writes to
 * another one or none is refused, created by another or existing already
 * under --create. Returns 0 or OTHER_DATABASE. A domain that existed under
 * --create and writes to the database in the other mode only gets a
 * warning: the sessions reach the file all the same.
 */
static int check_database(struct seshd *sd, const sesh_info_t *in)
{
	const struct opts *o = sd->o;
	const sesh_config_t *c = &o->domain.cfg;
	const char *existed = o->create ? "existed, and " : "";
	char want[4 * SESH_SQLITE_PATH_MAX + 8];
	char has[4 * SESH_SQLITE_PATH_MAX + 8];

	if (!c->sqlite_path)
		return 0;
	tool_clean(want, sizeof(want), c->sqlite_path, SIZE_MAX);
	if (!in->sqlite_path[0]) {
		snprintf(sd->why, sizeof(sd->why),
			 "the domain %swrites to no database, not to %s "
			 "(--sqlite): a domain's database is chosen when it is "
			 "created",
			 existed, want);
		return OTHER_DATABASE;
	}
	if (!same_file(in->sqlite_path, c->sqlite_path)) {
		snprintf(sd->why, sizeof(sd->why),
			 "the domain %swrites to the database %s, not to %s "
			 "(--sqlite): a domain's database is chosen when it is "
			 "created",
			 existed,
			 tool_clean(has, sizeof(has), in->sqlite_path,
				    sizeof(in->sqlite_path)),
			 want);
		return OTHER_DATABASE;
	}
	if (o->create && in->sqlite_mode != c->sqlite_mode)
		logmsg(LOG_WARNING,
		       "the domain existed, and writes to its database %s, "
		       "not %s",
		       in->sqlite_mode == SESH_SQLITE_ASYNC ? "asynchronously"
							    : "synchronously",
		       c->sqlite_mode == SESH_SQLITE_ASYNC ? "asynchronously"
							   : "synchronously");
	return 0;
}

/* Attach to the domain, creating it with --create, and check its database
 * against --sqlite. Returns 0, a negative errno, or OTHER_DATABASE. */
static int attach(struct seshd *sd)
{
	const struct opts *o = sd->o;
	struct stat st;
	sesh_info_t in;
	bool have_st;
	sesh_t *d;
	int err;

	have_st = sd->have_path && stat(sd->path, &st) == 0;
	err = sesh_open(o->name, NULL, o->create ? &o->domain.cfg : NULL,
			o->create ? SESH_CREATE : 0, &d);
	if (err < 0)
		return err;
	err = sesh_info(d, &in);
	if (err == 0)
		err = check_database(sd, &in);
	if (err != 0) {
		sesh_close(d);
		return err;
	}
	take_ident(sd, &in, &st, have_st);
	sd->d = d;
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

/*
 * Why attaching failed, in words: those of tool_open_error() where the
 * library's are too general (with --create and --sqlite, -EIO, -EPROTO,
 * -ENOSPC and -E2BIG may be the database's), -ENOENT and -EINVAL, which
 * can say more here, and the check of --sqlite. The words may be in a
 * static buffer, valid until the next call.
 */
static const char *attach_error(const struct seshd *sd, int err)
{
	static char buf[TOOL_OPEN_ERROR_SIZE];
	const struct opts *o = sd->o;
	const char *why;

	if (err == OTHER_DATABASE)
		return sd->why;
	why = tool_open_error(buf, sizeof(buf), err, o->domain.cfg.sqlite_path,
			      o->create ? SESH_CREATE : 0);
	if (why)
		return why;
	if (err == -EINVAL)
		return "invalid argument: a bad name";
	if (err == -ENOENT && o->create)
		return "no such directory (SESH_SHM_DIR)";
	if (err == -ENOENT)
		return "no such domain (--create makes it)";
	return sesh_strerror(err);
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
	bool did = r->processes_recovered || r->recovery_walk ||
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
	       " recovery_walk=%" PRIu32 " recovery_done=%" PRIu32
	       " sessions_expired=%zu"
	       " holes_unblocked=%zu rings_freed=%zu blocks_freed=%zu"
	       " buckets_scanned=%zu sweep_wrapped=%" PRIu32 "%s"
	       " duration_us=%" PRIu64,
	       r->pass, r->processes_recovered, r->recovery_walk,
	       r->recovery_done,
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
			 tool_clean(q, sizeof(q), h.persist_error,
				    sizeof(h.persist_error)));
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
		if (err != 0) {
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
	log_name = tool_clean(qname, sizeof(qname), o.name, SIZE_MAX);
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
	if (err != 0) {
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
