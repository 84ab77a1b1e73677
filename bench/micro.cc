/*
 * bench/micro.cc - single-process costs of the C API, measured by
 * google-benchmark through a thin C++ shim.
 *
 *   BM_SessionGet/N           get a uniformly random session of N resident
 *                             (10^4, 10^5, 10^6), with the owner check and
 *                             a 256-byte metadata buffer
 *   BM_SessionGetHot          get one session of the 10^4 over and over
 *   BM_SessionTouch/N         touch a random session of N resident
 *   BM_SessionCreateDelete/N  create a session, then delete it, next to N
 *   BM_Publish/S              publish S bytes, no subscriber (the ring laps)
 *   BM_PublishBatch32/S       publish a batch of 32 messages of S bytes
 *   BM_PublishNext/S          publish one message and read it back
 *   BM_StreamNext/S           read alone, sesh_stream_next(s, &m, 0)
 *
 * Items are calls for the session benchmarks (a create and a delete are
 * two) and messages for the stream ones; the t_item counter is the time
 * per item. Sessions carry 64 bytes of metadata and one owner.
 *
 * How it works. Every domain is made once per process, on first use, and
 * removed at exit (after the run, from atexit(), and on SIGINT, SIGTERM
 * and SIGHUP). A session domain of N sessions also holds 2^20 queries:
 * ids drawn uniformly at random, written one after the other, so that
 * the loop reads its next id sequentially (prefetched) and every cache
 * miss measured is the library's. The stream benchmarks use a domain of
 * the default 64 KiB rings, but for BM_StreamNext: its domain has 1 MiB
 * rings, which surely retain 4096 messages; the loop reads them with the
 * timer running and refills the ring, timer paused, every 4096 reads, so the
 * cost of pausing (two clock reads, a few hundred ns) is spread thin.
 */
#include "sesh.h"

#include <benchmark/benchmark.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

namespace
{

constexpr size_t kIdStride = 16;	     /* bytes per id in the id arrays */
constexpr size_t kMetaLen = 64;		     /* metadata of each session */
constexpr size_t kMetaCap = 256;	     /* buffer that get copies into */
constexpr size_t kQueries = size_t{1} << 20; /* random ids, cycled */
constexpr size_t kFresh = 4096;		     /* ids of create/delete, cycled */
constexpr size_t kBigRing = size_t{1} << 20; /* BM_StreamNext's rings */
constexpr size_t kMaxDomains = 16;
const char kUser[] = "bench-user";

/*
 * Every domain opened, for the clean-up. Plain arrays: the signal handler
 * reads the paths, and nothing here has a destructor to race with
 * atexit().
 */
struct domain {
	char name[SESH_NAME_MAX + 1];
	char path[PATH_MAX];
	sesh_t *d;
};

domain g_doms[kMaxDomains];
volatile sig_atomic_t g_ndoms;
int g_serial;

/* Remove what the process made: the handles, then the names. */
void close_all(void)
{
	for (int i = 0; i < g_ndoms; i++) {
		sesh_close(g_doms[i].d);
		g_doms[i].d = nullptr;
		sesh_unlink(g_doms[i].name);
	}
	g_ndoms = 0;
}

/* unlink(2) is async-signal-safe, sesh_unlink() is not. */
void on_signal(int sig)
{
	for (int i = 0; i < g_ndoms; i++)
		unlink(g_doms[i].path);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* "fn: message" for SkipWithError(), which copies it. */
std::string why(const char *fn, int rc)
{
	return std::string(fn) + ": " + sesh_strerror(rc);
}

/* Create a domain of a name of its own, "bench-micro-<pid>-<n>". */
int open_domain(const sesh_config_t *cfg, sesh_t **out)
{
	if (g_ndoms == (sig_atomic_t)kMaxDomains)
		return -ENOSPC;
	domain *m = &g_doms[g_ndoms];
	char name[SESH_NAME_MAX + 1];
	snprintf(name, sizeof(name), "bench-micro-%ld-%d", (long)getpid(),
		 g_serial++);
	const char *dir = getenv("SESH_SHM_DIR");
	if (dir == nullptr || dir[0] == '\0')
		dir = "/dev/shm";
	memcpy(m->name, name, sizeof(name));
	snprintf(m->path, sizeof(m->path), "%s/sesh.%s", dir, name);
	m->d = nullptr;
	/* Listed before it exists: a signal during the open removes it. */
	std::atomic_signal_fence(std::memory_order_seq_cst);
	g_ndoms = g_ndoms + 1;
	int rc = sesh_open(m->name, nullptr, cfg, SESH_CREATE | SESH_EXCL,
			   &m->d);
	if (rc != 0) {
		g_ndoms = g_ndoms - 1;
		return rc;
	}
	*out = m->d;
	return 0;
}

/* Ids of up to 10 bytes: resident counts stay below 10^9. */
void session_id(char *buf, size_t i)
{
	snprintf(buf, kIdStride, "s%09u", (unsigned)(i % 1000000000));
}

/* ---- sessions ---------------------------------------------------------- */

struct session_domain {
	size_t resident = 0;
	sesh_t *d = nullptr;
	int rc = 0;		   /* set-up failure, or 0 */
	std::string err;	   /* what failed */
	std::vector<char> queries; /* kQueries ids, kIdStride apart */
	std::vector<char> fresh;   /* kFresh ids never resident */
};

session_domain *g_sdoms[kMaxDomains];
size_t g_nsdoms;

/* Make and fill N's domain once; later calls return it as it is. */
session_domain *get_session_domain(size_t n)
{
	for (size_t i = 0; i < g_nsdoms; i++)
		if (g_sdoms[i]->resident == n)
			return g_sdoms[i];

	session_domain *sd = new session_domain;
	sd->resident = n;
	g_sdoms[g_nsdoms++] = sd;

	sesh_config_t cfg;
	sesh_config_init(&cfg);
	/* Room for the create/delete churn and its retired records. */
	cfg.max_sessions = n + n / 8 + 4096;
	int rc = open_domain(&cfg, &sd->d);
	if (rc != 0) {
		sd->rc = rc;
		sd->err = why("sesh_open", rc);
		return sd;
	}

	char meta[kMetaLen];
	memset(meta, 'm', sizeof(meta));
	char id[kIdStride];
	for (size_t i = 0; i < n; i++) {
		session_id(id, i);
		rc = sesh_session_create(sd->d, id, kUser, meta, sizeof(meta),
					 0, nullptr);
		if (rc != 0) {
			sd->rc = rc;
			sd->err = why("sesh_session_create", rc);
			return sd;
		}
	}

	std::mt19937_64 rng(0x5e5b + n);
	std::uniform_int_distribution<size_t> pick(0, n - 1);
	sd->queries.resize(kQueries * kIdStride);
	for (size_t i = 0; i < kQueries; i++)
		session_id(&sd->queries[i * kIdStride], pick(rng));
	sd->fresh.resize(kFresh * kIdStride);
	for (size_t i = 0; i < kFresh; i++)
		snprintf(&sd->fresh[i * kIdStride], kIdStride, "x%09u",
			 (unsigned)i);
	return sd;
}

/* Time per item, from the items one iteration does. */
void per_item(benchmark::State &state, double items)
{
	state.counters["t_item"] = benchmark::Counter(
		items, benchmark::Counter::kIsIterationInvariantRate |
			       benchmark::Counter::kInvert);
}

void BM_SessionGet(benchmark::State &state)
{
	session_domain *sd = get_session_domain((size_t)state.range(0));
	if (sd->rc != 0) {
		state.SkipWithError(sd->err.c_str());
		return;
	}
	const char *q = sd->queries.data();
	sesh_session_t s;
	char meta[kMetaCap];
	size_t i = 0;

	for (auto _ : state) {
		int rc = sesh_session_get(sd->d, q + i * kIdStride, kUser, &s,
					  meta, sizeof(meta));
		if (rc != 0) {
			state.SkipWithError(
				why("sesh_session_get", rc).c_str());
			break;
		}
		benchmark::DoNotOptimize(s);
		benchmark::DoNotOptimize(meta);
		i = (i + 1) & (kQueries - 1);
	}
	state.SetItemsProcessed(state.iterations());
	per_item(state, 1);
}

void BM_SessionGetHot(benchmark::State &state)
{
	session_domain *sd = get_session_domain(10000);
	if (sd->rc != 0) {
		state.SkipWithError(sd->err.c_str());
		return;
	}
	const char *id = sd->queries.data();
	sesh_session_t s;
	char meta[kMetaCap];

	for (auto _ : state) {
		int rc = sesh_session_get(sd->d, id, kUser, &s, meta,
					  sizeof(meta));
		if (rc != 0) {
			state.SkipWithError(
				why("sesh_session_get", rc).c_str());
			break;
		}
		benchmark::DoNotOptimize(s);
		benchmark::DoNotOptimize(meta);
	}
	state.SetItemsProcessed(state.iterations());
	per_item(state, 1);
}

void BM_SessionTouch(benchmark::State &state)
{
	session_domain *sd = get_session_domain((size_t)state.range(0));
	if (sd->rc != 0) {
		state.SkipWithError(sd->err.c_str());
		return;
	}
	const char *q = sd->queries.data();
	size_t i = 0;

	for (auto _ : state) {
		int rc = sesh_session_touch(sd->d, q + i * kIdStride);
		if (rc != 0) {
			state.SkipWithError(
				why("sesh_session_touch", rc).c_str());
			break;
		}
		i = (i + 1) & (kQueries - 1);
	}
	state.SetItemsProcessed(state.iterations());
	per_item(state, 1);
}

void BM_SessionCreateDelete(benchmark::State &state)
{
	session_domain *sd = get_session_domain((size_t)state.range(0));
	if (sd->rc != 0) {
		state.SkipWithError(sd->err.c_str());
		return;
	}
	const char *f = sd->fresh.data();
	char meta[kMetaLen];
	size_t i = 0;

	memset(meta, 'n', sizeof(meta));
	for (auto _ : state) {
		const char *id = f + i * kIdStride;
		int rc = sesh_session_create(sd->d, id, kUser, meta,
					     sizeof(meta), 0, nullptr);
		if (rc != 0) {
			state.SkipWithError(
				why("sesh_session_create", rc).c_str());
			break;
		}
		rc = sesh_session_delete(sd->d, id);
		if (rc != 0) {
			state.SkipWithError(
				why("sesh_session_delete", rc).c_str());
			break;
		}
		i = (i + 1) & (kFresh - 1);
	}
	state.SetItemsProcessed(state.iterations() * 2);
	per_item(state, 2);
}

/* ---- streams ----------------------------------------------------------- */

/*
 * One domain per ring size. Each benchmark run takes a session of its own
 * (created on first use, "st-<n>"), so runs do not share rings.
 */
struct stream_domain {
	size_t stream_bytes;
	sesh_t *d;
	int rc;
	int sessions;
};

stream_domain g_small = {65536, nullptr, 0, 0};
stream_domain g_big = {kBigRing, nullptr, 0, 0};

/* A new session in @p sd's domain, its id in @p id. */
int stream_session(stream_domain *sd, char id[kIdStride])
{
	if (sd->d == nullptr && sd->rc == 0) {
		sesh_config_t cfg;
		sesh_config_init(&cfg);
		cfg.max_sessions = 256;
		cfg.stream_bytes = sd->stream_bytes;
		sd->rc = open_domain(&cfg, &sd->d);
	}
	if (sd->rc != 0)
		return sd->rc;
	snprintf(id, kIdStride, "st-%d", sd->sessions++);
	return sesh_session_create(sd->d, id, kUser, nullptr, 0, 0, nullptr);
}

void BM_Publish(benchmark::State &state)
{
	size_t len = (size_t)state.range(0);
	std::vector<char> msg(len, 'p');
	char id[kIdStride];
	int rc = stream_session(&g_small, id);
	if (rc != 0) {
		state.SkipWithError(why("set-up", rc).c_str());
		return;
	}

	for (auto _ : state) {
		rc = sesh_publish(g_small.d, id, msg.data(), len, nullptr);
		if (rc != 0) {
			state.SkipWithError(why("sesh_publish", rc).c_str());
			break;
		}
	}
	state.SetItemsProcessed(state.iterations());
	state.SetBytesProcessed(state.iterations() * (int64_t)len);
	per_item(state, 1);
}

void BM_PublishBatch32(benchmark::State &state)
{
	constexpr size_t kBatch = 32;
	size_t len = (size_t)state.range(0);
	std::vector<char> msg(len, 'b');
	sesh_buf_t bufs[kBatch];
	char id[kIdStride];
	int rc = stream_session(&g_small, id);
	if (rc != 0) {
		state.SkipWithError(why("set-up", rc).c_str());
		return;
	}
	for (size_t i = 0; i < kBatch; i++)
		bufs[i] = {msg.data(), len};

	for (auto _ : state) {
		rc = sesh_publish_batch(g_small.d, id, bufs, kBatch, nullptr);
		if (rc != 0) {
			state.SkipWithError(
				why("sesh_publish_batch", rc).c_str());
			break;
		}
	}
	state.SetItemsProcessed(state.iterations() * (int64_t)kBatch);
	state.SetBytesProcessed(state.iterations() * (int64_t)(kBatch * len));
	per_item(state, kBatch);
}

/* Publish one message and read it: the round trip within one thread. */
void BM_PublishNext(benchmark::State &state)
{
	size_t len = (size_t)state.range(0);
	std::vector<char> msg(len, 'q');
	char id[kIdStride];
	sesh_stream_t *s = nullptr;
	sesh_msg_t m;
	int rc = stream_session(&g_small, id);
	if (rc == 0)
		rc = sesh_subscribe(g_small.d, id, SESH_FROM_LATEST, &s);
	if (rc != 0) {
		state.SkipWithError(why("set-up", rc).c_str());
		return;
	}

	for (auto _ : state) {
		rc = sesh_publish(g_small.d, id, msg.data(), len, nullptr);
		if (rc != 0) {
			state.SkipWithError(why("sesh_publish", rc).c_str());
			break;
		}
		rc = sesh_stream_next(s, &m, 0);
		if (rc != 0) {
			state.SkipWithError(
				why("sesh_stream_next", rc).c_str());
			break;
		}
		benchmark::DoNotOptimize(m);
	}
	sesh_stream_close(s);
	state.SetItemsProcessed(state.iterations());
	state.SetBytesProcessed(state.iterations() * (int64_t)len);
	per_item(state, 1);
}

/* Publish what the ring surely retains, in one batch (split by the
 * library). */
int refill(const char *id, const std::vector<sesh_buf_t> &bufs)
{
	return sesh_publish_batch(g_big.d, id, bufs.data(), bufs.size(),
				  nullptr);
}

/* Read alone: see "How it works" above for the refills. */
void BM_StreamNext(benchmark::State &state)
{
	size_t len = (size_t)state.range(0);
	std::vector<char> msg(len, 'r');
	char id[kIdStride];
	sesh_stream_t *s = nullptr;
	sesh_msg_t m;
	int rc = stream_session(&g_big, id);
	if (rc == 0)
		rc = sesh_subscribe(g_big.d, id, SESH_FROM_LATEST, &s);
	/* The ring retains at most stream_bytes / 128 messages, and at
	 * least half that. */
	std::vector<sesh_buf_t> bufs(kBigRing / 128 / 2,
				     sesh_buf_t{msg.data(), len});
	if (rc == 0)
		rc = refill(id, bufs);
	if (rc != 0) {
		sesh_stream_close(s);
		state.SkipWithError(why("set-up", rc).c_str());
		return;
	}
	size_t left = bufs.size();

	for (auto _ : state) {
		if (left == 0) {
			state.PauseTiming();
			rc = refill(id, bufs);
			state.ResumeTiming();
			if (rc != 0) {
				state.SkipWithError(
					why("sesh_publish_batch", rc).c_str());
				break;
			}
			left = bufs.size();
		}
		rc = sesh_stream_next(s, &m, 0);
		if (rc != 0) {
			state.SkipWithError(
				why("sesh_stream_next", rc).c_str());
			break;
		}
		benchmark::DoNotOptimize(m);
		left--;
	}
	sesh_stream_close(s);
	state.SetItemsProcessed(state.iterations());
	state.SetBytesProcessed(state.iterations() * (int64_t)len);
	per_item(state, 1);
}

} /* namespace */

BENCHMARK(BM_SessionGet)->Arg(10000)->Arg(100000)->Arg(1000000);
BENCHMARK(BM_SessionGetHot);
BENCHMARK(BM_SessionTouch)->Arg(10000)->Arg(100000)->Arg(1000000);
BENCHMARK(BM_SessionCreateDelete)->Arg(10000)->Arg(100000)->Arg(1000000);
BENCHMARK(BM_Publish)->Arg(64)->Arg(1024)->Arg(16384);
BENCHMARK(BM_PublishBatch32)->Arg(64);
BENCHMARK(BM_PublishNext)->Arg(64);
BENCHMARK(BM_StreamNext)->Arg(64);

int main(int argc, char **argv)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};

	for (int sig : sigs)
		signal(sig, on_signal);
	atexit(close_all);
	benchmark::Initialize(&argc, argv);
	if (benchmark::ReportUnrecognizedArguments(argc, argv))
		return 2;
	benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	close_all();
	for (size_t i = 0; i < g_nsdoms; i++)
		delete g_sdoms[i];
	g_nsdoms = 0;
	return 0;
}
