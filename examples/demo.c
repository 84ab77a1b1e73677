/*
 * demo.c - what the process registry of a sesh domain sees when a worker
 * dies.
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
 * The demo checks what it prints and exits non-zero if the registry or the
 * session store says anything else. Synchronisation is by pipes and signals, never by sleeps.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sesh.h>

#define WORKERS	  3
#define MAX_PROCS 16 /* the registry size we ask for; plenty here */

static char name[SESH_NAME_MAX + 1];
static sesh_t *dom;
static pid_t worker[WORKERS];
static bool reaped[WORKERS];
static char sid[SESH_ID_MAX + 1]; /* the session worker 0 creates */

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

/*
 * Body of a worker. @ready is the write end of its pipe to the parent;
 * @wait_mask is the signal mask to sleep with, in which SIGTERM is not
 * blocked.
 */
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
	printf("demo: worker %ld: same id, user mallory: %s\n",
	       (long)getpid(), sesh_strerror(err));
	if (err != -ENOENT)
		return -EPROTO;
	fflush(stdout); /* we leave with _exit() */
	return sesh_session_touch(dom, sid);
}

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
