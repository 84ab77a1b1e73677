/*
 * prefork.c - a prefork master that runs the sesh reaper itself.
 *
 * A prefork server has one process that lives as long as the server does:
 * the master, which forks the workers and forks them again when they die.
 * That is the natural home of the reaper, so such a server needs no seshd.
 * The master here does three things in a loop, every 200 ms:
 *
 *   1. waitpid(WNOHANG): collect workers that died, and fork new ones;
 *   2. sesh_reap(): one pass of the reaper, which recovers what dead
 *      workers left behind (registry slots, locks, half-written records
 *      and stream messages), removes sessions idle past their TTL with
 *      their streams, and frees memory past its grace period;
 *   3. once in the run, it kills a worker with SIGKILL, as the OOM killer
 *      would, to show that the next pass recovers it.
 *
 * The workers serve made-up requests: each one creates a session with an
 * idle TTL of one second (`initialize`), publishes to its stream, serves
 * a second request of it (touch, publish), and then forgets it, as a
 * client that goes away does; every fourth session is deleted instead
 * (the client's DELETE). The forgotten sessions are what the reaper
 * expires.
 *
 * usage: prefork [NAME] [--workers N] [--seconds S]
 *
 * Without NAME the domain is a new one, named after the master's pid, and
 * removed at the end; with NAME it is created if needed and kept (the
 * workers use a namespace of their own, "prefork"). The exit status is 0
 * if a pass recovered the killed worker and at least one session expired,
 * 1 otherwise (or on any error), 2 on a usage error.
 *
 * Build and run it from the build tree: build/examples/prefork.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sesh.h>

#define MAX_WORKERS 32
#define NS	    "prefork" /* the workers' namespace */

#define TICK_MS	   200	/* the master's loop: one reaper pass per tick */
#define TTL_S	   1	/* idle TTL of the workers' sessions */
#define REQUEST_MS 2	/* a worker serves a request every 2 ms */
#define KEEP	   8	/* sessions a worker remembers (a power of 2) */
#define STOP_MS	   2000 /* a worker that does not stop by then is killed */

static char name[SESH_NAME_MAX + 1];
static sesh_t *dom;
static pid_t master; /* the master's pid */

/* Set by SIGTERM and SIGINT, in the master and in the workers alike: the
 * handler is installed before the first fork(), so a worker has it from
 * its first instruction on, and a SIGTERM can never find it without. */
static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

/* Milliseconds of CLOCK_MONOTONIC. */
static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep @ms milliseconds, or less if a signal comes. */
static void sleep_ms(int64_t ms)
{
	struct timespec ts = {ms / 1000, ms % 1000 * 1000000L};

	if (ms > 0)
		nanosleep(&ts, NULL);
}

/* ----------------------------------------------------------------------
 * A worker
 */

/* Report a failed call and leave; the master sees exit status 1. */
static void __attribute__((noreturn)) worker_fail(const char *what, int err)
{
	fprintf(stderr, "prefork: worker %ld: %s: %s\n", (long)getpid(), what,
		sesh_strerror(err));
	_exit(1);
}

/*
 * Whether a server shrugs @err off: the session is gone (-ENOENT: it
 * expired or was deleted), the domain's tmpfs has no room for the stream
 * (-ENOSPC), or the stream was held up by a stalled publisher (-EAGAIN,
 * -ETIMEDOUT). In each case nothing was published; a real server would
 * end the request or drop the event.
 */
static bool expected(int err)
{
	return err == 0 || err == -ENOENT || err == -ENOSPC || err == -EAGAIN ||
	       err == -ETIMEDOUT;
}

/* Send event @step of request @i to the stream of session @id. */
static void send_event(const char *id, unsigned long i, int step)
{
	char msg[48];
	int err;

	snprintf(msg, sizeof(msg), "{\"request\":%lu,\"step\":%d}", i, step);
	err = sesh_publish(dom, id, msg, strlen(msg), NULL);
	if (!expected(err))
		worker_fail("sesh_publish", err);
}

/*
 * Serve requests until SIGTERM. @n is the worker's number, which names its
 * user. Errors a server expects are answered as a server would: a session
 * that is gone is just gone (see expected()), a full domain makes the
 * worker wait a little. Any other error is a bug: the worker says so and
 * exits 1.
 */
static void __attribute__((noreturn)) worker_main(int n)
{
	char ids[KEEP][SESH_ID_MAX + 1] = {{0}}; /* the last KEEP sessions */
	char user[32], meta[32];
	unsigned long i;
	int err;

	/*
	 * A worker must not outlive its master: nobody would reap it, or
	 * the domain. The kernel sends SIGTERM when the master dies; a master
	 * that died before this call is seen by getppid().
	 */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != master)
		_exit(1);

	snprintf(user, sizeof(user), "user-%d", n);
	snprintf(meta, sizeof(meta), "{\"worker\":%d}", n);

	/*
	 * The handle was opened by the master before fork(); our first call
	 * on it registers this process in the domain, under its own pid.
	 */
	for (i = 0; !stop; i++) {
		char *id = ids[i % KEEP];		 /* the oldest */
		char *prev = ids[(i + KEEP - 1) % KEEP]; /* the newest */

		/* The oldest session leaves our memory. One in four says
		 * goodbye (DELETE); the others just go quiet, and the reaper
		 * expires them one second later. */
		if (id[0] && i % 4 == 0) {
			err = sesh_session_delete(dom, id);
			if (err && err != -ENOENT)
				worker_fail("sesh_session_delete", err);
		}
		id[0] = 0;

		/* A client's `initialize`: a new session, id generated. */
		err = sesh_session_create(dom, NULL, user, meta, strlen(meta),
					  TTL_S, id);
		if (err == -ENOSPC) {
			/* Full, or the domain's tmpfs is: wait for the reaper
			 * to make room. */
			sleep_ms(10);
			continue;
		}
		if (err)
			worker_fail("sesh_session_create", err);
		send_event(id, i, 1);

		/* The next request of the previous client: mark its session
		 * used, and send it a second event. */
		if (prev[0]) {
			err = sesh_session_touch(dom, prev);
			if (err == 0)
				send_event(prev, i, 2);
			else if (err != -ENOENT)
				worker_fail("sesh_session_touch", err);
		}

		sleep_ms(REQUEST_MS); /* SIGTERM cuts it short */
	}

	/* Told to stop: leave cleanly, which frees our registry slot at
	 * once. A worker that dies instead leaves it to the reaper. */
	sesh_close(dom);
	_exit(0);
}

/* ----------------------------------------------------------------------
 * The master
 */

static pid_t worker[MAX_WORKERS];
static int nworkers = 3;

/* Fork worker @n; 0 or -1 (said why). */
static int spawn(int n)
{
	pid_t pid;

	fflush(stdout); /* do not hand our buffer to the child */
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "prefork: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0)
		worker_main(n);
	worker[n] = pid;
	return 0;
}

/* Which worker is @pid; -1 if none. */
static int worker_of(pid_t pid)
{
	for (int n = 0; n < nworkers; n++)
		if (worker[n] == pid)
			return n;
	return -1;
}

/* Tell whether worker @n (@pid) failed, by its wait status: exited with
 * an error, or died of a signal. Say how. */
static bool report_end(int n, pid_t pid, int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return false;
	if (WIFSIGNALED(status))
		printf("prefork: worker %d (pid %ld) died of signal %d\n", n,
		       (long)pid, WTERMSIG(status));
	else
		printf("prefork: worker %d (pid %ld) exited with status %d\n",
		       n, (long)pid, WEXITSTATUS(status));
	return true;
}

/* What the run saw, for the verdict at the end. */
static pid_t killed;	       /* the worker we killed, 0 before */
static bool killed_collected;  /* waitpid() returned it */
static bool killed_recovered;  /* a later pass recovered a process */
static bool worker_failed;     /* a worker failed by itself */
static uint64_t expired_total; /* sessions our passes expired */
static int64_t start_ms;

/*
 * Collect the workers that died, without waiting, and fork their
 * replacements. A worker that died is dead to the domain at once (the
 * kernel dropped its liveness lock), but its registry slot, and whatever
 * it held, wait for the next reaper pass.
 */
static int respawn_dead(void)
{
	pid_t pid;
	int status, n;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		n = worker_of(pid);
		if (n < 0)
			continue;
		if (pid == killed)
			killed_collected = true;
		else if (report_end(n, pid, status))
			worker_failed = true;
		worker[n] = 0;
		if (spawn(n))
			return -1;
		printf("prefork: worker %d (pid %ld) is gone; respawned as pid "
		       "%ld\n",
		       n, (long)pid, (long)worker[n]);
	}
	if (pid < 0 && errno != ECHILD) {
		fprintf(stderr, "prefork: waitpid: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* Append ", " and a printf()-formatted part to the line @buf. */
static void __attribute__((format(printf, 3, 4)))
append(char *buf, size_t size, const char *fmt, ...)
{
	size_t len = strlen(buf);
	va_list ap;

	if (len + 2 >= size)
		return;
	if (len) {
		strcpy(buf + len, ", ");
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(buf + len, size - len, fmt, ap);
	va_end(ap);
}

/* "s" when @n is not 1. */
static const char *plural(size_t n)
{
	return n == 1 ? "" : "s";
}

/*
 * One reaper pass. Prints a line if the pass did anything, or always when
 * @always. Returns 0, or -1 if the pass failed (said why). -EBUSY is not a
 * failure: another reaper (seshd, or another master on the same domain)
 * was running a pass, and that pass does the work.
 */
static int reap_pass(bool always)
{
	sesh_reap_report_t r;
	char line[256] = "";
	int err;

	err = sesh_reap(dom, &r);
	if (err == -EBUSY) {
		printf("prefork: another reaper is running a pass; skipped\n");
		return 0;
	}
	if (err) {
		fprintf(stderr, "prefork: sesh_reap: %s\n", sesh_strerror(err));
		return -1;
	}

	if (r.processes_recovered)
		append(line, sizeof(line),
		       "%" PRIu32 " dead process%s recovered",
		       r.processes_recovered,
		       r.processes_recovered == 1 ? "" : "es");
	if (r.recovery_walk)
		append(line, sizeof(line), "%s",
		       r.recovery_done ? "recovery walk finished"
				       : "recovery walk goes on");
	if (r.sessions_expired)
		append(line, sizeof(line), "%zu session%s expired",
		       r.sessions_expired, plural(r.sessions_expired));
	if (r.rings_freed)
		append(line, sizeof(line), "%zu ring%s freed", r.rings_freed,
		       plural(r.rings_freed));
	if (r.blocks_freed)
		append(line, sizeof(line), "%zu record block%s freed",
		       r.blocks_freed, plural(r.blocks_freed));
	if (r.holes_unblocked)
		append(line, sizeof(line), "%zu hole%s unblocked",
		       r.holes_unblocked, plural(r.holes_unblocked));
	if (line[0] || always)
		printf("prefork: %5.1f s  pass %" PRIu64 " (%.2f ms): %s\n",
		       (double)(now_ms() - start_ms) / 1000, r.pass,
		       (double)r.duration_ns / 1e6,
		       line[0] ? line : "nothing to do");

	/* The pass after the killed worker was collected must recover it. */
	if (killed_collected && r.processes_recovered >= 1)
		killed_recovered = true;
	expired_total += r.sessions_expired;
	return 0;
}

/* Kill one worker the hard way, as if it crashed in the middle of a
 * request: no chance to close its handle or finish what it was doing. */
static void crash_a_worker(void)
{
	int n = nworkers > 1 ? 1 : 0;

	killed = worker[n];
	printf("prefork: kill -KILL %ld (worker %d crashes mid-request)\n",
	       (long)killed, n);
	if (kill(killed, SIGKILL))
		fprintf(stderr, "prefork: kill: %s\n", strerror(errno));
}

/*
 * Stop the workers: SIGTERM, and wait for each. One that does not stop
 * within STOP_MS (stopped with SIGSTOP, say) is killed.
 */
static void stop_workers(void)
{
	int64_t deadline = now_ms() + STOP_MS;
	int left = 0, status, n;
	pid_t pid;

	for (n = 0; n < nworkers; n++) {
		if (worker[n] > 0) {
			kill(worker[n], SIGTERM);
			left++;
		}
	}
	while (left > 0) {
		pid = waitpid(-1, &status, WNOHANG);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			break; /* ECHILD: none left */
		}
		if (pid == 0) {
			if (now_ms() > deadline) {
				for (n = 0; n < nworkers; n++)
					if (worker[n] > 0)
						kill(worker[n], SIGKILL);
				deadline = INT64_MAX;
			}
			sleep_ms(10);
			continue;
		}
		n = worker_of(pid);
		if (n < 0)
			continue;
		if (pid == killed) /* killed just before we stopped */
			killed_collected = true;
		else if (report_end(n, pid, status))
			worker_failed = true;
		worker[n] = 0;
		left--;
	}
}

/* Print the domain's health as sesh_health() reports it. */
static int show_health(void)
{
	static const char *const status[] = {"healthy", "degraded", "down"};
	sesh_health_t h;
	int err;

	err = sesh_health(dom, &h);
	if (err) {
		fprintf(stderr, "prefork: sesh_health: %s\n",
			sesh_strerror(err));
		return -1;
	}
	printf("prefork: health: %s%s%s%s\n",
	       h.status >= 0 && h.status <= 2 ? status[h.status] : "?",
	       h.reason[0] ? " (" : "", h.reason, h.reason[0] ? ")" : "");
	printf("prefork: %" PRIu32 " process%s alive, %" PRIu32 " dead; "
	       "%zu of %zu sessions; %.1f MiB of memory in use; reaper pid "
	       "%ld, %" PRIu64 " passes\n",
	       h.processes_alive, h.processes_alive == 1 ? "" : "es",
	       h.processes_dead, h.sessions, h.max_sessions,
	       (double)h.committed_bytes / (1 << 20), (long)h.reaper_pid,
	       h.reaper_passes);
	return 0;
}

/* Print what the domain's counters say the workers did. */
static int show_stats(void)
{
	sesh_stats_t st;
	int err;

	err = sesh_stats(dom, &st);
	if (err) {
		fprintf(stderr, "prefork: sesh_stats: %s\n",
			sesh_strerror(err));
		return -1;
	}
	printf("prefork: sessions: %" PRIu64 " created, %" PRIu64
	       " expired, %" PRIu64 " deleted; %" PRIu64
	       " messages published\n",
	       st.sessions_created, st.sessions_expired, st.sessions_deleted,
	       st.published);
	return 0;
}

static void __attribute__((noreturn)) usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: prefork [NAME] [--workers N] [--seconds S]\n"
		"  NAME           domain to use, created if needed and kept\n"
		"                 (default: a new one, removed at the end)\n"
		"  --workers N    worker processes, 1..%d (default 3)\n"
		"  --seconds S    how long to run, 2..3600 (default 3)\n",
		MAX_WORKERS);
	exit(status);
}

/* Parse a number of @lo..@hi, or exit with a usage error. */
static int number(const char *opt, const char *s, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "prefork: %s: not a number of %ld..%ld: %s\n",
			opt, lo, hi, s);
		usage(2);
	}
	return (int)v;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"workers", required_argument, NULL, 'w'},
		{"seconds", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct sigaction sa;
	sesh_config_t cfg;
	sesh_info_t info;
	bool own, failed = false;
	int seconds = 3, ticks, crash_tick, opt, err;
	int64_t next;

	while ((opt = getopt_long(argc, argv, "w:s:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'w':
			nworkers = number("--workers", optarg, 1, MAX_WORKERS);
			break;
		case 's':
			/* At least 2: sessions need 1 s to idle out. */
			seconds = number("--seconds", optarg, 2, 3600);
			break;
		case 'h':
			usage(0);
		default:
			usage(2);
		}
	}
	if (argc - optind > 1)
		usage(2);
	own = optind == argc;
	if (own)
		snprintf(name, sizeof(name), "prefork-%ld", (long)getpid());
	else
		snprintf(name, sizeof(name), "%s", argv[optind]);

	master = getpid();

	/* Lines in order, even into a pipe, and none lost at a fork. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	/*
	 * Small rings (4 KiB of payload; 8 KiB of /dev/shm with their
	 * descriptors, committed on a session's first publish): the
	 * workers' sessions live one second or so, and publish twice. The
	 * capacities count only if this call creates the domain.
	 */
	sesh_config_init(&cfg);
	cfg.max_sessions = 16384;
	cfg.stream_bytes = 4096;
	err = sesh_open(name, NS, &cfg,
			own ? SESH_CREATE | SESH_EXCL : SESH_CREATE, &dom);
	if (err) {
		fprintf(stderr, "prefork: sesh_open %s: %s\n", name,
			sesh_strerror(err));
		return 1;
	}
	err = sesh_info(dom, &info);
	if (err) {
		fprintf(stderr, "prefork: sesh_info: %s\n", sesh_strerror(err));
		sesh_close(dom);
		if (own)
			sesh_unlink(name);
		return 1;
	}
	printf("prefork: domain %s (max_sessions %zu), %d workers for %d s, "
	       "a reaper pass every %d ms\n",
	       info.name, info.max_sessions, nworkers, seconds, TICK_MS);

	/* SIGTERM and SIGINT (Ctrl-C) end the run early, cleanly. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	start_ms = now_ms();
	for (int n = 0; n < nworkers && !failed; n++)
		failed = spawn(n) != 0;
	if (!failed) {
		printf("prefork: workers:");
		for (int n = 0; n < nworkers; n++)
			printf(" %ld", (long)worker[n]);
		printf("\n");
	}

	/*
	 * The master's loop. The crash comes a third of the way in, so that
	 * passes run both before and after it.
	 */
	ticks = seconds * 1000 / TICK_MS;
	crash_tick = ticks / 3;
	next = start_ms;
	for (int tick = 1; tick <= ticks && !failed && !stop; tick++) {
		next += TICK_MS;
		while (!stop && now_ms() < next)
			sleep_ms(next - now_ms());
		if (stop)
			break;
		failed = respawn_dead() != 0 || reap_pass(false) != 0;
		if (!failed && tick == crash_tick)
			crash_a_worker();
	}
	if (stop)
		printf("prefork: interrupted; stopping\n");

	/* The end: stop the workers, and one last pass for what they left
	 * (a worker that stops cleanly leaves nothing, but one may have
	 * died since the last pass). */
	printf("prefork: stopping the workers\n");
	stop_workers();
	if (reap_pass(true) != 0)
		failed = true;
	if (show_health() != 0 || show_stats() != 0)
		failed = true;

	sesh_close(dom);
	dom = NULL;
	if (own) {
		err = sesh_unlink(name);
		if (err) {
			fprintf(stderr, "prefork: sesh_unlink %s: %s\n", name,
				sesh_strerror(err));
			failed = true;
		}
	}

	/* The verdict. */
	if (failed) {
		printf("prefork: FAILED: an error stopped the run\n");
		return 1;
	}
	if (!killed) {
		printf("prefork: FAILED: the run ended before a worker was "
		       "killed\n");
		return 1;
	}
	if (!killed_recovered) {
		printf("prefork: FAILED: no pass recovered the killed worker "
		       "(pid %ld)\n",
		       (long)killed);
		return 1;
	}
	if (expired_total == 0) {
		printf("prefork: FAILED: no session expired\n");
		return 1;
	}
	if (worker_failed) {
		printf("prefork: FAILED: a worker failed (see above)\n");
		return 1;
	}
	printf("prefork: ok: the killed worker was recovered, %" PRIu64
	       " idle sessions expired\n",
	       expired_total);
	return 0;
}
