// nc_par (core/nc_par.h): every task runs exactly once with a worker index in range, whatever
// the thread count, task count and spin budget (sleeping workers are woken); many short loops
// in a row (the job hand-over); callers on several threads at once and calls from inside a
// task run inline, never deadlock and still run everything once.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

extern "C" {
#include "nc_par.h"
}

namespace {

struct Counts {
  std::vector<std::atomic<int>> hits;
  std::atomic<int> bad_worker{0};
  int threads;
  explicit Counts(int n, int th) : hits(n), threads(th) {}
};

void count_task(void *ctx, int t, int w) {
  auto *c = static_cast<Counts *>(ctx);
  c->hits[t].fetch_add(1);
  if (w < 0 || w >= c->threads) c->bad_worker.fetch_add(1);
}

void expect_once(Counts &c) {
  for (size_t i = 0; i < c.hits.size(); i++) ASSERT_EQ(c.hits[i].load(), 1) << "task " << i;
  EXPECT_EQ(c.bad_worker.load(), 0);
}

TEST(Par, EveryTaskOnceForAnyShape) {
  for (int spin : {0, 50, 2000}) {
    nc_par_set_spin_us(spin);
    EXPECT_EQ(nc_par_spin_us(), spin);
    for (int threads : {1, 2, 3, 8})
      for (int n : {1, 2, 3, 7, 64, 1000}) {
        Counts c(n, threads);
        nc_par_run(threads, n, count_task, &c);
        expect_once(c);
      }
  }
  EXPECT_GE(nc_par_workers(), 7);  // 8 threads were asked for
  nc_par_set_spin_us(NC_PAR_SPIN_US);
}

TEST(Par, ManyShortLoopsInARow) {
  // the hand-over between jobs: workers still leaving one job while the next is posted
  for (int spin : {0, 20, 500}) {
    nc_par_set_spin_us(spin);
    for (int r = 0; r < 2000; r++) {
      const int n = 1 + r % 9;
      Counts c(n, 3);
      nc_par_run(3, n, count_task, &c);
      for (int i = 0; i < n; i++) ASSERT_EQ(c.hits[i].load(), 1) << "loop " << r << " spin " << spin;
    }
  }
  nc_par_set_spin_us(NC_PAR_SPIN_US);
}

struct Nested {
  std::atomic<int> inner{0};
};

void nested_task(void *ctx, int, int) {
  auto *nd = static_cast<Nested *>(ctx);
  Counts c(5, 1);  // a call from inside a task runs inline: worker 0 only
  nc_par_run(4, 5, count_task, &c);
  bool ok = true;
  for (auto &h : c.hits) ok = ok && h.load() == 1;
  if (ok && c.bad_worker.load() == 0) nd->inner.fetch_add(1);
}

TEST(Par, CallsFromInsideATaskRunInline) {
  Nested nd;
  nc_par_run(2, 6, nested_task, &nd);
  EXPECT_EQ(nd.inner.load(), 6);
}

TEST(Par, ConcurrentCallersAllComplete) {
  std::vector<std::thread> th;
  std::atomic<int> failures{0};
  for (int k = 0; k < 4; k++)
    th.emplace_back([&failures, k] {
      for (int r = 0; r < 300; r++) {
        const int n = 3 + (r + k) % 20;
        Counts c(n, 2);
        nc_par_run(2, n, count_task, &c);
        for (int i = 0; i < n; i++)
          if (c.hits[i].load() != 1) failures.fetch_add(1);
        if (c.bad_worker.load()) failures.fetch_add(1);
      }
    });
  for (auto &t : th) t.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(Par, DegenerateArguments) {
  nc_par_run(4, 0, count_task, nullptr);  // nothing to run: fn is never called
  nc_par_run(4, 3, nullptr, nullptr);     // no function: a no-op
  Counts c(3, NC_PAR_MAX_THREADS);
  nc_par_run(1000, 3, count_task, &c);    // clamped to NC_PAR_MAX_THREADS
  expect_once(c);
  nc_par_set_spin_us(-5);
  EXPECT_EQ(nc_par_spin_us(), 0);
  nc_par_set_spin_us(1 << 30);
  EXPECT_EQ(nc_par_spin_us(), 100000);
  nc_par_set_spin_us(NC_PAR_SPIN_US);
}

}  // namespace
