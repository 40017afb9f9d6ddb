#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>

#include "common/types.hpp"

// The record layout inside a log segment (docs/log-format.md). VolatileLog uses the same
// checksum so that members with different kinds of log can compare records by crc.
namespace derecho::persistence {

static_assert(std::endian::native == std::endian::little,
              "the on-disk formats are little-endian and are read in place");

inline constexpr std::uint32_t kRecordMagic = 0x31434552;  // "REC1" in file order
inline constexpr std::size_t kRecordHeaderBytes = 32;
inline constexpr std::size_t kRecordAlign = 8;
inline constexpr std::size_t kMaxBodyBytes = std::numeric_limits<std::uint32_t>::max();

struct RecordHeader {
  std::uint32_t magic;
  std::uint32_t crc;  // zlib crc32 over bytes [8, 32) of this header, then the body
  std::uint64_t version;
  std::uint64_t hlc;
  std::uint32_t body_bytes;
  std::uint32_t reserved;  // zero
};
static_assert(sizeof(RecordHeader) == kRecordHeaderBytes);

constexpr std::size_t record_bytes(std::size_t body_bytes) {
  return align_up(kRecordHeaderBytes + body_bytes, kRecordAlign);
}

std::uint32_t record_crc(std::uint64_t version, std::uint64_t hlc, std::span<const std::byte> body);

// Writes header and body at `at`; the padding after them is not touched (it is already zero).
void write_record(std::byte* at, std::uint64_t version, std::uint64_t hlc, std::span<const std::byte> body);

RecordHeader read_record_header(const std::byte* at);

// Length of the prefix of `bytes` that ends with its last non-zero byte (0: all zero).
std::size_t nonzero_extent(std::span<const std::byte> bytes);

// What lies at one position of a segment, given everything from there to the segment's end and
// the version the log expects there.
struct RecordScan {
  enum class Kind { record, end, bad };
  Kind kind = Kind::end;
  std::size_t bytes = 0;  // record: its size including padding
  std::string problem;    // bad: why, naming the expected version
};
RecordScan scan_record(std::span<const std::byte> rest, std::uint64_t expected_version);

}  // namespace derecho::persistence
