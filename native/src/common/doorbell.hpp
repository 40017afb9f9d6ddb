#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>

namespace derecho {

// A wake-up counter that may live in memory shared between processes. Writers ring it after
// their bytes have landed; an idle reader sleeps on it in the kernel (futex) instead of spinning.
// The futex calls are deliberately not FUTEX_PRIVATE: the word can be in a MAP_SHARED region.
class Doorbell {
 public:
  std::uint32_t snapshot() const { return seq_.load(std::memory_order_acquire); }

  // Cheap when nobody sleeps: one atomic add and one load, no syscall.
  void ring();

  // Sleeps until the counter differs from `seen` or `timeout` passes. Returns at once if it
  // already differs. Spurious returns are allowed; callers re-check their condition.
  void wait(std::uint32_t seen, std::chrono::microseconds timeout);

 private:
  std::atomic<std::uint32_t> seq_{0};
  std::atomic<std::uint32_t> sleepers_{0};
};

static_assert(sizeof(Doorbell) == 8);

}  // namespace derecho
