#include "persistence/checksum.hpp"

#include <zlib.h>

namespace derecho::persistence {

std::uint32_t crc32_of(std::initializer_list<std::span<const std::byte>> parts) {
  uLong crc = crc32_z(0L, Z_NULL, 0);
  for (const auto part : parts) {
    if (!part.empty()) crc = crc32_z(crc, reinterpret_cast<const Bytef*>(part.data()), part.size());
  }
  return static_cast<std::uint32_t>(crc);
}

}  // namespace derecho::persistence
