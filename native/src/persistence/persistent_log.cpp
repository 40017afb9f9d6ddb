#include "persistence/persistent_log.hpp"

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "persistence/log_recovery.hpp"
#include "persistence/posix_file.hpp"
#include "persistence/record_format.hpp"

namespace derecho::persistence {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kPage = 4096;

std::string describe_bytes(std::uint64_t bytes) {
  if (bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  if (bytes % (1u << 10) == 0) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " bytes";
}

// The errno of a segment creation that failed for lack of space, or 0.
int out_of_space(const std::error_code& ec) {
  const bool posix = ec.category() == std::generic_category() || ec.category() == std::system_category();
  return posix && (ec.value() == ENOSPC || ec.value() == EDQUOT) ? ec.value() : 0;
}

void validate(const LogOptions& o) {
  if (o.dir.empty()) throw std::invalid_argument("log options: dir is empty");
  const std::string name = "log " + o.dir.string();
  if (o.segment_bytes < kPage || o.segment_bytes % kPage != 0) {
    throw std::invalid_argument(name + ": segment_bytes " + std::to_string(o.segment_bytes) +
                                " is not a positive multiple of " + std::to_string(kPage));
  }
  if (o.max_bytes != 0 && o.max_bytes < o.segment_bytes) {
    throw std::invalid_argument(name + ": max_bytes " + std::to_string(o.max_bytes) + " is below one segment (" +
                                std::to_string(o.segment_bytes) + " bytes)");
  }
}

}  // namespace

std::unique_ptr<PersistentLog> PersistentLog::open(const LogOptions& options) {
  validate(options);
  return std::make_unique<PersistentLog>(Passkey{}, options);
}

PersistentLog::PersistentLog(Passkey, LogOptions options)
    : options_(std::move(options)), name_("log " + options_.dir.string()) {
  RecoveredLog recovered = recover_log(options_);
  segments_ = std::move(recovered.segments);
  repairs_ = std::move(recovered.repairs);
  for (const SegmentFile& segment : segments_) {
    std::size_t offset = kSegmentHeaderBytes;
    for (std::uint64_t i = 0; i < segment.records(); ++i) {
      const std::byte* at = segment.at(offset);
      const RecordHeader h = read_record_header(at);
      index_.push_back({at, h.hlc});
      offset += record_bytes(h.body_bytes);
    }
  }
  // A process that crashed leaves its appends in the page cache, not on disk: make them durable
  // before reporting them as persisted.
  persist();
}

std::uint64_t PersistentLog::first_version() const {
  return segments_.empty() ? 0 : segments_.front().first_version();
}

std::uint64_t PersistentLog::last_version() const { return segments_.empty() ? 0 : segments_.back().last_version(); }

AppendResult PersistentLog::append(std::uint64_t version, std::uint64_t hlc, std::span<const std::byte> body) {
  require_next(name_, index_.empty(), last_version(), index_.empty() ? 0 : index_.back().hlc, version, hlc);
  const std::size_t payload = options_.segment_bytes - kSegmentHeaderBytes;
  if (body.size() > kMaxBodyBytes || record_bytes(body.size()) > payload) {
    return {AppendResult::Status::too_large, name_ + ": record of version " + std::to_string(version) + " has " +
                                                 std::to_string(body.size()) + " body bytes; a segment holds " +
                                                 std::to_string(payload - kRecordHeaderBytes) + " at most"};
  }
  if (segments_.empty() || !segments_.back().has_room(record_bytes(body.size()))) {
    if (auto refused = start_segment(version)) return *refused;
  }
  index_.push_back({segments_.back().append(version, hlc, body), hlc});
  return {};
}

std::optional<AppendResult> PersistentLog::start_segment(std::uint64_t version) {
  std::uint64_t in_use = 0;
  for (const SegmentFile& segment : segments_) in_use += segment.size();
  if (options_.max_bytes != 0 && in_use + options_.segment_bytes > options_.max_bytes) {
    return AppendResult{AppendResult::Status::full,
                        name_ + ": quota of " + describe_bytes(options_.max_bytes) + " reached (" +
                            std::to_string(segments_.size()) + " segments, " + describe_bytes(in_use) +
                            " in use); truncate_below() frees whole segments"};
  }
  try {
    segments_.push_back(SegmentFile::create(options_.dir, version, options_.segment_bytes, options_.flush));
  } catch (const std::system_error& e) {
    const int err = out_of_space(e.code());
    if (err == 0) throw;
    return AppendResult{AppendResult::Status::full,
                        "log " + (options_.dir / segment_file_name(version)).string() + ": " +
                            (err == ENOSPC ? "no space left on device (ENOSPC)" : "disk quota exceeded (EDQUOT)") +
                            " creating a " + describe_bytes(options_.segment_bytes) + " segment"};
  }
  return std::nullopt;
}

std::uint64_t PersistentLog::persist() {
  const FlushJob job = prepare_persist();
  run(job);
  finish_persist(job);
  return persisted_version_;
}

PersistentLog::FlushJob PersistentLog::prepare_persist() const {
  // Unflushed bytes are always in a suffix of the segments: appends go to the newest one, and
  // truncate_after(), the one operation that rewrites an older segment, persists first.
  FlushJob job;
  std::size_t first = segments_.size();
  while (first > 0 && segments_[first - 1].has_unflushed()) --first;
  for (std::size_t i = first; i < segments_.size(); ++i) {
    const SegmentFile& s = segments_[i];
    job.ranges.push_back({&s, s.first_version(), s.flushed_end(), s.write_end()});
  }
  job.version = last_version();
  return job;
}

void PersistentLog::run(const FlushJob& job) {
  for (const auto& r : job.ranges) r.segment->flush_range(r.from, r.to);
}

void PersistentLog::finish_persist(const FlushJob& job) {
  for (const auto& r : job.ranges) {
    for (auto& s : segments_) {
      if (s.first_version() == r.first_version) s.mark_flushed(r.to);
    }
  }
  persisted_version_ = std::max(persisted_version_, std::min(job.version, last_version()));
}

std::optional<RecordRef> PersistentLog::read(std::uint64_t version) const {
  if (index_.empty() || version < first_version() || version > last_version()) return std::nullopt;
  const std::byte* at = index_[version - first_version()].record;
  const RecordHeader h = read_record_header(at);
  return RecordRef{h.version, h.hlc, h.crc, {at + kRecordHeaderBytes, h.body_bytes}};
}

std::optional<std::uint64_t> PersistentLog::last_at_or_before(std::uint64_t hlc) const {
  const auto after = std::ranges::upper_bound(index_, hlc, {}, &IndexEntry::hlc);
  if (after == index_.begin()) return std::nullopt;
  return first_version() + static_cast<std::uint64_t>(after - index_.begin()) - 1;
}

void PersistentLog::truncate_below(std::uint64_t version) {
  bool removed = false;
  // Oldest first, so a crash part-way leaves a log that is still contiguous.
  while (!segments_.empty() && segments_.front().last_version() < version) {
    fs::remove(segments_.front().path());
    index_.erase(index_.begin(), index_.begin() + static_cast<std::ptrdiff_t>(segments_.front().records()));
    segments_.pop_front();
    removed = true;
  }
  if (removed) sync_directory(options_.dir);
  persisted_version_ = std::min(persisted_version_, last_version());
}

void PersistentLog::truncate_after(std::uint64_t version) {
  if (version >= last_version()) return;
  if (version < first_version()) return reset();
  persist();
  bool removed = false;
  // Newest first, so a crash part-way leaves a log that is still contiguous.
  while (segments_.back().first_version() > version) {
    fs::remove(segments_.back().path());
    index_.resize(index_.size() - segments_.back().records());
    segments_.pop_back();
    removed = true;
  }
  if (removed) sync_directory(options_.dir);
  SegmentFile& tail = segments_.back();
  if (tail.last_version() > version) {
    const std::size_t keep = static_cast<std::size_t>(version + 1 - first_version());
    const auto offset = static_cast<std::size_t>(index_[keep].record - tail.at(0));
    tail.drop_from(offset, tail.write_end(), version + 1 - tail.first_version());
    index_.resize(keep);
  }
  persisted_version_ = version;
}

void PersistentLog::reset() {
  while (!segments_.empty()) {
    fs::remove(segments_.back().path());
    segments_.pop_back();
  }
  index_.clear();
  sync_directory(options_.dir);
  persisted_version_ = 0;
}

}  // namespace derecho::persistence
