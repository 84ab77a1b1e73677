/*
 * test_config.c - configuration, names, flags, sizing, errors and the
 * single-process life of a domain: every bad input is a clear error and
 * leaves nothing behind.
 */
#include "testutil.h"

#include <sys/statvfs.h>

#include "shm/shm.h"

static void test_config_defaults(void **state)
{
	sesh_config_t c;

	memset(&c, 0xa5, sizeof(c));
	sesh_config_init(&c);
	assert_int_equal(c.max_sessions, 65536);
	assert_int_equal(c.stream_bytes, 65536);
	assert_int_equal(c.max_message, 0);
	assert_int_equal(c.max_metadata, 1024);
	assert_int_equal(c.idle_ttl_s, 1800);
	assert_int_equal(c.mode, 0600);
	assert_int_equal(c.max_processes, 1024);
	sesh_config_init(NULL); /* ignored, no crash */
}

static void test_names(void **state)
{
	char n64[65], n65[66];

	memset(n64, 'a', 64);
	n64[64] = '\0';
	memset(n65, 'b', 65);
	n65[65] = '\0';
	assert_true(shm_name_valid("a"));
	assert_true(shm_name_valid("Az09._-"));
	assert_true(shm_name_valid(n64));
	assert_false(shm_name_valid(NULL));
	assert_false(shm_name_valid(""));
	assert_false(shm_name_valid(n65));
	assert_false(shm_name_valid("a/b"));
	assert_false(shm_name_valid("a b"));
	assert_false(shm_name_valid("a\x01"));
	assert_false(shm_name_valid("a\x7f"));
	assert_false(shm_name_valid("caf\xc3\xa9"));
	assert_false(shm_name_valid("a:b"));
}

static void test_open_bad_arguments(void **state)
{
	char name[64], n65[66];
	sesh_t *d = (sesh_t *)0x1;

	tu_name(name, sizeof(name), "args");
	memset(n65, 'x', 65);
	n65[65] = '\0';
	assert_int_equal(sesh_open(NULL, NULL, NULL, SESH_CREATE, &d), -EINVAL);
	assert_int_equal(sesh_open("", NULL, NULL, SESH_CREATE, &d), -EINVAL);
	assert_int_equal(sesh_open(n65, NULL, NULL, SESH_CREATE, &d), -EINVAL);
	assert_int_equal(sesh_open("a/b", NULL, NULL, SESH_CREATE, &d),
			 -EINVAL);
	assert_int_equal(sesh_open("..", NULL, NULL, 0, &d), -ENOENT);
	assert_int_equal(sesh_open(name, "", NULL, SESH_CREATE, &d), -EINVAL);
	assert_int_equal(sesh_open(name, "n s", NULL, SESH_CREATE, &d),
			 -EINVAL);
	assert_int_equal(sesh_open(name, n65, NULL, SESH_CREATE, &d), -EINVAL);
	assert_int_equal(sesh_open(name, NULL, NULL, SESH_CREATE, NULL),
			 -EINVAL);
	assert_int_equal(sesh_open(name, NULL, NULL, 0x4, &d), -EINVAL);
	assert_int_equal(sesh_open(name, NULL, NULL, SESH_EXCL, &d), -EINVAL);
	assert_ptr_equal(d, (sesh_t *)0x1); /* untouched on failure */
	assert_false(tu_exists(name));
	assert_int_equal(sesh_info(NULL, NULL), -EINVAL);
	assert_int_equal(sesh_proc_list(NULL, NULL, NULL), -EINVAL);
	assert_int_equal(sesh_unlink(NULL), -EINVAL);
	assert_int_equal(sesh_unlink("a b"), -EINVAL);
	sesh_close(NULL);
}

/* Each field out of range is -EINVAL, and no file appears. */
static void test_config_ranges(void **state)
{
	/* field, value: each alone makes the configuration invalid. */
	static const struct {
		const char *what;
		size_t off, width;
		uint64_t val;
	} bad[] = {
#define BAD(f, v)                                                              \
	{#f " = " #v, offsetof(sesh_config_t, f),                              \
	 sizeof(((sesh_config_t *)0)->f), (uint64_t)(v)}
		BAD(max_sessions, 0),
		BAD(max_sessions, SESH_MAX_SESSIONS + 1),
		BAD(max_sessions, SIZE_MAX),
		BAD(stream_bytes, 0),
		BAD(stream_bytes, 2048),
		BAD(stream_bytes, 3000),
		BAD(stream_bytes, 65537),
		BAD(stream_bytes, (size_t)1 << 31),
		BAD(stream_bytes, SIZE_MAX),
		BAD(max_message, 65536 / 2 + 1),
		BAD(max_message, SIZE_MAX),
		BAD(max_metadata, ((size_t)1 << 20) + 1),
		BAD(max_metadata, SIZE_MAX),
		BAD(idle_ttl_s, 0),
		BAD(mode, 0),
		BAD(mode, 0400),
		BAD(mode, 0200),
		BAD(mode, 01600),
		BAD(mode, 04600),
		BAD(max_processes, 0),
		BAD(max_processes, SESH_MAX_PROCESSES + 1),
#undef BAD
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sesh_config_t c;
		char name[64];
		sesh_t *d = NULL;
		int rc;

		tu_name(name, sizeof(name), "range");
		sesh_config_init(&c);
		if (bad[i].width == 8) {
			uint64_t v = bad[i].val;

			memcpy((char *)&c + bad[i].off, &v, 8);
		} else {
			uint32_t v = (uint32_t)bad[i].val;

			assert_int_equal(bad[i].width, 4);
			memcpy((char *)&c + bad[i].off, &v, 4);
		}
		rc = sesh_open(name, NULL, &c, SESH_CREATE, &d);
		if (rc != -EINVAL)
			fail_msg("%s: got %d, want -EINVAL", bad[i].what, rc);
		assert_null(d);
		assert_false(tu_exists(name));
		assert_int_equal(tu_init_files(name), 0);
	}
}

static void test_config_edges_ok(void **state)
{
	sesh_config_t c, out;

	sesh_config_init(&c);
	c.stream_bytes = 4096;
	c.max_message = 2048; /* stream_bytes / 2: the largest allowed */
	c.max_metadata = 0;   /* sessions without metadata */
	c.mode = 0777;
	c.max_processes = 1;
	assert_int_equal(shm_config_check(&c, &out), 0);
	assert_int_equal(out.max_message, 2048);
	c.max_message = 0;
	assert_int_equal(shm_config_check(&c, &out), 0);
	assert_int_equal(out.max_message, 1024); /* stream_bytes / 4 */
}

/* Sizing never wraps: absurd totals are -ENOSPC. */
static void test_layout_overflow(void **state)
{
	sesh_config_t c;
	struct shm_geom g;
	char name[64];
	sesh_t *d = NULL;

	sesh_config_init(&c);
	c.max_message = 1;
	c.max_sessions = SIZE_MAX;
	assert_int_equal(shm_layout(&c, &g), -ENOSPC);
	c.max_sessions = 1;
	c.stream_bytes = SIZE_MAX;
	assert_int_equal(shm_layout(&c, &g), -ENOSPC);
	c.stream_bytes = 4096;
	c.max_metadata = SIZE_MAX;
	assert_int_equal(shm_layout(&c, &g), -ENOSPC);
	c.max_metadata = SIZE_MAX - 62; /* would wrap when rounded up */
	assert_int_equal(shm_layout(&c, &g), -ENOSPC);
	c.max_metadata = 0;
	c.max_processes = UINT32_MAX;
	c.max_subscriptions = 1;
	/* 16 KiB of reader slots a process: 64 TiB, past the 2^46 cap. */
	assert_int_equal(shm_layout(&c, &g), -ENOSPC);
	c.max_processes = (uint32_t)1 << 20;
	assert_int_equal(shm_layout(&c, &g), 0); /* 16 GiB: still sane */
	assert_true(g.total_bytes > ((uint64_t)1 << 20) * 16384);

	/* Through the API: every capacity in range, the product too big. */
	tu_name(name, sizeof(name), "huge");
	sesh_config_init(&c);
	c.max_sessions = SESH_MAX_SESSIONS;
	c.stream_bytes = (size_t)1 << 30;
	assert_int_equal(sesh_open(name, NULL, &c, SESH_CREATE, &d), -ENOSPC);
	assert_null(d);
	assert_false(tu_exists(name));
	assert_int_equal(tu_init_files(name), 0);
}

static void test_layout_geometry(void **state)
{
	sesh_config_t c, k;
	struct shm_geom g;
	unsigned r;

	sesh_config_init(&c);
	assert_int_equal(shm_config_check(&c, &k), 0);
	assert_int_equal(shm_layout(&k, &g), 0);
	/* Regions are page-aligned, in order, non-overlapping, and end at
	 * the end of the segment. */
	assert_int_equal(g.region[0].off, SHM_PAGE);
	for (r = 0; r < SHM_R_COUNT; r++) {
		assert_int_equal(g.region[r].off % SHM_PAGE, 0);
		assert_int_equal(g.region[r].len % SHM_PAGE, 0);
		if (r > 0)
			assert_int_equal(g.region[r].off,
					 g.region[r - 1].off +
						 g.region[r - 1].len);
	}
	assert_int_equal(g.region[SHM_R_COUNT - 1].off +
				 g.region[SHM_R_COUNT - 1].len,
			 g.total_bytes);
	assert_true(g.region[SHM_R_REGISTRY].len >=
		    c.max_processes * sizeof(struct shm_proc));
	assert_true(g.region[SHM_R_STREAMS].len >=
		    c.max_sessions * c.stream_bytes);
	/* Every class holds a block for every session, and the last class
	 * holds the largest record. */
	assert_true(g.nclasses >= 1);
	for (unsigned j = 0; j < g.nclasses; j++) {
		assert_true(g.cls[j].cap > c.max_sessions);
		assert_true(g.cls[j].blocks >= g.region[SHM_R_BLOCKS].off);
		assert_true(g.cls[j].blocks + g.cls[j].cap * g.cls[j].size <=
			    g.region[SHM_R_BLOCKS].off +
				    g.region[SHM_R_BLOCKS].len);
	}
	assert_true(g.cls[g.nclasses - 1].size >=
		    SHM_RECORD_MAX(c.max_metadata));
}

/* shm_ptr refuses everything outside its region or misaligned. */
static void test_offsets(void **state)
{
	static uint8_t mem[3 * 4096];
	struct shm_seg s;

	memset(&s, 0, sizeof(s));
	s.base = mem;
	s.geom.total_bytes = sizeof(mem);
	s.geom.region[SHM_R_REGISTRY].off = 4096;
	s.geom.region[SHM_R_REGISTRY].len = 4096;
	s.geom.region[SHM_R_STREAMS].off = 8192;
	s.geom.region[SHM_R_STREAMS].len = 4096;

	assert_ptr_equal(shm_ptr(&s, SHM_R_REGISTRY, 4096, 64, 64), mem + 4096);
	assert_ptr_equal(shm_ptr(&s, SHM_R_REGISTRY, 8192 - 64, 64, 64),
			 mem + 8192 - 64);
	assert_null(shm_ptr(&s, SHM_R_REGISTRY, 0, 8, 8));	 /* none */
	assert_null(shm_ptr(&s, SHM_R_REGISTRY, 4032, 64, 64));	 /* before */
	assert_null(shm_ptr(&s, SHM_R_REGISTRY, 8192, 64, 64));	 /* after */
	assert_null(shm_ptr(&s, SHM_R_REGISTRY, 8160, 64, 32));	 /* spans */
	assert_null(shm_ptr(&s, SHM_R_REGISTRY, 4100, 8, 8));	 /* align */
	assert_null(shm_ptr(&s, SHM_R_REGISTRY, 4096, 0, 8));	 /* empty */
	assert_null(shm_ptr(&s, SHM_R_REGISTRY, 4096, 4097, 8)); /* long */
	assert_null(shm_ptr(&s, SHM_R_REGISTRY, UINT64_MAX - 7, 16, 8));
	assert_null(shm_ptr(&s, SHM_R_REGISTRY, 4096, UINT64_MAX, 8));
	assert_null(shm_ptr(&s, SHM_R_STREAMS, 4096, 64, 64)); /* other region */
	assert_null(shm_ptr(&s, SHM_R_COUNT, 8192, 64, 64));
	assert_null(shm_ptr(&s, 99, 8192, 64, 64));
	assert_int_equal(shm_off(&s, mem + 8200), 8200);
}

static void test_strerror(void **state)
{
	static const int errs[] = {
		EINVAL,	   ENOENT, EEXIST,  E2BIG,  ENOSPC, EAGAIN, ETIMEDOUT,
		EOVERFLOW, EPROTO, EUCLEAN, EACCES, ENOMEM, EIO};
	size_t i, j;

	assert_string_equal(sesh_strerror(0), "success");
	for (i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		const char *s = sesh_strerror(-errs[i]);

		assert_non_null(s);
		assert_true(strlen(s) > 3);
		assert_string_equal(s, sesh_strerror(errs[i]));
		for (j = 0; j < i; j++)
			assert_string_not_equal(s, sesh_strerror(-errs[j]));
	}
	assert_non_null(sesh_strerror(-EMFILE));
	assert_string_not_equal(sesh_strerror(-EMFILE), "unknown error");
	assert_string_equal(sesh_strerror(-99999), "unknown error");
	assert_string_equal(sesh_strerror(INT32_MIN + 1), "unknown error");
}

static void test_create_attach_unlink(void **state)
{
	sesh_config_t c, other;
	sesh_info_t a, b;
	char name[64];
	sesh_t *d1, *d2 = NULL;

	tu_name(name, sizeof(name), "life");
	assert_int_equal(sesh_open(name, NULL, NULL, 0, &d2), -ENOENT);
	assert_null(d2);
	tu_small(&c);
	c.max_message = 100;
	c.max_metadata = 200;
	c.idle_ttl_s = 77;
	d1 = tu_create(name, &c);
	assert_int_equal(sesh_info(d1, &a), 0);
	assert_string_equal(a.name, name);
	assert_string_equal(a.ns, "default");
	assert_int_equal(a.layout_version, SHM_LAYOUT_VERSION);
	assert_int_equal(a.max_sessions, 64);
	assert_int_equal(a.stream_bytes, 4096);
	assert_int_equal(a.max_message, 100);
	assert_int_equal(a.max_metadata, 200);
	assert_int_equal(a.idle_ttl_s, 77);
	assert_int_equal(a.max_processes, 64);
	assert_int_equal(a.mode, 0600);
	assert_int_equal(a.processes_alive, 1);
	assert_int_equal(a.processes_dead, 0);
	assert_true(a.self_slot >= 0);
	assert_true(a.created_ns > 1700000000ll * 1000000000ll);

	/* SESH_EXCL refuses; a second attach (other namespace, other
	 * capacities) sees the creator's capacities and registers apart. */
	assert_int_equal(
		sesh_open(name, NULL, &c, SESH_CREATE | SESH_EXCL, &d2),
		-EEXIST);
	sesh_config_init(&other);
	assert_int_equal(sesh_open(name, "tenant-b", &other, SESH_CREATE, &d2),
			 0);
	assert_int_equal(sesh_info(d2, &b), 0);
	assert_string_equal(b.ns, "tenant-b");
	assert_int_equal(b.domain_id, a.domain_id);
	assert_int_equal(b.max_sessions, 64);
	assert_int_equal(b.processes_alive, 2);
	assert_int_not_equal(b.self_slot, a.self_slot);
	sesh_close(d2);
	assert_int_equal(sesh_info(d1, &a), 0);
	assert_int_equal(a.processes_alive, 1);

	/* Unlink: attached handles keep working; the name is free again. */
	assert_int_equal(sesh_unlink(name), 0);
	assert_int_equal(sesh_unlink(name), -ENOENT);
	assert_false(tu_exists(name));
	assert_int_equal(sesh_info(d1, &a), 0);
	d2 = tu_create(name, &c);
	assert_int_equal(sesh_info(d2, &b), 0);
	assert_int_not_equal(b.domain_id, a.domain_id);
	sesh_close(d2);
	sesh_close(d1);
	assert_int_equal(sesh_unlink(name), 0);
}

/* The object's mode is exactly cfg->mode, whatever the umask. */
static void test_mode_exact(void **state)
{
	static const mode_t modes[] = {0600, 0640, 0660, 0666, 0700, 0777};
	size_t i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		sesh_config_t c;
		char name[64], path[256];
		struct stat st;
		sesh_info_t inf;
		mode_t old = umask(077);
		sesh_t *d;

		tu_name(name, sizeof(name), "mode");
		tu_small(&c);
		c.mode = modes[i];
		d = tu_create(name, &c);
		umask(old);
		tu_path(path, sizeof(path), name);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 07777, modes[i]);
		assert_int_equal(sesh_info(d, &inf), 0);
		assert_int_equal(inf.mode, modes[i]);
		sesh_close(d);
		assert_int_equal(sesh_unlink(name), 0);
	}
}

/* A large segment is virtual: only what is touched is committed. */
static void test_lazy_commit(void **state)
{
	sesh_config_t c;
	sesh_info_t inf;
	char name[64], path[256];
	struct stat st;
	sesh_t *d;

	tu_name(name, sizeof(name), "lazy");
	sesh_config_init(&c);
	c.max_sessions = 100000; /* about 6.7 GB virtual */
	d = tu_create(name, &c);
	assert_int_equal(sesh_info(d, &inf), 0);
	assert_true(inf.segment_bytes > 6000000000ull);
	assert_true(inf.committed_bytes < 1024 * 1024);
	assert_true(inf.committed_bytes > 0);
	tu_path(path, sizeof(path), name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal((uint64_t)st.st_size, inf.segment_bytes);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
}

/* SESH_SHM_DIR moves the objects; a missing directory is -ENOENT. */
static void test_shm_dir(void **state)
{
	char dir[] = "/tmp/sesh-test-dirXXXXXX", name[64], path[512];
	const char *old = getenv("SESH_SHM_DIR");
	struct stat st;
	sesh_t *d = NULL;

	assert_non_null(mkdtemp(dir));
	setenv("SESH_SHM_DIR", dir, 1);
	tu_name(name, sizeof(name), "dir");
	d = tu_create(name, NULL);
	snprintf(path, sizeof(path), "%s/sesh.%s", dir, name);
	assert_int_equal(stat(path, &st), 0);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name), 0);
	assert_int_equal(rmdir(dir), 0);
	d = NULL;
	assert_int_equal(sesh_open(name, NULL, NULL, SESH_CREATE, &d), -ENOENT);
	assert_null(d);
	if (old != NULL)
		setenv("SESH_SHM_DIR", old, 1);
	else
		unsetenv("SESH_SHM_DIR");
}

/* Close and reopen many times: slots are reused, nothing leaks. */
static void test_reopen_cycles(void **state)
{
	sesh_config_t c;
	sesh_info_t inf;
	char name[64];
	int i;

	tu_name(name, sizeof(name), "cycle");
	tu_small(&c);
	c.max_processes = 2;
	for (i = 0; i < 200; i++) {
		sesh_t *d = tu_create(name, &c);

		assert_int_equal(sesh_info(d, &inf), 0);
		assert_int_equal(inf.processes_alive, 1);
		assert_int_equal(inf.self_slot, 0);
		sesh_close(d);
	}
	assert_int_equal(sesh_unlink(name), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_defaults),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_open_bad_arguments),
		cmocka_unit_test(test_config_ranges),
		cmocka_unit_test(test_config_edges_ok),
		cmocka_unit_test(test_layout_overflow),
		cmocka_unit_test(test_layout_geometry),
		cmocka_unit_test(test_offsets),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_create_attach_unlink),
		cmocka_unit_test(test_mode_exact),
		cmocka_unit_test(test_lazy_commit),
		cmocka_unit_test(test_shm_dir),
		cmocka_unit_test(test_reopen_cycles),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
