#pragma once
#include <cstddef>
#include <deque>
#include <vector>

#include "persistence/version_log.hpp"

namespace derecho::persistence {

// A VersionLog in memory for objects that need no durability: keeps the `window` newest records
// (an append drops the oldest beyond that); persist() has nothing to do.
class VolatileLog final : public VersionLog {
 public:
  explicit VolatileLog(std::size_t window);  // window >= 1

  AppendResult append(std::uint64_t version, std::uint64_t hlc, std::span<const std::byte> body) override;
  std::uint64_t persist() override { return last_version(); }
  std::uint64_t first_version() const override;
  std::uint64_t last_version() const override;
  std::uint64_t persisted_version() const override { return last_version(); }
  std::optional<RecordRef> read(std::uint64_t version) const override;
  std::optional<std::uint64_t> last_at_or_before(std::uint64_t hlc) const override;
  void truncate_below(std::uint64_t version) override;
  void truncate_after(std::uint64_t version) override;
  void reset() override { records_.clear(); }

 private:
  struct Record {
    std::uint64_t version;
    std::uint64_t hlc;
    std::uint32_t crc;
    std::vector<std::byte> body;
  };

  std::size_t window_;
  std::deque<Record> records_;
};

}  // namespace derecho::persistence
