/*
 * bench/ir.c - loops of the hot calls, for counting their instructions
 * under callgrind (bench/ir.sh runs it).
 *
 *   bench/ir [--resident N] [--ops K]
 *
 * Sets up a domain of N sessions (default 10000), then runs K calls
 * (default 10000) of each operation in a function of its own:
 *
 *   ir_get      sesh_session_get() of a random session, with the owner
 *               check and a 256-byte metadata buffer (sessions carry 64)
 *   ir_touch    sesh_session_touch() of a random session
 *   ir_publish  sesh_publish() of 64 bytes (no subscriber: the ring laps)
 *   ir_next     sesh_stream_next(s, &m, 0) of a 64-byte message (copied)
 *
 * Under valgrind --tool=callgrind --collect-atstart=no
 * --toggle-collect=ir_get, only what ir_get runs is counted. These
 * functions are never inlined nor cloned (a clone would carry another
 * name) and hold nothing but the loop; everything else happens outside
 * them: drawing the random order, a first call of each operation (it
 * registers the thread as a reader, reserves the ring, grows the copy
 * buffer), and filling the ring that ir_next reads.
 *
 * ir_next: a ring retains at most stream_bytes / 128 messages, and at
 * least half that, so K messages are read in chunks of 256 (with the
 * default 64 KiB), the ring refilled between chunks outside ir_next;
 * callgrind adds the calls up, and the few instructions of each extra
 * call are spread over the chunk.
 *
 * Exit status: 0, 1 on a failure (with sesh_strerror()'s text), 2 on a
 * usage error. The domain is removed at exit.
 */
#define _GNU_SOURCE
#include "bench/bench.h"
#include "sesh.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keep the loops whole and under their own names. */
#if defined(__GNUC__) && !defined(__clang__)
#define IR_COUNTED __attribute__((noipa))
#else
#define IR_COUNTED __attribute__((noinline))
#endif

#define IR_ID_STRIDE 16	 /* bytes per id in the id array */
#define IR_META_LEN  64	 /* metadata of each session */
#define IR_META_CAP  256 /* buffer that get copies into */
#define IR_MSG_LEN   64	 /* message size of publish and next */
#define IR_USER	     "bench-user"
#define IR_PUB_ID    "ir-publish"
#define IR_NEXT_ID   "ir-next"

static char dom_name[SESH_NAME_MAX + 1];
static int dom_made;

static void cleanup(void)
{
	if (dom_made) {
		dom_made = 0;
		sesh_unlink(dom_name);
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ir [--resident N] [--ops K]\n"
		   "  --resident N  sessions in the domain (default 10000)\n"
		   "  --ops K       calls of each operation (default 10000)\n");
}

static size_t parse_count(const char *opt, const char *s, size_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < 1 || v > max) {
		fprintf(stderr, "ir: %s wants a number from 1 to %zu\n", opt,
			max);
		usage(stderr);
		exit(2);
	}
	return (size_t)v;
}

static void check(const char *what, int rc)
{
	if (rc != 0)
		bench_die("%s: %s", what, sesh_strerror(rc));
}

/* xorshift64*: a fixed seed, so every run draws the same sessions. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* ---- the counted loops ------------------------------------------------- */

IR_COUNTED static int ir_get(sesh_t *d, const char *ids, const uint32_t *order,
			     size_t k, void *meta)
{
	sesh_session_t s;
	size_t i;
	int rc;

	for (i = 0; i < k; i++) {
		rc = sesh_session_get(d, ids + order[i] * IR_ID_STRIDE, IR_USER,
				      &s, meta, IR_META_CAP);
		if (rc != 0)
			return rc;
	}
	return 0;
}

IR_COUNTED static int ir_touch(sesh_t *d, const char *ids,
			       const uint32_t *order, size_t k)
{
	size_t i;
	int rc;

	for (i = 0; i < k; i++) {
		rc = sesh_session_touch(d, ids + order[i] * IR_ID_STRIDE);
		if (rc != 0)
			return rc;
	}
	return 0;
}

IR_COUNTED static int ir_publish(sesh_t *d, const void *msg, size_t k)
{
	size_t i;
	int rc;

	for (i = 0; i < k; i++) {
		rc = sesh_publish(d, IR_PUB_ID, msg, IR_MSG_LEN, NULL);
		if (rc != 0)
			return rc;
	}
	return 0;
}

IR_COUNTED static int ir_next(sesh_stream_t *s, size_t k)
{
	sesh_msg_t m;
	size_t i;
	int rc;

	for (i = 0; i < k; i++) {
		rc = sesh_stream_next(s, &m, 0);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* ---- set-up ------------------------------------------------------------ */

/* Publish @p n messages of @p msg to the stream that ir_next reads. */
static void fill(sesh_t *d, sesh_buf_t *bufs, size_t n)
{
	check("sesh_publish_batch",
	      sesh_publish_batch(d, IR_NEXT_ID, bufs, n, NULL));
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"resident", required_argument, NULL, 'r'},
		{"ops", required_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	size_t resident = 10000, k = 10000, i, chunk, done;
	char meta[IR_META_CAP], msg[IR_MSG_LEN], *ids;
	sesh_config_t cfg;
	sesh_info_t info;
	sesh_session_t s;
	sesh_stream_t *st;
	sesh_buf_t *bufs;
	sesh_msg_t m;
	uint32_t *order;
	sesh_t *d;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			resident = parse_count("--resident", optarg,
					       SESH_MAX_SESSIONS / 2);
			break;
		case 'k':
			k = parse_count("--ops", optarg, 1000000000);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "ir: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	/* Ids "s<9 digits>", one per IR_ID_STRIDE bytes. */
	ids = malloc(resident * IR_ID_STRIDE);
	order = malloc(k * sizeof(*order));
	if (!ids || !order)
		bench_die("out of memory");
	for (i = 0; i < resident; i++)
		snprintf(ids + i * IR_ID_STRIDE, IR_ID_STRIDE, "s%09u",
			 (unsigned)i);
	for (i = 0; i < k; i++)
		order[i] = (uint32_t)(rng_next() % resident);
	memset(meta, 'm', IR_META_LEN);
	memset(msg, 'p', sizeof(msg));

	snprintf(dom_name, sizeof(dom_name), "%s", bench_name("bench-ir"));
	sesh_config_init(&cfg);
	cfg.max_sessions = resident + resident / 8 + 64;
	atexit(cleanup);
	check("sesh_open",
	      sesh_open(dom_name, NULL, &cfg, SESH_CREATE | SESH_EXCL, &d));
	dom_made = 1;
	check("sesh_info", sesh_info(d, &info));

	for (i = 0; i < resident; i++)
		check("sesh_session_create",
		      sesh_session_create(d, ids + i * IR_ID_STRIDE, IR_USER,
					  meta, IR_META_LEN, 0, NULL));
	check("sesh_session_create",
	      sesh_session_create(d, IR_PUB_ID, IR_USER, NULL, 0, 0, NULL));
	check("sesh_session_create",
	      sesh_session_create(d, IR_NEXT_ID, IR_USER, NULL, 0, 0, NULL));

	/* First calls, uncounted: reader registration, ring reservation. */
	check("sesh_session_get",
	      sesh_session_get(d, ids, IR_USER, &s, meta, IR_META_CAP));
	check("sesh_session_touch", sesh_session_touch(d, ids));
	check("sesh_publish",
	      sesh_publish(d, IR_PUB_ID, msg, IR_MSG_LEN, NULL));

	check("get", ir_get(d, ids, order, k, meta));
	check("touch", ir_touch(d, ids, order, k));
	check("publish", ir_publish(d, msg, k));

	/* next: a subscriber that has read one message (its buffer grown),
	 * then chunks of what the ring surely retains. */
	chunk = info.stream_bytes / 128 / 2;
	if (chunk > k)
		chunk = k;
	bufs = malloc(chunk * sizeof(*bufs));
	if (!bufs)
		bench_die("out of memory");
	for (i = 0; i < chunk; i++) {
		bufs[i].data = msg;
		bufs[i].len = IR_MSG_LEN;
	}
	check("sesh_subscribe",
	      sesh_subscribe(d, IR_NEXT_ID, SESH_FROM_LATEST, &st));
	fill(d, bufs, 1);
	check("sesh_stream_next", sesh_stream_next(st, &m, 0));
	for (done = 0; done < k; done += chunk) {
		if (chunk > k - done)
			chunk = k - done;
		fill(d, bufs, chunk);
		check("next", ir_next(st, chunk));
	}

	sesh_stream_close(st);
	sesh_close(d);
	cleanup();
	free(bufs);
	free(order);
	free(ids);
	return 0;
}
