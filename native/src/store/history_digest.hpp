#pragma once
#include <cstdint>

namespace derecho::store {

// A digest of a shard's whole history up to a version, rolled forward one record at a time:
// two members whose digests agree at version v hold the same versions 1..v (docs/store.md,
// "State transfer"). Records are named by their log checksum and version; the mix is
// splitmix64's finalizer, so equal prefixes are the only likely way to equal digests.
constexpr std::uint64_t roll_digest(std::uint64_t previous, std::uint64_t version, std::uint32_t record_crc) {
  std::uint64_t z = previous ^ (version * 0x9e3779b97f4a7c15ull) ^ (std::uint64_t{record_crc} << 17);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The digest at version 0 of a shard's history: histories of different shards (lineages)
// differ from the start, so a member moved between shards never passes for a prefix.
constexpr std::uint64_t lineage_seed(std::uint64_t lineage) {
  return lineage == 0 ? 0 : roll_digest(0, 0, static_cast<std::uint32_t>(lineage));
}

}  // namespace derecho::store
