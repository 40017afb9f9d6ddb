#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace derecho::persistence {

struct RecordRef {
  std::uint64_t version;
  std::uint64_t hlc;
  std::uint32_t crc;                // over version, hlc and body: lets two members compare a record cheaply
  std::span<const std::byte> body;  // valid until the next append/truncate/reset on this log
};

struct AppendResult {
  enum class Status { ok, full, too_large } status = Status::ok;
  std::string error;  // full / too_large: what was refused and why
};

// A log of versioned records: what a replicated object keeps per update. Not thread-safe; the
// caller serializes.
class VersionLog {
 public:
  virtual ~VersionLog() = default;

  // Versions are contiguous: the first append into an empty log may use any version >= 1,
  // later ones must be last_version()+1, with an hlc no lower than the previous record's
  // (std::invalid_argument otherwise). Nothing is written on failure.
  virtual AppendResult append(std::uint64_t version, std::uint64_t hlc, std::span<const std::byte> body) = 0;
  // Makes every appended record durable (persistent) and returns persisted_version().
  virtual std::uint64_t persist() = 0;
  virtual std::uint64_t first_version() const = 0;  // 0 when empty
  virtual std::uint64_t last_version() const = 0;   // 0 when empty
  // The newest version known durable; never above last_version(), so 0 when empty.
  virtual std::uint64_t persisted_version() const = 0;
  virtual std::optional<RecordRef> read(std::uint64_t version) const = 0;  // nullopt outside [first, last]
  // The last version whose hlc <= `hlc`, nullopt if no retained record is that old.
  virtual std::optional<std::uint64_t> last_at_or_before(std::uint64_t hlc) const = 0;
  // Drops records < version. A persistent log drops whole segments only, so first_version()
  // may stay below `version`. Dropping every record leaves an empty log.
  virtual void truncate_below(std::uint64_t version) = 0;
  virtual void truncate_after(std::uint64_t version) = 0;  // drops records > version, durably
  virtual void reset() = 0;                                 // drops everything, durably
};

// Throws std::invalid_argument unless (version, hlc) may follow the log's last record;
// `log` names the log in the message.
void require_next(std::string_view log, bool empty, std::uint64_t last_version, std::uint64_t last_hlc,
                  std::uint64_t version, std::uint64_t hlc);

}  // namespace derecho::persistence
