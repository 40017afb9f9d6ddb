#include "persistence/hybrid_clock.hpp"

#include <time.h>

#include <algorithm>
#include <utility>

namespace derecho::persistence {

std::uint64_t HybridClock::wall_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

HybridClock::HybridClock(Physical physical) : physical_(std::move(physical)) {}

std::uint64_t HybridClock::now() {
  const std::uint64_t p = physical_();
  std::uint64_t last = last_.load(std::memory_order_relaxed);
  std::uint64_t next = 0;
  do {
    next = std::max(p, last + 1);
  } while (!last_.compare_exchange_weak(last, next, std::memory_order_relaxed));
  return next;
}

void HybridClock::observe(std::uint64_t remote) {
  std::uint64_t last = last_.load(std::memory_order_relaxed);
  while (last < remote && !last_.compare_exchange_weak(last, remote, std::memory_order_relaxed)) {
  }
}

}  // namespace derecho::persistence
