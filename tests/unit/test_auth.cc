// Unit tests for bearer-token authentication (service/nc_auth.h): token syntax, token files
// and variables, and the gate's decision table.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

extern "C" {
#include "nc_auth.h"
#include "nc_config.h"
#include "nc_err.h"
#include "nc_rpc.h"
}

namespace {

const std::string kAdmin = "admin-token-0123456789abcdef";
const std::string kUser = "user-token-0123456789abcdef";

std::string temp_file(const std::string &content, mode_t mode) {
  char path[] = "/tmp/nc_auth_test_XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, content.data(), content.size()), (ssize_t)content.size());
  close(fd);
  EXPECT_EQ(chmod(path, mode), 0);
  return path;
}

nc_config base_config() {
  nc_config c;
  const char *env[] = {"HOME=/tmp", nullptr};
  nc_config_defaults(&c, env);
  return c;
}

struct Check {
  int rc;
  nc_scope scope;
  std::string msg;
};

Check check(const nc_auth &a, uint32_t flags, const std::string &header, size_t n = 1) {
  Check r;
  const char *m = nullptr;
  r.rc = nc_auth_check(&a, flags, n, header.data(), header.size(), &r.scope, &m);
  r.msg = m ? m : "(null)";
  return r;
}

}  // namespace

TEST(Token, Syntax) {
  EXPECT_TRUE(nc_token_valid(kAdmin.data(), kAdmin.size()));
  EXPECT_FALSE(nc_token_valid("short", 5));
  std::string fifteen(15, 'a'), sixteen(16, 'a');
  EXPECT_FALSE(nc_token_valid(fifteen.data(), fifteen.size()));
  EXPECT_TRUE(nc_token_valid(sixteen.data(), sixteen.size()));
  std::string max(NC_TOKEN_MAX, 'x'), over(NC_TOKEN_MAX + 1, 'x');
  EXPECT_TRUE(nc_token_valid(max.data(), max.size()));
  EXPECT_FALSE(nc_token_valid(over.data(), over.size()));
  for (const char *bad : {"abcdefgh ijklmnop", "abcdefgh\tijklmnop", "abcdefghijklmnop\n",
                          "abcdefghijklmnop\x7f", "abcdefghijklmnop\xc3\xa9"})
    EXPECT_FALSE(nc_token_valid(bad, strlen(bad))) << bad;
  std::string nul("abcdefgh\0ijklmnop", 17);
  EXPECT_FALSE(nc_token_valid(nul.data(), nul.size()));
}

TEST(AuthLoad, NoTokensMeansOpen) {
  nc_config c = base_config();
  nc_auth a;
  char err[256];
  ASSERT_EQ(nc_auth_load(&a, &c, err, sizeof err), NC_OK);
  EXPECT_FALSE(a.have_admin);
  EXPECT_FALSE(a.have_user);
  Check r = check(a, NC_RPC_ADMIN, "");
  EXPECT_EQ(r.rc, NC_OK);
  EXPECT_EQ(r.scope, NC_SCOPE_ADMIN);
}

TEST(AuthLoad, FileWithTrailingNewline) {
  std::string p = temp_file(kAdmin + "\n", 0600);
  nc_config c = base_config();
  snprintf(c.token_file, sizeof c.token_file, "%s", p.c_str());
  nc_auth a;
  char err[256];
  ASSERT_EQ(nc_auth_load(&a, &c, err, sizeof err), NC_OK) << err;
  EXPECT_TRUE(a.have_admin);
  EXPECT_EQ(check(a, 0, "Bearer " + kAdmin).rc, NC_OK);
  unlink(p.c_str());
}

TEST(AuthLoad, GroupOrWorldReadableFileRefused) {
  for (mode_t mode : {0640, 0604, 0660, 0644}) {
    std::string p = temp_file(kAdmin, mode);
    nc_config c = base_config();
    snprintf(c.token_file, sizeof c.token_file, "%s", p.c_str());
    nc_auth a;
    char err[256] = "";
    EXPECT_EQ(nc_auth_load(&a, &c, err, sizeof err), NC_EPERM) << std::oct << mode;
    EXPECT_NE(std::string(err).find(p), std::string::npos) << err;
    EXPECT_EQ(std::string(err).find(kAdmin), std::string::npos) << "token leaked: " << err;
    unlink(p.c_str());
  }
}

TEST(AuthLoad, DirectoryMissingAndOversizeFiles) {
  nc_config c = base_config();
  nc_auth a;
  char err[256];
  snprintf(c.token_file, sizeof c.token_file, "/tmp");
  EXPECT_EQ(nc_auth_load(&a, &c, err, sizeof err), NC_EPERM);
  snprintf(c.token_file, sizeof c.token_file, "/nonexistent/token");
  EXPECT_EQ(nc_auth_load(&a, &c, err, sizeof err), NC_EIO);
  std::string p = temp_file(std::string(NC_TOKEN_MAX + 10, 'a'), 0600);
  snprintf(c.token_file, sizeof c.token_file, "%s", p.c_str());
  EXPECT_EQ(nc_auth_load(&a, &c, err, sizeof err), NC_EINVAL);
  unlink(p.c_str());
  std::string q = temp_file("too short\n", 0600);
  snprintf(c.token_file, sizeof c.token_file, "%s", q.c_str());
  EXPECT_EQ(nc_auth_load(&a, &c, err, sizeof err), NC_EINVAL);
  EXPECT_NE(std::string(err).find(q), std::string::npos) << err;
  unlink(q.c_str());
}

TEST(AuthLoad, EnvironmentValuesAndFileWins) {
  nc_config c = base_config();
  snprintf(c.token_env, sizeof c.token_env, "%s", kAdmin.c_str());
  snprintf(c.user_token_env, sizeof c.user_token_env, "%s", kUser.c_str());
  nc_auth a;
  char err[256];
  ASSERT_EQ(nc_auth_load(&a, &c, err, sizeof err), NC_OK) << err;
  EXPECT_TRUE(a.have_admin && a.have_user);
  std::string other = "file-token-0123456789abcdef";
  std::string p = temp_file(other, 0600);
  snprintf(c.token_file, sizeof c.token_file, "%s", p.c_str());
  ASSERT_EQ(nc_auth_load(&a, &c, err, sizeof err), NC_OK) << err;
  EXPECT_EQ(check(a, 0, "Bearer " + other).scope, NC_SCOPE_ADMIN);
  EXPECT_EQ(check(a, 0, "Bearer " + kAdmin).rc, NC_EAUTH);
  unlink(p.c_str());
}

TEST(AuthLoad, EqualAdminAndUserTokensRefused) {
  nc_config c = base_config();
  snprintf(c.token_env, sizeof c.token_env, "%s", kAdmin.c_str());
  snprintf(c.user_token_env, sizeof c.user_token_env, "%s", kAdmin.c_str());
  nc_auth a;
  char err[256];
  EXPECT_EQ(nc_auth_load(&a, &c, err, sizeof err), NC_EINVAL);
}

class AuthCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    memset(&a, 0, sizeof a);
    ASSERT_EQ(nc_auth_set_token(&a, true, kAdmin.data(), kAdmin.size()), NC_OK);
    ASSERT_EQ(nc_auth_set_token(&a, false, kUser.data(), kUser.size()), NC_OK);
  }
  nc_auth a;
};

TEST_F(AuthCheck, PublicMethodsIgnoreTheHeader) {
  EXPECT_EQ(check(a, NC_RPC_PUBLIC, "", 0).rc, NC_OK);
  EXPECT_EQ(check(a, NC_RPC_PUBLIC, "garbage").rc, NC_OK);
  EXPECT_EQ(check(a, NC_RPC_PUBLIC, "garbage").scope, NC_SCOPE_NONE);
}

TEST_F(AuthCheck, DecisionTable) {
  struct Case { uint32_t flags; std::string header; size_t n; int rc; nc_scope scope; } cases[] = {
      {0, "", 0, NC_EAUTH, NC_SCOPE_NONE},                       // missing
      {0, "Bearer " + kAdmin, 2, NC_EAUTH, NC_SCOPE_NONE},        // duplicated header
      {0, kAdmin, 1, NC_EAUTH, NC_SCOPE_NONE},                    // no scheme
      {0, "Basic " + kAdmin, 1, NC_EAUTH, NC_SCOPE_NONE},         // wrong scheme
      {0, "Bearer  " + kAdmin, 1, NC_EAUTH, NC_SCOPE_NONE},       // two spaces
      {0, "Bearer ", 1, NC_EAUTH, NC_SCOPE_NONE},                 // empty token
      {0, "Bearer " + kAdmin + "x", 1, NC_EAUTH, NC_SCOPE_NONE},  // wrong token
      {0, "Bearer " + kAdmin.substr(1), 1, NC_EAUTH, NC_SCOPE_NONE},
      {0, "Bearer " + kAdmin, 1, NC_OK, NC_SCOPE_ADMIN},
      {0, "bEaReR " + kAdmin, 1, NC_OK, NC_SCOPE_ADMIN},          // scheme case-insensitive
      {0, "Bearer " + kUser, 1, NC_OK, NC_SCOPE_USER},
      {NC_RPC_ADMIN, "Bearer " + kAdmin, 1, NC_OK, NC_SCOPE_ADMIN},
      {NC_RPC_ADMIN, "Bearer " + kUser, 1, NC_EPERM, NC_SCOPE_USER},
      {NC_RPC_ADMIN, "", 0, NC_EAUTH, NC_SCOPE_NONE},
  };
  for (auto &cs : cases) {
    Check r = check(a, cs.flags, cs.header, cs.n);
    EXPECT_EQ(r.rc, cs.rc) << cs.header << " flags " << cs.flags;
    if (cs.rc == NC_OK || cs.rc == NC_EPERM) {
      EXPECT_EQ(r.scope, cs.scope) << cs.header;
    }
    if (cs.rc != NC_OK) {
      EXPECT_FALSE(r.msg.empty());
    }
    EXPECT_EQ(r.msg.find(kAdmin), std::string::npos);
  }
}

TEST_F(AuthCheck, TokenCaseMatters) {
  std::string upper = kAdmin;
  for (auto &ch : upper) ch = (char)toupper((unsigned char)ch);
  EXPECT_EQ(check(a, 0, "Bearer " + upper).rc, NC_EAUTH);
}

TEST_F(AuthCheck, HugeHeaderIsRejectedNotRead) {
  std::string big = "Bearer " + std::string(1 << 20, 'a');
  EXPECT_EQ(check(a, 0, big).rc, NC_EAUTH);
}

TEST(AuthUserOnly, AdminMethodsUnreachable) {
  nc_auth a;
  memset(&a, 0, sizeof a);
  ASSERT_EQ(nc_auth_set_token(&a, false, kUser.data(), kUser.size()), NC_OK);
  EXPECT_EQ(check(a, 0, "Bearer " + kUser).rc, NC_OK);
  EXPECT_EQ(check(a, NC_RPC_ADMIN, "Bearer " + kUser).rc, NC_EPERM);
  EXPECT_EQ(check(a, 0, "", 0).rc, NC_EAUTH);
}
