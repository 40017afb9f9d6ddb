#include "persistence/segment_file.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "persistence/checksum.hpp"
#include "persistence/posix_file.hpp"
#include "persistence/record_format.hpp"

namespace derecho::persistence {
namespace {

constexpr std::array<char, 8> kSegmentMagic{'D', 'R', 'E', 'C', 'S', 'E', 'G', '\0'};
constexpr std::size_t kHeaderCrcStart = 16;  // the crc covers the rest of the header
constexpr std::string_view kNamePrefix = "seg-";
constexpr std::string_view kNameSuffix = ".log";
constexpr std::size_t kNameDigits = 20;

struct SegmentHeader {
  std::array<char, 8> magic;
  std::uint32_t format_version;
  std::uint32_t crc;
  std::uint64_t segment_bytes;
  std::uint64_t first_version;
  std::array<std::byte, 32> reserved;  // zero
};
static_assert(sizeof(SegmentHeader) == kSegmentHeaderBytes);

std::uint32_t header_crc(const std::byte* header) {
  return crc32_of({{header + kHeaderCrcStart, kSegmentHeaderBytes - kHeaderCrcStart}});
}

}  // namespace

std::string segment_file_name(std::uint64_t first_version) {
  char digits[kNameDigits + 1];
  std::snprintf(digits, sizeof digits, "%020llu", static_cast<unsigned long long>(first_version));
  return std::string(kNamePrefix) + digits + std::string(kNameSuffix);
}

std::optional<std::uint64_t> parse_segment_file_name(std::string_view name) {
  if (name.size() != kNamePrefix.size() + kNameDigits + kNameSuffix.size() || !name.starts_with(kNamePrefix) ||
      !name.ends_with(kNameSuffix)) {
    return std::nullopt;
  }
  const auto digits = name.substr(kNamePrefix.size(), kNameDigits);
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
  return v;
}

SegmentFile::SegmentFile(PmemMapping mapping, std::filesystem::path path, std::uint64_t first_version,
                         FlushMode mode)
    : mapping_(std::move(mapping)), path_(std::move(path)), first_version_(first_version), mode_(mode) {}

SegmentFile SegmentFile::create(const std::filesystem::path& dir, std::uint64_t first_version, std::size_t bytes,
                                FlushMode mode) {
  const auto path = dir / segment_file_name(first_version);
  auto tmp = path;
  tmp += ".tmp";
  std::error_code ignored;
  std::filesystem::remove(tmp, ignored);  // left by a crash between creation and rename
  PmemMapping mapping = PmemMapping::create(tmp, bytes);
  try {
    SegmentHeader h{};
    h.magic = kSegmentMagic;
    h.format_version = kLogFormatVersion;
    h.segment_bytes = bytes;
    h.first_version = first_version;
    std::memcpy(mapping.data(), &h, sizeof h);
    h.crc = header_crc(mapping.data());
    std::memcpy(mapping.data(), &h, sizeof h);
    mapping.flush(0, kSegmentHeaderBytes, mode);
    std::filesystem::rename(tmp, path);
  } catch (...) {
    std::filesystem::remove(tmp, ignored);
    throw;
  }
  sync_directory(dir);
  return SegmentFile(std::move(mapping), path, first_version, mode);
}

SegmentFile SegmentFile::open(const std::filesystem::path& file, std::uint64_t first_version, FlushMode mode) {
  return SegmentFile(PmemMapping::open(file), file, first_version, mode);
}

std::optional<std::string> SegmentFile::header_problem() const {
  if (mapping_.size() < kSegmentHeaderBytes) return "file is shorter than a segment header";
  SegmentHeader h;
  std::memcpy(&h, mapping_.data(), sizeof h);
  if (h.magic != kSegmentMagic) return "bad segment header magic";
  // Checked before the crc: a later format may cover other bytes, and its files must be refused
  // rather than cut as damaged.
  if (h.format_version != kLogFormatVersion) {
    throw std::runtime_error("log " + path_.string() + ": segment format version " +
                             std::to_string(h.format_version) + " is not supported (this build reads version " +
                             std::to_string(kLogFormatVersion) + ")");
  }
  if (h.crc != header_crc(mapping_.data())) return "segment header checksum mismatch";
  if (h.segment_bytes != mapping_.size()) {
    return "segment header says " + std::to_string(h.segment_bytes) + " bytes but the file has " +
           std::to_string(mapping_.size());
  }
  if (h.first_version != first_version_) {
    return "segment header says first version " + std::to_string(h.first_version) + " but the file name says " +
           std::to_string(first_version_);
  }
  return std::nullopt;
}

std::span<const std::byte> SegmentFile::rest() const {
  return {mapping_.data() + write_end_, mapping_.size() - write_end_};
}

const std::byte* SegmentFile::append(std::uint64_t version, std::uint64_t hlc, std::span<const std::byte> body) {
  std::byte* at = mapping_.data() + write_end_;
  write_record(at, version, hlc, body);
  write_end_ += record_bytes(body.size());
  ++records_;
  return at;
}

void SegmentFile::adopt(std::size_t record_bytes) {
  write_end_ += record_bytes;
  ++records_;
}

void SegmentFile::drop_from(std::size_t offset, std::size_t dirty_end, std::uint64_t records_kept) {
  if (dirty_end > offset) {
    std::memset(mapping_.data() + offset, 0, dirty_end - offset);
    mapping_.flush(offset, dirty_end - offset, mode_);
  }
  write_end_ = offset;
  flushed_end_ = std::min(flushed_end_, offset);
  records_ = records_kept;
}

void SegmentFile::flush() {
  mapping_.flush(flushed_end_, write_end_ - flushed_end_, mode_);
  flushed_end_ = write_end_;
}

}  // namespace derecho::persistence
