#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>

namespace derecho::multicast {

// What an object record in a sender's ring says about the object that travels through the
// block relay (docs/smc-ring.md, docs/protocol-rdmc.md): its length and the block size it is
// cut into. Little-endian u64 bytes, u32 block_bytes, u32 reserved (0).
struct ObjectDescriptor {
  static constexpr std::size_t kBytes = 16;
  // What the config allows (common/group_config.cpp); a record beyond it is corrupt.
  static constexpr std::uint32_t kMinBlockBytes = 4096;
  static constexpr std::uint64_t kMaxBlocks = std::uint64_t{1} << 20;

  std::uint64_t bytes = 0;
  std::uint32_t block_bytes = 0;

  std::uint64_t blocks() const { return (bytes + block_bytes - 1) / block_bytes; }
  // The length of block `b` (the last one may be shorter).
  std::size_t block_length(std::uint64_t b) const {
    const std::uint64_t start = b * block_bytes;
    return static_cast<std::size_t>(bytes - start < block_bytes ? bytes - start : block_bytes);
  }

  void encode(std::span<std::byte, kBytes> out) const {
    const std::uint32_t reserved = 0;
    std::memcpy(out.data(), &bytes, 8);
    std::memcpy(out.data() + 8, &block_bytes, 4);
    std::memcpy(out.data() + 12, &reserved, 4);
  }

  // Throws std::runtime_error for a record that no sender of a subgroup with these limits writes:
  // the ring is corrupt.
  static ObjectDescriptor decode(std::span<const std::byte> in, std::uint64_t max_object_bytes) {
    if (in.size() != kBytes) {
      throw std::runtime_error("object record of " + std::to_string(in.size()) + " bytes, expected " +
                               std::to_string(kBytes));
    }
    ObjectDescriptor d;
    std::uint32_t reserved = 0;
    std::memcpy(&d.bytes, in.data(), 8);
    std::memcpy(&d.block_bytes, in.data() + 8, 4);
    std::memcpy(&reserved, in.data() + 12, 4);
    if (d.bytes == 0 || d.bytes > max_object_bytes || d.block_bytes < kMinBlockBytes || reserved != 0 ||
        d.blocks() > kMaxBlocks) {
      throw std::runtime_error("object record of " + std::to_string(d.bytes) + " bytes in blocks of " +
                               std::to_string(d.block_bytes) + " (at most " + std::to_string(max_object_bytes) +
                               " bytes)");
    }
    return d;
  }
};

}  // namespace derecho::multicast
