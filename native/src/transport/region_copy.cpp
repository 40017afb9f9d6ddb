#include <atomic>
#include <cstring>

#include "transport/transport.hpp"

namespace derecho::transport {

// Every store is a release store, so a reader that sees a later word of one copy also sees the
// earlier ones on any architecture, not only on x86 where plain stores already behave so.
void copy_into_region(std::byte* dst, const std::byte* src, std::size_t len) {
  std::size_t i = 0;
  // Unaligned head byte by byte, then whole words so no counter is ever observed half-written.
  while (i < len && (reinterpret_cast<std::uintptr_t>(dst + i) & 7) != 0) {
    std::atomic_ref<std::byte>(dst[i]).store(src[i], std::memory_order_release);
    ++i;
  }
  for (; i + 8 <= len; i += 8) {
    std::uint64_t word;
    std::memcpy(&word, src + i, 8);
    std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(dst + i))
        .store(word, std::memory_order_release);
  }
  for (; i < len; ++i) {
    std::atomic_ref<std::byte>(dst[i]).store(src[i], std::memory_order_release);
  }
}

}  // namespace derecho::transport
