// Unit tests for nanochatd's configuration (service/nc_config.h): defaults, flags, environment,
// config file, precedence, listen-address parsing and the exposure rule.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>
#include <vector>

extern "C" {
#include "nc_config.h"
#include "nc_err.h"
}

namespace {

struct Cfg {
  nc_config c;
  char err[512] = "";
  std::vector<std::string> envs;
  std::vector<const char *> envp;
  explicit Cfg(std::vector<std::string> env = {"HOME=/home/u"}) : envs(std::move(env)) {
    for (auto &e : envs) envp.push_back(e.c_str());
    envp.push_back(nullptr);
    nc_config_defaults(&c, envp.data());
  }
  int load(std::vector<std::string> args) {
    std::vector<char *> argv;
    static char prog[] = "nanochatd";
    argv.push_back(prog);
    for (auto &a : args) argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    return nc_config_load(&c, (int)args.size() + 1, argv.data(), envp.data(), err, sizeof err);
  }
  int text(const std::string &t) {
    return nc_config_apply_text(&c, t.data(), t.size(), "test.conf", err, sizeof err);
  }
};

std::string write_temp(const std::string &content) {
  char path[] = "/tmp/nc_config_test_XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, content.data(), content.size()), (ssize_t)content.size());
  close(fd);
  return path;
}

}  // namespace

TEST(Config, Defaults) {
  Cfg k;
  EXPECT_STREQ(k.c.listen, "127.0.0.1:50051");
  EXPECT_STREQ(k.c.data_dir, "/home/u/.nanochat");
  EXPECT_STREQ(k.c.token_file, "");
  EXPECT_FALSE(k.c.insecure_remote);
  EXPECT_FALSE(k.c.enable_test_jobs);
  EXPECT_TRUE(k.c.enable_tools);
  EXPECT_EQ(k.c.workers, 4);
  EXPECT_EQ(k.c.grace_ms, 10000);
  EXPECT_GE(k.c.cq_threads, 1);
  EXPECT_LE(k.c.cq_threads, 4);
  EXPECT_EQ(k.c.action, NC_CONFIG_RUN);
  EXPECT_STREQ(k.c.engine_weights, "auto");
  EXPECT_STREQ(k.c.engine_kv, "auto");
}

TEST(Config, EnginePrecisionFlags) {
  Cfg k;
  ASSERT_EQ(k.load({"--engine-weights", "bf16-dot", "--engine-kv=f32"}), NC_OK) << k.err;
  EXPECT_STREQ(k.c.engine_weights, "bf16-dot");
  EXPECT_STREQ(k.c.engine_kv, "f32");
  Cfg b;
  EXPECT_EQ(b.load({"--engine-kv", "fp8"}), NC_EINVAL);
  EXPECT_NE(std::string(b.err).find("engine-kv"), std::string::npos) << b.err;
  EXPECT_NE(std::string(b.err).find("auto, bf16 or f32"), std::string::npos) << b.err;
}

TEST(Config, DefaultsWithoutHome) {
  Cfg k(std::vector<std::string>{});
  EXPECT_STREQ(k.c.data_dir, ".nanochat");
}

TEST(Config, FlagForms) {
  Cfg k;
  ASSERT_EQ(k.load({"--listen", "127.0.0.1:0", "--data-dir=/tmp/d", "--enable-test-jobs",
                    "--workers", "7", "--enable-tools=off", "--log-level", "debug"}),
            NC_OK)
      << k.err;
  EXPECT_STREQ(k.c.listen, "127.0.0.1:0");
  EXPECT_STREQ(k.c.data_dir, "/tmp/d");
  EXPECT_TRUE(k.c.enable_test_jobs);
  EXPECT_FALSE(k.c.enable_tools);
  EXPECT_EQ(k.c.workers, 7);
}

TEST(Config, BadFlagsNameTheFlag) {
  struct Case { std::vector<std::string> args; const char *needle; } cases[] = {
      {{"--no-such-flag"}, "no-such-flag"},
      {{"--workers", "0"}, "workers"},
      {{"--workers", "257"}, "workers"},
      {{"--workers", "4x"}, "workers"},
      {{"--grace-ms", "-1"}, "grace-ms"},
      {{"--enable-tools=maybe"}, "enable-tools"},
      {{"--log-level", "loud"}, "log-level"},
      {{"--listen"}, "listen"},
      {{"positional"}, "positional"},
  };
  for (auto &cs : cases) {
    Cfg k;
    EXPECT_EQ(k.load(cs.args), NC_EINVAL) << cs.args[0];
    EXPECT_NE(std::string(k.err).find(cs.needle), std::string::npos) << k.err;
  }
}

TEST(Config, HelpAndVersion) {
  Cfg a;
  ASSERT_EQ(a.load({"--help"}), NC_OK);
  EXPECT_EQ(a.c.action, NC_CONFIG_HELP);
  Cfg b;
  ASSERT_EQ(b.load({"--version"}), NC_OK);
  EXPECT_EQ(b.c.action, NC_CONFIG_VERSION);
  EXPECT_NE(std::string(nc_config_usage()).find("--listen"), std::string::npos);
}

TEST(Config, EnvironmentThenFlagsWin) {
  Cfg k({"HOME=/h", "NANOCHAT_LISTEN=127.0.0.1:7000", "NANOCHAT_WORKERS=9",
         "NANOCHAT_TOKEN=env-token-value-0123456789"});
  ASSERT_EQ(k.load({}), NC_OK) << k.err;
  EXPECT_STREQ(k.c.listen, "127.0.0.1:7000");
  EXPECT_EQ(k.c.workers, 9);
  EXPECT_STREQ(k.c.token_env, "env-token-value-0123456789");
  Cfg k2({"HOME=/h", "NANOCHAT_LISTEN=127.0.0.1:7000"});
  ASSERT_EQ(k2.load({"--listen", "127.0.0.1:8000"}), NC_OK);
  EXPECT_STREQ(k2.c.listen, "127.0.0.1:8000");
}

TEST(Config, BadEnvironmentNamesTheVariable) {
  Cfg k({"NANOCHAT_WORKERS=lots"});
  EXPECT_EQ(k.load({}), NC_EINVAL);
  EXPECT_NE(std::string(k.err).find("NANOCHAT_WORKERS"), std::string::npos) << k.err;
}

TEST(Config, FileSyntax) {
  Cfg k;
  ASSERT_EQ(k.text("# comment\n\nlisten = 127.0.0.1:9\n  workers=3  \n"
                   "data-dir = \"/tmp/with space\"\nenable-test-jobs = yes\n"),
            NC_OK)
      << k.err;
  EXPECT_STREQ(k.c.listen, "127.0.0.1:9");
  EXPECT_EQ(k.c.workers, 3);
  EXPECT_STREQ(k.c.data_dir, "/tmp/with space");
  EXPECT_TRUE(k.c.enable_test_jobs);
}

TEST(Config, FileErrorsCarryLineNumbers) {
  struct Case { const char *text; const char *needle; } cases[] = {
      {"listen = 127.0.0.1:1\nbogus = 1\n", "test.conf:2"},
      {"workers = 0\n", "test.conf:1"},
      {"just words\n", "test.conf:1"},
      {"config = other.conf\n", "test.conf:1"},       // no nesting
      {"data-dir = \"unterminated\n", "test.conf:1"},
  };
  for (auto &cs : cases) {
    Cfg k;
    EXPECT_EQ(k.text(cs.text), NC_EINVAL) << cs.text;
    EXPECT_NE(std::string(k.err).find(cs.needle), std::string::npos) << k.err;
  }
}

TEST(Config, TokenValuesAreNotAllowedInTheFile) {
  Cfg k;
  EXPECT_EQ(k.text("NANOCHAT_TOKEN = abcdefghijklmnopqrstuvwxyz\n"), NC_EINVAL);
  Cfg k2;
  EXPECT_EQ(k2.text("token = abcdefghijklmnopqrstuvwxyz\n"), NC_EINVAL);
}

TEST(Config, InvalidUtf8OrNulInFileRejected) {
  Cfg k;
  std::string t = "listen = 127.0.0.1:1\xff\n";
  EXPECT_EQ(k.text(t), NC_EINVAL);
  Cfg k2;
  std::string t2("listen = 127.0.0.1:1\0\n", 22);
  EXPECT_EQ(k2.text(t2), NC_EINVAL);
}

TEST(Config, PrecedenceFileEnvFlags) {
  std::string path = write_temp("workers = 2\ngrace-ms = 111\nmax-streams = 5\n");
  Cfg k({"HOME=/h", "NANOCHAT_CONFIG=" + path, "NANOCHAT_GRACE_MS=222"});
  ASSERT_EQ(k.load({"--max-streams", "6"}), NC_OK) << k.err;
  EXPECT_EQ(k.c.workers, 2);       // file only
  EXPECT_EQ(k.c.grace_ms, 222);    // env beats file
  EXPECT_EQ(k.c.max_streams, 6);   // flag beats file
  EXPECT_STREQ(k.c.config_file, path.c_str());
  Cfg k2;
  ASSERT_EQ(k2.load({"--config", path, "--workers", "8"}), NC_OK) << k2.err;
  EXPECT_EQ(k2.c.workers, 8);
  EXPECT_EQ(k2.c.grace_ms, 111);
  unlink(path.c_str());
}

TEST(Config, MissingConfigFileIsAnError) {
  Cfg k;
  EXPECT_EQ(k.load({"--config", "/nonexistent/nanochat.conf"}), NC_EINVAL);
  EXPECT_NE(std::string(k.err).find("/nonexistent/nanochat.conf"), std::string::npos) << k.err;
}

TEST(ListenAddr, Parse) {
  struct Case { const char *s; int rc; const char *host; int port; bool loop; bool unix_; } cases[] = {
      {"127.0.0.1:50051", NC_OK, "127.0.0.1", 50051, true, false},
      {"127.9.8.7:1", NC_OK, "127.9.8.7", 1, true, false},
      {"localhost:0", NC_OK, "localhost", 0, true, false},
      {"[::1]:80", NC_OK, "::1", 80, true, false},
      {"[::ffff:127.0.0.1]:80", NC_OK, "::ffff:127.0.0.1", 80, true, false},
      {"0.0.0.0:80", NC_OK, "0.0.0.0", 80, false, false},
      {"10.1.2.3:80", NC_OK, "10.1.2.3", 80, false, false},
      {"[::]:80", NC_OK, "::", 80, false, false},
      {"example.com:80", NC_OK, "example.com", 80, false, false},
      {"unix:/tmp/nc.sock", NC_OK, "unix:/tmp/nc.sock", -1, true, true},
      {"127.0.0.1", NC_EINVAL, "", 0, false, false},
      {"127.0.0.1:65536", NC_EINVAL, "", 0, false, false},
      {"127.0.0.1:-1", NC_EINVAL, "", 0, false, false},
      {"127.0.0.1:8x", NC_EINVAL, "", 0, false, false},
      {":80", NC_EINVAL, "", 0, false, false},
      {"[::1:80", NC_EINVAL, "", 0, false, false},
      {"", NC_EINVAL, "", 0, false, false},
  };
  for (auto &cs : cases) {
    nc_listen_addr a;
    int rc = nc_listen_parse(cs.s, &a);
    EXPECT_EQ(rc, cs.rc) << cs.s;
    if (rc != NC_OK || cs.rc != NC_OK) continue;
    EXPECT_STREQ(a.host, cs.host) << cs.s;
    EXPECT_EQ(a.port, cs.port) << cs.s;
    EXPECT_EQ(a.loopback, cs.loop) << cs.s;
    EXPECT_EQ(a.unix_socket, cs.unix_) << cs.s;
  }
}

TEST(Exposure, LoopbackAlwaysAllowed) {
  Cfg k;
  nc_listen_addr a;
  ASSERT_EQ(nc_listen_parse("127.0.0.1:1", &a), NC_OK);
  EXPECT_EQ(nc_config_check_exposure(&k.c, &a, false, k.err, sizeof k.err), NC_OK);
}

TEST(Exposure, RemoteNeedsTokenAndTls) {
  nc_listen_addr a;
  ASSERT_EQ(nc_listen_parse("0.0.0.0:1", &a), NC_OK);
  Cfg none;
  EXPECT_EQ(nc_config_check_exposure(&none.c, &a, false, none.err, sizeof none.err), NC_EPERM);
  EXPECT_NE(std::string(none.err).find("token"), std::string::npos) << none.err;
  Cfg tok_only;   // token but neither TLS nor --insecure-remote
  EXPECT_EQ(nc_config_check_exposure(&tok_only.c, &a, true, tok_only.err, sizeof tok_only.err),
            NC_EPERM);
  EXPECT_NE(std::string(tok_only.err).find("TLS"), std::string::npos) << tok_only.err;
  Cfg insecure;
  insecure.c.insecure_remote = true;
  EXPECT_EQ(nc_config_check_exposure(&insecure.c, &a, true, insecure.err, sizeof insecure.err),
            NC_OK);
  EXPECT_EQ(nc_config_check_exposure(&insecure.c, &a, false, insecure.err, sizeof insecure.err),
            NC_EPERM);   // --insecure-remote never waives the token
  Cfg tls;
  snprintf(tls.c.tls_cert, sizeof tls.c.tls_cert, "/c.pem");
  snprintf(tls.c.tls_key, sizeof tls.c.tls_key, "/k.pem");
  EXPECT_EQ(nc_config_check_exposure(&tls.c, &a, true, tls.err, sizeof tls.err), NC_OK);
}
