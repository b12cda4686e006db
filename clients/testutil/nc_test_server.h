// nc_test_server.h — starts a real nanochatd on 127.0.0.1:0 for the C and C++ SDK tests (the
// same protocol as tests/integration/nc_harness.py): fresh temp data dir, optional token file
// (mode 0600), port read from "nanochatd listening on HOST:PORT" on its stdout (then its
// "serving on port" log line awaited), SIGTERM on
// destruction (the exit status is checked: 0 expected), the server log printed on failure.
// NcModel::kTiny first writes a tokenizer and a random d2 checkpoint into the data dir
// (clients/testutil/nc_tiny_model) and adds its engine flags; pass "--model latest" to load it
// at startup, or call Model.Load.
#ifndef NC_TEST_SERVER_H
#define NC_TEST_SERVER_H

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char **environ;

// Output and exit status of a shell command (the SDK examples, the model setup).
static inline int NcRunCommand(const std::string &cmd, std::string *out) {
  FILE *p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out->append(buf, n);
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// The served model of the tests (clients/testutil/nc_tiny_model): sft/d2, step 0.
enum class NcModel { kNone, kTiny };
constexpr unsigned kNcTinyLayers = 2, kNcTinyEmbd = 128, kNcTinySeqLen = 128, kNcTinyVocab = 2048;

class NcTestServer {
 public:
  // args: extra nanochatd flags; token: admin token ("" = none); user_token likewise;
  // model: kTiny puts the tiny model's files into the data dir (not loaded unless args say so).
  explicit NcTestServer(std::vector<std::string> args = {}, std::string token = "",
                        std::string user_token = "", NcModel model = NcModel::kNone) {
    char tmpl[] = "/tmp/nc-sdk-test-XXXXXX";
    if (!mkdtemp(tmpl)) return;
    tmp_ = tmpl;
    std::vector<std::string> argv = {std::string(NC_BINARY_DIR) + "/bin/nanochatd", "--listen",
                                     "127.0.0.1:0", "--data-dir", tmp_ + "/data"};
    if (model == NcModel::kTiny && !AddTinyModel(&argv)) return;
    if (!token.empty()) {
      argv.push_back("--token-file");
      argv.push_back(WriteSecret("token", token));
    }
    if (!user_token.empty()) {
      argv.push_back("--user-token-file");
      argv.push_back(WriteSecret("user_token", user_token));
    }
    for (auto &a : args) argv.push_back(a);
    int out[2];
    if (pipe(out) != 0) return;
    std::string log = tmp_ + "/nanochatd.log";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<char *> cargv;
    for (auto &a : argv) cargv.push_back(const_cast<char *>(a.c_str()));
    cargv.push_back(nullptr);
    int rc = posix_spawn(&pid_, cargv[0], &fa, nullptr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    out_ = out[0];
    if (rc != 0) {
      pid_ = -1;
      return;
    }
    std::string buf;
    for (int waited = 0; waited < 200 && port_ == 0; waited++) {  // up to 20 s
      struct pollfd p = {out_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char c[256];
      ssize_t n = read(out_, c, sizeof c);
      if (n <= 0) break;
      buf.append(c, (size_t)n);
      size_t at = buf.find("listening on ");
      size_t nl = at == std::string::npos ? at : buf.find('\n', at);
      if (nl != std::string::npos) {
        std::string addr = buf.substr(at + 13, nl - at - 13);
        port_ = atoi(addr.substr(addr.rfind(':') + 1).c_str());
      }
    }
    if (port_ == 0) {
      fprintf(stderr, "nanochatd did not start:\n%s\n", Log().c_str());
      return;
    }
    // "serving on port" is logged just before the main thread waits for signals: a SIGTERM
    // sent earlier can land on a thread created before main() blocked them (README, Clients: limits)
    for (int waited = 0; waited < 100 && Log().find("serving on port") == std::string::npos; waited++)
      usleep(50 * 1000);
  }

  ~NcTestServer() {
    int rc = Stop();
    if (rc != 0) fprintf(stderr, "---- nanochatd log (exit %d) ----\n%s\n", rc, Log().c_str());
    if (!tmp_.empty()) {
      std::string cmd = "rm -rf '" + tmp_ + "'";
      if (system(cmd.c_str()) != 0) fprintf(stderr, "cannot remove %s\n", tmp_.c_str());
    }
  }

  bool ok() const { return port_ > 0; }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // SIGTERM and wait; returns the exit status (-N when killed by signal N), 0 if not running.
  int Stop() {
    if (pid_ <= 0) return 0;
    kill(pid_, SIGTERM);
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
    if (out_ >= 0) close(out_);
    out_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
  }

  std::string Log() const {
    std::ifstream f(tmp_ + "/nanochatd.log");
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

 private:
  // Runs nc_tiny_model on the data dir; appends the engine flags it prints.
  bool AddTinyModel(std::vector<std::string> *argv) {
    std::string flags;
    std::string cmd = std::string("'") + NC_SOURCE_DIR + "/clients/testutil/nc_tiny_model' '" +
                      NC_BINARY_DIR + "' '" + tmp_ + "/data'";
    if (NcRunCommand(cmd, &flags) != 0) {
      fprintf(stderr, "nc_tiny_model failed: %s\n", flags.c_str());
      return false;
    }
    std::istringstream lines(flags);
    for (std::string l; std::getline(lines, l);)
      if (!l.empty()) argv->push_back(l);
    return true;
  }

  std::string WriteSecret(const char *name, const std::string &value) {
    std::string path = tmp_ + "/" + name;
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      std::string line = value + "\n";
      if (write(fd, line.data(), line.size()) != (ssize_t)line.size()) perror("write token");
      close(fd);
    }
    return path;
  }

  std::string tmp_;
  pid_t pid_ = -1;
  int out_ = -1;
  int port_ = 0;
};

#endif
