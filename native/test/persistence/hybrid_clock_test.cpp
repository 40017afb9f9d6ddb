// HybridClock under a scripted physical clock (including one that steps back) and real threads.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <set>
#include <thread>
#include <vector>

#include "persistence/hybrid_clock.hpp"

using derecho::persistence::HybridClock;

namespace {

struct ScriptedClock {
  std::atomic<std::uint64_t> ns{0};
  HybridClock::Physical source() {
    return [this] { return ns.load(); };
  }
};

TEST(HybridClock, FollowsPhysicalTimeAndNeverRepeats) {
  ScriptedClock physical;
  physical.ns = 1000;
  HybridClock clock(physical.source());
  EXPECT_EQ(clock.now(), 1000u);
  EXPECT_EQ(clock.now(), 1001u);  // the physical clock has not moved
  physical.ns = 5000;
  EXPECT_EQ(clock.now(), 5000u);
  EXPECT_EQ(clock.physical(), 5000u);
}

TEST(HybridClock, StaysMonotonicWhenPhysicalTimeGoesBackwards) {
  ScriptedClock physical;
  physical.ns = 10'000;
  HybridClock clock(physical.source());
  const auto before = clock.now();
  physical.ns = 5;
  const auto a = clock.now();
  const auto b = clock.now();
  EXPECT_GT(a, before);
  EXPECT_GT(b, a);
  physical.ns = 20'000;
  EXPECT_EQ(clock.now(), 20'000u);
}

TEST(HybridClock, ObserveMovesLaterValuesPastTheRemoteOne) {
  ScriptedClock physical;
  physical.ns = 100;
  HybridClock clock(physical.source());
  clock.observe(1'000'000);
  EXPECT_EQ(clock.now(), 1'000'001u);
  clock.observe(50);  // older than what the clock has returned: no effect
  EXPECT_EQ(clock.now(), 1'000'002u);
  clock.observe(1'000'002);  // equal to the last value returned: the next one is above it
  EXPECT_EQ(clock.now(), 1'000'003u);
}

TEST(HybridClock, WallClockSourceIsTheRealtimeClock) {
  HybridClock clock;
  const auto system = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const auto now = clock.now();
  EXPECT_LT(std::llabs(static_cast<long long>(now) - static_cast<long long>(system)), 1'000'000'000LL);
  EXPECT_GE(now, clock.physical() - 1'000'000'000u);
}

TEST(HybridClock, ConcurrentCallersGetDistinctIncreasingValues) {
  HybridClock clock;
  constexpr int kPerThread = 20'000;
  std::vector<std::vector<std::uint64_t>> seen(2);
  std::vector<std::thread> threads;
  for (auto& out : seen) {
    threads.emplace_back([&clock, &out] {
      for (int i = 0; i < kPerThread; ++i) out.push_back(clock.now());
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::uint64_t> all;
  for (const auto& out : seen) {
    for (std::size_t i = 1; i < out.size(); ++i) ASSERT_GT(out[i], out[i - 1]);
    all.insert(out.begin(), out.end());
  }
  EXPECT_EQ(all.size(), 2u * kPerThread);
}

}  // namespace
