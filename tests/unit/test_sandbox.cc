// Unit tests for core/nc_sandbox.h: configuration and request validation, the self-test
// level, fail-closed behaviour, concurrency, and the correctness of ordinary programs.
// The escape/abuse suite is in test_sandbox_escape.cc.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "sandbox_test_util.h"

using namespace sbxtest;

static const char kUnavailable[] = "sandbox unavailable: ";

static bool starts_with(const std::string &s, const char *p) {
  return s.compare(0, strlen(p), p) == 0;
}

// ---- helpers without the sandbox --------------------------------------------------------

TEST(SandboxPolicy, ValidFilenames) {
  EXPECT_TRUE(nc_sandbox_valid_filename("data.txt"));
  EXPECT_TRUE(nc_sandbox_valid_filename("a"));
  EXPECT_TRUE(nc_sandbox_valid_filename("helper_mod-2.py"));
  EXPECT_TRUE(nc_sandbox_valid_filename(std::string(64, 'x').c_str()));
}

TEST(SandboxPolicy, InvalidFilenames) {
  for (const char *bad : {"", ".hidden", "..", "../x", "a/b", "/abs", "main.py", "sp ace",
                          "new\nline", "caf\xc3\xa9", "semi;colon"})
    EXPECT_FALSE(nc_sandbox_valid_filename(bad)) << bad;
  EXPECT_FALSE(nc_sandbox_valid_filename(std::string(65, 'x').c_str()));
  EXPECT_FALSE(nc_sandbox_valid_filename(nullptr));
}

TEST(SandboxPolicy, SeccompProgramBuilds) {
  uint8_t *bpf = nullptr;
  size_t len = 0;
  ASSERT_EQ(nc_sandbox_seccomp_bpf(&bpf, &len), NC_OK);
  ASSERT_NE(bpf, nullptr);
  EXPECT_GT(len, 8u * 50);  // dozens of instructions
  EXPECT_EQ(len % 8, 0u);   // struct sock_filter is 8 bytes
  free(bpf);
  EXPECT_EQ(nc_sandbox_seccomp_bpf(nullptr, &len), NC_EINVAL);
}

static std::string sanitize(const std::string &in) {
  char *o = nullptr;
  size_t n = 0;
  EXPECT_EQ(nc_sandbox_utf8_sanitize((const uint8_t *)in.data(), in.size(), &o, &n), NC_OK);
  std::string s(o, n);
  EXPECT_EQ(o[n], '\0');
  free(o);
  return s;
}

TEST(SandboxPolicy, Utf8SanitizeKeepsValidText) {
  const std::string ok = "plain <|python_start|> h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80";
  EXPECT_EQ(sanitize(ok), ok);
  EXPECT_EQ(sanitize(std::string("a\0b", 3)), std::string("a\0b", 3));
  EXPECT_EQ(sanitize(""), "");
}

TEST(SandboxPolicy, Utf8SanitizeReplacesInvalidBytes) {
  const std::string fffd = "\xef\xbf\xbd";
  EXPECT_EQ(sanitize("a\xff" "b"), "a" + fffd + "b");
  EXPECT_EQ(sanitize("\xc3"), fffd);                            // truncated at the end
  EXPECT_EQ(sanitize("\xc0\xaf"), fffd + fffd);                 // overlong '/'
  EXPECT_EQ(sanitize("\xed\xa0\x80"), fffd + fffd + fffd);      // surrogate U+D800
  EXPECT_EQ(sanitize("\xf4\x90\x80\x80"), fffd + fffd + fffd + fffd);  // > U+10FFFF
  char *o = nullptr;
  size_t n = 0;
  EXPECT_EQ(nc_sandbox_utf8_sanitize(nullptr, 3, &o, &n), NC_EINVAL);
  EXPECT_EQ(nc_sandbox_utf8_sanitize((const uint8_t *)"x", 1, nullptr, &n), NC_EINVAL);
}

TEST(SandboxPolicy, ResultFreeIsSafe) {
  nc_sandbox_result_free(nullptr);
  nc_sandbox_result r{};
  nc_sandbox_result_free(&r);
  nc_sandbox_free(nullptr);
}

// ---- the launcher refuses bad command lines (it reports on fd 3 and does nothing) ---------

#include <spawn.h>

static std::string launcher_status(std::vector<std::string> args, int *exit_status) {
  int p[2];
  EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
  int w = fcntl(p[1], F_DUPFD_CLOEXEC, 10);  // above every target fd: no clobbering
  close(p[1]);
  p[1] = w;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], 3);
  for (int fd : {0, 1, 2, 4, 5}) posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", O_RDWR, 0);
  posix_spawn_file_actions_addclosefrom_np(&fa, 6);
  std::vector<char *> argv;
  argv.push_back((char *)"nc-sandbox");
  for (std::string &a : args) argv.push_back(&a[0]);
  argv.push_back(nullptr);
  char *envp[] = {nullptr};
  pid_t pid = -1;
  int e = posix_spawn(&pid, NC_BINARY_DIR "/bin/nc-sandbox", &fa, nullptr, argv.data(), envp);
  posix_spawn_file_actions_destroy(&fa);
  close(p[1]);
  std::string out;
  char buf[512];
  ssize_t r;
  while (e == 0 && (r = read(p[0], buf, sizeof buf)) > 0) out.append(buf, (size_t)r);
  close(p[0]);
  int st = 0;
  if (e == 0) waitpid(pid, &st, 0);
  *exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

TEST(SandboxLauncher, RejectsBadCommandLines) {
  const std::vector<std::string> good = {
      "--ppid", std::to_string(getpid()), "--uid", "200000", "--gid", "200000",
      "--cpu-s", "2", "--as", "268435456", "--fsize", "8388608", "--nofile", "64",
      "--nproc", "16", "--tmp", "16777216", "--work", "33554432", "--shm", "4194304",
      "--bwrap", "/usr/bin/bwrap", "--python", "/usr/bin/python3"};
  struct Case {
    const char *what;
    std::vector<std::string> args;
  };
  auto with = [&](size_t i, const char *v) {
    std::vector<std::string> a = good;
    a[i] = v;
    return a;
  };
  std::vector<std::string> missing(good.begin() + 2, good.end());
  std::vector<std::string> dup_opt = good;
  dup_opt.push_back("--uid"), dup_opt.push_back("200001");
  std::vector<std::string> bad_file = good;
  bad_file.push_back("--file"), bad_file.push_back("../etc");
  std::vector<std::string> dangling = good;
  dangling.push_back("--file");
  const Case cases[] = {
      {"no arguments", {}},
      {"missing --ppid", missing},
      {"uid 0", with(3, "0")},
      {"negative uid", with(3, "-5")},
      {"uid with junk", with(3, "200000x")},
      {"address space below the minimum", with(9, "1024")},
      {"nproc too large", with(15, "100000")},
      {"python outside /usr", with(25, "/tmp/python3")},
      {"python with ..", with(25, "/usr/../tmp/python3")},
      {"relative bwrap", with(23, "bwrap")},
      {"unknown option", with(0, "--frobnicate")},
      {"option given twice", dup_opt},
      {"bad file name", bad_file},
      {"option without value", dangling},
  };
  for (const Case &k : cases) {
    int st = -1;
    std::string s = launcher_status(k.args, &st);
    EXPECT_EQ(st, 2) << k.what;
    EXPECT_EQ(s.rfind("err bad arguments", 0), 0u) << k.what << ": " << s;
    EXPECT_EQ(std::count(s.begin(), s.end(), '\n'), 1) << k.what;
  }
}

// ---- configuration ----------------------------------------------------------------------

TEST(SandboxConfig, DefaultsAreDocumentedValues) {
  nc_sandbox_cfg d = nc_sandbox_cfg_default();
  EXPECT_EQ(d.uid_base, 200000u);
  EXPECT_EQ(d.uid_count, 256u);
  EXPECT_EQ(d.max_concurrent, 2);
  EXPECT_EQ(d.default_timeout_ms, 10000u);
  EXPECT_EQ(d.default_memory_bytes, 256ull << 20);
  EXPECT_EQ(d.default_output_bytes, 64u * 1024);
  EXPECT_EQ(d.nproc, 16);
  EXPECT_STREQ(d.bwrap_path, "/usr/bin/bwrap");
  EXPECT_STREQ(d.python_path, "/usr/bin/python3");
}

TEST(SandboxConfig, CreateRejectsBadValues) {
  struct Case {
    const char *what;
    void (*set)(nc_sandbox_cfg *);
  } cases[] = {
      {"uid_base below 100000", [](nc_sandbox_cfg *c) { c->uid_base = 65534; }},
      {"uid_count too big", [](nc_sandbox_cfg *c) { c->uid_count = 70000; }},
      {"max_concurrent > uid_count",
       [](nc_sandbox_cfg *c) { c->uid_count = 2, c->max_concurrent = 3; }},
      {"negative max_concurrent", [](nc_sandbox_cfg *c) { c->max_concurrent = -1; }},
      {"default timeout > max",
       [](nc_sandbox_cfg *c) { c->default_timeout_ms = 5000, c->max_timeout_ms = 1000; }},
      {"max timeout > 1 h", [](nc_sandbox_cfg *c) { c->max_timeout_ms = 3600001; }},
      {"memory below minimum", [](nc_sandbox_cfg *c) { c->default_memory_bytes = 1 << 20; }},
      {"default memory > max",
       [](nc_sandbox_cfg *c) { c->default_memory_bytes = 2ull << 30, c->max_memory_bytes = 1ull << 30; }},
      {"output cap > 64 MiB", [](nc_sandbox_cfg *c) { c->max_output_bytes = 65ull << 20; }},
      {"too many files", [](nc_sandbox_cfg *c) { c->max_files = NC_SANDBOX_MAX_FILES + 1; }},
      {"nofile too small", [](nc_sandbox_cfg *c) { c->nofile = 3; }},
      {"nproc too small", [](nc_sandbox_cfg *c) { c->nproc = 2; }},
      {"code bigger than file size limit",
       [](nc_sandbox_cfg *c) { c->max_code_bytes = 2 << 20, c->file_size_bytes = 1 << 20; }},
      {"work dir smaller than code",
       [](nc_sandbox_cfg *c) { c->work_bytes = 1 << 20, c->max_code_bytes = 1 << 20; }},
  };
  for (const Case &k : cases) {
    nc_sandbox_cfg c = test_cfg();
    k.set(&c);
    nc_sandbox *sb = nullptr;
    EXPECT_EQ(nc_sandbox_create(c, &sb), NC_EINVAL) << k.what;
    EXPECT_EQ(sb, nullptr) << k.what;
    nc_sandbox_level lv;
    EXPECT_EQ(nc_sandbox_selftest(c, &lv), NC_EINVAL) << k.what;
    EXPECT_FALSE(lv.available);
    EXPECT_TRUE(starts_with(lv.reason, "invalid cfg.")) << lv.reason;
  }
  EXPECT_EQ(nc_sandbox_create(test_cfg(), nullptr), NC_EINVAL);
}

// ---- fail closed ------------------------------------------------------------------------

// Creates a sandbox under the current environment and asserts it refuses to run anything.
static void expect_fails_closed(const char *reason_part) {
  nc_sandbox *sb = nullptr;
  ASSERT_EQ(nc_sandbox_create(test_cfg(), &sb), NC_OK);  // the service can still start
  nc_sandbox_level lv;
  ASSERT_EQ(nc_sandbox_level_get(sb, &lv), NC_OK);
  EXPECT_FALSE(lv.available);
  EXPECT_NE(std::string(lv.reason).find(reason_part), std::string::npos) << lv.reason;
  Outcome x = exec(sb, "print('must never run')");
  EXPECT_EQ(x.rc, NC_ESTATE);
  EXPECT_TRUE(starts_with(x.error, kUnavailable)) << x.error;
  EXPECT_NE(x.error.find(reason_part), std::string::npos) << x.error;
  EXPECT_EQ(x.out, "");
  EXPECT_EQ(x.uid, 0u);  // no pool uid was even taken: nothing was spawned
  nc_sandbox_stats st;
  nc_sandbox_get_stats(sb, &st);
  EXPECT_EQ(st.runs, 0u);
  EXPECT_EQ(st.unavailable, 1u);
  nc_sandbox_level lv2;
  EXPECT_EQ(nc_sandbox_selftest(test_cfg(), &lv2), NC_ESTATE);
  EXPECT_FALSE(lv2.available);
  nc_sandbox_free(sb);
}

TEST(SandboxFailClosed, BwrapMissing) {
  ScopedEnv e("NC_BWRAP", "/nonexistent");
  expect_fails_closed("bwrap not found at /nonexistent");
}

TEST(SandboxFailClosed, LauncherMissing) {
  ScopedEnv e("NC_SANDBOX_LAUNCHER", "/nonexistent/nc-sandbox");
  expect_fails_closed("launcher not found");
}

TEST(SandboxFailClosed, PythonMissing) {
  ScopedEnv e("NC_SANDBOX_PYTHON", "/usr/bin/nonexistent-python3");
  expect_fails_closed("python not found");
}

TEST(SandboxFailClosed, PythonOutsideUsrRefused) {
  ScopedEnv e("NC_SANDBOX_PYTHON", "/tmp/python3");
  expect_fails_closed("not under /usr/");
}

TEST(SandboxFailClosed, LockDirIsAFile) {
  TempDir d;
  std::string f = d.path + "/file";
  std::ofstream(f) << "x";
  nc_sandbox_cfg c = test_cfg();
  c.lock_dir = f.c_str();
  nc_sandbox *sb = nullptr;
  ASSERT_EQ(nc_sandbox_create(c, &sb), NC_OK);
  Outcome x = exec(sb, "print(1)");
  EXPECT_EQ(x.rc, NC_ESTATE);
  EXPECT_TRUE(starts_with(x.error, kUnavailable)) << x.error;
  EXPECT_NE(x.error.find("lock dir"), std::string::npos) << x.error;
  nc_sandbox_free(sb);
}

// A "bwrap" that exists and exits 0 but sets nothing up: the program never runs, so bwrap
// never reports an exit code, and the self-test must not accept it.
TEST(SandboxFailClosed, BwrapThatDoesNothing) {
  ScopedEnv e("NC_BWRAP", "/bin/true");
  expect_fails_closed("bwrap setup failed");
}

// A fake bwrap that runs the program WITHOUT isolation and even forges bwrap's JSON exit
// report. The probe sees the host namespaces, no seccomp filter and a network, and the
// sandbox must report itself unavailable.
TEST(SandboxFailClosed, FakeBwrapWithoutIsolationIsDetected) {
  std::string why;
  if (!userns_possible(&why)) GTEST_SKIP() << "needs root to use pool uids: " << why;
  TempDir d;
  std::string shim = d.path + "/bwrap";
  {
    std::ofstream s(shim);
    s << "#!/bin/sh\n"
         "# fake bubblewrap: no namespaces, no seccomp; forges the JSON exit report\n"
         "json=\n"
         "while [ \"$1\" != \"--\" ]; do\n"
         "  if [ \"$1\" = \"--json-status-fd\" ]; then json=$2; fi\n"
         "  shift\n"
         "done\n"
         "shift\n"
         "\"$1\" -I /dev/fd/5\n"
         "rc=$?\n"
         "[ -n \"$json\" ] && eval \"echo '{ \\\"exit-code\\\": '$rc' }' >&$json\"\n"
         "exit $rc\n";
  }
  chmod(shim.c_str(), 0755);
  ScopedEnv e("NC_BWRAP", shim.c_str());
  nc_sandbox *sb = nullptr;
  ASSERT_EQ(nc_sandbox_create(test_cfg(), &sb), NC_OK);
  nc_sandbox_level lv;
  nc_sandbox_level_get(sb, &lv);
  EXPECT_FALSE(lv.available) << lv.level;
  EXPECT_EQ(lv.layers & (NC_SANDBOX_LAYER_NS | NC_SANDBOX_LAYER_SECCOMP), 0u) << lv.level;
  EXPECT_TRUE(starts_with(lv.reason, "probe: ns=fail")) << lv.reason;
  Outcome x = exec(sb, "print('must never run')");
  EXPECT_EQ(x.rc, NC_ESTATE);
  EXPECT_TRUE(starts_with(x.error, kUnavailable)) << x.error;
  EXPECT_EQ(x.out, "");
  nc_sandbox_free(sb);
}

// bwrap disappears after a successful self-test: the next run must fail closed at call time.
TEST(SandboxFailClosed, BwrapRemovedAfterStartup) {
  std::string why;
  if (!userns_possible(&why)) GTEST_SKIP() << "needs a working sandbox first: " << why;
  TempDir d;
  std::string link = d.path + "/bwrap";
  ASSERT_EQ(symlink("/usr/bin/bwrap", link.c_str()), 0);
  ScopedEnv e("NC_BWRAP", link.c_str());
  nc_sandbox *sb = nullptr;
  ASSERT_EQ(nc_sandbox_create(test_cfg(), &sb), NC_OK);
  nc_sandbox_level lv;
  nc_sandbox_level_get(sb, &lv);
  ASSERT_TRUE(lv.available) << lv.reason;
  ASSERT_EQ(unlink(link.c_str()), 0);
  Outcome x = exec(sb, "print('must never run')");
  EXPECT_EQ(x.rc, NC_ESTATE);
  EXPECT_TRUE(starts_with(x.error, "sandbox unavailable: cannot execute bwrap")) << x.error;
  EXPECT_EQ(x.out, "");
  EXPECT_EQ(uid_procs_quiescent(x.uid), 0);
  EXPECT_EQ(count_children(), 0);
  nc_sandbox_level lv2;
  EXPECT_EQ(nc_sandbox_recheck(sb, &lv2), NC_ESTATE);  // admin recheck sees it too
  EXPECT_FALSE(lv2.available);
  nc_sandbox_free(sb);
}

// ---- level and self-test ----------------------------------------------------------------

TEST_F(SandboxTest, LevelStringHasEveryLayer) {
  EXPECT_STREQ(level_.level, "ns+seccomp+rlimits+uid");
  EXPECT_EQ(level_.layers, (unsigned)NC_SANDBOX_LAYERS_REQUIRED);
  EXPECT_STREQ(level_.reason, "");
  const std::string cg = level_.cgroup;
  EXPECT_TRUE(cg == "v2" || cg == "v1-only" || cg == "none") << cg;
  std::printf("[ sandbox  ] level=%s cgroup=%s\n", level_.level, level_.cgroup);
}

TEST_F(SandboxTest, SelftestFunctionAgrees) {
  nc_sandbox_level lv;
  EXPECT_EQ(nc_sandbox_selftest(test_cfg(), &lv), NC_OK);
  EXPECT_TRUE(lv.available);
  EXPECT_STREQ(lv.level, level_.level);
  EXPECT_EQ(nc_sandbox_selftest(test_cfg(), nullptr), NC_EINVAL);
}

// ---- request validation ------------------------------------------------------------------

TEST_F(SandboxTest, RejectsBadRequests) {
  const std::string code = "print(1)";
  const std::string big((1 << 20) + 1, '#');
  struct Case {
    const char *what, *field;
    nc_sandbox_req req;
  };
  nc_sandbox_file bad_name{"../evil", "x", 1};
  nc_sandbox_file dup[2] = {{"a.txt", "x", 1}, {"a.txt", "y", 1}};
  nc_sandbox_file main_py{"main.py", "x", 1};
  nc_sandbox_file null_data{"d.txt", nullptr, 5};
  std::vector<nc_sandbox_file> many(17, nc_sandbox_file{"f", "x", 1});
  auto base = [&]() {
    nc_sandbox_req r{};
    r.code = code.data();
    r.code_len = code.size();
    return r;
  };
  std::vector<Case> cases;
  {
    Case k{"unknown language", "lang", base()};
    k.req.lang = (nc_sandbox_lang)7;
    cases.push_back(k);
  }
  {
    Case k{"code over 1 MiB", "code", base()};
    k.req.code = big.data(), k.req.code_len = big.size();
    cases.push_back(k);
  }
  {
    Case k{"NULL code with length", "code", base()};
    k.req.code = nullptr;
    cases.push_back(k);
  }
  {
    Case k{"stdin over 1 MiB", "stdin", base()};
    k.req.stdin_data = big.data(), k.req.stdin_len = big.size();
    cases.push_back(k);
  }
  {
    Case k{"timeout over max", "timeout_ms", base()};
    k.req.timeout_ms = 60001;
    cases.push_back(k);
  }
  {
    Case k{"memory below minimum", "memory_bytes", base()};
    k.req.memory_bytes = 1 << 20;
    cases.push_back(k);
  }
  {
    Case k{"memory over max", "memory_bytes", base()};
    k.req.memory_bytes = (1ull << 30) + 1;
    cases.push_back(k);
  }
  {
    Case k{"output cap over max", "max_output_bytes", base()};
    k.req.max_output_bytes = (1 << 20) + 1;
    cases.push_back(k);
  }
  {
    Case k{"too many files", "files", base()};
    k.req.files = many.data(), k.req.nfiles = (int)many.size();
    cases.push_back(k);
  }
  {
    Case k{"negative nfiles", "files", base()};
    k.req.nfiles = -1;
    cases.push_back(k);
  }
  {
    Case k{"path traversal name", "files[0].name", base()};
    k.req.files = &bad_name, k.req.nfiles = 1;
    cases.push_back(k);
  }
  {
    Case k{"duplicate names", "files[1].name", base()};
    k.req.files = dup, k.req.nfiles = 2;
    cases.push_back(k);
  }
  {
    Case k{"main.py as extra file", "files[0].name", base()};
    k.req.files = &main_py, k.req.nfiles = 1;
    cases.push_back(k);
  }
  {
    Case k{"NULL file data", "files[0].data", base()};
    k.req.files = &null_data, k.req.nfiles = 1;
    cases.push_back(k);
  }
  nc_sandbox_stats before;
  nc_sandbox_get_stats(sb_, &before);
  for (Case &k : cases) {
    nc_sandbox_result r;
    EXPECT_EQ(nc_sandbox_run(sb_, &k.req, &r), NC_EINVAL) << k.what;
    EXPECT_TRUE(starts_with(r.error, k.field)) << k.what << ": " << r.error;
    EXPECT_EQ(r.stdout_data, nullptr);
    EXPECT_EQ(r.uid, 0u);
    nc_sandbox_result_free(&r);
  }
  nc_sandbox_stats after;
  nc_sandbox_get_stats(sb_, &after);
  EXPECT_EQ(after.runs, before.runs);  // nothing was spawned
  nc_sandbox_result r;
  EXPECT_EQ(nc_sandbox_run(sb_, nullptr, &r), NC_EINVAL);
  nc_sandbox_result_free(&r);
  EXPECT_EQ(nc_sandbox_run(sb_, &cases[0].req, nullptr), NC_EINVAL);
}

// ---- concurrency -------------------------------------------------------------------------

TEST_F(SandboxTest, ConcurrencyLimitReturnsBusy) {
  ASSERT_EQ(nc_sandbox_set_max_concurrent(sb_, 1), NC_OK);
  Outcome slow;
  std::thread t([&] { slow = exec(sb_, "import time\ntime.sleep(2)\nprint('slow done')"); });
  nc_sandbox_stats st{};
  for (int i = 0; i < 400; i++) {  // wait (bounded, 20 s) until the first run is in flight
    nc_sandbox_get_stats(sb_, &st);
    if (st.in_flight == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(st.in_flight, 1);
  Outcome busy = exec(sb_, "print('second')");
  EXPECT_EQ(busy.rc, NC_EBUSY);
  EXPECT_TRUE(starts_with(busy.error, "sandbox busy")) << busy.error;
  EXPECT_EQ(busy.out, "");
  t.join();
  EXPECT_EQ(slow.rc, NC_OK);
  EXPECT_EQ(slow.out, "slow done\n");
  nc_sandbox_get_stats(sb_, &st);
  EXPECT_GE(st.busy, 1u);
  EXPECT_EQ(st.in_flight, 0);
  EXPECT_EQ(nc_sandbox_set_max_concurrent(sb_, 0), NC_EINVAL);
  EXPECT_EQ(nc_sandbox_set_max_concurrent(sb_, 257), NC_EINVAL);
  ASSERT_EQ(nc_sandbox_set_max_concurrent(sb_, 2), NC_OK);
}

TEST_F(SandboxTest, ConcurrentRunsGetDistinctUids) {
  ASSERT_EQ(nc_sandbox_set_max_concurrent(sb_, 2), NC_OK);
  const std::string code = "import os, time\ntime.sleep(1)\nprint(os.getuid())";
  Outcome a, b;
  std::thread ta([&] { a = exec(sb_, code); });
  std::thread tb([&] { b = exec(sb_, code); });
  ta.join();
  tb.join();
  ASSERT_EQ(a.rc, NC_OK) << a.error;
  ASSERT_EQ(b.rc, NC_OK) << b.error;
  EXPECT_NE(a.uid, b.uid);
  EXPECT_EQ(a.out, std::to_string(a.uid) + "\n");
  EXPECT_EQ(b.out, std::to_string(b.uid) + "\n");
}

static int cancel_after(void *ctx) { return ++*(std::atomic<int> *)ctx > 10; }

TEST_F(SandboxTest, CancelStopsTheRun) {
  std::atomic<int> polls{0};
  const std::string code = "import time\nprint('started', flush=True)\ntime.sleep(30)";
  nc_sandbox_req req{};
  req.code = code.data();
  req.code_len = code.size();
  req.timeout_ms = 20000;
  req.cancel = cancel_after;
  req.cancel_ctx = &polls;
  nc_sandbox_result r;
  EXPECT_EQ(nc_sandbox_run(sb_, &req, &r), NC_ECANCELED);
  EXPECT_TRUE(r.canceled);
  EXPECT_FALSE(r.timed_out);
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_STREQ(r.error, "canceled");
  uint32_t uid = r.uid;
  nc_sandbox_result_free(&r);
  EXPECT_EQ(uid_procs_quiescent(uid), 0);
  EXPECT_EQ(count_children(), 0);
}

// ---- correctness of ordinary programs ----------------------------------------------------

TEST_F(SandboxTest, PrintsHello) {
  Outcome x = exec(sb_, "print('hello world')");
  ASSERT_EQ(x.rc, NC_OK) << x.error;
  EXPECT_TRUE(x.success);
  EXPECT_EQ(x.exit_code, 0);
  EXPECT_EQ(x.signal, 0);
  EXPECT_EQ(x.out, "hello world\n");
  EXPECT_EQ(x.err, "");
  EXPECT_EQ(x.error, "");
  EXPECT_FALSE(x.timed_out || x.memory_exceeded || x.truncated);
  EXPECT_GT(x.duration_s, 0.0);
  EXPECT_GE(x.uid, 200000u);
}

TEST_F(SandboxTest, ComputesLikeACalculator) {
  Outcome x = exec(sb_, "import math\nprint(sum(i*i for i in range(1000)), math.factorial(20))");
  ASSERT_EQ(x.rc, NC_OK);
  EXPECT_EQ(x.out, "332833500 2432902008176640000\n");
}

TEST_F(SandboxTest, ExceptionGivesTracebackAndExitCode1) {
  Outcome x = exec(sb_, "print('before')\ndef f():\n    return 1/0\nf()\n");
  ASSERT_EQ(x.rc, NC_OK);
  EXPECT_FALSE(x.success);
  EXPECT_EQ(x.exit_code, 1);
  EXPECT_EQ(x.out, "before\n");
  EXPECT_NE(x.err.find("Traceback (most recent call last):"), std::string::npos) << x.err;
  EXPECT_NE(x.err.find("File \"/work/main.py\", line 3, in f"), std::string::npos) << x.err;
  EXPECT_EQ(x.error, "ZeroDivisionError: division by zero");
  EXPECT_FALSE(x.memory_exceeded);
}

TEST_F(SandboxTest, SyntaxErrorReported) {
  Outcome x = exec(sb_, "def broken(:\n  pass\n");
  ASSERT_EQ(x.rc, NC_OK);
  EXPECT_EQ(x.exit_code, 1);
  EXPECT_TRUE(starts_with(x.error, "SyntaxError")) << x.error;
}

TEST_F(SandboxTest, ExplicitExitCodes) {
  Outcome a = exec(sb_, "import sys\nsys.exit(3)");
  ASSERT_EQ(a.rc, NC_OK);
  EXPECT_EQ(a.exit_code, 3);
  EXPECT_FALSE(a.success);
  EXPECT_EQ(a.error, "exited with status 3");
  Outcome b = exec(sb_, "import sys\nprint('ok')\nsys.exit(0)");
  EXPECT_EQ(b.exit_code, 0);
  EXPECT_TRUE(b.success);
  Outcome c = exec(sb_, "import os\nos._exit(42)");
  EXPECT_EQ(c.exit_code, 42);
  Outcome d = exec(sb_, "raise SystemExit('bye')");
  EXPECT_EQ(d.exit_code, 1);
  EXPECT_EQ(d.err, "bye\n");
}

TEST_F(SandboxTest, KilledBySignalReported) {
  Outcome x = exec(sb_, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)");
  ASSERT_EQ(x.rc, NC_OK);
  EXPECT_FALSE(x.success);
  EXPECT_EQ(x.exit_code, 128 + SIGSEGV);
  EXPECT_EQ(x.signal, SIGSEGV);
  EXPECT_FALSE(x.memory_exceeded);  // small process: not a memory failure
  EXPECT_EQ(x.error, "killed by signal 11");
}

TEST_F(SandboxTest, UnicodeOutput) {
  Outcome x = exec(sb_, "print('h\\u00e9llo \\u2713 \\u65e5\\u672c \\U0001F600')");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  EXPECT_EQ(x.out, "h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\n");
  Outcome y = exec(sb_, "s = 'caf\xc3\xa9'\nprint(len(s), s.upper())");  // UTF-8 source
  EXPECT_EQ(y.out, "4 CAF\xc3\x89\n");
}

TEST_F(SandboxTest, StdinEcho) {
  const std::string in = "line one\nline two \xe2\x9c\x93\n";
  Opts o;
  o.stdin_data = &in;
  Outcome x = exec(sb_, "import sys\nsys.stdout.write(sys.stdin.read())", o);
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  EXPECT_EQ(x.out, in);
}

TEST_F(SandboxTest, NoStdinReadsEof) {
  Outcome x = exec(sb_, "import sys\nprint(repr(sys.stdin.read()))");
  ASSERT_EQ(x.rc, NC_OK);
  EXPECT_EQ(x.out, "''\n");
  const std::string empty;
  Opts o;
  o.stdin_data = &empty;
  Outcome y = exec(sb_, "import sys\nprint(repr(sys.stdin.read()))", o);
  EXPECT_EQ(y.out, "''\n");
}

TEST_F(SandboxTest, EmptyProgram) {
  Outcome x = exec(sb_, "");
  ASSERT_EQ(x.rc, NC_OK);
  EXPECT_TRUE(x.success);
  EXPECT_EQ(x.out, "");
}

// The program is a file, never a shell string: metacharacters are just text.
TEST_F(SandboxTest, CodeIsPassedByteExact) {
  const std::string code =
      "# $(touch /work/pwned) `touch /work/pwned2` '; \" && exit 7 \\ {code!r}\n"
      "import os\n"
      "print(len(open(__file__, 'rb').read()), __file__, os.path.exists('/work/pwned'),"
      " os.path.exists('/work/pwned2'))\n";
  Outcome x = exec(sb_, code);
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  EXPECT_EQ(x.out, std::to_string(code.size()) + " /work/main.py False False\n");
}

TEST_F(SandboxTest, ExtraFilesAreReadableInWork) {
  Opts o;
  o.files.push_back({"data.txt", "alpha\nbeta\n", 11});
  o.files.push_back({"helper.py", "def twice(x):\n    return 2 * x\n", 31});
  Outcome x = exec(sb_,
                   "import os, sys\n"
                   "print(sorted(os.listdir('/work')))\n"
                   "print(open('data.txt').read().split())\n"
                   "sys.path.insert(0, '/work')\n"
                   "import helper\n"
                   "print(helper.twice(21))\n",
                   o);
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  EXPECT_EQ(x.out, "['data.txt', 'helper.py', 'main.py']\n['alpha', 'beta']\n42\n");
}

TEST_F(SandboxTest, HumanEvalStyleCheck) {
  // The shape Eval.Chat will use: prompt + completion + tests + check(entry_point).
  const std::string prog =
      "def add(a, b):\n    return a + b\n\n"
      "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n\n"
      "check(add)\n";
  Outcome pass = exec(sb_, prog);
  EXPECT_TRUE(pass.success);
  Outcome fail = exec(sb_, "def add(a, b):\n    return a - b\n" + prog.substr(prog.find("def check")));
  EXPECT_FALSE(fail.success);
  EXPECT_EQ(fail.exit_code, 1);
  EXPECT_EQ(fail.error, "AssertionError");
}

TEST_F(SandboxTest, SubprocessAndThreadsWork) {
  Outcome x = exec(sb_,
                   "import subprocess, threading\n"
                   "r = []\n"
                   "t = threading.Thread(target=lambda: r.append(7)); t.start(); t.join()\n"
                   "print(r, subprocess.run(['/usr/bin/echo', 'sub'], capture_output=True).stdout)\n");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  EXPECT_EQ(x.out, "[7] b'sub\\n'\n");
}

TEST_F(SandboxTest, StatsCountRuns) {
  nc_sandbox_stats a, b;
  nc_sandbox_get_stats(sb_, &a);
  exec(sb_, "pass");
  nc_sandbox_get_stats(sb_, &b);
  EXPECT_EQ(b.runs, a.runs + 1);
  EXPECT_EQ(b.in_flight, 0);
}
