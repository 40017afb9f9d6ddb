#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace derecho::store {

// Which write of each key is current at any retained version (docs/store.md, "Reads").
// Per key: its base (the last write at or below the base version, the state everything older
// was folded into), the history of later writes, and the latest value. Values of older
// history writes stay in the log and are read from there.
class KeyIndex {
 public:
  struct Write {
    std::uint64_t version = 0;
    std::uint64_t hlc = 0;
    bool removed = false;
  };
  struct Found {
    Write write;
    // The value when this index holds it (the latest write or the base); null: read the log
    // record at write.version.
    const std::vector<std::byte>* value = nullptr;
  };

  void apply(std::string_view key, const Write& write, std::span<const std::byte> value);
  // The write of `key` current at `version` (at or above the base version), if any.
  std::optional<Found> at(std::string_view key, std::uint64_t version) const;
  // Keys present (written and not removed) at `version`, in byte order.
  std::vector<std::string> keys_at(std::uint64_t version) const;
  // Moves the oldest history write of `key`, which must be `write`, into its base.
  void fold(std::string_view key, const Write& write, std::span<const std::byte> value);
  // Drops every history write, leaving the base state (the log is replayed after this).
  void drop_history();
  void clear() { keys_.clear(); }
  std::size_t size() const { return keys_.size(); }

  // The base state as checkpoint bytes: u64 count, then per key u16 key length, u16 zero,
  // u32 value length, u64 version, u64 hlc, key, value (removed keys are left out).
  std::vector<std::byte> encode_base() const;
  // Replaces everything with a base read from encode_base() bytes; throws std::runtime_error.
  void load_base(std::span<const std::byte> bytes);

 private:
  struct KeyState {
    std::optional<Write> base;
    std::vector<std::byte> base_value;
    std::vector<Write> history;
    std::vector<std::byte> latest_value;  // of history.back(); unused while history is empty
  };
  std::map<std::string, KeyState, std::less<>> keys_;
};

}  // namespace derecho::store
