#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "member/member.hpp"

// A benchmark's sending thread blocks here when a send was refused, until the engine says the
// queue has room (or a millisecond passes): it never spins on a full queue.
class WritableWait {
 public:
  explicit WritableWait(derecho::Member& member) {
    member.on_writable([this](std::uint32_t) {
      std::lock_guard lock(mutex_);
      writable_ = true;
      cv_.notify_one();
    });
  }
  void wait() {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, std::chrono::milliseconds(1), [&] { return writable_; });
    writable_ = false;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool writable_ = false;
};
