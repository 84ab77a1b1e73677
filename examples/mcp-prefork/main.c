/*
 * main.c - the master of the prefork MCP server (MCP Streamable HTTP on
 * sesh): options, the listening socket, the sesh domain, the workers,
 * and the reaper.
 *
 * The master binds the listening socket and opens (creating if needed)
 * the sesh domain before it forks, so every worker inherits both: the
 * workers accept on the one socket, and their sessions and streams live
 * in the one domain, so any request of a session, and any resumed SSE
 * stream, may land on any worker. The master serves nothing itself; it
 * lives as long as the server does, which makes it the home of the
 * reaper: one sesh_reap() pass every 250 ms recovers what a dead worker
 * left, and removes sessions idle past their TTL with their streams.
 *
 * Signals: SIGTERM, SIGINT and SIGCHLD are blocked from the start and
 * taken with sigtimedwait() in the master's loop, which doubles as its
 * 250 ms tick. The workers inherit the blocked mask, so a SIGTERM sent
 * to a worker between fork() and its own sigwaitinfo() is kept pending,
 * never lost. A worker that dies is forked again; one that dies within
 * a second of its start is forked again only a second later, so a
 * worker that cannot start does not make the master spin.
 *
 * usage: mcp-prefork [--host H] [--port P] [--workers N] [--domain NAME]
 *        [--idle-ttl S] [--max-body B] [--stream-bytes B] [--max-conns N]
 *        [--allow-origin O]... [--unlink-at-exit]
 *
 * When ready it prints "listening on http://HOST:PORT/mcp (N workers)" on
 * stdout (tests read the port from it with --port 0).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mcp-prefork.h"

#define MAX_WORKERS 64
#define TICK_MS	    250
#define STOP_MS	    3000 /* workers not stopped by then are killed */
#define BACKOFF_MS  1000

struct mcp_opts mcp_opts = {
	.host = "127.0.0.1",
	.port = 8080,
	.domain = "mcp",
	.idle_ttl_s = 300,
	.max_body = 1 << 20,
	.stream_bytes = 256 << 10,
	.max_conns = 200,
};
sesh_t *mcp_dom;
static pid_t master;

static struct {
	pid_t pid;
	int64_t started_ms; /* when forked */
	int64_t due_ms;	    /* 0, or when to fork it again */
} worker[MAX_WORKERS];

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Fork worker @n on @fd; 0 or -1. */
static int spawn(int n, int fd)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "mcp-prefork: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		/* A worker must not outlive the master, who reaps for it. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 ||
		    getppid() != master)
			_exit(1);
		worker_main(fd);
	}
	worker[n].pid = pid;
	worker[n].started_ms = now_ms();
	worker[n].due_ms = 0;
	return 0;
}

/* Collect dead workers; plan their replacements. */
static void collect(void)
{
	int status, n;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (n = 0; n < mcp_opts.workers; n++)
			if (worker[n].pid == pid)
				break;
		if (n == mcp_opts.workers)
			continue;
		if (WIFSIGNALED(status))
			fprintf(stderr,
				"mcp-prefork: worker %ld died of signal %d\n",
				(long)pid, WTERMSIG(status));
		else
			fprintf(stderr,
				"mcp-prefork: worker %ld exited with status "
				"%d\n",
				(long)pid, WEXITSTATUS(status));
		worker[n].pid = 0;
		worker[n].due_ms = now_ms();
		if (now_ms() - worker[n].started_ms < BACKOFF_MS)
			worker[n].due_ms += BACKOFF_MS;
	}
}

static void respawn(int fd)
{
	for (int n = 0; n < mcp_opts.workers; n++)
		if (worker[n].pid == 0 && worker[n].due_ms &&
		    now_ms() >= worker[n].due_ms && spawn(n, fd) == 0)
			fprintf(stderr, "mcp-prefork: worker %d is pid %ld\n",
				n, (long)worker[n].pid);
}

static void stop_workers(void)
{
	int64_t deadline = now_ms() + STOP_MS;
	int status, left = 0;
	pid_t pid;

	for (int n = 0; n < mcp_opts.workers; n++)
		if (worker[n].pid > 0 && kill(worker[n].pid, SIGTERM) == 0)
			left++;
	while (left > 0) {
		pid = waitpid(-1, &status, WNOHANG);
		if (pid < 0 && errno != EINTR)
			break;
		if (pid > 0) {
			for (int n = 0; n < mcp_opts.workers; n++)
				if (worker[n].pid == pid) {
					worker[n].pid = 0;
					left--;
				}
			continue;
		}
		if (now_ms() > deadline) {
			for (int n = 0; n < mcp_opts.workers; n++)
				if (worker[n].pid > 0)
					kill(worker[n].pid, SIGKILL);
			deadline = INT64_MAX;
		}
		usleep(10000);
	}
}

/* Bind and listen on --host and --port; the fd, or -1 (said why). */
static int listen_on(char *shown, size_t size)
{
	struct addrinfo hints = {0}, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char port[8], host[64];
	int fd, one = 1, err;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", mcp_opts.port);
	err = getaddrinfo(mcp_opts.host, port, &hints, &ai);
	if (err) {
		fprintf(stderr, "mcp-prefork: --host %s: %s\n", mcp_opts.host,
			gai_strerror(err));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 512) ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		fprintf(stderr, "mcp-prefork: %s:%d: %s\n", mcp_opts.host,
			mcp_opts.port, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	/* Non-blocking: the workers that lose the race for a connection
	 * must get EAGAIN, not sleep in accept(). */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)) {
		close(fd);
		return -1;
	}
	if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port,
			sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV)) {
		close(fd);
		return -1;
	}
	snprintf(shown, size, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
		 host, port);
	return fd;
}

static void __attribute__((noreturn)) usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: mcp-prefork [options]\n"
		"  --host H          address to listen on (127.0.0.1)\n"
		"  --port P          port (8080); 0 picks a free one\n"
		"  --workers N       worker processes, 1..%d (cores)\n"
		"  --domain NAME     sesh domain, created if needed (mcp)\n"
		"  --idle-ttl S      idle TTL of sessions, seconds (300)\n"
		"  --max-body B      largest request body, bytes (1048576)\n"
		"  --stream-bytes B  stream ring of a session, a power of two\n"
		"                    (262144; used when the domain is "
		"created)\n"
		"  --max-conns N     connections per worker, 1..238 (200)\n"
		"  --allow-origin O  also accept this Origin (repeatable; *: "
		"all)\n"
		"  --unlink-at-exit  remove the domain when the server stops\n"
		"  --log-streams     log which worker opens or resumes each "
		"SSE stream\n",
		MAX_WORKERS);
	exit(status);
}

static long number(const char *opt, const char *s, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "mcp-prefork: %s: not a number of %ld..%ld\n",
			opt, lo, hi);
		usage(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{"host", required_argument, NULL, 'H'},
		{"port", required_argument, NULL, 'p'},
		{"workers", required_argument, NULL, 'w'},
		{"domain", required_argument, NULL, 'd'},
		{"idle-ttl", required_argument, NULL, 't'},
		{"max-body", required_argument, NULL, 'b'},
		{"stream-bytes", required_argument, NULL, 's'},
		{"max-conns", required_argument, NULL, 'c'},
		{"allow-origin", required_argument, NULL, 'o'},
		{"unlink-at-exit", no_argument, NULL, 'u'},
		{"log-streams", no_argument, NULL, 'L'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static const char *origins[32];
	char shown[128];
	sesh_config_t cfg;
	sigset_t set;
	struct timespec tick = {0, TICK_MS * 1000000L};
	int64_t next_reap;
	int opt, fd, err, sig;
	long cores;
	bool stop = false;

	cores = sysconf(_SC_NPROCESSORS_ONLN);
	mcp_opts.workers = cores < 1 ? 1 : cores > MAX_WORKERS ? MAX_WORKERS
							       : (int)cores;
	mcp_opts.origins = origins;
	while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (opt) {
		case 'H':
			mcp_opts.host = optarg;
			break;
		case 'p':
			mcp_opts.port = (int)number("--port", optarg, 0, 65535);
			break;
		case 'w':
			mcp_opts.workers = (int)number("--workers", optarg, 1,
						       MAX_WORKERS);
			break;
		case 'd':
			mcp_opts.domain = optarg;
			break;
		case 't':
			mcp_opts.idle_ttl_s = (uint32_t)number(
				"--idle-ttl", optarg, 1, 7 * 86400);
			break;
		case 'b':
			mcp_opts.max_body = (size_t)number("--max-body", optarg,
							   1024, 64 << 20);
			break;
		case 's':
			mcp_opts.stream_bytes = (size_t)number(
				"--stream-bytes", optarg, 4096, 1 << 30);
			break;
		case 'c':
			/* 256 reader slots a process, less the long calls'
			 * threads and a margin (see http.c) */
			mcp_opts.max_conns =
				(unsigned)number("--max-conns", optarg, 1, 238);
			break;
		case 'o':
			if (mcp_opts.norigins == 32) {
				fprintf(stderr, "mcp-prefork: too many "
						"--allow-origin\n");
				usage(2);
			}
			origins[mcp_opts.norigins++] = optarg;
			break;
		case 'u':
			mcp_opts.unlink_at_exit = true;
			break;
		case 'L':
			mcp_opts.log_streams = true;
			break;
		case 'h':
			usage(0);
		default:
			usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	setvbuf(stdout, NULL, _IOLBF, 0);
	master = getpid();

	/* Blocked before anything forks: see the top of the file. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);

	fd = listen_on(shown, sizeof(shown));
	if (fd < 0)
		return 1;

	/* Capacities count only if this call creates the domain. Stream
	 * messages may be half a ring: a response to a 1 MiB request (an
	 * echo) needs --stream-bytes 4 MiB to fit. */
	sesh_config_init(&cfg);
	cfg.stream_bytes = mcp_opts.stream_bytes;
	cfg.max_message = mcp_opts.stream_bytes / 2;
	cfg.max_metadata = 1024;
	cfg.idle_ttl_s = mcp_opts.idle_ttl_s;
	err = sesh_open(mcp_opts.domain, NULL, &cfg, SESH_CREATE, &mcp_dom);
	if (err) {
		fprintf(stderr, "mcp-prefork: sesh_open %s: %s\n",
			mcp_opts.domain, sesh_strerror(err));
		close(fd);
		return 1;
	}

	for (int n = 0; n < mcp_opts.workers; n++) {
		if (spawn(n, fd)) {
			stop_workers();
			sesh_close(mcp_dom);
			return 1;
		}
	}
	printf("listening on http://%s/mcp (%d workers)\n", shown,
	       mcp_opts.workers);

	next_reap = now_ms();
	while (!stop) {
		sig = sigtimedwait(&set, NULL, &tick);
		if (sig == SIGTERM || sig == SIGINT) {
			stop = true;
			break;
		}
		collect();
		respawn(fd);
		if (now_ms() >= next_reap) {
			next_reap = now_ms() + TICK_MS;
			err = sesh_reap(mcp_dom, NULL);
			if (err && err != -EBUSY)
				fprintf(stderr, "mcp-prefork: sesh_reap: %s\n",
					sesh_strerror(err));
		}
	}

	stop_workers();
	close(fd);
	sesh_reap(mcp_dom, NULL); /* what the workers left */
	sesh_close(mcp_dom);
	if (mcp_opts.unlink_at_exit) {
		err = sesh_unlink(mcp_opts.domain);
		if (err)
			fprintf(stderr, "mcp-prefork: sesh_unlink %s: %s\n",
				mcp_opts.domain, sesh_strerror(err));
	}
	return 0;
}
