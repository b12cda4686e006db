// Unit tests for the error table (core/nc_err.h).
#include <gtest/gtest.h>
#include <set>
#include <string>
extern "C" {
#include "nc_err.h"
}

TEST(Err, EveryCodeHasNameMessageAndStatus) {
  std::set<std::string> names;
  int n = 0;
  for (int c = 0; c >= -NC_ERR_COUNT + 1; c--, n++) {
    EXPECT_STRNE(nc_errname(c), "NC_E?") << c;
    EXPECT_STRNE(nc_strerror(c), "unknown error") << c;
    names.insert(nc_errname(c));
  }
  EXPECT_EQ((int)names.size(), NC_ERR_COUNT);
}

TEST(Err, GrpcMappingMatchesFaultsTable) {
  EXPECT_EQ(nc_err_grpc_status(NC_OK), 0);
  EXPECT_EQ(nc_err_grpc_status(NC_EINVAL), 3);
  EXPECT_EQ(nc_err_grpc_status(NC_EAUTH), 16);
  EXPECT_EQ(nc_err_grpc_status(NC_EPERM), 7);
  EXPECT_EQ(nc_err_grpc_status(NC_ENOTFOUND), 5);
  EXPECT_EQ(nc_err_grpc_status(NC_EEXIST), 6);
  EXPECT_EQ(nc_err_grpc_status(NC_ECONFLICT), 10);
  EXPECT_EQ(nc_err_grpc_status(NC_EBUSY), 8);
  EXPECT_EQ(nc_err_grpc_status(NC_EFULL), 8);
  EXPECT_EQ(nc_err_grpc_status(NC_ENOSPC), 8);
  EXPECT_EQ(nc_err_grpc_status(NC_ESTATE), 9);
  EXPECT_EQ(nc_err_grpc_status(NC_ETIMEDOUT), 4);
  EXPECT_EQ(nc_err_grpc_status(NC_ECANCELED), 1);
  EXPECT_EQ(nc_err_grpc_status(NC_ENOTREADY), 14);
  EXPECT_EQ(nc_err_grpc_status(NC_ECORRUPT), 15);
  EXPECT_EQ(nc_err_grpc_status(NC_EIO), 13);
  EXPECT_EQ(nc_err_grpc_status(NC_EINTERNAL), 13);
  EXPECT_EQ(nc_err_grpc_status(NC_ENOTSUP), 12);
}

TEST(Err, UnknownCodes) {
  EXPECT_STREQ(nc_errname(-999), "NC_E?");
  EXPECT_STREQ(nc_strerror(12345), "unknown error");
  EXPECT_EQ(nc_err_grpc_status(-999), 13);
}
