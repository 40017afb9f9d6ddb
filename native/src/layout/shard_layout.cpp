#include "layout/shard_layout.hpp"

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace derecho::layout {
namespace {

[[noreturn]] void fail(const std::string& field, const std::string& problem) {
  throw std::invalid_argument(field + ": " + problem);
}

// One shard while the layout is being built. Shards are kept flat in subgroup/shard order, which
// is the order every tie is broken in.
struct WorkingShard {
  std::size_t subgroup;
  std::uint32_t index;
  std::uint32_t min;
  std::uint32_t max;
  std::vector<MemberId> members;
};

// Hash containers below are only ever probed, never iterated, so their (unspecified) order
// cannot leak into the result.
using Ranks = std::unordered_map<MemberId, std::size_t>;
using IdSet = std::unordered_set<MemberId>;

Ranks ranks_of(std::span<const MemberId> view) {
  Ranks ranks;
  for (std::size_t i = 0; i < view.size(); ++i) {
    if (!ranks.emplace(view[i], i).second) {
      fail("view[" + std::to_string(i) + "]", "member " + std::to_string(view[i]) + " is listed twice");
    }
  }
  return ranks;
}

IdSet reserved_anywhere(const LayoutSpec& spec) {
  IdSet ids;
  for (const auto& sg : spec.subgroups) {
    for (const auto& list : sg.reserved) ids.insert(list.begin(), list.end());
  }
  return ids;
}

const std::vector<MemberId>* previous_shard(const ShardMap* previous, const std::string& subgroup,
                                           std::uint32_t shard) {
  if (previous == nullptr) return nullptr;
  // Matched by name, not position, so that adding or removing a subgroup in the spec does not
  // shuffle the members of the subgroups that stay.
  const auto it = std::find_if(previous->subgroups.begin(), previous->subgroups.end(),
                               [&](const SubgroupLayout& sg) { return sg.name == subgroup; });
  if (it == previous->subgroups.end() || shard >= it->shards.size()) return nullptr;
  return &it->shards[shard];
}

bool contains(const std::vector<MemberId>& ids, MemberId id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

// Rules 1 and 2 for one shard: keep the previous members still in the view (seniority order),
// then add its reserved members that are in the view. Reserved members always get their place, so
// unreserved members kept from the previous layout are capped at max minus the reserved ones
// present; the most junior go back to the pool (this only happens when a reserved member returns
// to a full shard, or when the spec's max shrank).
void keep_and_reserve(WorkingShard& shard, const SubgroupSpec& spec, const std::vector<MemberId>* previous,
                      const Ranks& ranks, const IdSet& pinned, IdSet& assigned) {
  std::vector<MemberId> reserved_here;
  if (shard.index < spec.reserved.size()) {
    for (const MemberId id : spec.reserved[shard.index]) {
      if (ranks.contains(id)) reserved_here.push_back(id);
    }
  }
  std::sort(reserved_here.begin(), reserved_here.end(),
            [&](MemberId a, MemberId b) { return ranks.at(a) < ranks.at(b); });

  const std::size_t unreserved_cap = shard.max - reserved_here.size();
  std::size_t unreserved_kept = 0;
  if (previous != nullptr) {
    for (const MemberId id : *previous) {
      if (!ranks.contains(id)) continue;  // left the view
      if (pinned.contains(id)) {
        // A reserved id stays only in shards that reserve it (the spec may have changed since).
        if (contains(reserved_here, id) && !contains(shard.members, id)) shard.members.push_back(id);
        continue;
      }
      // `assigned` keeps members disjoint even if the previous layout had an id in two shards
      // (it was reserved in both under an older spec).
      if (unreserved_kept == unreserved_cap || assigned.contains(id)) continue;
      shard.members.push_back(id);
      assigned.insert(id);
      ++unreserved_kept;
    }
  }
  for (const MemberId id : reserved_here) {
    if (!contains(shard.members, id)) shard.members.push_back(id);
  }
}

// A shard above its minimum that can give up an unreserved member, preferring the one furthest
// above its minimum so the donation leaves it as safe as possible; ties go to the first shard.
WorkingShard* pick_donor(std::vector<WorkingShard>& shards, const IdSet& pinned) {
  WorkingShard* best = nullptr;
  for (auto& s : shards) {
    if (s.members.size() <= s.min) continue;
    const bool has_unreserved =
        std::any_of(s.members.begin(), s.members.end(), [&](MemberId id) { return !pinned.contains(id); });
    if (!has_unreserved) continue;
    if (best == nullptr || s.members.size() - s.min > best->members.size() - best->min) best = &s;
  }
  return best;
}

// Removes and returns the donor's most junior unreserved member (the last one added).
MemberId take_most_junior_unreserved(WorkingShard& donor, const IdSet& pinned) {
  const auto it = std::find_if(donor.members.rbegin(), donor.members.rend(),
                               [&](MemberId id) { return !pinned.contains(id); });
  const MemberId id = *it;
  donor.members.erase(std::next(it).base());
  return id;
}

InadequateView inadequate(const LayoutSpec& spec, const WorkingShard& shard) {
  InadequateView verdict;
  verdict.subgroup = spec.subgroups[shard.subgroup].name;
  verdict.shard = shard.index;
  verdict.needed = shard.min;
  verdict.available = static_cast<std::uint32_t>(shard.members.size());
  verdict.reason = "subgroup '" + verdict.subgroup + "' shard " + std::to_string(verdict.shard) + " needs " +
                   std::to_string(verdict.needed) + (verdict.needed == 1 ? " member, " : " members, ") +
                   std::to_string(verdict.available) + " available";
  return verdict;
}

}  // namespace

void validate(const LayoutSpec& spec) {
  if (spec.subgroups.empty()) fail("subgroups", "at least one subgroup is required");
  std::unordered_set<std::string> names;
  for (std::size_t s = 0; s < spec.subgroups.size(); ++s) {
    const auto& sg = spec.subgroups[s];
    const std::string field = "subgroups[" + std::to_string(s) + "]";
    if (sg.name.empty()) fail(field + ".name", "must not be empty");
    if (!names.insert(sg.name).second) fail(field + ".name", "duplicate subgroup name '" + sg.name + "'");
    if (sg.shards < 1 || sg.shards > kMaxShards) {
      fail(field + ".shards", "must be 1.." + std::to_string(kMaxShards) + ", got " + std::to_string(sg.shards));
    }
    if (sg.min_per_shard < 1) fail(field + ".minPerShard", "must be >= 1");
    if (sg.max_per_shard < sg.min_per_shard) {
      fail(field + ".maxPerShard", "must be >= minPerShard (" + std::to_string(sg.min_per_shard) + ")");
    }
    if (sg.reserved.size() > sg.shards) {
      fail(field + ".reserved", "has " + std::to_string(sg.reserved.size()) + " lists, more than shards (" +
                                    std::to_string(sg.shards) + ")");
    }
    // A member belongs to at most one shard of a subgroup: the engine and the apps ask "which
    // shard of this subgroup am I in", and keys are partitioned across a subgroup's shards.
    std::unordered_map<MemberId, std::size_t> reserved_in;
    for (std::size_t i = 0; i < sg.reserved.size(); ++i) {
      const auto& list = sg.reserved[i];
      const std::string list_field = field + ".reserved[" + std::to_string(i) + "]";
      if (list.size() > sg.max_per_shard) {
        fail(list_field, "has " + std::to_string(list.size()) + " ids, more than maxPerShard (" +
                             std::to_string(sg.max_per_shard) + ")");
      }
      for (std::size_t j = 0; j < list.size(); ++j) {
        const auto [it, inserted] = reserved_in.emplace(list[j], i);
        if (!inserted) {
          fail(list_field + "[" + std::to_string(j) + "]", "member " + std::to_string(list[j]) +
                                                               " is already reserved in shard " +
                                                               std::to_string(it->second) + " of this subgroup");
        }
      }
    }
  }
}

LayoutResult compute_layout(const LayoutSpec& spec, std::span<const MemberId> view, const ShardMap* previous) {
  validate(spec);
  const Ranks ranks = ranks_of(view);
  // Reserved ids are pinned to the shards that reserve them and never used as filler elsewhere,
  // so that where a reserved member runs does not depend on who else is in the view.
  const IdSet pinned = reserved_anywhere(spec);

  std::vector<WorkingShard> shards;
  IdSet assigned;  // unreserved members placed so far; each goes to at most one shard
  for (std::size_t s = 0; s < spec.subgroups.size(); ++s) {
    const auto& sg = spec.subgroups[s];
    for (std::uint32_t i = 0; i < sg.shards; ++i) {
      WorkingShard shard{s, i, sg.min_per_shard, sg.max_per_shard, {}};
      keep_and_reserve(shard, sg, previous_shard(previous, sg.name, i), ranks, pinned, assigned);
      shards.push_back(std::move(shard));
    }
  }

  // Everyone not yet placed, in view rank order: the most senior members are placed first.
  std::vector<MemberId> pool;
  for (const MemberId id : view) {
    if (!pinned.contains(id) && !assigned.contains(id)) pool.push_back(id);
  }
  std::size_t next = 0;

  // Rule 3: shards below their minimum, in subgroup/shard order, take from the pool...
  for (auto& s : shards) {
    while (s.members.size() < s.min && next < pool.size()) s.members.push_back(pool[next++]);
  }
  // ...and once it is empty, from shards above their minimum. If this cannot lift every shard to
  // its minimum, no assignment can (each donation turns one spare member into one needed one), and
  // the partial result is discarded.
  for (auto& s : shards) {
    while (s.members.size() < s.min) {
      WorkingShard* donor = pick_donor(shards, pinned);
      if (donor == nullptr) return inadequate(spec, s);
      s.members.push_back(take_most_junior_unreserved(*donor, pinned));
    }
  }

  // Rule 4: the rest go one at a time to the smallest shard that has room (ties: first shard), so
  // shards fill evenly; members left over when every shard is full stay unassigned.
  while (next < pool.size()) {
    WorkingShard* target = nullptr;
    for (auto& s : shards) {
      if (s.members.size() < s.max && (target == nullptr || s.members.size() < target->members.size())) target = &s;
    }
    if (target == nullptr) break;
    target->members.push_back(pool[next++]);
  }

  ShardMap map;
  for (const auto& sg : spec.subgroups) map.subgroups.push_back(SubgroupLayout{sg.name, {}});
  for (auto& s : shards) map.subgroups[s.subgroup].shards.push_back(std::move(s.members));
  return map;
}

}  // namespace derecho::layout
