#include "persistence/record_format.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "persistence/checksum.hpp"

namespace derecho::persistence {
namespace {

constexpr std::size_t kCrcStart = 8;  // the crc covers everything after its own field

RecordHeader make_header(std::uint64_t version, std::uint64_t hlc, std::size_t body_bytes) {
  RecordHeader h{};
  h.magic = kRecordMagic;
  h.version = version;
  h.hlc = hlc;
  h.body_bytes = static_cast<std::uint32_t>(body_bytes);
  return h;
}

std::span<const std::byte> covered(const std::array<std::byte, kRecordHeaderBytes>& raw) {
  return std::span<const std::byte>(raw).subspan(kCrcStart);
}

}  // namespace

std::uint32_t record_crc(std::uint64_t version, std::uint64_t hlc, std::span<const std::byte> body) {
  std::array<std::byte, kRecordHeaderBytes> raw{};
  const RecordHeader h = make_header(version, hlc, body.size());
  std::memcpy(raw.data(), &h, sizeof h);
  return crc32_of({covered(raw), body});
}

void write_record(std::byte* at, std::uint64_t version, std::uint64_t hlc, std::span<const std::byte> body) {
  RecordHeader h = make_header(version, hlc, body.size());
  h.crc = record_crc(version, hlc, body);
  std::memcpy(at, &h, sizeof h);
  if (!body.empty()) std::memcpy(at + kRecordHeaderBytes, body.data(), body.size());
}

RecordHeader read_record_header(const std::byte* at) {
  RecordHeader h;
  std::memcpy(&h, at, sizeof h);
  return h;
}

std::size_t nonzero_extent(std::span<const std::byte> bytes) {
  // Compares whole blocks with memcmp (vectorized) from the back, since a log's tail segment
  // is mostly zeros and is checked on every open.
  static constexpr std::array<std::byte, 4096> kZeros{};
  std::size_t end = bytes.size();
  while (end > 0) {
    const std::size_t block = std::min(end, kZeros.size());
    if (std::memcmp(bytes.data() + end - block, kZeros.data(), block) != 0) {
      while (bytes[end - 1] == std::byte{0}) --end;
      return end;
    }
    end -= block;
  }
  return 0;
}

RecordScan scan_record(std::span<const std::byte> rest, std::uint64_t expected_version) {
  RecordScan out;
  // Built only for a bad record: open() scans every record of the log.
  const auto where = [&] { return " where version " + std::to_string(expected_version) + " was expected"; };
  const auto bad = [&](std::string problem) {
    out.kind = RecordScan::Kind::bad;
    out.problem = std::move(problem);
    return out;
  };
  if (rest.size() < kRecordHeaderBytes) {
    if (nonzero_extent(rest) != 0) return bad("torn header" + where());
    return out;
  }
  if (nonzero_extent(rest.first(kRecordHeaderBytes)) == 0) {
    if (nonzero_extent(rest) != 0) return bad("non-zero bytes after the end marker" + where());
    return out;
  }
  const RecordHeader h = read_record_header(rest.data());
  if (h.magic != kRecordMagic || h.reserved != 0) return bad("torn header" + where());
  if (record_bytes(h.body_bytes) > rest.size()) {
    return bad("record length " + std::to_string(h.body_bytes) + " runs past the end of the segment" + where());
  }
  const auto covered_header = rest.subspan(kCrcStart, kRecordHeaderBytes - kCrcStart);
  if (crc32_of({covered_header, rest.subspan(kRecordHeaderBytes, h.body_bytes)}) != h.crc) {
    return bad("checksum mismatch at version " + std::to_string(expected_version));
  }
  if (h.version != expected_version) {
    return bad("version " + std::to_string(h.version) + " found" + where());
  }
  out.kind = RecordScan::Kind::record;
  out.bytes = record_bytes(h.body_bytes);
  return out;
}

}  // namespace derecho::persistence
