#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/types.hpp"

namespace derecho::membership {

// An installed view: its id and members (in the configured member order). The leader is the
// first member nobody suspects, members of the previous view before joiners.
struct View {
  std::uint64_t vid = 0;
  std::vector<MemberId> members;
  std::vector<MemberId> joined;    // members that were not in the previous view
  std::vector<MemberId> departed;  // members of the previous view that are not in this one
  // Per configured subgroup, its shards' members (empty for a subgroup that is not sharded).
  std::vector<std::vector<std::vector<MemberId>>> shards;
  // False when the view cannot give every shard its minimum: sharded subgroups wait.
  bool adequate = true;
  std::string inadequate;  // why, e.g. "subgroup 'readings' shard 1 needs 2 members, 1 available"

  MemberId leader() const;
  bool contains(MemberId id) const;
};

// What a member reports about membership besides installed views.
enum class MembershipEvent { wedged, removed, minority, inadequate, left };

std::string describe(const View& view);

}  // namespace derecho::membership
