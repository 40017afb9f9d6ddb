#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/group_config.hpp"
#include "layout/shard_layout.hpp"

namespace derecho {

// The shard layout as it travels in a view decision (docs/membership.md): the leader computes
// it with layout::compute_layout and every member, joiners included, installs the same one.
// Words (40-bit values): [adequate][per sharded subgroup, per shard: member bits, now]
// [the same, before: the last adequate layout]. Member bits are by configured rank.
class LayoutPlan {
 public:
  // Validates the sharded subgroups' specs (std::invalid_argument naming subgroups[i].field).
  explicit LayoutPlan(const GroupConfig& config);

  static std::size_t words_for(const GroupConfig& config);
  std::size_t words() const { return words_; }

  // The layout a view of `members` runs with, after the view that ran with `current`;
  // `carried_on`: the members that were in that view with its state. Who left (or came back
  // without its state) is dropped from the layout carried on, so it counts as new in a shard.
  std::vector<std::uint64_t> plan(std::uint64_t members, std::uint64_t carried_on,
                                  std::span<const std::uint64_t> current) const;

  struct Decoded {
    bool adequate = true;
    std::string inadequate;
    // Indexed by configured subgroup: its shards' members (rank order); empty when not sharded.
    std::vector<std::vector<std::vector<MemberId>>> now;
    std::vector<std::vector<std::vector<MemberId>>> before;
  };
  Decoded decode(std::span<const std::uint64_t> words, std::uint64_t members) const;

 private:
  std::vector<std::vector<std::vector<MemberId>>> masks_to_shards(std::span<const std::uint64_t> masks) const;
  std::vector<std::uint64_t> shards_to_masks(const layout::ShardMap& map) const;
  std::vector<MemberId> ids_of(std::uint64_t bits) const;

  std::vector<MemberId> universe_;
  std::size_t subgroups_ = 0;
  layout::LayoutSpec spec_;
  std::vector<std::size_t> sharded_;  // configured subgroup index of each spec entry
  std::size_t shard_count_ = 0;
  std::size_t words_ = 0;
};

}  // namespace derecho
