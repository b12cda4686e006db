// Shared helpers for the sandbox tests (test_sandbox.cc, test_sandbox_escape.cc).
#pragma once

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

extern "C" {
#include "nc_err.h"
#include "nc_sandbox.h"
}

namespace sbxtest {

inline nc_sandbox_cfg test_cfg() {
  nc_sandbox_cfg c{};
  c.launcher_path = NC_BINARY_DIR "/bin/nc-sandbox";
  return c;
}

struct Opts {
  uint32_t timeout_ms = 10000;
  uint64_t memory = 0;
  size_t out_cap = 0;
  const std::string *stdin_data = nullptr;
  std::vector<nc_sandbox_file> files;
};

// Outcome of one run: the scalars and copies of the buffers (the result is freed).
struct Outcome {
  int rc = 0, success = 0, exit_code = 0, signal = 0, timed_out = 0, canceled = 0;
  int memory_exceeded = 0, truncated = 0, stdout_truncated = 0, stderr_truncated = 0;
  uint32_t uid = 0;
  double duration_s = 0;
  std::string out, err, error;
};

inline Outcome exec(nc_sandbox *sb, const std::string &code, const Opts &o = Opts()) {
  nc_sandbox_req req{};
  req.lang = NC_SANDBOX_PYTHON3;
  req.code = code.data();
  req.code_len = code.size();
  req.timeout_ms = o.timeout_ms;
  req.memory_bytes = o.memory;
  req.max_output_bytes = o.out_cap;
  if (o.stdin_data) {
    req.stdin_data = o.stdin_data->data();
    req.stdin_len = o.stdin_data->size();
  }
  req.files = o.files.empty() ? nullptr : o.files.data();
  req.nfiles = (int)o.files.size();
  nc_sandbox_result r;
  Outcome x;
  x.rc = nc_sandbox_run(sb, &req, &r);
  x.success = r.success;
  x.exit_code = r.exit_code;
  x.signal = r.signal;
  x.timed_out = r.timed_out;
  x.canceled = r.canceled;
  x.memory_exceeded = r.memory_exceeded;
  x.truncated = r.truncated;
  x.stdout_truncated = r.stdout_truncated;
  x.stderr_truncated = r.stderr_truncated;
  x.uid = r.uid;
  x.duration_s = r.duration_s;
  x.error = r.error;
  if (r.stdout_data) x.out.assign((const char *)r.stdout_data, r.stdout_len);
  if (r.stderr_data) x.err.assign((const char *)r.stderr_data, r.stderr_len);
  nc_sandbox_result_free(&r);
  return x;
}

// Number of processes (including zombies) whose real uid is `uid`, from /proc/*/status.
inline int count_uid_procs(uint32_t uid) {
  int n = 0;
  DIR *d = opendir("/proc");
  if (!d) return -1;
  while (struct dirent *e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::string path = std::string("/proc/") + e->d_name + "/status";
    FILE *f = fopen(path.c_str(), "r");
    if (!f) continue;
    char line[256];
    while (fgets(line, sizeof line, f)) {
      unsigned ru;
      if (sscanf(line, "Uid:\t%u", &ru) == 1) {
        if (ru == uid) n++;
        break;
      }
    }
    fclose(f);
  }
  closedir(d);
  return n;
}

// Processes whose parent is this process (leftover launchers/zombies would show up here).
inline int count_children() {
  int n = 0;
  DIR *d = opendir("/proc");
  if (!d) return -1;
  const long me = (long)getpid();
  while (struct dirent *e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::string path = std::string("/proc/") + e->d_name + "/stat";
    FILE *f = fopen(path.c_str(), "r");
    if (!f) continue;
    char buf[1024];
    size_t k = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[k] = 0;
    const char *rp = strrchr(buf, ')');  // comm may contain spaces
    char state;
    long ppid;
    if (rp && sscanf(rp + 1, " %c %ld", &state, &ppid) == 2 && ppid == me) n++;
  }
  closedir(d);
  return n;
}

// Count the processes of a pool uid while holding its lock, so that no later run can be
// using it at the moment of counting: exactly the "back to baseline" check.
inline int uid_procs_quiescent(uint32_t uid, const char *lock_dir = "/run/nc-sandbox") {
  std::string path = std::string(lock_dir) + "/" + std::to_string(uid) + ".lock";
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return -1;
  if (flock(fd, LOCK_EX) != 0) {
    close(fd);
    return -1;
  }
  int n = count_uid_procs(uid);
  close(fd);
  return n;
}

// Independent check, not using the module: can a process that dropped root create user,
// mount, pid and net namespaces here? Only when this is impossible may the suite skip.
inline bool userns_possible(std::string *why) {
  if (geteuid() != 0) {
    *why = "tests do not run as root, so no pool uid can be used";
    return false;
  }
  pid_t p = fork();
  if (p < 0) {
    *why = "fork failed";
    return false;
  }
  if (p == 0) {
    if (setgroups(0, nullptr) != 0 || setresgid(65534, 65534, 65534) != 0 ||
        setresuid(65534, 65534, 65534) != 0)
      _exit(10);
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET) != 0) _exit(11);
    _exit(0);
  }
  int st = 0;
  while (waitpid(p, &st, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return true;
  *why = (WIFEXITED(st) && WEXITSTATUS(st) == 11)
             ? "unprivileged user namespaces are not allowed on this machine"
             : "cannot switch to an unprivileged uid";
  return false;
}

// Fixture: one sandbox per test program (each ctest test is its own process). Skips loudly
// only when user namespaces are impossible here; otherwise an unavailable sandbox FAILS.
class SandboxTest : public ::testing::Test {
 protected:
  static nc_sandbox *sb_;
  static nc_sandbox_level level_;
  static void SetUpTestSuite() {
    if (!sb_) {
      nc_sandbox_create(test_cfg(), &sb_);
      if (sb_) nc_sandbox_level_get(sb_, &level_);
    }
  }
  static void TearDownTestSuite() {
    nc_sandbox_free(sb_);
    sb_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(sb_, nullptr);
    if (!level_.available) {
      std::string why;
      if (!userns_possible(&why))
        GTEST_SKIP() << "\n*** SANDBOX ESCAPE SUITE SKIPPED: " << why
                     << " (sandbox: " << level_.reason << ") ***\n";
      FAIL() << "sandbox unavailable although user namespaces work here: " << level_.reason;
    }
  }
};
inline nc_sandbox *SandboxTest::sb_ = nullptr;
inline nc_sandbox_level SandboxTest::level_{};

// A scratch directory (0755 so pool uids may traverse it), removed with its files.
struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/nc-sbx-test-XXXXXX";
    const char *p = mkdtemp(t);
    path = p ? p : "";
    if (p) chmod(p, 0755);
  }
  ~TempDir() {
    if (path.empty()) return;
    DIR *d = opendir(path.c_str());
    if (d) {
      while (struct dirent *e = readdir(d))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
          unlink((path + "/" + e->d_name).c_str());
      closedir(d);
    }
    rmdir(path.c_str());
  }
};

// Sets an environment variable for the scope of a test, restoring the old value after.
struct ScopedEnv {
  std::string name, old;
  bool had;
  ScopedEnv(const char *n, const char *v) : name(n) {
    const char *o = getenv(n);
    had = o != nullptr;
    if (o) old = o;
    setenv(n, v, 1);
  }
  ~ScopedEnv() {
    if (had)
      setenv(name.c_str(), old.c_str(), 1);
    else
      unsetenv(name.c_str());
  }
};

}  // namespace sbxtest
