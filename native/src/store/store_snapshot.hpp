#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace derecho::store {

// What a store hands a member that joins its shard (docs/store.md, "State transfer"): format 2,
// an optional base (the state at a version, as KeyIndex::encode_base bytes, with that version's
// time and history digest: the joiner starts over from it), the log records that follow, and
// per sender the last request delivered (so a member back from a removal knows which of its
// writes the group delivered, even those a base folded in).
struct StoreSnapshot {
  struct Base {
    std::uint64_t version = 0;
    std::uint64_t hlc = 0;
    std::uint64_t digest = 0;
    std::vector<std::byte> keys;
  };
  struct Record {
    std::uint64_t version = 0;
    std::uint64_t hlc = 0;
    std::vector<std::byte> body;
  };
  std::optional<Base> base;
  std::vector<Record> records;  // contiguous versions
  std::vector<std::pair<std::uint32_t, std::uint64_t>> last_requests;
};

std::vector<std::byte> encode_snapshot(const StoreSnapshot& snapshot);
// Throws std::runtime_error naming what is wrong.
StoreSnapshot decode_snapshot(std::span<const std::byte> bytes);

}  // namespace derecho::store
