#include "persistence/volatile_log.hpp"

#include <algorithm>
#include <stdexcept>

#include "persistence/record_format.hpp"

namespace derecho::persistence {

VolatileLog::VolatileLog(std::size_t window) : window_(window) {
  if (window == 0) throw std::invalid_argument("volatile log: window must hold at least one record");
}

std::uint64_t VolatileLog::first_version() const { return records_.empty() ? 0 : records_.front().version; }

std::uint64_t VolatileLog::last_version() const { return records_.empty() ? 0 : records_.back().version; }

AppendResult VolatileLog::append(std::uint64_t version, std::uint64_t hlc, std::span<const std::byte> body) {
  require_next("volatile log", records_.empty(), last_version(), records_.empty() ? 0 : records_.back().hlc, version,
               hlc);
  // Same limit as the persistent log's record header, so both logs accept the same records.
  if (body.size() > kMaxBodyBytes) {
    return {AppendResult::Status::too_large, "volatile log: record of version " + std::to_string(version) + " has " +
                                                 std::to_string(body.size()) + " body bytes; at most " +
                                                 std::to_string(kMaxBodyBytes) + " fit a record"};
  }
  records_.push_back({version, hlc, record_crc(version, hlc, body), {body.begin(), body.end()}});
  if (records_.size() > window_) records_.pop_front();
  return {};
}

std::optional<RecordRef> VolatileLog::read(std::uint64_t version) const {
  if (records_.empty() || version < first_version() || version > last_version()) return std::nullopt;
  const Record& r = records_[version - first_version()];
  return RecordRef{r.version, r.hlc, r.crc, r.body};
}

std::optional<std::uint64_t> VolatileLog::last_at_or_before(std::uint64_t hlc) const {
  const auto after = std::ranges::upper_bound(records_, hlc, {}, &Record::hlc);
  if (after == records_.begin()) return std::nullopt;
  return std::prev(after)->version;
}

void VolatileLog::truncate_below(std::uint64_t version) {
  while (!records_.empty() && records_.front().version < version) records_.pop_front();
}

void VolatileLog::truncate_after(std::uint64_t version) {
  while (!records_.empty() && records_.back().version > version) records_.pop_back();
}

}  // namespace derecho::persistence
