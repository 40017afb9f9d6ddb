#include "common/doorbell.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

namespace derecho {
namespace {

long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t val, const timespec* ts) {
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, val, ts, nullptr, 0);
}

}  // namespace

void Doorbell::ring() {
  seq_.fetch_add(1, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) != 0) {
    futex(&seq_, FUTEX_WAKE, INT32_MAX, nullptr);
  }
}

void Doorbell::wait(std::uint32_t seen, std::chrono::microseconds timeout) {
  // Announce the sleeper before the final check so a concurrent ring() either sees it and
  // wakes us, or bumped seq_ before our check and the futex call returns immediately.
  sleepers_.fetch_add(1, std::memory_order_seq_cst);
  if (seq_.load(std::memory_order_seq_cst) == seen) {
    const auto us = timeout.count();
    timespec ts{static_cast<time_t>(us / 1'000'000), static_cast<long>((us % 1'000'000) * 1000)};
    futex(&seq_, FUTEX_WAIT, seen, &ts);
  }
  sleepers_.fetch_sub(1, std::memory_order_seq_cst);
}

}  // namespace derecho
