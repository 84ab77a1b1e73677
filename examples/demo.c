/*
 * demo.c - what the process registry of a sesh domain sees when a worker
 * dies, and how sessions and their streams are shared by workers.
 *
 * A prefork server opens its domain once, then forks its workers; each
 * worker uses the handle it inherited. This demo does the same with three
 * workers, kills one with SIGKILL (as the OOM killer would: no chance to
 * clean up) and shows that the registry reports it dead at once, while the
 * others stay alive. The kernel tells: every registered process holds a
 * lock that is dropped when it dies, so there are no heartbeats to wait
 * for and a recycled pid cannot pass for the dead worker.
 *
 * Sessions outlive the worker that made them: worker 0 creates one, as an
 * MCP server does on `initialize`, and is then killed; worker 1 serves the
 * next request of that session from shared memory. The id and the owner
 * check are all a worker needs.
 *
 * Then the session's stream, as an MCP server uses it for SSE: one worker
 * publishes messages that a subscriber in another worker receives. A
 * third worker reads part of the stream and is killed, as if its client's
 * connection dropped; the client comes back to a fourth worker with the
 * id of the last message it got (Last-Event-ID), and that worker resumes
 * the stream right after it, with exactly the messages missed.
 *
 * Last, housekeeping. A worker follows the stream of a session whose idle
 * TTL is one second, and is killed in the middle of that: sesh_health()
 * reports a dead process awaiting recovery, and one pass of the reaper,
 * sesh_reap(), recovers it. The session stays stored until its TTL runs
 * out; then every call finds it gone (lazy expiry), and the next
 * sesh_reap() pass removes it for good. seshd(8) runs such passes, or a
 * prefork master does (examples/prefork.c).
 *
 * The demo checks what it prints and exits non-zero if the registry, the
 * session store, the stream or the reaper says anything else.
 * Synchronisation is by pipes and signals, never by sleeps, but for the
 * wait for a TTL to run out.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sesh.h>

#define WORKERS	  3
#define MAX_PROCS 16 /* the registry size we ask for; plenty here */

static char name[SESH_NAME_MAX + 1];
static sesh_t *dom;
static pid_t worker[WORKERS];
static bool reaped[WORKERS];
static char sid[SESH_ID_MAX + 1]; /* the session worker 0 creates */

/* The stream workers, 0 once reaped (see spawn()). */
enum { LIVE_READER, PUBLISHER, DROPPED_READER, RESUMER, FOLLOWER, STREAMERS };
static pid_t streamer[STREAMERS];

#define SESSION_META "{\"protocolVersion\":\"2025-06-18\"}"

/* ----------------------------------------------------------------------
 * The worker side
 */

static volatile sig_atomic_t stop;

static void on_sigterm(int sig)
{
	(void)sig;
	stop = 1;
}

/* Worker 1's request: the session worker 0 made, which only its owner
 * may see. Returns 0 if the store answered as it must. */
static int serve_request(void)
{
	char meta[128];
	sesh_session_t s;
	int err;

	err = sesh_session_get(dom, sid, "alice", &s, meta, sizeof(meta) - 1);
	if (err)
		return err;
	meta[s.meta_len < sizeof(meta) ? s.meta_len : sizeof(meta) - 1] = 0;
	printf("demo: worker %ld serves session %s: user %s, metadata %s\n",
	       (long)getpid(), s.id, s.user, meta);
	if (strcmp(meta, SESSION_META) != 0)
		return -EPROTO;
	/* Another user's request for the same id: as if there were none. */
	err = sesh_session_get(dom, sid, "mallory", &s, NULL, 0);
	printf("demo: worker %ld: same id, user mallory: %s\n", (long)getpid(),
	       sesh_strerror(err));
	if (err != -ENOENT)
		return -EPROTO;
	fflush(stdout); /* we leave with _exit() */
	return sesh_session_touch(dom, sid);
}

/*
 * Body of a worker. @ready is the write end of its pipe to the parent;
 * @wait_mask is the signal mask to sleep with, in which SIGTERM is not
 * blocked.
 */
static void worker_main(int i, int ready, const sigset_t *wait_mask)
{
	struct sigaction sa;
	sesh_info_t info;
	int err;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigterm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);

	/*
	 * The first call on an inherited handle registers this process in
	 * the domain under its own pid. Any call does; sesh_info() is a
	 * cheap one.
	 */
	err = sesh_info(dom, &info);

	/* Worker 0 handles an `initialize`: a new session, id generated. */
	if (err == 0 && i == 0)
		err = sesh_session_create(dom, NULL, "alice", SESSION_META,
					  strlen(SESSION_META), 0, sid);

	/* Tell the parent how it went: 0 means registered and ready; then
	 * the session id. */
	if (write(ready, &err, sizeof(err)) != (ssize_t)sizeof(err) || err ||
	    write(ready, sid, sizeof(sid)) != (ssize_t)sizeof(sid))
		_exit(1);
	close(ready);

	/*
	 * Sleep until SIGTERM. SIGTERM is blocked since before fork(), so
	 * it cannot slip in between the test of @stop and the sleep:
	 * sigsuspend() unblocks it and sleeps in one step.
	 */
	while (!stop)
		sigsuspend(wait_mask);

	/* Worker 1 gets the next request of the session. */
	if (i == 1 && serve_request() != 0)
		_exit(3);

	/* A worker told to stop leaves cleanly, releasing its slot. */
	sesh_close(dom);

	/* _exit(), not exit(): the parent's stdio buffers are not ours. */
	_exit(0);
}

/* ----------------------------------------------------------------------
 * The stream workers
 */

#define NLIVE	3 /* messages published first, read as they come */
#define NREAD	2 /* how many of them the dropped worker reads */
#define NMORE	2 /* published while the dropped client is away */
#define NMISSED (NLIVE - NREAD + NMORE) /* what the resumed client gets */
#define WAIT_MS 2000 /* only a broken stream makes a reader wait this long */

/* The dropped client's Last-Event-ID, which it sends back when it
 * reconnects; here it reaches the next worker through fork(). */
static uint64_t last_event_id;

/* Put message number @k (from 1) of the stream in @buf; its length. */
static size_t message(int k, char *buf, size_t size)
{
	return (size_t)snprintf(buf, size, "{\"progress\":%d}", k);
}

/* Send @n bytes to the parent: 0 or -EPIPE. */
static int tell(int out, const void *p, size_t n)
{
	return write(out, p, n) == (ssize_t)n ? 0 : -EPIPE;
}

/*
 * The jobs of the stream workers return 0, a negative errno of a failed
 * call, or 1 when the stream gave other than it must (they have
 * said what on stderr).
 */

/*
 * Read @n messages from @s, numbers @first on: print each as the SSE event
 * it becomes, check its bytes, and send its event id to the parent.
 */
static int read_messages(sesh_stream_t *s, int first, int n, int out)
{
	char want[32];
	sesh_msg_t m;
	int err;

	for (int k = first; k < first + n; k++) {
		err = sesh_stream_next(s, &m, WAIT_MS);
		if (err)
			return err;
		printf("demo: worker %ld <- id: %" PRIu64 " data: %.*s\n",
		       (long)getpid(), m.event_id, (int)m.len,
		       (const char *)m.data);
		fflush(stdout);
		if (m.len != message(k, want, sizeof(want)) ||
		    memcmp(m.data, want, m.len) != 0) {
			fprintf(stderr, "demo: worker %ld: expected %s\n",
				(long)getpid(), want);
			return 1;
		}
		err = tell(out, &m.event_id, sizeof(m.event_id));
		if (err)
			return err;
	}
	return 0;
}

/* Subscribe to what is published from now on, tell the parent, then read
 * the messages as they come: sesh_stream_next() sleeps until they do. */
static int live_reader(int out)
{
	sesh_stream_t *s;
	int err;

	err = sesh_subscribe(dom, sid, SESH_FROM_LATEST, &s);
	if (tell(out, &err, sizeof(err)) != 0 || err)
		return err ? err : -EPIPE;
	err = read_messages(s, 1, NLIVE, out);
	sesh_stream_close(s);
	return err;
}

/* Publish messages 1..NLIVE, one call each, and send their ids. */
static int publish_each(int out)
{
	char buf[32];
	uint64_t id;
	int err;

	printf("demo: worker %ld publishes %d messages to session %s\n",
	       (long)getpid(), NLIVE, sid);
	fflush(stdout); /* before the subscriber's lines */
	for (int k = 1; k <= NLIVE; k++) {
		err = sesh_publish(dom, sid, buf, message(k, buf, sizeof(buf)),
				   &id);
		if (err)
			return err;
		err = tell(out, &id, sizeof(id));
		if (err)
			return err;
	}
	return 0;
}

/* Publish the next NMORE messages with one claim, and send their ids. */
static int publish_more(int out)
{
	char buf[NMORE][32];
	sesh_buf_t b[NMORE];
	uint64_t id[NMORE];
	int err;

	for (int i = 0; i < NMORE; i++) {
		b[i].data = buf[i];
		b[i].len = message(NLIVE + 1 + i, buf[i], sizeof(buf[i]));
	}
	printf("demo: worker %ld publishes %d more in one batch\n",
	       (long)getpid(), NMORE);
	fflush(stdout);
	err = sesh_publish_batch(dom, sid, b, NMORE, id);
	if (err)
		return err;
	return tell(out, id, sizeof(id));
}

/* Read the first NREAD messages the stream retains, send their ids, and
 * wait, reading nothing more, until the parent kills us. */
static int dropped_reader(int out)
{
	sesh_stream_t *s;
	int err;

	printf("demo: worker %ld serves another client, from the oldest "
	       "message\n",
	       (long)getpid());
	fflush(stdout);
	err = sesh_subscribe(dom, sid, SESH_FROM_OLDEST, &s);
	if (err)
		return err;
	err = read_messages(s, 1, NREAD, out);
	if (err)
		return err;
	for (;;)
		pause();
}

/* Serve the reconnected client: resume right after its Last-Event-ID.
 * What it missed comes, and then nothing. */
static int resumer(int out)
{
	sesh_stream_t *s;
	sesh_msg_t m;
	int err;

	printf("demo: worker %ld resumes the stream after id %" PRIu64 "\n",
	       (long)getpid(), last_event_id);
	fflush(stdout);
	err = sesh_subscribe(dom, sid, last_event_id, &s);
	if (err)
		return err;
	err = read_messages(s, NREAD + 1, NMISSED, out);
	if (err == 0) {
		err = sesh_stream_next(s, &m, 0);
		if (err == 0)
			fprintf(stderr,
				"demo: worker %ld: more than was missed\n",
				(long)getpid());
		err = err == -EAGAIN ? 0 : err < 0 ? err : 1;
	}
	sesh_stream_close(s);
	return err;
}

#define IDLE_TTL_S 1 /* idle TTL of the session of the last step */

/* The session of the last step, which dies of idleness. */
static char idle_sid[SESH_ID_MAX + 1];

/* Follow the session's stream, as a worker with an open SSE connection
 * does: subscribe, tell the parent, and wait for messages. None comes:
 * the parent kills us while we wait. */
static int follower(int out)
{
	sesh_stream_t *s;
	sesh_msg_t m;
	int err;

	err = sesh_subscribe(dom, idle_sid, SESH_FROM_LATEST, &s);
	if (tell(out, &err, sizeof(err)) != 0 || err)
		return err ? err : -EPIPE;
	do
		err = sesh_stream_next(s, &m, -1);
	while (err == 0 || err == -EOVERFLOW);
	sesh_stream_close(s);
	return err;
}

/* ----------------------------------------------------------------------
 * The parent side
 */

/* Stop and reap every worker still running, remove the domain, exit 1. */
static void __attribute__((noreturn)) fail(const char *what, int err)
{
	if (err)
		fprintf(stderr, "demo: %s: %s\n", what, sesh_strerror(err));
	else
		fprintf(stderr, "demo: %s\n", what);
	for (int i = 0; i < WORKERS; i++) {
		if (worker[i] > 0 && !reaped[i]) {
			kill(worker[i], SIGKILL);
			waitpid(worker[i], NULL, 0);
		}
	}
	for (int i = 0; i < STREAMERS; i++) {
		if (streamer[i] > 0) {
			kill(streamer[i], SIGKILL);
			waitpid(streamer[i], NULL, 0);
		}
	}
	if (dom) {
		sesh_close(dom);
		sesh_unlink(name);
	}
	exit(EXIT_FAILURE);
}

/* A copy of the registry, as sesh_proc_list() walked it. */
struct registry {
	sesh_proc_t proc[MAX_PROCS];
	int n;
};

static int collect(const sesh_proc_t *p, void *arg)
{
	struct registry *r = arg;

	if (r->n == MAX_PROCS)
		return -ENOSPC; /* cannot happen: the domain has no more */
	r->proc[r->n++] = *p;
	return 0;
}

/* Read the registry and print it; @killed is marked in the listing. */
static void show_registry(struct registry *r, pid_t killed)
{
	int err;

	r->n = 0;
	err = sesh_proc_list(dom, collect, r);
	if (err)
		fail("sesh_proc_list", err);

	printf("registry:\n");
	for (int i = 0; i < r->n; i++) {
		const sesh_proc_t *p = &r->proc[i];
		const char *note = "";

		if (p->self)
			note = "  (this process)";
		else if (killed && p->pid == killed)
			note = p->alive ? "  <- killed, still alive?"
					: "  <- killed, detected dead";
		printf("  slot %-2u pid %-7ld %-5s%s\n", (unsigned)p->slot,
		       (long)p->pid, p->alive ? "alive" : "dead", note);
	}
}

/* The registry entry of @pid, or NULL if it has none. */
static const sesh_proc_t *find(const struct registry *r, pid_t pid)
{
	for (int i = 0; i < r->n; i++)
		if (r->proc[i].pid == pid)
			return &r->proc[i];
	return NULL;
}

/*
 * Check the registry: this process and every worker not yet killed alive,
 * @killed (if not 0) dead. Fail loudly otherwise.
 */
static void expect(const struct registry *r, pid_t killed)
{
	const sesh_proc_t *p = find(r, getpid());
	char msg[128];

	if (!p || !p->alive || !p->self)
		fail("the registry does not show this process alive", 0);
	for (int i = 0; i < WORKERS; i++) {
		bool want_alive = worker[i] != killed;
		const char *says = "nothing";

		p = find(r, worker[i]);
		if (p && (p->alive != 0) == want_alive)
			continue;
		if (p)
			says = p->alive ? "alive" : "dead";
		snprintf(msg, sizeof(msg),
			 "worker %ld should be %s but the registry says %s",
			 (long)worker[i], want_alive ? "alive" : "dead", says);
		fail(msg, 0);
	}
}

/*
 * Fork stream worker @who to run @job, which gets the write end of a pipe
 * to us; returns the read end. The worker exits 0 if @job returns 0.
 */
static int spawn(int who, int (*job)(int out))
{
	int fds[2], err;

	if (pipe(fds))
		fail("pipe", errno);
	fflush(stdout); /* do not hand our buffer to the child */
	streamer[who] = fork();
	if (streamer[who] < 0)
		fail("fork", errno);
	if (streamer[who] == 0) {
		close(fds[0]);
		err = job(fds[1]);
		if (err < 0)
			fprintf(stderr, "demo: worker %ld: %s\n",
				(long)getpid(), sesh_strerror(err));
		sesh_close(dom);
		_exit(err ? 1 : 0);
	}
	close(fds[1]);
	return fds[0];
}

/* Read the @n bytes a stream worker sends on @fd; fail if it stops first. */
static void hear(int fd, void *p, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = read(fd, (char *)p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			fail("a stream worker stopped before it answered", 0);
		got += (size_t)r;
	}
}

/* Reap stream worker @who: it must have exited 0, or died of @sig if that
 * is not 0. */
static void reap(int who, int sig)
{
	pid_t pid = streamer[who];
	int status;

	if (waitpid(pid, &status, 0) != pid)
		fail("waitpid", errno);
	streamer[who] = 0;
	if (sig ? !WIFSIGNALED(status) || WTERMSIG(status) != sig
		: !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail("a stream worker failed", 0);
}

/*
 * The session's stream, across workers. The publishers send us the event
 * ids sesh_publish() gave them; every reader must send back the same ids,
 * in the same order, each exactly once.
 */
static void stream_demo(void)
{
	uint64_t id[NLIVE + NMORE], got[NLIVE + NMORE];
	sesh_stats_t st;
	int live, fd, err;
	pid_t pid;

	/* A subscriber waits for what comes next; then a publisher. */
	live = spawn(LIVE_READER, live_reader);
	hear(live, &err, sizeof(err));
	if (err)
		fail("sesh_subscribe", err);
	printf("demo: worker %ld subscribed to session %s\n",
	       (long)streamer[LIVE_READER], sid);
	fd = spawn(PUBLISHER, publish_each);
	hear(fd, id, NLIVE * sizeof(id[0]));
	reap(PUBLISHER, 0);
	close(fd);
	hear(live, got, NLIVE * sizeof(got[0]));
	reap(LIVE_READER, 0);
	close(live);
	for (int k = 1; k < NLIVE; k++)
		if (id[k] <= id[k - 1])
			fail("event ids do not increase", 0);
	if (memcmp(got, id, NLIVE * sizeof(id[0])) != 0)
		fail("the subscriber got other ids than were published", 0);

	/*
	 * Another worker serves a client from the oldest message. The client
	 * goes away after NREAD of them, and its worker dies: kill -KILL.
	 */
	fd = spawn(DROPPED_READER, dropped_reader);
	hear(fd, got, NREAD * sizeof(got[0]));
	if (memcmp(got, id, NREAD * sizeof(id[0])) != 0)
		fail("the dropped subscriber got other ids than were "
		     "published",
		     0);
	last_event_id = got[NREAD - 1];
	printf("demo: its client drops with Last-Event-ID %" PRIu64
	       "; kill -KILL %ld\n",
	       last_event_id, (long)streamer[DROPPED_READER]);
	if (kill(streamer[DROPPED_READER], SIGKILL))
		fail("kill", errno);
	reap(DROPPED_READER, SIGKILL);
	close(fd);
	err = sesh_recover(dom);
	if (err != 1)
		fail("sesh_recover did not recover the dead subscriber",
		     err < 0 ? err : 0);

	/* More is published while the client is away; then it reconnects,
	 * to yet another worker, with its Last-Event-ID. */
	fd = spawn(PUBLISHER, publish_more);
	hear(fd, id + NLIVE, NMORE * sizeof(id[0]));
	reap(PUBLISHER, 0);
	close(fd);
	fd = spawn(RESUMER, resumer);
	pid = streamer[RESUMER];
	hear(fd, got, NMISSED * sizeof(got[0]));
	reap(RESUMER, 0);
	close(fd);
	if (memcmp(got, id + NREAD, NMISSED * sizeof(id[0])) != 0)
		fail("the resumed stream is not exactly what was missed", 0);

	/* Counters are kept per process and summed, the dead one's too. */
	err = sesh_stats(dom, &st);
	if (err)
		fail("sesh_stats", err);
	printf("demo: worker %ld got exactly the %d messages missed; "
	       "sesh_stats: %" PRIu64 " published, %" PRIu64 " delivered\n",
	       (long)pid, NMISSED, st.published, st.delivered);
	if (st.published != NLIVE + NMORE ||
	    st.delivered != NLIVE + NREAD + NMISSED)
		fail("sesh_stats does not count what the workers did", 0);
}

/* Milliseconds of CLOCK_MONOTONIC. */
static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep until CLOCK_MONOTONIC reads @when, in milliseconds. */
static void sleep_until(int64_t when)
{
	int64_t left;

	while ((left = when - now_ms()) > 0) {
		struct timespec ts = {left / 1000, left % 1000 * 1000000L};

		nanosleep(&ts, NULL);
	}
}

static const char *status_name(int status)
{
	switch (status) {
	case SESH_HEALTHY:
		return "healthy";
	case SESH_DEGRADED:
		return "degraded";
	case SESH_DOWN:
		return "down";
	}
	return "?";
}

static void health(sesh_health_t *h)
{
	int err = sesh_health(dom, h);

	if (err)
		fail("sesh_health", err);
}

static size_t count(void)
{
	size_t n;
	int err = sesh_session_count(dom, &n);

	if (err)
		fail("sesh_session_count", err);
	return n;
}

/*
 * Housekeeping. A worker that holds a subscription dies; sesh_health()
 * tells, and a reaper pass recovers what it held. A session nobody uses
 * expires: gone for every call at once, stored until a reaper pass
 * removes it.
 */
static void housekeeping_demo(void)
{
	sesh_reap_report_t r;
	sesh_health_t h;
	int64_t created;
	size_t n;
	int fd, err;
	pid_t pid;

	created = now_ms();
	err = sesh_session_create(dom, NULL, "bob", NULL, 0, IDLE_TTL_S,
				  idle_sid);
	if (err)
		fail("sesh_session_create", err);
	n = count();
	printf("demo: session %s has an idle TTL of %d s; %zu session "
	       "stored\n",
	       idle_sid, IDLE_TTL_S, n);
	if (n != 1)
		fail("the new session is not counted", 0);

	/* A worker follows its stream, and dies while it waits. */
	fd = spawn(FOLLOWER, follower);
	hear(fd, &err, sizeof(err));
	if (err)
		fail("sesh_subscribe", err);
	pid = streamer[FOLLOWER];
	printf("demo: worker %ld follows its stream, as for an open SSE "
	       "connection; kill -KILL %ld while it waits\n",
	       (long)pid, (long)pid);
	if (kill(pid, SIGKILL))
		fail("kill", errno);
	reap(FOLLOWER, SIGKILL);
	close(fd);

	health(&h);
	printf("demo: sesh_health: %s: %s; %zu stream open\n",
	       status_name(h.status), h.reason, h.streams_open);
	if (h.status != SESH_DEGRADED || h.processes_dead != 1 ||
	    h.streams_open != 1)
		fail("sesh_health does not report the dead worker", 0);

	/* One reaper pass: what seshd, or a prefork master, runs. */
	err = sesh_reap(dom, &r);
	if (err)
		fail("sesh_reap", err);
	health(&h);
	printf("demo: sesh_reap: %" PRIu32 " dead process recovered; "
	       "sesh_health: %s, %" PRIu32 " dead, %zu streams open\n",
	       r.processes_recovered, status_name(h.status), h.processes_dead,
	       h.streams_open);
	if (r.processes_recovered != 1 || h.processes_dead != 0 ||
	    h.streams_open != 0)
		fail("sesh_reap did not recover the dead worker", 0);
	if (h.status != SESH_HEALTHY) {
		char msg[200];

		snprintf(msg, sizeof(msg), "sesh_health after the pass: %s",
			 h.reason);
		fail(msg, 0);
	}

	/* Time is what expiry is about: here, and only here, we sleep. */
	sleep_until(created + IDLE_TTL_S * 1000 + 100);

	/* Idle past its TTL: gone for every call, though still stored. */
	err = sesh_session_get(dom, idle_sid, NULL, NULL, NULL, 0);
	n = count();
	printf("demo: %d s later, idle past its TTL: sesh_session_get: %s; "
	       "still %zu session stored\n",
	       IDLE_TTL_S, sesh_strerror(err), n);
	if (err != -ENOENT)
		fail("the session outlived its TTL", err);
	if (n != 1)
		fail("the idle session is not counted until a reaper pass", 0);

	err = sesh_reap(dom, &r);
	if (err)
		fail("sesh_reap", err);
	n = count();
	printf("demo: sesh_reap: %zu session expired, with its stream; %zu "
	       "sessions stored\n",
	       r.sessions_expired, n);
	if (r.sessions_expired < 1 || n != 0)
		fail("sesh_reap did not expire the idle session", 0);
}

int main(void)
{
	sesh_config_t cfg;
	sesh_info_t info;
	struct registry reg;
	sigset_t term, old, wait_mask;
	pid_t victim;
	int err, status;

	/* A name of our own, so that several demos can run at once. */
	snprintf(name, sizeof(name), "demo-%ld", (long)getpid());

	/*
	 * Small capacities: the segment is sized once from them, and tmpfs
	 * commits its pages only when touched. SESH_EXCL makes sure we start
	 * from a fresh domain, not one left by someone else.
	 */
	sesh_config_init(&cfg);
	cfg.max_sessions = 1024;
	cfg.stream_bytes = 4096;
	cfg.max_processes = MAX_PROCS;
	err = sesh_open(name, NULL, &cfg, SESH_CREATE | SESH_EXCL, &dom);
	if (err)
		fail("sesh_open", err);
	err = sesh_info(dom, &info);
	if (err)
		fail("sesh_info", err);
	printf("demo: created domain %s (max_sessions %zu), forking %d "
	       "workers\n",
	       info.name, info.max_sessions, WORKERS);

	/* Workers are born with SIGTERM blocked (see worker_main()). */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, &old);
	wait_mask = old;
	sigdelset(&wait_mask, SIGTERM);

	for (int i = 0; i < WORKERS; i++) {
		int fds[2];
		ssize_t got;

		/* One pipe per worker: if it dies before it answers, its
		 * end closes and our read() returns 0 instead of hanging. */
		if (pipe(fds))
			fail("pipe", errno);
		fflush(stdout); /* do not hand our buffer to the child */
		worker[i] = fork();
		if (worker[i] < 0)
			fail("fork", errno);
		if (worker[i] == 0) {
			close(fds[0]);
			worker_main(i, fds[1], &wait_mask);
		}
		close(fds[1]);
		do
			got = read(fds[0], &err, sizeof(err));
		while (got < 0 && errno == EINTR);
		if (got != (ssize_t)sizeof(err))
			fail("a worker died before it was ready", 0);
		if (err)
			fail("worker: sesh_info or sesh_session_create", err);
		if (read(fds[0], sid, sizeof(sid)) != (ssize_t)sizeof(sid))
			fail("a worker died before it was ready", 0);
		close(fds[0]);
		if (i == 0)
			printf("demo: worker %ld created session %s for user "
			       "alice\n",
			       (long)worker[i], sid);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);

	/* Everyone registered: this process and the workers, all alive. */
	show_registry(&reg, 0);
	expect(&reg, 0);

	/*
	 * Kill a worker the hard way. Once waitpid() returns it is gone, and
	 * with it its lock: the very next look at the registry says dead.
	 */
	victim = worker[0];
	printf("demo: kill -KILL %ld\n", (long)victim);
	if (kill(victim, SIGKILL))
		fail("kill", errno);
	if (waitpid(victim, &status, 0) != victim)
		fail("waitpid", errno);
	reaped[0] = true;
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		fail("the killed worker did not die of SIGKILL", 0);

	show_registry(&reg, victim);
	expect(&reg, victim);

	/* What a reaper does: recover what the dead worker left behind. */
	err = sesh_recover(dom);
	if (err != 1)
		fail("sesh_recover did not recover the dead worker",
		     err < 0 ? err : 0);
	printf("demo: sesh_recover: recovered 1 dead process; session %s "
	       "lives on\n",
	       sid);

	/* The others are asked to stop, and close their handles; worker 1
	 * serves one more request of the session first. */
	fflush(stdout); /* our lines before theirs */
	for (int i = 1; i < WORKERS; i++) {
		if (kill(worker[i], SIGTERM))
			fail("kill", errno);
	}
	for (int i = 1; i < WORKERS; i++) {
		pid_t pid = worker[i];

		if (waitpid(pid, &status, 0) != pid)
			fail("waitpid", errno);
		reaped[i] = true;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail("a worker did not stop cleanly, or worker 1 did "
			     "not find the session",
			     0);
	}

	/* The session's stream, shared by the next workers. */
	stream_demo();

	/* The client says goodbye (DELETE): the session goes. */
	err = sesh_session_delete(dom, sid);
	if (err)
		fail("sesh_session_delete", err);
	{
		size_t n;

		err = sesh_session_count(dom, &n);
		if (err || n != 0)
			fail("sessions left after delete", err);
		printf("demo: session deleted; %zu sessions left\n", n);
	}

	/* A worker dies, a session idles out: the reaper's work. */
	housekeeping_demo();

	/*
	 * Detach, and remove the name: the memory goes with the last
	 * process that had it mapped.
	 */
	sesh_close(dom);
	dom = NULL;
	err = sesh_unlink(name);
	if (err)
		fail("sesh_unlink", err);
	printf("demo: workers stopped, domain %s removed\n", name);
	return EXIT_SUCCESS;
}
