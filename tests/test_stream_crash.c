/*
 * test_stream_crash.c - publishers killed (SIGKILL) or stopped (SIGSTOP)
 * between claiming space and committing, at each such point and at
 * random times: every message whose sesh_publish() returned is delivered
 * exactly once, nothing else is, and the stream never stalls for longer
 * than the unblock timeout (at once when the publisher is known dead).
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#include <cmocka.h>

#include "ring/ring.h"

#define UNBLOCK_MS 150
/* How long a subscriber may wait for a message that must come: the
 * unblock timeout, plus a scheduling margin for a loaded machine. This
 * bounds a hang, it measures nothing. */
#define MUST_ARRIVE_MS (UNBLOCK_MS * 4 + 3000)

/* A message that says what it must look like: publisher, sequence, a
 * length and fill derived from both. A torn message cannot pass. */
struct hdr {
	uint32_t pub, seq;
};

static size_t msg_make(uint8_t *m, uint32_t pub, uint32_t seq)
{
	struct hdr h = {pub, seq};
	size_t len = sizeof(h) + (pub * 7 + seq * 13) % 200, i;

	memcpy(m, &h, sizeof(h));
	for (i = sizeof(h); i < len; i++)
		m[i] = (uint8_t)(pub * 31 + seq * 17 + i);
	return len;
}

static bool msg_check(const sesh_msg_t *msg, struct hdr *h)
{
	const uint8_t *m = msg->data;
	size_t i;

	if (msg->len < sizeof(*h))
		return false;
	memcpy(h, m, sizeof(*h));
	if (msg->len != sizeof(*h) + (h->pub * 7 + h->seq * 13) % 200)
		return false;
	for (i = sizeof(*h); i < msg->len; i++)
		if (m[i] != (uint8_t)(h->pub * 31 + h->seq * 17 + i))
			return false;
	return true;
}

static sesh_t *open_domain(char *name, size_t n, const char *tag,
			   size_t stream_bytes)
{
	sesh_config_t cfg;

	tu_small(&cfg);
	cfg.stream_bytes = stream_bytes;
	cfg.unblock_ms = UNBLOCK_MS;
	tu_name(name, n, tag);
	return tu_create(name, &cfg);
}

/* --- kill or stop at each point of a publish ------------------------------ */

static enum ring_point hook_at;
static int hook_countdown;
static int hook_sig;

static void hook(enum ring_point p)
{
	if (p == hook_at && --hook_countdown == 0)
		raise(hook_sig);
}

/*
 * A publisher child: publishes messages 0, 1, ... of publisher `pub`,
 * writing each sequence to `ack` once sesh_publish() returned 0, and
 * meets `sig` at point `at` of publish number `nth` (1-based). Writes
 * UINT32_MAX then the failing return value if a publish fails.
 */
static pid_t publisher(const char *name, uint32_t pub, int ack,
		       enum ring_point at, int nth, int sig, uint32_t count)
{
	pid_t parent = getpid(), pid = fork();
	uint8_t m[256];
	sesh_t *d;
	uint32_t seq;
	int rc;

	if (pid != 0)
		return pid;
	tu_die_with(parent);
	if (sesh_open(name, NULL, NULL, 0, &d) != 0)
		_exit(10);
	hook_at = at;
	hook_countdown = nth;
	hook_sig = sig;
	ring_test_hook = sig ? hook : NULL;
	for (seq = 0; seq < count; seq++) {
		size_t len = msg_make(m, pub, seq);

		rc = sesh_publish(d, "s", m, len, NULL);
		if (rc != 0) {
			uint32_t bad = UINT32_MAX;
			int32_t r = rc;

			tu_put(ack, &bad, sizeof(bad));
			tu_put(ack, &r, sizeof(r));
			_exit(0);
		}
		tu_put(ack, &seq, sizeof(seq));
	}
	_exit(0);
}

/* Read until a message of publisher `want_pub` arrives, checking every
 * message on the way; next[p] is the sequence expected of publisher p.
 * Returns the number of messages read, or fails the test. */
static unsigned read_until(sesh_stream_t *s, uint32_t want_pub, uint32_t *next,
			   uint32_t npub)
{
	unsigned n = 0;

	for (;;) {
		sesh_msg_t msg;
		struct hdr h;
		int rc = sesh_stream_next(s, &msg, MUST_ARRIVE_MS);

		if (rc != 0)
			fail_msg("stream stalled or broke: %s (read %u)",
				 sesh_strerror(rc), n);
		if (!msg_check(&msg, &h))
			fail_msg("torn message");
		if (h.pub >= npub)
			fail_msg("message of unknown publisher %u", h.pub);
		if (h.seq != next[h.pub])
			fail_msg("publisher %u: got %u, expected %u", h.pub,
				 h.seq, next[h.pub]);
		next[h.pub]++;
		n++;
		if (h.pub == want_pub)
			return n;
	}
}

static void kill_at(enum ring_point at, int sig)
{
	char name[64];
	sesh_t *d = open_domain(name, sizeof(name), "sk", 65536);
	sesh_stats_t st0, st1;
	sesh_stream_t *s;
	uint32_t next[2] = {0, 0}, acked = 0, seq;
	uint8_t m[256];
	int round, p[2];

	assert_int_equal(sesh_session_create(d, "s", "u", NULL, 0, 0, NULL), 0);
	assert_int_equal(sesh_subscribe(d, "s", SESH_FROM_LATEST, &s), 0);
	for (round = 0; round < 3; round++) {
		int nth = 1 + rand() % 20;
		uint32_t got_acks = 0;
		pid_t pid;

		assert_int_equal(pipe(p), 0);
		assert_int_equal(sesh_stats(d, &st0), 0);
		next[0] = 0;
		pid = publisher(name, 0, p[1], at, nth, sig, 1000);
		close(p[1]);
		/* The publish that meets the signal is number nth: the
		 * nth - 1 before it returned. */
		while (got_acks < (uint32_t)nth - 1 &&
		       tu_get(p[0], &seq, sizeof(seq)) == 0) {
			assert_int_equal(seq, got_acks);
			got_acks++;
		}
		assert_int_equal(got_acks, nth - 1);
		if (sig == SIGSTOP) {
			/* Wait until it is stopped inside the publish. */
			int st;

			assert_int_equal(waitpid(pid, &st, WUNTRACED), pid);
			assert_true(WIFSTOPPED(st));
		} else {
			assert_int_equal(tu_wait(pid), 128 + SIGKILL);
		}
		/* Our own message after the hole must come, past it. */
		msg_make(m, 1, next[1]);
		assert_int_equal(
			sesh_publish(d, "s", m, msg_make(m, 1, next[1]), NULL),
			0);
		read_until(s, 1, next, 2);
		/* Exactly what returned before the signal, nothing of the
		 * publish it interrupted. */
		assert_int_equal(next[0], nth - 1);
		assert_int_equal(sesh_stats(d, &st1), 0);
		assert_true(st1.holes_unblocked > st0.holes_unblocked);
		if (sig == SIGSTOP) {
			uint32_t bad;
			int32_t rc;

			kill(pid, SIGCONT);
			/* Its publish now fails: its space was given up. */
			assert_int_equal(tu_get(p[0], &bad, sizeof(bad)), 0);
			assert_int_equal(bad, UINT32_MAX);
			assert_int_equal(tu_get(p[0], &rc, sizeof(rc)), 0);
			assert_int_equal(rc, -ETIMEDOUT);
			assert_int_equal(tu_wait(pid), 0);
			assert_int_equal(sesh_stats(d, &st1), 0);
			assert_true(st1.publish_failed > st0.publish_failed);
		}
		close(p[0]);
		acked += got_acks;
	}
	/* Nothing of the interrupted publishes shows up late. */
	{
		sesh_msg_t msg;

		assert_int_equal(sesh_stream_next(s, &msg, 0), -EAGAIN);
	}
	sesh_stream_close(s);
	assert_true(sesh_recover(d) >= 0);
	sesh_close(d);
	sesh_unlink(name);
	(void)acked;
}

static void test_kill_after_claim(void **state)
{
	(void)state;
	kill_at(RING_P_CLAIMED, SIGKILL);
}

static void test_kill_after_descriptor(void **state)
{
	(void)state;
	kill_at(RING_P_DESCRIBED, SIGKILL);
}

static void test_kill_before_commit(void **state)
{
	(void)state;
	kill_at(RING_P_COPIED, SIGKILL);
}

static void test_stop_before_commit(void **state)
{
	(void)state;
	kill_at(RING_P_COPIED, SIGSTOP);
}

static void test_stop_after_claim(void **state)
{
	(void)state;
	kill_at(RING_P_CLAIMED, SIGSTOP);
}

/* --- random kills, several publishers ------------------------------------- */

#define NPUB_MAX 256

/* Shared with the publishers: how far each got, and how far the reader
 * got (publishers stay within a window of it, so nobody is lapped). */
struct shared {
	_Atomic uint32_t acked[NPUB_MAX]; /* sequences returned, +1 */
	_Atomic uint64_t published;
	_Atomic uint64_t delivered;
};

static pid_t racer(const char *name, uint32_t pub, struct shared *sh)
{
	pid_t parent = getpid(), pid = fork();
	uint8_t m[256];
	sesh_t *d;
	uint32_t seq;

	if (pid != 0)
		return pid;
	tu_die_with(parent);
	if (sesh_open(name, NULL, NULL, 0, &d) != 0)
		_exit(10);
	for (seq = 0;;) {
		size_t len = msg_make(m, pub, seq);
		int rc;

		while (atomic_load(&sh->published) >
		       atomic_load(&sh->delivered) + 2000)
			usleep(100);
		rc = sesh_publish(d, "s", m, len, NULL);
		if (rc == -ETIMEDOUT || rc == -EAGAIN)
			continue; /* not published: the same again */
		if (rc != 0) {
			fprintf(stderr, "publisher %u: %s\n", pub,
				sesh_strerror(rc));
			_exit(20);
		}
		atomic_fetch_add(&sh->published, 1);
		atomic_store(&sh->acked[pub], ++seq);
	}
}

static void test_random_kills(void **state)
{
	char name[64];
	sesh_t *d = open_domain(name, sizeof(name), "sr", 1 << 20);
	struct shared *sh;
	sesh_stream_t *s;
	uint32_t next[NPUB_MAX] = {0}, npub = 0, i;
	pid_t pids[3];
	unsigned kills;
	uint8_t m[256];

	(void)state;
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(sh != MAP_FAILED);
	memset(sh, 0, sizeof(*sh));
	assert_int_equal(sesh_session_create(d, "s", "u", NULL, 0, 0, NULL), 0);
	assert_int_equal(sesh_subscribe(d, "s", SESH_FROM_LATEST, &s), 0);
	for (i = 0; i < 3; i++) {
		pids[i] = racer(name, npub, sh);
		npub++;
	}
	for (kills = 0; kills < 40 && npub < NPUB_MAX - 1; kills++) {
		struct timespec until, now;
		long ms = rand() % 6;

		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_nsec += ms * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		/* Read for a while, then kill one and start another. */
		do {
			sesh_msg_t msg;
			struct hdr h;
			int rc = sesh_stream_next(s, &msg, 1);

			if (rc == 0) {
				if (!msg_check(&msg, &h) || h.pub >= npub)
					fail_msg("torn or foreign message");
				if (h.seq != next[h.pub])
					fail_msg("publisher %u: got %u, "
						 "expected %u",
						 h.pub, h.seq, next[h.pub]);
				next[h.pub]++;
				atomic_fetch_add(&sh->delivered, 1);
			} else if (rc != -ETIMEDOUT) {
				fail_msg("next: %s", sesh_strerror(rc));
			}
			clock_gettime(CLOCK_MONOTONIC, &now);
		} while (now.tv_sec < until.tv_sec ||
			 (now.tv_sec == until.tv_sec &&
			  now.tv_nsec < until.tv_nsec));
		i = (unsigned)rand() % 3;
		kill(pids[i], SIGKILL);
		assert_int_equal(tu_wait(pids[i]), 128 + SIGKILL);
		pids[i] = racer(name, npub, sh);
		npub++;
	}
	for (i = 0; i < 3; i++) {
		kill(pids[i], SIGKILL);
		tu_wait(pids[i]);
	}
	/* A last message of our own: everything before it must come first,
	 * within the unblock timeout of the holes the dead left. */
	assert_int_equal(sesh_publish(d, "s", m, msg_make(m, npub, 0), NULL),
			 0);
	read_until(s, npub, next, npub + 1);
	for (i = 0; i < npub; i++) {
		uint32_t a = atomic_load(&sh->acked[i]);

		/* Every returned publish delivered; at most one more (it
		 * committed, and was killed before it could say so). */
		if (next[i] < a || next[i] > a + 1)
			fail_msg("publisher %u: %u returned, %u delivered", i,
				 a, next[i]);
	}
	sesh_stream_close(s);
	assert_true(sesh_recover(d) >= 0);
	sesh_close(d);
	sesh_unlink(name);
	munmap(sh, sizeof(*sh));
}

/* --- a subscriber killed: its pin goes, its ring can be reused ------------ */

static void test_dead_subscriber(void **state)
{
	char name[64];
	sesh_t *d = open_domain(name, sizeof(name), "sd", 4096);
	sesh_info_t in;
	pid_t parent = getpid(), pid;
	int p[2];
	char c;

	(void)state;
	assert_int_equal(sesh_session_create(d, "s", "u", NULL, 0, 0, NULL), 0);
	assert_int_equal(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		sesh_stream_t *s;
		sesh_t *c2;

		tu_die_with(parent);
		if (sesh_open(name, NULL, NULL, 0, &c2) != 0 ||
		    sesh_subscribe(c2, "s", SESH_FROM_OLDEST, &s) != 0)
			_exit(10);
		tu_put(p[1], "x", 1);
		pause();
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(tu_get(p[0], &c, 1), 0);
	assert_int_equal(sesh_info(d, &in), 0);
	assert_int_equal(in.streams_open, 1);
	kill(pid, SIGKILL);
	assert_int_equal(tu_wait(pid), 128 + SIGKILL);
	/* Dead, not yet recovered: its pin still counts. */
	assert_int_equal(sesh_info(d, &in), 0);
	assert_int_equal(in.streams_open, 1);
	assert_true(sesh_recover(d) >= 1);
	assert_int_equal(sesh_info(d, &in), 0);
	assert_int_equal(in.streams_open, 0);
	close(p[0]);
	sesh_close(d);
	sesh_unlink(name);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill_after_claim),
		cmocka_unit_test(test_kill_after_descriptor),
		cmocka_unit_test(test_kill_before_commit),
		cmocka_unit_test(test_stop_before_commit),
		cmocka_unit_test(test_stop_after_claim),
		cmocka_unit_test(test_random_kills),
		cmocka_unit_test(test_dead_subscriber),
	};

	srand((unsigned)getpid());
	return cmocka_run_group_tests(tests, NULL, NULL);
}
