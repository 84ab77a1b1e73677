/*
 * tool.c - what sesh(1) and seshd(8) share; see tool.h.
 *
 * Nothing here keeps state: messages go to stderr as they are made, and
 * the options that create a domain land in a struct tool_create that the
 * program owns. The checks stop at what the command line alone can tell;
 * the ranges of the values are the library's to judge, when the domain is
 * created.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tool.h"

/* ----------------------------------------------------------------------
 * Messages
 */

size_t tool_escape_byte(char out[5], unsigned char c)
{
	if (c < 0x20 || c >= 0x7f || c == '\\')
		return (size_t)snprintf(out, 5, "\\x%02x", c);
	out[0] = (char)c;
	out[1] = '\0';
	return 1;
}

const char *tool_clean(char *buf, size_t size, const char *s, size_t max)
{
	size_t o = 0;

	for (size_t i = 0; i < max && s[i]; i++) {
		char tmp[5];
		size_t len = tool_escape_byte(tmp, (unsigned char)s[i]);

		if (o + len + 4 > size) {
			memcpy(buf + o, "...", 4);
			return buf;
		}
		memcpy(buf + o, tmp, len);
		o += len;
	}
	buf[o] = '\0';
	return buf;
}

int tool_usage_error(const char *verb, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", tool_prog);
	if (verb)
		fprintf(stderr, "%s: ", verb);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\ntry '%s --help'\n", tool_prog);
	return EXIT_USAGE;
}

int tool_option_error(const char *verb, const struct option *opts, int c,
		      char **argv)
{
	const char *word = argv[optind - 1];
	char q[128];

	if (c == ':')
		return tool_usage_error(
			verb, "option '%s' needs an argument",
			tool_clean(q, sizeof(q), word, SIZE_MAX));
	if (optopt >= 256) {
		for (const struct option *o = opts; o->name; o++)
			if (o->val == optopt)
				return tool_usage_error(
					verb, "option '--%s' takes no argument",
					o->name);
	}
	if (optopt > 0 && strncmp(word, "--", 2) != 0) {
		char s[2] = {(char)optopt, '\0'};

		return tool_usage_error(verb, "unknown option '-%s'",
					tool_clean(q, sizeof(q), s, 1));
	}
	return tool_usage_error(verb, "unknown or ambiguous option '%s'",
				tool_clean(q, sizeof(q), word, SIZE_MAX));
}

/* ----------------------------------------------------------------------
 * Numbers
 */

bool tool_parse_number(const char *s, int base, bool scaled,
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

int tool_bad_number(const char *verb, const char *opt, const char *arg)
{
	char q[128];

	return tool_usage_error(verb, "bad number for --%s: '%s'", opt,
				tool_clean(q, sizeof(q), arg, SIZE_MAX));
}

/* ----------------------------------------------------------------------
 * The options that create a domain
 */

static const struct option create_opts[] = {TOOL_CREATE_LONG_OPTS};

_Static_assert(ARRAY_SIZE(create_opts) == TOOL_OPT_END - TOOL_OPT_MAX_SESSIONS,
	       "every option that creates a domain has its entry");

const char *tool_create_opt_name(int id)
{
	return create_opts[id - TOOL_OPT_MAX_SESSIONS].name;
}

/* The numeric options: how each is parsed and which field of the
 * configuration it sets. */
static const struct num_opt {
	int id;
	int base;     /* 10, or 8 for a mode */
	bool scaled;  /* takes a k/m/g suffix */
	uint64_t max; /* largest value the field holds */
	size_t off, width;
} num_opts[] = {
#define NUM(id, base, scaled, max, field)                                      \
	{                                                                      \
		id, base, scaled, max, offsetof(sesh_config_t, field),         \
			sizeof(((sesh_config_t *)0)->field)                    \
	}
	NUM(TOOL_OPT_MAX_SESSIONS, 10, false, SIZE_MAX, max_sessions),
	NUM(TOOL_OPT_STREAM_BYTES, 10, true, SIZE_MAX, stream_bytes),
	NUM(TOOL_OPT_MAX_MESSAGE, 10, true, SIZE_MAX, max_message),
	NUM(TOOL_OPT_MAX_METADATA, 10, true, SIZE_MAX, max_metadata),
	NUM(TOOL_OPT_IDLE_TTL, 10, false, UINT32_MAX, idle_ttl_s),
	NUM(TOOL_OPT_MAX_PROCESSES, 10, false, UINT32_MAX, max_processes),
	NUM(TOOL_OPT_UNBLOCK_MS, 10, false, UINT32_MAX, unblock_ms),
	NUM(TOOL_OPT_MAX_SUBSCRIPTIONS, 10, false, UINT32_MAX,
	    max_subscriptions),
	NUM(TOOL_OPT_MODE, 8, false, 07777, mode),
	NUM(TOOL_OPT_SQLITE_LAG_MS, 10, false, UINT32_MAX, sqlite_lag_ms),
	NUM(TOOL_OPT_SQLITE_WAIT_MS, 10, false, UINT32_MAX, sqlite_wait_ms),
#undef NUM
};

/* Store @n into the field of @cfg at @off, of @width bytes: a size_t, or a
 * uint32_t or mode_t (both 32 bits). */
static void store(sesh_config_t *cfg, size_t off, size_t width,
		  unsigned long long n)
{
	char *field = (char *)cfg + off;

	if (width == sizeof(uint64_t)) {
		uint64_t v = n;

		memcpy(field, &v, sizeof(v));
	} else {
		uint32_t v = (uint32_t)n;

		memcpy(field, &v, sizeof(v));
	}
}

_Static_assert(sizeof(mode_t) == sizeof(uint32_t),
	       "store() writes a mode_t as a uint32_t");

void tool_create_init(struct tool_create *c)
{
	memset(c, 0, sizeof(*c));
	sesh_config_init(&c->cfg);
}

/*
 * --sqlite PATH. The library wants an absolute path, because every
 * process of the domain opens the file by the name kept in the segment,
 * from whatever directory it runs in; a relative one is refused here
 * rather than made absolute, so that the name stored is the name typed.
 */
static int set_sqlite(struct tool_create *c, const char *verb, const char *arg)
{
	char q[128];

	if (arg[0] != '/')
		return tool_usage_error(
			verb, "--sqlite needs an absolute path, not '%s'",
			tool_clean(q, sizeof(q), arg, SIZE_MAX));
	if (strlen(arg) > SESH_SQLITE_PATH_MAX)
		return tool_usage_error(
			verb, "--sqlite: the path is longer than %d bytes",
			SESH_SQLITE_PATH_MAX);
	c->cfg.sqlite_path = arg;
	return 0;
}

int tool_create_opt(struct tool_create *c, const char *verb, int id,
		    const char *arg)
{
	unsigned long long n;

	if (!TOOL_IS_CREATE_OPT(id))
		return -1;
	c->given |= TOOL_OPT_BIT(id);
	if (id == TOOL_OPT_SQLITE)
		return set_sqlite(c, verb, arg);
	if (id == TOOL_OPT_SQLITE_ASYNC) {
		c->cfg.sqlite_mode = SESH_SQLITE_ASYNC;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(num_opts); i++) {
		const struct num_opt *o = &num_opts[i];

		if (o->id != id)
			continue;
		if (!tool_parse_number(arg, o->base, o->scaled, o->max, &n))
			return tool_bad_number(verb, tool_create_opt_name(id),
					       arg);
		store(&c->cfg, o->off, o->width, n);
		return 0;
	}
	return -1; /* cannot happen: every other option is a number */
}

int tool_create_check(const struct tool_create *c, const char *verb)
{
	/* the database options but --sqlite itself */
	unsigned others = c->given & (TOOL_OPT_BIT(TOOL_OPT_END) -
				      TOOL_OPT_BIT(TOOL_OPT_SQLITE_ASYNC));
	bool async = c->cfg.sqlite_mode == SESH_SQLITE_ASYNC;

	if (others && !c->cfg.sqlite_path) {
		int id = TOOL_OPT_SQLITE_ASYNC;

		while (!(others & TOOL_OPT_BIT(id)))
			id++;
		return tool_usage_error(verb,
					"--%s is for a database: it needs "
					"--sqlite",
					tool_create_opt_name(id));
	}
	if ((c->given & TOOL_OPT_BIT(TOOL_OPT_SQLITE_LAG_MS)) && !async)
		return tool_usage_error(
			verb, "--sqlite-lag-ms is for the asynchronous "
			      "mode: it needs --sqlite-async");
	if ((c->given & TOOL_OPT_BIT(TOOL_OPT_SQLITE_WAIT_MS)) && async)
		return tool_usage_error(
			verb, "--sqlite-wait-ms is for the synchronous "
			      "mode: not with --sqlite-async");
	return 0;
}

/*
 * One option of the help: "  OPTION" in a column @width wide, then the
 * text made of @fmt, whose lines after the first are indented to the
 * column of the text.
 */
static void help_opt(int width, const char *label, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void help_opt(int width, const char *label, const char *fmt, ...)
{
	char text[256];
	const char *line = text, *nl;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if ((int)strlen(label) < width)
		printf("  %-*s", width, label);
	else
		printf("  %s\n%*s", label, width + 2, "");
	while ((nl = strchr(line, '\n')) != NULL) {
		printf("%.*s\n%*s", (int)(nl - line), line, width + 2, "");
		line = nl + 1;
	}
	printf("%s\n", line);
}

void tool_create_help(int width)
{
	sesh_config_t def;

	sesh_config_init(&def);
	help_opt(width, "--max-sessions N",
		 "sessions the domain holds (default %zu)", def.max_sessions);
	help_opt(width, "--stream-bytes N",
		 "stream capacity of a session, a power of two\n"
		 "(default %zu)",
		 def.stream_bytes);
	help_opt(width, "--max-message N",
		 "largest message, 0 for stream-bytes/4 (default %zu)",
		 def.max_message);
	help_opt(width, "--max-metadata N",
		 "largest metadata of a session (default %zu)",
		 def.max_metadata);
	help_opt(width, "--idle-ttl SECONDS",
		 "idle TTL of sessions made without one (default %" PRIu32 ")",
		 def.idle_ttl_s);
	help_opt(width, "--max-processes N",
		 "processes attached at once (default %" PRIu32 ")",
		 def.max_processes);
	help_opt(width, "--unblock-ms MS",
		 "how long a stream waits for a stalled publisher\n"
		 "(default %" PRIu32 ")",
		 def.unblock_ms);
	help_opt(width, "--max-subscriptions N",
		 "streams one process may have open (default %" PRIu32 ")",
		 def.max_subscriptions);
	help_opt(width, "--mode OCTAL",
		 "permissions of the shared-memory object (default %04o)",
		 (unsigned)def.mode);
	help_opt(width, "--sqlite PATH", "%s",
		 "write the sessions through to the SQLite database PATH,\n"
		 "an absolute path; the sessions it holds are restored");
	help_opt(width, "--sqlite-async", "%s",
		 "commit in the background; by default, each create,\n"
		 "update or delete waits for its commit");
	help_opt(width, "--sqlite-lag-ms MS",
		 "with --sqlite-async: how long a change may wait to be\n"
		 "committed (default %" PRIu32 ")",
		 def.sqlite_lag_ms);
	help_opt(width, "--sqlite-wait-ms MS",
		 "without --sqlite-async: how long a change waits for\n"
		 "another process's commit (default %" PRIu32 ")",
		 def.sqlite_wait_ms);
}

/* ----------------------------------------------------------------------
 * Why sesh_open() failed
 */

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
 * How it works. Creating with a database, sesh_open() opens it, and
 * restores what it holds before the domain is published; the errors of
 * that step are errors of the call. -EIO: the file cannot be opened,
 * created or read (the directory is the usual cause, and stat() can tell
 * it); -EPROTO: the file is not a sesh database (SQLite or not) or has a
 * newer schema; -ENOSPC: it holds more live sessions than max_sessions;
 * -E2BIG: a session's metadata is over max_metadata. -ENOTSUP comes from
 * a library built without SQLite, creating with a database or attaching
 * to a domain that writes to one. Without SESH_EXCL, an existing domain
 * is attached instead, which adds its own -EPROTO (not a sesh domain) and
 * -ENOSPC (its registry is full).
 */
const char *tool_open_error(char *buf, size_t size, int err,
			    const char *sqlite_path, unsigned flags)
{
	bool create = flags & SESH_CREATE, may_exist = !(flags & SESH_EXCL);
	const char *path = create ? sqlite_path : NULL, *dir;
	char q[4 * SESH_SQLITE_PATH_MAX + 8];

	if (err == -EINVAL && create) {
		snprintf(buf, size,
			 "invalid argument: a bad name, or a capacity%s out "
			 "of range (see sesh_open(3))",
			 path ? " or a database option" : "");
		return buf;
	}
	if (err == -ENOTSUP && path)
		return "--sqlite: this sesh library was built without SQLite";
	if (err == -ENOTSUP)
		return "the domain writes through to SQLite, and this sesh "
		       "library was built without it";
	if (!path)
		return NULL;
	tool_clean(q, sizeof(q), path, SIZE_MAX);
	if (err == -EIO && (dir = dir_problem(path)) != NULL)
		snprintf(buf, size,
			 "the database %s cannot be created: its directory: %s",
			 q, dir);
	else if (err == -EIO)
		snprintf(buf, size,
			 "the database %s cannot be opened, created or read "
			 "(or an unexpected system error)",
			 q);
	else if (err == -EPROTO)
		snprintf(buf, size,
			 "%s is not a sesh database (another program's, or "
			 "not SQLite at all), or has a newer schema%s",
			 q,
			 may_exist ? ", or the domain's object is not a sesh "
				     "domain"
				   : "");
	else if (err == -ENOSPC)
		snprintf(buf, size,
			 "no space left: the database %s holds more live "
			 "sessions than --max-sessions, or the segment is too "
			 "large%s",
			 q, may_exist ? ", or the registry is full" : "");
	else if (err == -E2BIG)
		snprintf(buf, size,
			 "the database %s holds a session whose metadata is "
			 "larger than --max-metadata",
			 q);
	else
		return NULL;
	return buf;
}
