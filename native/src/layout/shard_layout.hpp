#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "common/types.hpp"

namespace derecho::layout {

// How a subgroup's messages are delivered. The layout does not depend on it; it travels with the
// spec so that engine, sidecar and operator read one description of a subgroup.
enum class DeliveryMode { ordered, raw };

// Largest shard count validate() accepts. Every member allocates one list per shard, so a typo in
// a group spec (shards: 2000000000) must be refused rather than exhaust every member's memory.
inline constexpr std::uint32_t kMaxShards = 4096;

// One subgroup of the layout spec. Field names in validation errors are the camelCase spellings
// the config and CRD use (shards, minPerShard, maxPerShard, reserved).
struct SubgroupSpec {
  std::string name;
  std::uint32_t shards = 1;
  std::uint32_t min_per_shard = 1;
  std::uint32_t max_per_shard = 1;
  // Optional, per shard (reserved[i] is for shard i; fewer lists than shards is fine): ids that
  // are placed in that shard whenever they are in the view, and nowhere else as filler.
  std::vector<std::vector<MemberId>> reserved;
  DeliveryMode mode = DeliveryMode::ordered;
};

struct LayoutSpec {
  std::vector<SubgroupSpec> subgroups;
};

struct SubgroupLayout {
  std::string name;
  // shards[i]: shard i's members in seniority order (longest-standing first; newcomers are
  // appended), which callers use to pick a shard leader.
  std::vector<std::vector<MemberId>> shards;
  bool operator==(const SubgroupLayout&) const = default;
};

// The layout of one view: per subgroup (in spec order), per shard, its members.
struct ShardMap {
  std::vector<SubgroupLayout> subgroups;
  bool operator==(const ShardMap&) const = default;
};

// The view cannot give every shard its minimum, so the group waits for a larger view.
struct InadequateView {
  std::string subgroup;
  std::uint32_t shard = 0;
  std::uint32_t needed = 0;     // the shard's minPerShard
  std::uint32_t available = 0;  // members the shard could be given in this view
  std::string reason;           // "subgroup 'readings' shard 1 needs 2 members, 1 available"
  bool operator==(const InadequateView&) const = default;
};

using LayoutResult = std::variant<ShardMap, InadequateView>;

// Throws std::invalid_argument naming the offending field, e.g.
// "subgroups[0].maxPerShard: must be >= minPerShard (2)".
void validate(const LayoutSpec& spec);

// Maps a view's members (in rank order) to subgroups and shards; see docs/layout.md for the rules.
// `previous` is the last adequate layout (or null): members that stay keep their shards. Pure and
// deterministic: equal inputs give equal outputs on every member and every build. Throws
// std::invalid_argument for an invalid spec or a view that lists an id twice.
LayoutResult compute_layout(const LayoutSpec& spec, std::span<const MemberId> view, const ShardMap* previous);

}  // namespace derecho::layout
