#pragma once
#include <atomic>
#include <cstdint>
#include <functional>

namespace derecho::persistence {

// Hybrid logical clock in nanoseconds since the Unix epoch: physical time, bumped by one
// whenever needed to stay above everything returned or observed, so timestamps order events
// even when the physical clock steps back or a peer's clock runs ahead. Thread-safe.
class HybridClock {
 public:
  using Physical = std::function<std::uint64_t()>;  // ns since the epoch

  static std::uint64_t wall_ns();  // CLOCK_REALTIME
  explicit HybridClock(Physical physical = wall_ns);

  // Strictly greater than every earlier now() and observe() value, and >= physical().
  std::uint64_t now();
  // Every later now() returns more than `remote`.
  void observe(std::uint64_t remote);
  // The physical source, for "is this timestamp in the future" checks.
  std::uint64_t physical() const { return physical_(); }

 private:
  Physical physical_;
  std::atomic<std::uint64_t> last_{0};
};

}  // namespace derecho::persistence
