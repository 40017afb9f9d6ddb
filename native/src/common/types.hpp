#pragma once
#include <cstddef>
#include <cstdint>

namespace derecho {

using MemberId = std::uint32_t;

// Bytes at the start of every member's region that belong to the transport (doorbell, magic).
// Protocol layers never place data there, and transports refuse peer writes that touch it.
inline constexpr std::size_t kRegionHeaderBytes = 4096;
inline constexpr std::size_t kCacheLine = 64;

constexpr std::size_t align_up(std::size_t v, std::size_t a) { return (v + a - 1) / a * a; }

}  // namespace derecho
