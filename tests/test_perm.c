/*
 * test_perm.c - permissions of the shared-memory object: a process of
 * another user is refused with -EACCES unless the mode lets it in, and
 * a directory it may not write refuses creation. Needs root to switch
 * users; exits 77 (skip) otherwise.
 */
#include "testutil.h"

#include <grp.h>

#define OTHER_UID 65534 /* nobody */
#define OTHER_GID 65534 /* nogroup */

/* In a child running as nobody: sesh_open(name, flags); returns the
 * result (as a positive number for the exit status). */
static int open_as_nobody(const char *name, unsigned flags)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		sesh_t *d = NULL;
		sesh_info_t inf;
		int rc;

		if (setgroups(0, NULL) != 0 || setgid(OTHER_GID) != 0 ||
		    setuid(OTHER_UID) != 0)
			_exit(125);
		rc = sesh_open(name, NULL, NULL, flags, &d);
		if (rc == 0 && sesh_info(d, &inf) != 0)
			rc = -EIO;
		sesh_close(d);
		_exit(-rc);
	}
	return -tu_wait(pid);
}

static void test_other_user(void **state)
{
	static const struct {
		mode_t mode;
		int want;
	} cases[] = {
		{0600, -EACCES}, {0640, -EACCES}, {0660, -EACCES},
		{0644, -EACCES}, {0666, 0},	  {0606, 0},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sesh_config_t c;
		char name[64];
		sesh_t *d;
		int rc;

		tu_name(name, sizeof(name), "perm");
		tu_small(&c);
		c.mode = cases[i].mode;
		d = tu_create(name, &c);
		rc = open_as_nobody(name, 0);
		if (rc != cases[i].want)
			fail_msg("mode %04o: got %d (%s), want %d",
				 (unsigned)cases[i].mode, rc, sesh_strerror(rc),
				 cases[i].want);
		/* SESH_CREATE does not help against an existing object. */
		rc = open_as_nobody(name, SESH_CREATE);
		assert_int_equal(rc, cases[i].want);
		sesh_close(d);
		assert_int_equal(sesh_unlink(name), 0);
	}
}

/* A directory the user may not write: creation is -EACCES, and so is
 * removing a domain in it. */
static void test_unwritable_dir(void **state)
{
	char dir[] = "/tmp/sesh-perm-XXXXXX", name[64];
	const char *old = getenv("SESH_SHM_DIR");
	sesh_t *d;
	pid_t pid;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0755), 0);
	setenv("SESH_SHM_DIR", dir, 1);
	tu_name(name, sizeof(name), "pdir");
	assert_int_equal(open_as_nobody(name, SESH_CREATE), -EACCES);
	d = tu_create(name, NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) != 0 || setgid(OTHER_GID) != 0 ||
		    setuid(OTHER_UID) != 0)
			_exit(125);
		_exit(-sesh_unlink(name));
	}
	assert_int_equal(-tu_wait(pid), -EACCES);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
	assert_int_equal(rmdir(dir), 0);
	if (old != NULL)
		setenv("SESH_SHM_DIR", old, 1);
	else
		unsetenv("SESH_SHM_DIR");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_other_user),
		cmocka_unit_test(test_unwritable_dir),
	};

	if (geteuid() != 0) {
		printf("test_perm: skipped: switching users needs root\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
