// Unit tests for the CQ threads' load rule (service/nc_server.h nc_server_load_busy): one
// thread polls until calls overlap *and* there is work for more than one poller.
#include <gtest/gtest.h>

extern "C" {
#include "nc_server.h"
}

namespace {

constexpr int64_t kMs = 1000000;  // ns per ms

TEST(ServerLoad, OneCallNeverBusy) {
  // a lone caller keeps one poller whatever its load (the handoff would double its cost)
  EXPECT_FALSE(nc_server_load_busy(10 * kMs, 100000, 10, 0));
  EXPECT_FALSE(nc_server_load_busy(10 * kMs, 100000, 10, 1));
  EXPECT_TRUE(nc_server_load_busy(10 * kMs, 100000, 10, 2));
}

TEST(ServerLoad, CpuThreshold) {
  // 20% of one core over the window, scaled by the window's length
  EXPECT_FALSE(nc_server_load_busy(2 * kMs - 1, 0, 10, 16));
  EXPECT_TRUE(nc_server_load_busy(2 * kMs, 0, 10, 16));
  EXPECT_FALSE(nc_server_load_busy(4 * kMs - 1, 0, 20, 16));
  EXPECT_TRUE(nc_server_load_busy(4 * kMs, 0, 20, 16));
}

TEST(ServerLoad, EventThreshold) {
  // 100 events per 10 ms, scaled by the window's length
  EXPECT_FALSE(nc_server_load_busy(0, 99, 10, 16));
  EXPECT_TRUE(nc_server_load_busy(0, 100, 10, 16));
  EXPECT_FALSE(nc_server_load_busy(0, 299, 30, 16));
  EXPECT_TRUE(nc_server_load_busy(0, 300, 30, 16));
}

TEST(ServerLoad, StreamingTokensStayOnOnePoller) {
  // measured shape of 16 d4 token streams: ~3% of a core, ~50 events per 50 ms flush period
  EXPECT_FALSE(nc_server_load_busy(300000, 50, 10, 16));
  // a unary load of ~11k calls/s (3 events each) over 4 overlapping callers
  EXPECT_TRUE(nc_server_load_busy(5 * kMs, 330, 10, 4));
}

TEST(ServerLoad, DegenerateWindow) {
  EXPECT_FALSE(nc_server_load_busy(kMs, 1000, 0, 16));
  EXPECT_FALSE(nc_server_load_busy(kMs, 1000, -5, 16));
}

}  // namespace
