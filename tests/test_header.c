/*
 * test_header.c - a segment is untrusted input. Every header field is
 * corrupted in turn, the file is truncated and extended, foreign objects
 * are put in its place, and random bytes are written over the header and
 * the registry for hundreds of rounds: attaching gives -EPROTO or -EUCLEAN
 * (never a crash, never success on a bad header), and a scribbled registry
 * is survived.
 */
#include "testutil.h"

#include <sys/mman.h>

#include "shm/shm.h"

static char g_name[64], g_path[256];
static struct shm_header g_good;
static off_t g_size;
static off_t g_index_off;
static size_t g_index_len;
static void *g_index;

/* Make a fresh small domain and remember its good header. */
static int setup(void **state)
{
	sesh_config_t c;
	sesh_t *d;
	int fd;
	struct stat st;

	tu_name(g_name, sizeof(g_name), "hdr");
	tu_path(g_path, sizeof(g_path), g_name);
	tu_small(&c);
	d = tu_create(g_name, &c);
	sesh_close(d);
	fd = open(g_path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &g_good, sizeof(g_good), 0), sizeof(g_good));
	assert_int_equal(fstat(fd, &st), 0);
	g_size = st.st_size;
	/* The index region, which truncating the file destroys. */
	g_index_off = (off_t)g_good.region[SHM_R_INDEX].off;
	g_index_len = (size_t)g_good.region[SHM_R_INDEX].len;
	g_index = malloc(g_index_len);
	assert_non_null(g_index);
	assert_int_equal(pread(fd, g_index, g_index_len, g_index_off),
			 (ssize_t)g_index_len);
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	free(g_index);
	(void)sesh_unlink(g_name);
	return 0;
}

static void put_header(const struct shm_header *h)
{
	int fd = open(g_path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, h, sizeof(*h), 0), sizeof(*h));
	close(fd);
}

/* Attach and expect failure with one of the validation errors. */
static int try_open(void)
{
	sesh_t *d = NULL;
	int rc = sesh_open(g_name, NULL, NULL, 0, &d);

	if (rc == 0) {
		sesh_close(d);
		return 0;
	}
	assert_null(d);
	/* SESH_CREATE must not paper over a bad segment either. */
	assert_int_equal(sesh_open(g_name, NULL, NULL, SESH_CREATE, &d), rc);
	return rc;
}

#define FIELD(f, err)                                                          \
	{                                                                      \
#f, offsetof(struct shm_header, f),                            \
			sizeof(((struct shm_header *)0)->f), err, 1            \
	}
#define FIELD_FREE(f, err)                                                     \
	{                                                                      \
#f, offsetof(struct shm_header, f),                            \
			sizeof(((struct shm_header *)0)->f), err, 0            \
	}

static const struct field {
	const char *name;
	size_t off, len;
	int err;     /* expected error with a stale checksum */
	int checked; /* refused even with a matching checksum */
} fields[] = {
	FIELD(magic, -EPROTO),
	FIELD(layout_version, -EPROTO),
	FIELD(endian_tag, -EPROTO),
	FIELD(header_bytes, -EPROTO),
	FIELD(proc_bytes, -EPROTO),
	FIELD(pointer_bytes, -EPROTO),
	FIELD(page_bytes, -EPROTO),
	FIELD_FREE(features_compat, -EUCLEAN),
	FIELD(features_incompat, -EPROTO),
	FIELD_FREE(domain_id, -EUCLEAN),
	FIELD_FREE(created_ns, -EUCLEAN),
	FIELD(total_bytes, -EUCLEAN),
	FIELD(max_sessions, -EUCLEAN),
	FIELD(stream_bytes, -EUCLEAN),
	FIELD_FREE(max_message, -EUCLEAN), /* no geometry */
	/* Shapes the geometry only through the largest size class, so a
	 * neighbouring value with a matching checksum is a valid header. */
	FIELD_FREE(max_metadata, -EUCLEAN),
	FIELD_FREE(hash_key, -EUCLEAN),
	FIELD_FREE(idle_ttl_s, -EUCLEAN),
	FIELD_FREE(mode, -EUCLEAN),
	FIELD(max_procs, -EUCLEAN),
	FIELD(nregions, -EUCLEAN),
	FIELD(region, -EUCLEAN),
	FIELD(checksum, -EUCLEAN),
};

/* Ways to damage a field: flip the low bit, flip all bits, zero it, set
 * it to all ones, and (for the first region entry) shift it by a page. */
static void damage(uint8_t *p, size_t len, int how)
{
	size_t i;

	switch (how) {
	case 0:
		p[0] ^= 1;
		break;
	case 1:
		for (i = 0; i < len; i++)
			p[i] ^= 0xff;
		break;
	case 2:
		memset(p, 0, len);
		break;
	case 3:
		memset(p, 0xff, len);
		break;
	case 4:
		p[1] ^= 0x10; /* +/- 4096 in a little-endian word */
		break;
	}
}

static void test_each_field(void **state)
{
	size_t i;
	int how;

	assert_int_equal(try_open(), 0); /* the good header attaches */
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const struct field *f = &fields[i];

		for (how = 0; how < 5; how++) {
			struct shm_header h = g_good;
			uint8_t *p = (uint8_t *)&h + f->off;
			int rc;

			damage(p, f->len, how);
			if (memcmp(&h, &g_good, sizeof(h)) == 0)
				continue; /* that damage changed nothing */
			put_header(&h);
			rc = try_open();
			if (rc != f->err)
				fail_msg(
					"%s damaged (%d): got %d (%s), want %d",
					f->name, how, rc, sesh_strerror(rc),
					f->err);

			/* Same damage with a checksum that matches: the
			 * field checks must still refuse it. */
			if (f->checked &&
			    f->off != offsetof(struct shm_header, checksum)) {
				h.checksum = shm_header_checksum(&h);
				put_header(&h);
				rc = try_open();
				if (rc != -EPROTO && rc != -EUCLEAN)
					fail_msg("%s damaged (%d), checksum "
						 "fixed: got %d (%s)",
						 f->name, how, rc,
						 sesh_strerror(rc));
			}
		}
		put_header(&g_good);
	}
	assert_int_equal(try_open(), 0);
}

/* Every region entry, including unused ones, is checked. */
static void test_each_region_word(void **state)
{
	size_t r, w;

	for (r = 0; r < SHM_R_MAX; r++) {
		for (w = 0; w < 2; w++) {
			struct shm_header h = g_good;
			uint64_t *word =
				w ? &h.region[r].len : &h.region[r].off;
			int rc;

			*word += SHM_PAGE;
			h.checksum = shm_header_checksum(&h);
			put_header(&h);
			rc = try_open();
			if (rc != -EUCLEAN)
				fail_msg("region %zu word %zu: got %d", r, w,
					 rc);
		}
	}
	put_header(&g_good);
	assert_int_equal(try_open(), 0);
}

static void set_size(off_t n)
{
	assert_int_equal(truncate(g_path, n), 0);
}

static void test_truncated_and_extended(void **state)
{
	const off_t sizes[] = {0,
			       1,
			       64,
			       (off_t)sizeof(struct shm_header) - 1,
			       (off_t)sizeof(struct shm_header),
			       SHM_PAGE,
			       g_size - SHM_PAGE,
			       g_size - 1,
			       g_size + 1,
			       g_size + SHM_PAGE};
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int rc;

		set_size(sizes[i]);
		if (sizes[i] >= (off_t)sizeof(struct shm_header))
			put_header(&g_good);
		rc = try_open();
		if (sizes[i] < (off_t)sizeof(struct shm_header))
			assert_int_equal(rc, -EPROTO);
		else
			assert_int_equal(rc, -EUCLEAN);
	}
	set_size(g_size);
	put_header(&g_good);
	{
		int fd = open(g_path, O_WRONLY);

		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, g_index, g_index_len, g_index_off),
				 (ssize_t)g_index_len);
		close(fd);
	}
	assert_int_equal(try_open(), 0);
}

/* Things that are not a sesh domain under its name. */
static void test_foreign_objects(void **state)
{
	char name[64], path[256];
	sesh_t *d = NULL;
	int fd;

	tu_name(name, sizeof(name), "foreign");
	tu_path(path, sizeof(path), name);

	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello, world\n", 13), 13);
	close(fd);
	assert_int_equal(sesh_open(name, NULL, NULL, 0, &d), -EPROTO);
	/* Text as long as a header. */
	fd = open(path, O_WRONLY);
	for (int i = 0; i < 100; i++)
		assert_int_equal(write(fd, "0123456789abcdef", 16), 16);
	close(fd);
	assert_int_equal(sesh_open(name, NULL, NULL, SESH_CREATE, &d), -EPROTO);
	assert_int_equal(unlink(path), 0);

	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(sesh_open(name, NULL, NULL, 0, &d), -EPROTO);
	assert_int_equal(rmdir(path), 0);

	assert_int_equal(symlink(g_path, path), 0);
	assert_int_equal(sesh_open(name, NULL, NULL, 0, &d), -EPROTO);
	assert_int_equal(unlink(path), 0);

	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(sesh_open(name, NULL, NULL, 0, &d), -EPROTO);
	assert_int_equal(unlink(path), 0);
	assert_null(d);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	/* xorshift64*: reproducible across runs */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* Random bytes over the header, in three flavours: all random; random
 * after a valid identity (so the deeper checks run); and random fields
 * with a matching checksum. */
static void test_random_headers(void **state)
{
	int round, accepted = 0;

	for (round = 0; round < 600; round++) {
		struct shm_header h;
		uint8_t *p = (uint8_t *)&h;
		size_t i, from = 0;
		int rc;

		h = g_good;
		if (round % 3 != 0)
			from = offsetof(struct shm_header, features_compat);
		/* Spray a random number of random bytes at random places,
		 * or everything from `from` on. */
		if (round % 2 == 0) {
			for (i = from; i < sizeof(h); i++)
				p[i] = (uint8_t)rnd();
		} else {
			int n = 1 + (int)(rnd() % 16);

			while (n-- > 0) {
				i = from + rnd() % (sizeof(h) - from);
				p[i] = (uint8_t)rnd();
			}
		}
		if (round % 3 == 2)
			h.checksum = shm_header_checksum(&h);
		if (memcmp(&h, &g_good, sizeof(h)) == 0)
			continue;
		put_header(&h);
		rc = try_open();
		if (rc == 0) {
			/* Only changes to fields that carry no geometry may
			 * pass, and only with a matching checksum. */
			struct shm_header a = h, b = g_good;

			a.features_compat = b.features_compat = 0;
			a.domain_id = b.domain_id = 0;
			a.created_ns = b.created_ns = 0;
			/* In range, with no bearing on the geometry: a
			 * different but valid domain. */
			a.max_message = b.max_message = 0;
			a.idle_ttl_s = b.idle_ttl_s = 0;
			a.unblock_ms = b.unblock_ms = 0;
			a.sqlite_lag_ms = b.sqlite_lag_ms = 0;
			a.sqlite_wait_ms = b.sqlite_wait_ms = 0;
			a.sqlite_mode = b.sqlite_mode = 0;
			memset(a.hash_key, 0, sizeof(a.hash_key));
			memset(b.hash_key, 0, sizeof(b.hash_key));
			a.mode = b.mode = 0;
			/* Only the checksummed prefix: what follows it is
			 * mutable and unchecked by design. */
			assert_memory_equal(
				&a, &b, offsetof(struct shm_header, checksum));
			accepted++;
			continue;
		}
		if (rc != -EPROTO && rc != -EUCLEAN)
			fail_msg("round %d: got %d (%s)", round, rc,
				 sesh_strerror(rc));
	}
	put_header(&g_good);
	assert_int_equal(try_open(), 0);
	print_message("600 random headers, %d accepted (identity-only "
		      "changes with a matching checksum)\n",
		      accepted);
}

/* Garbage in the registry: listing and registering survive, and a new
 * process still gets a slot. */
static void test_random_registry(void **state)
{
	int round;

	for (round = 0; round < 200; round++) {
		struct shm_geom *g;
		sesh_t *d, *d2 = NULL;
		sesh_info_t inf;
		uint8_t *reg;
		uint64_t len, i, n;
		int rc;

		d = tu_create(g_name, NULL);
		g = &d->seg.geom;
		reg = d->seg.base + g->region[SHM_R_REGISTRY].off;
		len = g->region[SHM_R_REGISTRY].len;
		n = 1 + rnd() % 512;
		for (i = 0; i < n; i++)
			reg[rnd() % len] = (uint8_t)rnd();
		if (round % 10 == 0)
			for (i = 0; i < len; i++)
				reg[i] = (uint8_t)rnd();
		assert_int_equal(sesh_info(d, &inf), 0);
		assert_true(inf.processes_alive + inf.processes_dead <=
			    g->max_procs);
		assert_int_equal(sesh_proc_list(d, NULL, NULL), -EINVAL);
		rc = sesh_open(g_name, NULL, NULL, 0, &d2);
		assert_int_equal(rc, 0);
		assert_int_equal(sesh_info(d2, &inf), 0);
		assert_true(inf.self_slot >= 0);
		assert_int_not_equal(inf.self_slot, d->slot);
		sesh_close(d2);
		sesh_close(d);
		/* Start the next round from a clean registry. */
		assert_int_equal(sesh_unlink(g_name), 0);
		sesh_close(tu_create(g_name, NULL));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_each_field, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_each_region_word, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_truncated_and_extended,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_objects, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_random_headers, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_random_registry, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
