#pragma once
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "persistence/log_options.hpp"
#include "persistence/segment_file.hpp"
#include "persistence/version_log.hpp"

namespace derecho::persistence {

// A VersionLog kept in preallocated segment files mapped with libpmem (docs/log-format.md).
// append() only copies into the mapping; persist() flushes what was appended since the last
// persist, with CPU cache flushes on DAX persistent memory and msync elsewhere.
class PersistentLog final : public VersionLog {
  struct Passkey {
    explicit Passkey() = default;
  };

 public:
  // Opens or creates the log in options.dir, cutting any damaged tail (see repairs()). Throws
  // std::invalid_argument for bad options, std::system_error / std::runtime_error naming the
  // file for what cannot be read or repaired.
  static std::unique_ptr<PersistentLog> open(const LogOptions& options);
  PersistentLog(Passkey, LogOptions options);

  AppendResult append(std::uint64_t version, std::uint64_t hlc, std::span<const std::byte> body) override;
  std::uint64_t persist() override;
  std::uint64_t first_version() const override;
  std::uint64_t last_version() const override;
  std::uint64_t persisted_version() const override { return persisted_version_; }
  std::optional<RecordRef> read(std::uint64_t version) const override;
  std::optional<std::uint64_t> last_at_or_before(std::uint64_t hlc) const override;
  void truncate_below(std::uint64_t version) override;
  void truncate_after(std::uint64_t version) override;
  void reset() override;

  // persist() in three steps, so the flush itself (msync: milliseconds on a disk) runs without
  // the caller's lock while appends go on: prepare_persist() and finish_persist() under the
  // lock, run() without it. Meanwhile nothing may truncate or reset the log (that unmaps the
  // segments a job points into).
  struct FlushJob {
    struct Range {
      const SegmentFile* segment;
      std::uint64_t first_version;
      std::size_t from, to;
    };
    std::vector<Range> ranges;
    std::uint64_t version = 0;  // persisted once the ranges are
  };
  FlushJob prepare_persist() const;
  static void run(const FlushJob& job);
  void finish_persist(const FlushJob& job);
  bool has_unflushed() const { return !segments_.empty() && segments_.back().has_unflushed(); }

  // What open() found damaged and cut, in the order found.
  const std::vector<Repair>& repairs() const { return repairs_; }
  // Whether the newest segment is DAX-mapped persistent memory; false while there is none.
  bool is_pmem() const { return !segments_.empty() && segments_.back().is_pmem(); }

 private:
  struct IndexEntry {
    const std::byte* record;  // inside its segment's mapping
    std::uint64_t hlc;
  };

  std::optional<AppendResult> start_segment(std::uint64_t version);

  LogOptions options_;
  std::string name_;  // "log <dir>", for messages
  std::deque<SegmentFile> segments_;
  std::deque<IndexEntry> index_;  // one per retained version, from first_version()
  std::vector<Repair> repairs_;
  std::uint64_t persisted_version_ = 0;
};

}  // namespace derecho::persistence
