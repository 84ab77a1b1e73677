/*
 * testutil.h - helpers shared by the cmocka tests: unique domain names,
 * forked children that report through pipes, and file checks.
 */
#ifndef SESH_TESTUTIL_H
#define SESH_TESTUTIL_H

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "sesh.h"

/* A domain name no other test or run uses. */
static inline void tu_name(char *buf, size_t n, const char *tag)
{
	static unsigned counter;

	snprintf(buf, n, "t-%s-%d-%u", tag, (int)getpid(), counter++);
}

/* Path of a domain's object. */
static inline void tu_path(char *buf, size_t n, const char *name)
{
	const char *dir = getenv("SESH_SHM_DIR");

	snprintf(buf, n, "%s/sesh.%s", dir && *dir ? dir : "/dev/shm", name);
}

static inline int tu_exists(const char *name)
{
	char p[256];
	struct stat st;

	tu_path(p, sizeof(p), name);
	return stat(p, &st) == 0;
}

/* Number of private files of creators of `name` left in the directory. */
static inline int tu_init_files(const char *name)
{
	char cmd[512];
	const char *dir = getenv("SESH_SHM_DIR");
	FILE *f;
	int n = 0, c;

	snprintf(cmd, sizeof(cmd), "ls -1 '%s' | grep -c '^sesh-init\\.%s\\.'",
		 dir && *dir ? dir : "/dev/shm", name);
	f = popen(cmd, "r");
	if (f == NULL)
		return -1;
	while ((c = fgetc(f)) != EOF)
		if (c >= '0' && c <= '9')
			n = n * 10 + (c - '0');
	pclose(f);
	return n;
}

/* In a child forked by `parent`: die with it, so that a test that fails
 * half-way leaves no process behind. */
static inline void tu_die_with(pid_t parent)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
		_exit(99);
}

/* Write and read exactly n bytes on a pipe. */
static inline void tu_put(int fd, const void *p, size_t n)
{
	if (write(fd, p, n) != (ssize_t)n)
		_exit(120);
}

static inline int tu_get(int fd, void *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, (char *)p + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* Wait for a child; return its exit status, or 128 + signal. */
static inline int tu_wait(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

/* A test's own open with defaults and creation; fails the test if not 0. */
static inline sesh_t *tu_create(const char *name, const sesh_config_t *cfg)
{
	sesh_t *d = NULL;
	int rc = sesh_open(name, NULL, cfg, SESH_CREATE, &d);

	if (rc != 0)
		fail_msg("sesh_open(%s): %s", name, sesh_strerror(rc));
	return d;
}

/* Small capacities keep test segments small. */
static inline void tu_small(sesh_config_t *cfg)
{
	sesh_config_init(cfg);
	cfg->max_sessions = 64;
	cfg->stream_bytes = 4096;
	cfg->max_processes = 64;
}

/* Sleep ms milliseconds, through signals. */
static inline void tu_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* CLOCK_REALTIME in nanoseconds, CLOCK_MONOTONIC in seconds. */
static inline int64_t tu_real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline double tu_mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
