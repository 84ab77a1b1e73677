/*
 * tool.h - what sesh(1) and seshd(8) share: escaping of what they print,
 * strict numbers, usage errors, the options that create a domain (its
 * capacities and its database), and the words for why sesh_open()
 * failed.
 *
 * Both programs create domains from the same options and must refuse and
 * explain the same things in the same words; this is the one place that
 * does it. Each program defines tool_prog, its name as messages start
 * with it.
 */
#ifndef SESH_TOOL_H
#define SESH_TOOL_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "sesh.h"

#define EXIT_USAGE 2

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The program's name, "sesh" or "seshd": defined by each program. */
extern const char tool_prog[];

/* ----------------------------------------------------------------------
 * Messages
 */

/*
 * Write the byte @c into @out as itself, or as \xNN when it is not
 * printable ASCII or is the backslash (so that no byte can pass for an
 * escape); return the length written, without the NUL.
 */
size_t tool_escape_byte(char out[5], unsigned char c);

/*
 * Copy at most @max bytes of @s into @buf, each escaped as
 * tool_escape_byte() does, so that a name or an argument can never break
 * the one-line promise of a message. Long input is cut with "...".
 * Returns @buf.
 */
const char *tool_clean(char *buf, size_t size, const char *s, size_t max);

/*
 * Print a usage error, "PROG: VERB: message" (without "VERB: " when @verb
 * is NULL), and the hint "try 'PROG --help'"; return EXIT_USAGE.
 */
int tool_usage_error(const char *verb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Turn what getopt_long() returned for a bad option ('?' or ':') into a
 * usage error of @verb. The optstrings start with '-' (no permutation),
 * so argv[optind - 1] is the word just examined; @opts is the table
 * given to getopt_long(). Returns EXIT_USAGE.
 */
int tool_option_error(const char *verb, const struct option *opts, int c,
		      char **argv);

/* ----------------------------------------------------------------------
 * Numbers
 */

/*
 * Parse an unsigned number strictly: digits of @base only (no sign, no
 * blank, not empty), then, if @scaled, one optional k, m or g (powers of
 * 1024); the result must not exceed @max.
 */
bool tool_parse_number(const char *s, int base, bool scaled,
		       unsigned long long max, unsigned long long *out);

/* The usage error "bad number for --OPT: 'ARG'"; returns EXIT_USAGE. */
int tool_bad_number(const char *verb, const char *opt, const char *arg);

/* ----------------------------------------------------------------------
 * The options that create a domain
 *
 * Their values come first among the programs' long options, in this
 * order: the capacities, from TOOL_OPT_MAX_SESSIONS to TOOL_OPT_MODE,
 * then the database, from TOOL_OPT_SQLITE to TOOL_OPT_SQLITE_WAIT_MS. A
 * program numbers its own options from TOOL_OPT_END on, and puts
 * TOOL_CREATE_LONG_OPTS in its getopt_long() table.
 */
enum {
	TOOL_OPT_MAX_SESSIONS = 256,
	TOOL_OPT_STREAM_BYTES,
	TOOL_OPT_MAX_MESSAGE,
	TOOL_OPT_MAX_METADATA,
	TOOL_OPT_IDLE_TTL,
	TOOL_OPT_MAX_PROCESSES,
	TOOL_OPT_UNBLOCK_MS,
	TOOL_OPT_MAX_SUBSCRIPTIONS,
	TOOL_OPT_MODE,
	TOOL_OPT_SQLITE,
	TOOL_OPT_SQLITE_ASYNC,
	TOOL_OPT_SQLITE_LAG_MS,
	TOOL_OPT_SQLITE_WAIT_MS,
	TOOL_OPT_END /* past the last */
};

/* The bit of option @id in a set of options, for ids from
 * TOOL_OPT_MAX_SESSIONS on: 32 of them fit. */
#define TOOL_OPT_BIT(id) (1u << (id - TOOL_OPT_MAX_SESSIONS))

/* Whether @id is one of the options that create a domain. */
#define TOOL_IS_CREATE_OPT(id)                                                 \
	((id) >= TOOL_OPT_MAX_SESSIONS && (id) < TOOL_OPT_END)

/* The getopt_long() entries of the options that create a domain. */
/* clang-format off */
#define TOOL_CREATE_LONG_OPTS                                                  \
	{"max-sessions", required_argument, NULL, TOOL_OPT_MAX_SESSIONS},      \
	{"stream-bytes", required_argument, NULL, TOOL_OPT_STREAM_BYTES},      \
	{"max-message", required_argument, NULL, TOOL_OPT_MAX_MESSAGE},        \
	{"max-metadata", required_argument, NULL, TOOL_OPT_MAX_METADATA},      \
	{"idle-ttl", required_argument, NULL, TOOL_OPT_IDLE_TTL},              \
	{"max-processes", required_argument, NULL, TOOL_OPT_MAX_PROCESSES},    \
	{"unblock-ms", required_argument, NULL, TOOL_OPT_UNBLOCK_MS},          \
	{"max-subscriptions", required_argument, NULL,                         \
	 TOOL_OPT_MAX_SUBSCRIPTIONS},                                          \
	{"mode", required_argument, NULL, TOOL_OPT_MODE},                      \
	{"sqlite", required_argument, NULL, TOOL_OPT_SQLITE},                  \
	{"sqlite-async", no_argument, NULL, TOOL_OPT_SQLITE_ASYNC},            \
	{"sqlite-lag-ms", required_argument, NULL, TOOL_OPT_SQLITE_LAG_MS},    \
	{"sqlite-wait-ms", required_argument, NULL, TOOL_OPT_SQLITE_WAIT_MS}
/* clang-format on */

/* What the options that create a domain asked for. */
struct tool_create {
	sesh_config_t cfg; /* the defaults, and the values given */
	unsigned given;	   /* TOOL_OPT_BIT()s of the options given */
};

/* The long name, without its dashes, of option @id, one that creates a
 * domain. */
const char *tool_create_opt_name(int id);

/* Start with the defaults of sesh_config_init() and no option given. */
void tool_create_init(struct tool_create *c);

/*
 * Take option @id, with its argument @arg, into @c. Which values are
 * allowed is the library's to say; this checks that a number is one and
 * fits its field, and that --sqlite is an absolute path no longer than
 * the library takes. Returns 0, the usage exit status (reported, for
 * @verb), or -1 if @id is not an option that creates a domain.
 */
int tool_create_opt(struct tool_create *c, const char *verb, int id,
		    const char *arg);

/*
 * The database options that cannot take effect are usage errors: any of
 * them without --sqlite, the lag without --sqlite-async (it bounds the
 * background commits), the wait with it (it bounds a synchronous call).
 * Returns 0 or the usage exit status, reported for @verb.
 */
int tool_create_check(const struct tool_create *c, const char *verb);

/*
 * Print the help of the options that create a domain, one or more lines
 * each: the option in a column @width wide after two blanks, then what
 * it does and its default (an option too wide for the column has a line
 * of its own).
 */
void tool_create_help(int width);

/* ----------------------------------------------------------------------
 * Why sesh_open() failed
 */

/*
 * Words for sesh_open() failing with @err, called with @flags and, when
 * they hold SESH_CREATE, @sqlite_path (NULL for none), where the
 * library's own are too general: -EINVAL when creating; -ENOTSUP, a
 * library without SQLite, whether creating with a database or attaching
 * to a domain that writes to one; and, creating with a database, the
 * errors that may be its own (-EIO, -EPROTO, -ENOSPC, -E2BIG), which then
 * name it. Without SESH_EXCL the domain may exist already, so -ENOSPC and
 * -EPROTO may be the domain's too, and the words say so. Returns @buf, a
 * static string, or NULL when sesh_strerror() says it as well.
 */
const char *tool_open_error(char *buf, size_t size, int err,
			    const char *sqlite_path, unsigned flags);

/* Room for tool_open_error(): a database path with every byte escaped,
 * and the words around it. */
#define TOOL_OPEN_ERROR_SIZE (4 * SESH_SQLITE_PATH_MAX + 256)

#endif /* SESH_TOOL_H */
