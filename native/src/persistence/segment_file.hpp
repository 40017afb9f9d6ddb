#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "persistence/pmem_mapping.hpp"

namespace derecho::persistence {

inline constexpr std::uint32_t kLogFormatVersion = 1;
inline constexpr std::size_t kSegmentHeaderBytes = 64;

// "seg-<first version, 20 digits>.log": names sort in version order.
std::string segment_file_name(std::uint64_t first_version);
std::optional<std::uint64_t> parse_segment_file_name(std::string_view name);

// One preallocated, mapped segment of a PersistentLog (layout in docs/log-format.md). Records
// fill it from the header on; every byte after write_end() is zero, which is what lets open()
// tell the end of the data from a torn write.
class SegmentFile {
 public:
  // Creates the file under a temporary name, writes and flushes its header, then renames it
  // into place and syncs the directory, so a crash leaves no segment or a valid empty one.
  // Throws std::system_error with the errno (ENOSPC from the preallocation on a full disk).
  static SegmentFile create(const std::filesystem::path& dir, std::uint64_t first_version, std::size_t bytes,
                            FlushMode mode);
  // Maps an existing segment holding no records yet as far as this object knows: recovery
  // adopts them one by one after checking them.
  static SegmentFile open(const std::filesystem::path& file, std::uint64_t first_version, FlushMode mode);

  // Why the header cannot be trusted, or nullopt. Throws std::runtime_error for a valid header
  // of a format version this build does not read: that is not damage, and must not be cut.
  std::optional<std::string> header_problem() const;

  const std::filesystem::path& path() const { return path_; }
  std::uint64_t first_version() const { return first_version_; }
  std::uint64_t last_version() const { return first_version_ + records_ - 1; }
  std::uint64_t records() const { return records_; }
  std::size_t size() const { return mapping_.size(); }
  bool is_pmem() const { return mapping_.is_pmem(); }
  std::size_t write_end() const { return write_end_; }
  const std::byte* at(std::size_t offset) const { return mapping_.data() + offset; }
  std::span<const std::byte> rest() const;  // from write_end() to the end of the file

  bool has_room(std::size_t record_bytes) const { return write_end_ + record_bytes <= mapping_.size(); }
  // Copies a record in at write_end() without flushing; returns where it starts.
  const std::byte* append(std::uint64_t version, std::uint64_t hlc, std::span<const std::byte> body);
  // Accepts the checked record of `record_bytes` at write_end() (recovery).
  void adopt(std::size_t record_bytes);
  // Drops everything from `offset` on, keeping `records_kept` records: zeroes
  // [offset, dirty_end) and flushes it, so the zeros are durable before anything new lands.
  void drop_from(std::size_t offset, std::size_t dirty_end, std::uint64_t records_kept);

  bool has_unflushed() const { return flushed_end_ < write_end_; }
  void flush();  // the bytes appended since the last flush
  // The two halves of flush() for a flush run outside the log's owner's lock: flushing a range
  // changes nothing here, and marking it afterwards records it.
  std::size_t flushed_end() const { return flushed_end_; }
  void flush_range(std::size_t from, std::size_t to) const { mapping_.flush(from, to - from, mode_); }
  void mark_flushed(std::size_t to) { flushed_end_ = std::max(flushed_end_, std::min(to, write_end_)); }

 private:
  SegmentFile(PmemMapping mapping, std::filesystem::path path, std::uint64_t first_version, FlushMode mode);

  PmemMapping mapping_;
  std::filesystem::path path_;
  std::uint64_t first_version_;
  FlushMode mode_;
  std::uint64_t records_ = 0;
  std::size_t write_end_ = kSegmentHeaderBytes;
  std::size_t flushed_end_ = kSegmentHeaderBytes;
};

}  // namespace derecho::persistence
