/*
 * sesh.c - the sesh command-line tool: create, describe and remove domains.
 *
 * Each verb parses its own options with getopt_long(), calls the public API
 * of include/sesh.h and prints a report for people or, with --json, one
 * JSON object for programs. Exit status: 0 on success; 1 when the library
 * refuses, with one line "sesh: VERB: NAME: reason" on stderr; 2 on a usage
 * error (unknown verb or option, missing or bad argument).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sesh.h"

#define EXIT_USAGE 2

/* Values of the long options that have no short form. */
enum {
	OPT_MAX_SESSIONS = 256,
	OPT_STREAM_BYTES,
	OPT_MAX_MESSAGE,
	OPT_MAX_METADATA,
	OPT_IDLE_TTL,
	OPT_MAX_PROCESSES,
	OPT_MODE,
	OPT_NS,
	OPT_JSON,
};

/* ----------------------------------------------------------------------
 * Messages
 */

/*
 * Copy @s into @buf with every byte that is not printable ASCII (and the
 * backslash) written as \xNN, so that a name or argument can never break
 * the one-line promise of an error message. Long input is cut with "...".
 */
static const char *clean(char *buf, size_t size, const char *s, size_t max)
{
	size_t o = 0;

	for (size_t i = 0; i < max && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[5];
		size_t len;

		if (c < 0x20 || c >= 0x7f || c == '\\')
			len = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", c);
		else
			len = (size_t)snprintf(tmp, sizeof(tmp), "%c", c);
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

/* The letter of a short option, cleaned as above. */
static const char *short_name(char *buf, size_t size, int c)
{
	char s[2] = {(char)c, '\0'};

	return clean(buf, size, s, 1);
}

/* Print a usage error and the hint; return the usage exit status. */
static int usage_error(const char *verb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int usage_error(const char *verb, const char *fmt, ...)
{
	va_list ap;

	fputs("sesh: ", stderr);
	if (verb)
		fprintf(stderr, "%s: ", verb);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\ntry 'sesh --help'\n", stderr);
	return EXIT_USAGE;
}

/*
 * Report a failure on one line: "sesh: VERB: NAME: reason", or
 * "sesh: VERB: reason" when @name is NULL.
 */
static int fail_because(const char *verb, const char *name, const char *reason)
{
	char q[4 * SESH_NAME_MAX + 8];

	if (name)
		fprintf(stderr, "sesh: %s: %s: %s\n", verb,
			clean(q, sizeof(q), name, SIZE_MAX), reason);
	else
		fprintf(stderr, "sesh: %s: %s\n", verb, reason);
	return EXIT_FAILURE;
}

/* Report that the library refused, with its own words for @err. */
static int fail(const char *verb, const char *name, int err)
{
	return fail_because(verb, name, sesh_strerror(err));
}

/*
 * Turn what getopt_long() returned for a bad option ('?' or ':') into a
 * usage error. The optstrings start with '-' (options and operands in
 * order, no permutation), so argv[optind - 1] is the word just examined.
 */
static int option_error(const char *verb, const struct option *opts, int c,
			char **argv)
{
	const char *word = argv[optind - 1];
	char q[128];

	if (c == ':')
		return usage_error(verb, "option '%s' needs an argument",
				   clean(q, sizeof(q), word, SIZE_MAX));
	if (optopt >= 256) {
		for (const struct option *o = opts; o->name; o++)
			if (o->val == optopt)
				return usage_error(
					verb, "option '--%s' takes no argument",
					o->name);
	}
	if (optopt > 0 && strncmp(word, "--", 2) != 0)
		return usage_error(verb, "unknown option '-%s'",
				   short_name(q, sizeof(q), optopt));
	return usage_error(verb, "unknown or ambiguous option '%s'",
			   clean(q, sizeof(q), word, SIZE_MAX));
}

/* ----------------------------------------------------------------------
 * Numbers
 */

/*
 * Parse an unsigned number strictly: digits of @base only (no sign, no
 * blank, not empty), then, if @scaled, one optional k, m or g (powers of
 * 1024); the result must not exceed @max.
 */
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

static int bad_number(const char *verb, const char *opt, const char *arg)
{
	char q[128];

	return usage_error(verb, "bad number for --%s: '%s'", opt,
			   clean(q, sizeof(q), arg, SIZE_MAX));
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

static void print_text(const sesh_info_t *in, const struct procs *ps)
{
	char t[64], h[32], q[4 * sizeof(ps->v->comm) + 8];

	printf("domain:          %s\n", in->name);
	printf("namespace:       %s\n", in->ns);
	printf("layout version:  %" PRIu32 "\n", in->layout_version);
	printf("domain id:       0x%016" PRIx64 "\n", in->domain_id);
	printf("created:         %s\n", iso_time(t, sizeof(t), in->created_ns));
	printf("max sessions:    %zu\n", in->max_sessions);
	printf("stream bytes:    %zu (%s)\n", in->stream_bytes,
	       human_size(h, sizeof(h), in->stream_bytes));
	printf("max message:     %zu (%s)\n", in->max_message,
	       human_size(h, sizeof(h), in->max_message));
	printf("max metadata:    %zu (%s)\n", in->max_metadata,
	       human_size(h, sizeof(h), in->max_metadata));
	printf("idle ttl:        %" PRIu32 " s\n", in->idle_ttl_s);
	printf("max processes:   %" PRIu32 "\n", in->max_processes);
	printf("mode:            %04o\n", (unsigned)in->mode & 07777);
	printf("segment size:    %" PRIu64 " bytes (%s) virtual\n",
	       in->segment_bytes, human_size(h, sizeof(h), in->segment_bytes));
	printf("committed:       %" PRIu64 " bytes (%s)\n", in->committed_bytes,
	       human_size(h, sizeof(h), in->committed_bytes));
	printf("processes:       %" PRIu32 " alive, %" PRIu32 " dead\n",
	       in->processes_alive, in->processes_dead);

	printf("\n%-6s %-8s %-16s %-6s %s\n", "SLOT", "PID", "COMM", "STATE",
	       "ATTACHED");
	for (size_t i = 0; i < ps->n; i++) {
		const sesh_proc_t *p = &ps->v[i];

		printf("%-6" PRIu32 " %-8ld %-16s %-6s %s%s\n", p->slot,
		       (long)p->pid,
		       clean(q, sizeof(q), p->comm, sizeof(p->comm)),
		       p->alive ? "alive" : "dead",
		       iso_time(t, sizeof(t), p->attached_ns),
		       p->self ? "  (this process)" : "");
	}
}

/* A JSON string; bytes outside printable ASCII are written as \u00XX. */
static void json_string(const char *s, size_t max)
{
	putchar('"');
	for (size_t i = 0; i < max && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void print_json(const sesh_info_t *in, const struct procs *ps)
{
	char t[64];

	printf("{\n  \"name\": ");
	json_string(in->name, sizeof(in->name));
	printf(",\n  \"ns\": ");
	json_string(in->ns, sizeof(in->ns));
	printf(",\n  \"layout_version\": %" PRIu32, in->layout_version);
	printf(",\n  \"domain_id\": \"%016" PRIx64 "\"", in->domain_id);
	printf(",\n  \"created_ns\": %" PRId64, in->created_ns);
	printf(",\n  \"created\": \"%s\"",
	       iso_time(t, sizeof(t), in->created_ns));
	printf(",\n  \"max_sessions\": %zu", in->max_sessions);
	printf(",\n  \"stream_bytes\": %zu", in->stream_bytes);
	printf(",\n  \"max_message\": %zu", in->max_message);
	printf(",\n  \"max_metadata\": %zu", in->max_metadata);
	printf(",\n  \"idle_ttl_s\": %" PRIu32, in->idle_ttl_s);
	printf(",\n  \"max_processes\": %" PRIu32, in->max_processes);
	printf(",\n  \"mode\": \"%04o\"", (unsigned)in->mode & 07777);
	printf(",\n  \"segment_bytes\": %" PRIu64, in->segment_bytes);
	printf(",\n  \"committed_bytes\": %" PRIu64, in->committed_bytes);
	printf(",\n  \"processes_alive\": %" PRIu32, in->processes_alive);
	printf(",\n  \"processes_dead\": %" PRIu32, in->processes_dead);
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
static int describe(sesh_t *d, bool json)
{
	struct procs ps = {NULL, 0, 0};
	sesh_info_t in;
	int err;

	err = sesh_info(d, &in);
	if (!err)
		err = sesh_proc_list(d, collect_proc, &ps);
	if (!err) {
		if (json)
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
 * Verbs
 */

struct verb {
	const char *name;
	int (*run)(const struct verb *v, int argc, char **argv);
	void (*help)(void);
};

static void help_create(void)
{
	sesh_config_t def;

	sesh_config_init(&def);
	printf("usage: sesh create NAME [OPTIONS]\n"
	       "\n"
	       "Create the domain NAME, which must not exist yet, and describe "
	       "it as\n"
	       "'sesh info' does. Capacities are fixed for the domain's "
	       "lifetime.\n"
	       "\n"
	       "options:\n");
	printf("  --max-sessions N    sessions the domain holds (default "
	       "%zu)\n",
	       def.max_sessions);
	printf("  --stream-bytes N    stream capacity of a session, a power of "
	       "two\n"
	       "                      (default %zu)\n",
	       def.stream_bytes);
	printf("  --max-message N     largest message, 0 for stream-bytes/4 "
	       "(default %zu)\n",
	       def.max_message);
	printf("  --max-metadata N    largest metadata of a session (default "
	       "%zu)\n",
	       def.max_metadata);
	printf("  --idle-ttl SECONDS  idle TTL of sessions made without one "
	       "(default %" PRIu32 ")\n",
	       def.idle_ttl_s);
	printf("  --max-processes N   processes attached at once (default "
	       "%" PRIu32 ")\n",
	       def.max_processes);
	printf("  --mode OCTAL        permissions of the shared-memory object "
	       "(default %04o)\n",
	       (unsigned)def.mode);
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
	       "Describe the domain NAME: layout, capacities, sizes, and the "
	       "processes of\n"
	       "its registry, alive or dead. The tool attaches for the time it "
	       "takes, so\n"
	       "it lists itself too.\n"
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

static void help_top(void)
{
	printf("usage: sesh [--help | --version] COMMAND [ARGS]\n"
	       "\n"
	       "Create, inspect and remove sesh domains: shared-memory objects "
	       "through\n"
	       "which the processes of this host share sessions and message "
	       "streams.\n"
	       "\n"
	       "commands:\n"
	       "  create NAME [OPTIONS]  create a domain and describe it\n"
	       "  info NAME [OPTIONS]    describe a domain and its processes\n"
	       "  rm NAME                remove a domain\n"
	       "  help [COMMAND]         show this help, or a command's\n"
	       "\n"
	       "options:\n"
	       "  -h, --help     show this help\n"
	       "  -V, --version  show the version\n"
	       "\n"
	       "'sesh COMMAND --help' lists a command's options. Exit status: "
	       "0 success,\n"
	       "1 failure (one line on stderr), 2 usage error.\n");
}

/*
 * Take an operand: the first one is the domain name, any other is an
 * error. Returns 0, or the usage exit status.
 */
static int take_operand(const char *verb, const char **name, const char *arg)
{
	char q[128];

	if (*name)
		return usage_error(verb, "unexpected argument '%s'",
				   clean(q, sizeof(q), arg, SIZE_MAX));
	*name = arg;
	return 0;
}

/*
 * Parse a verb's arguments: at most one operand, anywhere among the
 * options or after "--"; --help, which prints the verb's help; and the
 * verb's own options, passed to on_opt, which returns 0, an exit status,
 * or -1 for an option it does not know. Returns true when the verb should
 * run (with *operand set, or NULL if it was optional and absent), false
 * when it should exit with *status.
 */
static bool parse_verb(const struct verb *v, int argc, char **argv,
		       const struct option *opts, bool operand_needed,
		       int (*on_opt)(int c, const char *arg, void *ctx),
		       void *ctx, const char **operand, int *status)
{
	int c, err = 0;

	*operand = NULL;
	while (!err && (c = getopt_long(argc, argv, "-:h", opts, NULL)) != -1) {
		if (c == 1) {
			err = take_operand(v->name, operand, optarg);
		} else if (c == 'h') {
			v->help();
			*status = finish(v->name, NULL);
			return false;
		} else {
			err = on_opt != NULL ? on_opt(c, optarg, ctx) : -1;
			if (err < 0)
				err = option_error(v->name, opts, c, argv);
		}
	}
	while (!err && optind < argc)
		err = take_operand(v->name, operand, argv[optind++]);
	if (!err && operand_needed && *operand == NULL)
		err = usage_error(v->name, "missing domain name");
	*status = err;
	return err == 0;
}

/* The numeric options of create: how each is parsed and where it goes.
 * Which values are allowed is the library's to say; this only checks that
 * the number fits its field. */
static const struct num_opt {
	int id;
	const char *name;
	int base;     /* 10, or 8 for a mode */
	bool scaled;  /* takes a k/m/g suffix */
	uint64_t max; /* largest value the field holds */
	size_t off, width;
} num_opts[] = {
#define NUM(id, name, base, scaled, max, field)                                \
	{                                                                      \
		id, name, base, scaled, max, offsetof(sesh_config_t, field),   \
			sizeof(((sesh_config_t *)0)->field)                    \
	}
	NUM(OPT_MAX_SESSIONS, "max-sessions", 10, false, SIZE_MAX,
	    max_sessions),
	NUM(OPT_STREAM_BYTES, "stream-bytes", 10, true, SIZE_MAX, stream_bytes),
	NUM(OPT_MAX_MESSAGE, "max-message", 10, true, SIZE_MAX, max_message),
	NUM(OPT_MAX_METADATA, "max-metadata", 10, true, SIZE_MAX, max_metadata),
	NUM(OPT_IDLE_TTL, "idle-ttl", 10, false, UINT32_MAX, idle_ttl_s),
	NUM(OPT_MAX_PROCESSES, "max-processes", 10, false, UINT32_MAX,
	    max_processes),
	NUM(OPT_MODE, "mode", 8, false, 07777, mode),
#undef NUM
};

/* Parse option `id`'s argument into cfg. Returns "" when done, the
 * option's name when the number is bad, NULL when `id` is not numeric. */
static const char *set_number(sesh_config_t *cfg, int id, const char *arg)
{
	unsigned long long n;
	size_t i;

	for (i = 0; i < sizeof(num_opts) / sizeof(num_opts[0]); i++) {
		const struct num_opt *o = &num_opts[i];
		char *field = (char *)cfg + o->off;

		if (o->id != id)
			continue;
		if (!parse_number(arg, o->base, o->scaled, o->max, &n))
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

struct create_opts {
	const char *verb;
	sesh_config_t cfg;
	bool json;
};

static int create_opt(int c, const char *arg, void *ctx)
{
	struct create_opts *o = ctx;
	const char *bad;

	if (c == OPT_JSON) {
		o->json = true;
		return 0;
	}
	bad = set_number(&o->cfg, c, arg);
	if (bad == NULL)
		return -1;
	return *bad == '\0' ? 0 : bad_number(o->verb, bad, arg);
}

/* Open a domain, describe it, close it; the exit status. */
static int open_and_describe(const struct verb *v, const char *name,
			     const char *ns, const sesh_config_t *cfg,
			     unsigned flags, bool json)
{
	sesh_t *d;
	int err;

	err = sesh_open(name, ns, cfg, flags, &d);
	if (err)
		return fail(v->name, name, err);
	err = describe(d, json);
	sesh_close(d);
	if (err)
		return fail(v->name, name, err);
	return finish(v->name, name);
}

static int cmd_create(const struct verb *v, int argc, char **argv)
{
	static const struct option opts[] = {
		{"max-sessions", required_argument, NULL, OPT_MAX_SESSIONS},
		{"stream-bytes", required_argument, NULL, OPT_STREAM_BYTES},
		{"max-message", required_argument, NULL, OPT_MAX_MESSAGE},
		{"max-metadata", required_argument, NULL, OPT_MAX_METADATA},
		{"idle-ttl", required_argument, NULL, OPT_IDLE_TTL},
		{"max-processes", required_argument, NULL, OPT_MAX_PROCESSES},
		{"mode", required_argument, NULL, OPT_MODE},
		{"json", no_argument, NULL, OPT_JSON},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct create_opts o = {.verb = v->name};
	const char *name;
	int status;

	sesh_config_init(&o.cfg);
	if (!parse_verb(v, argc, argv, opts, true, create_opt, &o, &name,
			&status))
		return status;
	return open_and_describe(v, name, NULL, &o.cfg, SESH_CREATE | SESH_EXCL,
				 o.json);
}

struct info_opts {
	const char *ns;
	bool json;
};

static int info_opt(int c, const char *arg, void *ctx)
{
	struct info_opts *o = ctx;

	if (c == OPT_NS)
		o->ns = arg;
	else if (c == OPT_JSON)
		o->json = true;
	else
		return -1;
	return 0;
}

static int cmd_info(const struct verb *v, int argc, char **argv)
{
	static const struct option opts[] = {
		{"ns", required_argument, NULL, OPT_NS},
		{"json", no_argument, NULL, OPT_JSON},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct info_opts o = {NULL, false};
	const char *name;
	int status;

	if (!parse_verb(v, argc, argv, opts, true, info_opt, &o, &name,
			&status))
		return status;
	return open_and_describe(v, name, o.ns, NULL, 0, o.json);
}

static const struct option help_only[] = {
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static int cmd_rm(const struct verb *v, int argc, char **argv)
{
	const char *name;
	int status, err;

	if (!parse_verb(v, argc, argv, help_only, true, NULL, NULL, &name,
			&status))
		return status;
	err = sesh_unlink(name);
	if (err)
		return fail(v->name, name, err);
	return finish(v->name, name);
}

static const struct verb *find_verb(const char *name);

static int cmd_help(const struct verb *v, int argc, char **argv)
{
	const struct verb *topic_verb = v;
	const char *topic;
	char q[128];
	int status;

	if (!parse_verb(v, argc, argv, help_only, false, NULL, NULL, &topic,
			&status))
		return status;
	if (topic != NULL) {
		topic_verb = find_verb(topic);
		if (topic_verb == NULL)
			return usage_error(
				v->name, "unknown command '%s'",
				clean(q, sizeof(q), topic, SIZE_MAX));
	}
	topic_verb->help();
	return finish(v->name, NULL);
}

static const struct verb verbs[] = {
	{"create", cmd_create, help_create},
	{"info", cmd_info, help_info},
	{"rm", cmd_rm, help_rm},
	{"help", cmd_help, help_top},
};

static const struct verb *find_verb(const char *name)
{
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(verbs[i].name, name))
			return &verbs[i];
	return NULL;
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
	int c;

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
				return usage_error(
					NULL, "unknown option '-%s'",
					short_name(q, sizeof(q), optopt));
			return usage_error(NULL, "unknown option '%s'",
					   clean(q, sizeof(q), argv[optind - 1],
						 SIZE_MAX));
		}
	}
	if (optind >= argc)
		return usage_error(NULL, "missing command");
	v = find_verb(argv[optind]);
	if (!v)
		return usage_error(NULL, "unknown command '%s'",
				   clean(q, sizeof(q), argv[optind], SIZE_MAX));

	/* Hand the verb its own argv (argv[0] is the verb itself) and make
	 * getopt start over: optind = 0 asks glibc for a full reset. */
	argc -= optind;
	argv += optind;
	optind = 0;
	return v->run(v, argc, argv);
}
