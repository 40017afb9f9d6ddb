#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>

namespace derecho::persistence {

// zlib's crc32 over the concatenation of `parts`, for the checksums of every on-disk format here.
// Empty parts are skipped: zlib treats a null buffer as a request for the initial value, and an
// empty span's data() may be null.
std::uint32_t crc32_of(std::initializer_list<std::span<const std::byte>> parts);

}  // namespace derecho::persistence
