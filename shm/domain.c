/*
 * domain.c - creating, attaching, describing and removing a domain, and
 * keeping each process (forked children included) registered.
 *
 * How creation stays race-free. A segment is never built in place. The
 * creator makes a private file, sesh-init.NAME.<16 hex>, holds an OFD lock
 * on its byte SHM_LOCK_INIT, sizes it, writes the header (checksum last),
 * sets its permissions, and only then publishes it with linkat() to
 * sesh.NAME, which fails if the name exists. So every file found under
 * sesh.NAME was complete when it appeared there; concurrent creators lose
 * the link race cleanly and attach the winner's segment. A creator killed
 * half-way leaves only its private file, with its lock dropped by the
 * kernel: the next creator (or sesh_unlink) finds such files, proves the
 * creator dead by taking the lock, and removes them.
 *
 * How forked children register. A descriptor inherited across fork()
 * shares its open file description, and so its OFD locks, with the parent:
 * if a child kept the parent's lock descriptor, the parent's slot would
 * look alive after the parent died. Each handle therefore has two
 * descriptors: `fd`, which maps the segment and holds no lock, and
 * `lock_fd`, a description of this process's own that holds its slot's
 * lock. A fork handler closes every `lock_fd` in the child at once, and the
 * child's first call on the handle opens a new description of the same
 * file (through /proc/self/fd, so it works even after sesh_unlink) and
 * claims a slot of its own.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gc/epoch.h"
#include "index/index.h"
#include "index/persist.h"
#include "shm/shm.h"

void (*shm_test_hook)(enum shm_stage stage);

static void stage(enum shm_stage s)
{
	if (shm_test_hook != NULL)
		shm_test_hook(s);
}

#define FILE_PREFIX   "sesh."
#define INIT_PREFIX   "sesh-init."
#define INIT_RAND_HEX 16
#define PATH_BYTES    (sizeof(INIT_PREFIX) + SESH_NAME_MAX + 1 + INIT_RAND_HEX + 1)

/* All handles of this process, for the fork handler. */
static pthread_mutex_t handles_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sesh *handles;
static uint64_t handles_serial; /* last serial handed out */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
/* One recovery pass at a time: they share the handle's lock description,
 * through which two threads could both "take" the same dead slot. */
static pthread_mutex_t reap_lock = PTHREAD_MUTEX_INITIALIZER;

static void atfork_prepare(void)
{
	pthread_mutex_lock(&handles_lock);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&handles_lock);
}

/* In the child: drop the parent's lock descriptions at once, so that the
 * parent's death is visible even while the child lives. Only
 * async-signal-safe calls here. */
static void atfork_child(void)
{
	struct sesh *d;

	for (d = handles; d != NULL; d = d->next) {
		if (d->lock_fd >= 0)
			close(d->lock_fd);
		d->lock_fd = -1;
		atomic_store_explicit(&d->slot, -1, memory_order_relaxed);
		/* The parent's threads' reader slots are not ours. */
		memset(d->readers_taken, 0, sizeof(d->readers_taken));
		atomic_fetch_add_explicit(&d->reg_gen, 1, memory_order_relaxed);
		/* Another thread may have held it at fork. */
		d->alloc.lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
		d->ring_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
		d->reap_lease = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
		d->persist_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	}
	pthread_mutex_unlock(&handles_lock);
	reap_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
}

static void atfork_register(void)
{
	(void)pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* errno of a system call on the shm object, as a sesh error. */
static int sys_err(int e)
{
	switch (e) {
	case EACCES:
	case EPERM:
	case EROFS:
		return -EACCES;
	case ENOENT:
	case ENOTDIR:
		return -ENOENT;
	case ENOSPC:
	case EFBIG:
	case EDQUOT:
		return -ENOSPC;
	case ELOOP:  /* a symbolic link, */
	case EISDIR: /* a directory, */
	case ENXIO:  /* a socket or device: not our object */
	case ENODEV:
		return -EPROTO;
	case ENOMEM:
	case EMFILE:
	case ENFILE:
	case EEXIST:
		return -e;
	default:
		return -EIO;
	}
}

const char *shm_dir(void)
{
	const char *dir = secure_getenv("SESH_SHM_DIR");

	return dir != NULL && dir[0] != '\0' ? dir : "/dev/shm";
}

static int open_dir(void)
{
	int fd = open(shm_dir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	return fd >= 0 ? fd : sys_err(errno);
}

static int random_bytes(void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -EIO;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int init_lock(int fd, short type)
{
	return shm_lock_byte(fd, type, SHM_LOCK_INIT, F_OFD_SETLK);
}

/* Is `ent` exactly INIT_PREFIX name "." <16 hex>? */
static bool is_init_file(const char *ent, const char *name)
{
	size_t np = sizeof(INIT_PREFIX) - 1, nn = strlen(name), i;

	if (strncmp(ent, INIT_PREFIX, np) != 0 ||
	    strncmp(ent + np, name, nn) != 0 || ent[np + nn] != '.')
		return false;
	ent += np + nn + 1;
	for (i = 0; i < INIT_RAND_HEX; i++)
		if (!((ent[i] >= '0' && ent[i] <= '9') ||
		      (ent[i] >= 'a' && ent[i] <= 'f')))
			return false;
	return ent[INIT_RAND_HEX] == '\0';
}

/* Remove the private files of creators of `name` that died. A file whose
 * init lock we can take has no live creator. */
static void sweep_dead_creators(int dirfd, const char *name)
{
	int dfd = dup(dirfd);
	DIR *dir;
	struct dirent *e;

	if (dfd < 0)
		return;
	dir = fdopendir(dfd);
	if (dir == NULL) {
		close(dfd);
		return;
	}
	while ((e = readdir(dir)) != NULL) {
		int fd;

		if (!is_init_file(e->d_name, name))
			continue;
		fd = openat(dirfd, e->d_name,
			    O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd < 0)
			continue;
		if (init_lock(fd, F_WRLCK) == 0)
			(void)unlinkat(dirfd, e->d_name, 0);
		close(fd); /* drops the lock */
	}
	closedir(dir);
}

/* Initialise what is not zero in a new segment: the index's locks. */
static int format_segment(int fd, const struct shm_geom *g)
{
	struct shm_seg s;
	int rc;

	s.geom = *g;
	s.base = mmap(NULL, (size_t)g->total_bytes, PROT_READ | PROT_WRITE,
		      MAP_SHARED, fd, 0);
	if (s.base == MAP_FAILED)
		return errno == ENOMEM ? -ENOMEM : sys_err(errno);
	rc = idx_format(&s);
	if (rc == 0)
		rc = persist_format(&s);
	munmap(s.base, (size_t)g->total_bytes);
	return rc < 0 ? -EIO : 0;
}

static int attach_segment(struct sesh *d, int fd);
static int register_locked(struct sesh *d);
static struct sesh *handle_new(const char *name, const char *ns);
static void handle_free(struct sesh *d);

/*
 * Fill a segment being created, still under its private name, with the
 * sessions of its SQLite database, through a handle of our own on it:
 * nobody can attach before it is published, so nobody sees it half
 * restored. A creator killed here leaves only its private file.
 */
static int restore_private(int fd, const char *name)
{
	struct sesh *t = handle_new(name, "default");
	int rc, slot;

	if (t == NULL)
		return -ENOMEM;
	t->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	rc = t->fd < 0 ? sys_err(errno) : attach_segment(t, t->fd);
	if (rc == 0) {
		pthread_mutex_lock(&handles_lock);
		rc = register_locked(t);
		pthread_mutex_unlock(&handles_lock);
	}
	if (rc == 0)
		rc = persist_restore(t);
	slot = atomic_load_explicit(&t->slot, memory_order_relaxed);
	if (slot >= 0)
		shm_proc_release(&t->seg, t->lock_fd, (uint32_t)slot);
	handle_free(t);
	return rc;
}

/*
 * Build a new segment under a private name and publish it as `fname`.
 * Returns 0 with *out the published segment's descriptor, -EEXIST if
 * another creator published first, -EAGAIN if our private file was swept
 * before we could lock it, or another negative errno.
 */
static int create_segment(int dirfd, const char *name, const char *fname,
			  const sesh_config_t *cfg, int *out)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[PATH_BYTES];
	uint8_t rnd[INIT_RAND_HEX / 2];
	uint64_t domain_id;
	struct shm_geom g;
	struct shm_header h;
	size_t cut = offsetof(struct shm_header, checksum), i;
	int fd, rc;

	rc = shm_layout(cfg, &g);
	if (rc < 0)
		return rc;
	if (random_bytes(rnd, sizeof(rnd)) < 0 ||
	    random_bytes(&domain_id, sizeof(domain_id)) < 0 ||
	    random_bytes(g.hash_key, sizeof(g.hash_key)) < 0)
		return -EIO;
	i = (size_t)snprintf(tmp, sizeof(tmp), "%s%s.", INIT_PREFIX, name);
	for (size_t k = 0; k < sizeof(rnd); k++) {
		tmp[i++] = hex[rnd[k] >> 4];
		tmp[i++] = hex[rnd[k] & 15];
	}
	tmp[i] = '\0';

	sweep_dead_creators(dirfd, name);
	fd = openat(dirfd, tmp,
		    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return sys_err(errno);
	/* A sweeper may have opened the file and taken the lock in the
	 * instant since we created it: it will remove the file, so start
	 * over (-EAGAIN). Never go on without the lock. */
	rc = init_lock(fd, F_WRLCK);
	if (rc < 0) {
		rc = rc == -EAGAIN ? -EAGAIN : -EIO;
		goto fail;
	}
	stage(SHM_STAGE_CREATED);
	if (ftruncate(fd, (off_t)g.total_bytes) != 0) {
		rc = errno == EINVAL ? -ENOSPC : sys_err(errno);
		goto fail;
	}
	stage(SHM_STAGE_SIZED);
	/* The registry, buckets and allocator start zeroed: a fresh tmpfs
	 * file reads as zeros, and zero is every slot's free state. The
	 * index's locks need initialising, in place. */
	rc = format_segment(fd, &g);
	if (rc < 0)
		goto fail;
	shm_header_fill(&h, &g, domain_id, shm_now_ns());
	if (pwrite(fd, &h, cut, 0) != (ssize_t)cut) {
		rc = -EIO;
		goto fail;
	}
	stage(SHM_STAGE_HALF);
	if (pwrite(fd, (char *)&h + cut, sizeof(h) - cut, (off_t)cut) !=
	    (ssize_t)(sizeof(h) - cut)) {
		rc = -EIO;
		goto fail;
	}
	/* Exactly the requested mode, whatever the umask. */
	if (fchmod(fd, (mode_t)g.mode) != 0) {
		rc = sys_err(errno);
		goto fail;
	}
	stage(SHM_STAGE_BUILT);
	if (g.sqlite_path[0] != '\0') {
		rc = restore_private(fd, name);
		if (rc < 0)
			goto fail;
	}
	if (linkat(dirfd, tmp, dirfd, fname, 0) != 0) {
		/* ENOENT: a sweeper took our file for a dead creator's in
		 * the instant between its creation and our lock. Nothing
		 * is lost; the caller starts over. */
		rc = errno == ENOENT ? -EAGAIN : sys_err(errno);
		goto fail;
	}
	stage(SHM_STAGE_PUBLISHED);
	(void)unlinkat(dirfd, tmp, 0);
	/* From here `fd` is a mapping descriptor, which holds no lock. */
	(void)init_lock(fd, F_UNLCK);
	*out = fd;
	return 0;
fail:
	(void)unlinkat(dirfd, tmp, 0);
	close(fd);
	return rc;
}

/* Validate the segment behind fd and map it into d->seg. */
static int attach_segment(struct sesh *d, int fd)
{
	struct shm_header h;
	struct stat st;
	ssize_t n;
	void *base;
	int rc;

	if (fstat(fd, &st) != 0)
		return sys_err(errno);
	if (!S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(h))
		return -EPROTO;
	n = pread(fd, &h, sizeof(h), 0);
	if (n != (ssize_t)sizeof(h))
		return n < 0 ? sys_err(errno) : -EUCLEAN;
	rc = shm_header_validate(&h, (uint64_t)st.st_size, &d->seg.geom,
				 &d->domain_id, &d->created_ns);
	if (rc < 0)
		return rc;
	base = mmap(NULL, (size_t)d->seg.geom.total_bytes,
		    PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		return errno == ENOMEM ? -ENOMEM : sys_err(errno);
	d->seg.base = base;
	/* The header is complete only after the index was formatted, so a
	 * bad index header is corruption, not a creator still at work. */
	return idx_valid(&d->seg) ? 0 : -EUCLEAN;
}

/* A new open file description of the segment, private to this process. */
static int reopen_private(const struct sesh *d)
{
	char path[32];
	int fd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", d->fd);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		/* No /proc: reopen by name, and make sure it is still the
		 * same file. */
		struct stat a, b;
		char fname[PATH_BYTES];
		int dirfd = open_dir();

		if (dirfd < 0)
			return dirfd;
		snprintf(fname, sizeof(fname), FILE_PREFIX "%s", d->name);
		fd = openat(dirfd, fname, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		close(dirfd);
		if (fd < 0)
			return sys_err(errno);
		if (fstat(fd, &a) != 0 || fstat(d->fd, &b) != 0 ||
		    a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
			close(fd);
			return -ENOENT;
		}
		return fd;
	}
	return fd >= 0 ? fd : sys_err(errno);
}

/* Claim a slot through a new private description. Called with
 * handles_lock held. */
static int register_locked(struct sesh *d)
{
	int fd = reopen_private(d), slot;

	if (fd < 0)
		return fd;
	slot = shm_proc_claim(&d->seg, fd);
	if (slot < 0) {
		close(fd);
		return slot;
	}
	d->lock_fd = fd;
	memset(d->readers_taken, 0, sizeof(d->readers_taken));
	atomic_fetch_add_explicit(&d->reg_gen, 1, memory_order_relaxed);
	/* Release: pairs with the acquire of the fast path below. */
	atomic_store_explicit(&d->slot, slot, memory_order_release);
	return 0;
}

int shm_reader_claim(struct sesh *d, uint32_t *gen)
{
	uint32_t k;
	int rc;

	rc = shm_ensure_registered(d);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&handles_lock);
	for (k = 0; k < SHM_READERS_PER_PROC; k++)
		if (!(d->readers_taken[k / 64] & ((uint64_t)1 << (k % 64))))
			break;
	if (k == SHM_READERS_PER_PROC) {
		rc = -ENOSPC;
	} else {
		d->readers_taken[k / 64] |= (uint64_t)1 << (k % 64);
		*gen = atomic_load_explicit(&d->reg_gen, memory_order_relaxed);
		rc = (int)k;
	}
	pthread_mutex_unlock(&handles_lock);
	return rc;
}

void shm_reader_return(struct sesh *d, uint64_t serial, uint32_t gen,
		       uint32_t k)
{
	struct sesh *h;

	pthread_mutex_lock(&handles_lock);
	for (h = handles; h != NULL; h = h->next) {
		struct shm_reader *r;
		int slot;

		if (h != d || h->serial != serial ||
		    atomic_load_explicit(&h->reg_gen, memory_order_relaxed) !=
			    gen)
			continue;
		slot = atomic_load_explicit(&h->slot, memory_order_relaxed);
		r = slot >= 0 ? shm_reader_slot(&h->seg, (uint32_t)slot, k)
			      : NULL;
		if (r != NULL) /* a thread that died inside a section */
			atomic_store_explicit(&r->epoch, 0,
					      memory_order_release);
		if (k < SHM_READERS_PER_PROC)
			h->readers_taken[k / 64] &= ~((uint64_t)1 << (k % 64));
		break;
	}
	pthread_mutex_unlock(&handles_lock);
}

int shm_ensure_registered(struct sesh *d)
{
	int rc = 0;

	/* Acquire: a registered handle's lock_fd is visible with its slot. */
	if (atomic_load_explicit(&d->slot, memory_order_acquire) >= 0)
		return 0;
	pthread_mutex_lock(&handles_lock);
	if (atomic_load_explicit(&d->slot, memory_order_relaxed) < 0)
		rc = register_locked(d);
	pthread_mutex_unlock(&handles_lock);
	return rc;
}

void sesh_config_init(sesh_config_t *cfg)
{
	if (cfg == NULL)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_sessions = 65536;
	cfg->stream_bytes = 65536;
	cfg->max_message = 0;
	cfg->max_metadata = 1024;
	cfg->idle_ttl_s = 1800;
	cfg->mode = 0600;
	cfg->max_processes = 1024;
	cfg->unblock_ms = 1000;
	cfg->max_subscriptions = 4096;
	cfg->sqlite_path = NULL;
	cfg->sqlite_mode = SESH_SQLITE_SYNC;
	cfg->sqlite_lag_ms = 1000;
	cfg->sqlite_wait_ms = 5000;
}

static void handle_free(struct sesh *d)
{
	persist_close(d);
	pthread_mutex_destroy(&d->alloc.lock);
	pthread_mutex_destroy(&d->ring_lock);
	pthread_mutex_destroy(&d->reap_lease);
	pthread_mutex_destroy(&d->persist_lock);
	if (d->seg.base != NULL)
		munmap(d->seg.base, (size_t)d->seg.geom.total_bytes);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	if (d->fd >= 0)
		close(d->fd);
	free(d);
}

/* A handle not yet attached. */
static struct sesh *handle_new(const char *name, const char *ns)
{
	struct sesh *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	d->fd = -1;
	d->lock_fd = -1;
	atomic_init(&d->slot, -1);
	atomic_init(&d->ns_idx, -1);
	pthread_mutex_init(&d->alloc.lock, NULL);
	pthread_mutex_init(&d->ring_lock, NULL);
	pthread_mutex_init(&d->reap_lease, NULL);
	pthread_mutex_init(&d->persist_lock, NULL);
	strcpy(d->name, name);
	strcpy(d->ns, ns);
	return d;
}

/* Find or make the segment; returns its mapping descriptor. */
static int open_segment(int dirfd, const char *name, const char *fname,
			const sesh_config_t *cfg, unsigned flags)
{
	int tries, fd, rc = -ENOENT;

	/* The name can vanish between a lost link race and our open (an
	 * unlink in between), and a sweeper can remove our private file
	 * before we lock it: try again, a bounded number of times. */
	for (tries = 0; tries < 64; tries++) {
		fd = openat(dirfd, fname, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			if (flags & SESH_EXCL) {
				close(fd);
				return -EEXIST;
			}
			return fd;
		}
		if (errno != ENOENT)
			return sys_err(errno);
		if (!(flags & SESH_CREATE))
			return -ENOENT;
		rc = create_segment(dirfd, name, fname, cfg, &fd);
		if (rc == 0)
			return fd;
		if (rc == -EAGAIN)
			continue;
		if (rc != -EEXIST || (flags & SESH_EXCL))
			return rc;
	}
	return rc == -EAGAIN ? -EIO : rc;
}

int sesh_open(const char *name, const char *ns, const sesh_config_t *cfg,
	      unsigned flags, sesh_t **out)
{
	sesh_config_t defaults, checked;
	char fname[PATH_BYTES];
	struct sesh *d;
	int dirfd, fd, rc;

	if (ns == NULL)
		ns = "default";
	if (out == NULL || !shm_name_valid(name) || !shm_name_valid(ns) ||
	    (flags & ~(SESH_CREATE | SESH_EXCL)) != 0 ||
	    ((flags & SESH_EXCL) && !(flags & SESH_CREATE)))
		return -EINVAL;
	memset(&checked, 0, sizeof(checked));
	if (flags & SESH_CREATE) {
		if (cfg == NULL) {
			sesh_config_init(&defaults);
			cfg = &defaults;
		}
		rc = shm_config_check(cfg, &checked);
		if (rc < 0)
			return rc;
	}
	pthread_once(&atfork_once, atfork_register);

	d = handle_new(name, ns);
	if (d == NULL)
		return -ENOMEM;
	snprintf(fname, sizeof(fname), FILE_PREFIX "%s", name);

	dirfd = open_dir();
	if (dirfd < 0) {
		rc = dirfd;
		goto fail;
	}
	fd = open_segment(dirfd, name, fname, &checked, flags);
	close(dirfd);
	if (fd < 0) {
		rc = fd;
		goto fail;
	}
	d->fd = fd;
	rc = attach_segment(d, fd);
	if (rc < 0)
		goto fail;
#ifndef HAVE_SQLITE
	/* Its writers must write through: this build cannot. */
	if (persist_on(&d->seg)) {
		rc = -ENOTSUP;
		goto fail;
	}
#endif

	pthread_mutex_lock(&handles_lock);
	rc = register_locked(d);
	if (rc == 0) {
		d->serial = ++handles_serial;
		d->next = handles;
		if (handles != NULL)
			handles->prev = d;
		handles = d;
	}
	pthread_mutex_unlock(&handles_lock);
	if (rc < 0)
		goto fail;
	*out = d;
	return 0;
fail:
	handle_free(d);
	return rc;
}

void sesh_close(sesh_t *d)
{
	int slot;

	if (d == NULL)
		return;
	/* Asynchronous write-through: commit what waits, so that a domain
	 * whose processes all closed has nothing left unwritten. (Before
	 * the handles lock: a commit reads the index, whose reader slots
	 * are handed out under it.) */
	if (atomic_load_explicit(&d->slot, memory_order_relaxed) >= 0 &&
	    persist_on(&d->seg))
		(void)persist_flush(d, NULL);
	pthread_mutex_lock(&handles_lock);
	if (d->prev != NULL)
		d->prev->next = d->next;
	else
		handles = d->next;
	if (d->next != NULL)
		d->next->prev = d->prev;
	slot = atomic_load_explicit(&d->slot, memory_order_relaxed);
	/* Free what is past its grace period; the rest stays RETIRED in
	 * the segment for whoever sweeps next. */
	if (slot >= 0)
		gc_reclaim(&d->seg, &d->alloc);
	if (slot >= 0 && d->lock_fd >= 0)
		shm_proc_release(&d->seg, d->lock_fd, (uint32_t)slot);
	pthread_mutex_unlock(&handles_lock);
	handle_free(d);
}

int sesh_unlink(const char *name)
{
	char fname[PATH_BYTES];
	int dirfd, rc = 0;

	if (!shm_name_valid(name))
		return -EINVAL;
	dirfd = open_dir();
	if (dirfd < 0)
		return dirfd;
	sweep_dead_creators(dirfd, name);
	snprintf(fname, sizeof(fname), FILE_PREFIX "%s", name);
	if (unlinkat(dirfd, fname, 0) != 0)
		rc = sys_err(errno);
	close(dirfd);
	return rc;
}

/* Slot i occupied and its owner alive? 1, 0, or -1 if not occupied. */
static int slot_status(struct sesh *d, uint32_t i, sesh_proc_t *e)
{
	struct shm_proc *p = shm_proc_slot(&d->seg, i);
	int alive;

	if (p == NULL || !shm_proc_read(p, e))
		return -1;
	alive = shm_proc_alive(d->fd, i);
	if (alive < 0)
		return -2;
	/* A process that closed between the two looks dead: re-check. */
	if (alive == 0 &&
	    atomic_load_explicit(&p->state, memory_order_acquire) ==
		    SHM_PROC_FREE)
		return -1;
	e->slot = i;
	e->alive = alive;
	e->self =
		(int)i == atomic_load_explicit(&d->slot, memory_order_relaxed);
	return alive;
}

int sesh_info(sesh_t *d, sesh_info_t *out)
{
	const struct shm_geom *g;
	struct stat st;
	uint32_t i;
	int rc;

	if (d == NULL || out == NULL)
		return -EINVAL;
	rc = shm_ensure_registered(d);
	if (rc < 0)
		return rc;
	g = &d->seg.geom;
	memset(out, 0, sizeof(*out));
	strcpy(out->name, d->name);
	strcpy(out->ns, d->ns);
	out->layout_version = SHM_LAYOUT_VERSION;
	out->domain_id = d->domain_id;
	out->created_ns = d->created_ns;
	out->max_sessions = (size_t)g->max_sessions;
	out->stream_bytes = (size_t)g->stream_bytes;
	out->max_message = (size_t)g->max_message;
	out->max_metadata = (size_t)g->max_metadata;
	out->idle_ttl_s = g->idle_ttl_s;
	out->max_processes = g->max_procs;
	out->unblock_ms = g->unblock_ms;
	out->streams_open = (size_t)shm_pins_count(&d->seg);
	out->max_subscriptions = g->max_subs;
	memcpy(out->sqlite_path, g->sqlite_path, sizeof(out->sqlite_path));
	out->sqlite_mode = g->sqlite_mode;
	out->sqlite_lag_ms = g->sqlite_lag_ms;
	out->sqlite_wait_ms = g->sqlite_wait_ms;
	out->segment_bytes = g->total_bytes;
	if (fstat(d->fd, &st) != 0)
		return -EIO;
	out->mode = st.st_mode & 0777;
	out->committed_bytes = (uint64_t)st.st_blocks * 512;
	for (i = 0; i < g->max_procs; i++) {
		sesh_proc_t e;

		rc = slot_status(d, i, &e);
		if (rc == -2)
			return -EIO;
		if (rc == 1)
			out->processes_alive++;
		else if (rc == 0)
			out->processes_dead++;
	}
	out->self_slot = atomic_load_explicit(&d->slot, memory_order_relaxed);
	out->sessions = (size_t)idx_total(&d->seg);
	return 0;
}

int shm_owner_word(struct sesh *d, uint64_t *owner)
{
	struct shm_proc *p;
	int rc = shm_ensure_registered(d), slot;

	if (rc < 0)
		return rc;
	slot = atomic_load_explicit(&d->slot, memory_order_acquire);
	p = slot >= 0 ? shm_proc_slot(&d->seg, (uint32_t)slot) : NULL;
	if (p == NULL)
		return -EIO;
	*owner = shm_blk_owned(
		(uint32_t)slot,
		atomic_load_explicit(&p->incarnation, memory_order_relaxed));
	return 0;
}

bool shm_slot_dead(const struct sesh *d, uint32_t i, uint64_t inc,
		   uint64_t mask, uint8_t *cache)
{
	struct shm_proc *p = shm_proc_slot(&d->seg, i);

	if (p == NULL)
		return true; /* no such slot: a scribble, nobody owns it */
	if (atomic_load_explicit(&p->state, memory_order_acquire) !=
	    SHM_PROC_LIVE)
		return true;
	if ((atomic_load_explicit(&p->incarnation, memory_order_relaxed) &
	     mask) != (inc & mask))
		return true; /* the slot was recovered and claimed again */
	if (cache == NULL)
		return shm_proc_alive(d->fd, i) == 0;
	if (cache[i] == 0)
		cache[i] = shm_proc_alive(d->fd, i) == 0 ? 2 : 1;
	return cache[i] == 2;
}

bool shm_owner_dead(const struct sesh *d, uint64_t word, uint8_t *cache)
{
	return shm_slot_dead(d, SHM_BLK_SLOT(word), SHM_BLK_INC(word),
			     SHM_BLK_INC_MASK, cache);
}

int shm_recover_procs(struct sesh *d)
{
	int rc = shm_ensure_registered(d), slot;

	if (rc < 0)
		return rc;
	slot = atomic_load_explicit(&d->slot, memory_order_acquire);
	pthread_mutex_lock(&reap_lock);
	rc = shm_proc_reap(&d->seg, d->lock_fd, (uint32_t)slot);
	pthread_mutex_unlock(&reap_lock);
	return rc < 0 ? -EIO : rc;
}

int sesh_proc_list(sesh_t *d, sesh_proc_fn fn, void *arg)
{
	uint32_t i;
	int rc;

	if (d == NULL || fn == NULL)
		return -EINVAL;
	rc = shm_ensure_registered(d);
	if (rc < 0)
		return rc;
	for (i = 0; i < d->seg.geom.max_procs; i++) {
		sesh_proc_t e;

		memset(&e, 0, sizeof(e));
		rc = slot_status(d, i, &e);
		if (rc == -2)
			return -EIO;
		if (rc < 0)
			continue;
		rc = fn(&e, arg);
		if (rc != 0)
			return rc;
	}
	return 0;
}
