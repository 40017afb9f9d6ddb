#pragma once
#include <cstdint>

namespace derecho::multicast {

// Multicast counters in the SST carry the view they belong to in their top bits, so one word
// says both "how many" and "in which view". A member that installs a new view restarts its
// counters at zero; a peer that still holds that row's old words (or reads a row that is half
// updated) sees a different view tag and reads zero, never an old view's count as a new one's.
inline constexpr unsigned kCountBits = 40;
inline constexpr std::uint64_t kCountMask = (std::uint64_t{1} << kCountBits) - 1;
inline constexpr std::uint64_t kViewTagMask = (std::uint64_t{1} << (64 - kCountBits)) - 1;

constexpr std::uint64_t view_counter(std::uint64_t vid, std::uint64_t count) {
  return ((vid & kViewTagMask) << kCountBits) | (count & kCountMask);
}

constexpr std::uint64_t count_in_view(std::uint64_t word, std::uint64_t vid) {
  return (word >> kCountBits) == (vid & kViewTagMask) ? word & kCountMask : 0;
}

}  // namespace derecho::multicast
