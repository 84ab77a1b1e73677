/*
 * test_cxx.cpp - the public header compiles as C++ (the benchmark shim is
 * C++) and its functions link and work from C++ against libsesh.so.
 */
#include <sesh.h>

#include <cerrno>
#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>
#include <unistd.h>

extern "C" {
#include <cmocka.h>
}

static_assert(SESH_VERSION == 100, "header version is 0.1.0");

static int count_self(const sesh_proc_t *p, void *arg)
{
	*static_cast<int *>(arg) += p->self;
	return 0;
}

static void test_from_cxx(void **)
{
	sesh_config_t cfg;
	sesh_config_init(&cfg);
	cfg.max_sessions = 16;
	cfg.stream_bytes = 4096;
	cfg.max_processes = 4;

	std::string name = "t-cxx-" + std::to_string(getpid());
	sesh_t *d = nullptr;
	assert_int_equal(sesh_open(name.c_str(), nullptr, &cfg,
				   SESH_CREATE | SESH_EXCL, &d),
			 0);
	sesh_info_t inf;
	assert_int_equal(sesh_info(d, &inf), 0);
	assert_int_equal(inf.max_sessions, 16);
	int self = 0;
	assert_int_equal(sesh_proc_list(d, count_self, &self), 0);
	assert_int_equal(self, 1);
	sesh_close(d);
	assert_int_equal(sesh_unlink(name.c_str()), 0);
	assert_string_equal(sesh_strerror(-ENOENT),
			    "no such domain or session");
}

int main()
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from_cxx),
	};
	return cmocka_run_group_tests(tests, nullptr, nullptr);
}
