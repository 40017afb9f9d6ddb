#include "member/layout_plan.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <variant>

namespace derecho {
namespace {

std::size_t rank_in(const std::vector<MemberId>& universe, MemberId id) {
  return static_cast<std::size_t>(std::find(universe.begin(), universe.end(), id) - universe.begin());
}

}  // namespace

std::size_t LayoutPlan::words_for(const GroupConfig& config) {
  std::size_t shards = 0;
  bool any = false;
  for (const auto& sg : config.subgroups) {
    if (!sg.sharding) continue;
    any = true;
    shards += sg.sharding->shards;
  }
  return any ? 1 + 2 * shards : 0;
}

LayoutPlan::LayoutPlan(const GroupConfig& config) : subgroups_(config.subgroups.size()), words_(words_for(config)) {
  for (const auto& m : config.members) universe_.push_back(m.id);
  for (std::size_t s = 0; s < config.subgroups.size(); ++s) {
    const auto& sg = config.subgroups[s];
    if (!sg.sharding) continue;
    layout::SubgroupSpec spec;
    spec.name = sg.name;
    spec.shards = sg.sharding->shards;
    spec.min_per_shard = sg.sharding->min_per_shard;
    spec.max_per_shard = sg.sharding->max_per_shard;
    spec.reserved = sg.sharding->reserved;
    // A shard can only hold as many members as there are configured ones; this also bounds
    // the decision's size.
    if (spec.shards > universe_.size()) {
      throw std::invalid_argument("subgroups[" + std::to_string(s) + "].shards: " + std::to_string(spec.shards) +
                                  " shards need at least as many members, the group has " +
                                  std::to_string(universe_.size()));
    }
    spec_.subgroups.push_back(spec);
    sharded_.push_back(s);
    shard_count_ += spec.shards;
  }
  if (spec_.subgroups.empty()) return;
  try {
    layout::validate(spec_);
  } catch (const std::invalid_argument& e) {
    // layout::validate names fields by spec position; the config names them by subgroup.
    std::string what = e.what();
    const std::string prefix = "subgroups[";
    if (what.rfind(prefix, 0) == 0) {
      const auto close = what.find(']');
      const std::size_t index = std::stoul(what.substr(prefix.size(), close - prefix.size()));
      if (index < sharded_.size()) what = prefix + std::to_string(sharded_[index]) + what.substr(close);
    }
    throw std::invalid_argument(what);
  }
}

std::vector<MemberId> LayoutPlan::ids_of(std::uint64_t bits) const {
  std::vector<MemberId> ids;
  for (std::size_t r = 0; r < universe_.size(); ++r) {
    if (bits & (std::uint64_t{1} << r)) ids.push_back(universe_[r]);
  }
  return ids;
}

std::vector<std::uint64_t> LayoutPlan::shards_to_masks(const layout::ShardMap& map) const {
  std::vector<std::uint64_t> masks;
  for (const auto& sg : map.subgroups) {
    for (const auto& shard : sg.shards) {
      std::uint64_t bits = 0;
      for (MemberId id : shard) bits |= std::uint64_t{1} << rank_in(universe_, id);
      masks.push_back(bits);
    }
  }
  return masks;
}

std::vector<std::vector<std::vector<MemberId>>> LayoutPlan::masks_to_shards(std::span<const std::uint64_t> masks) const {
  std::vector<std::vector<std::vector<MemberId>>> out(subgroups_);
  std::size_t at = 0;
  for (std::size_t i = 0; i < spec_.subgroups.size(); ++i) {
    for (std::uint32_t shard = 0; shard < spec_.subgroups[i].shards; ++shard) out[sharded_[i]].push_back(ids_of(masks[at++]));
  }
  return out;
}

std::vector<std::uint64_t> LayoutPlan::plan(std::uint64_t members, std::uint64_t carried_on,
                                            std::span<const std::uint64_t> current) const {
  if (words_ == 0) return {};
  std::vector<std::uint64_t> last_adequate(current.begin() + 1, current.begin() + 1 + static_cast<std::ptrdiff_t>(shard_count_));
  for (auto& mask : last_adequate) mask &= carried_on;
  const bool have_previous = std::any_of(last_adequate.begin(), last_adequate.end(), [](std::uint64_t m) { return m != 0; });
  layout::ShardMap previous;
  if (have_previous) {
    const auto shards = masks_to_shards(last_adequate);
    for (std::size_t i = 0; i < spec_.subgroups.size(); ++i) {
      previous.subgroups.push_back({spec_.subgroups[i].name, shards[sharded_[i]]});
    }
  }
  const auto view = ids_of(members);
  const auto result = layout::compute_layout(spec_, view, have_previous ? &previous : nullptr);
  std::vector<std::uint64_t> words;
  if (const auto* map = std::get_if<layout::ShardMap>(&result)) {
    words.push_back(1);
    const auto now = shards_to_masks(*map);
    words.insert(words.end(), now.begin(), now.end());
  } else {
    // The group waits: the last adequate layout is carried on for the next view to start from.
    words.push_back(0);
    words.insert(words.end(), last_adequate.begin(), last_adequate.end());
  }
  words.insert(words.end(), last_adequate.begin(), last_adequate.end());
  return words;
}

LayoutPlan::Decoded LayoutPlan::decode(std::span<const std::uint64_t> words, std::uint64_t members) const {
  Decoded d;
  d.now.resize(subgroups_);
  d.before.resize(subgroups_);
  if (words_ == 0) return d;
  d.adequate = words[0] != 0;
  d.before = masks_to_shards(words.subspan(1 + shard_count_, shard_count_));
  if (d.adequate) {
    d.now = masks_to_shards(words.subspan(1, shard_count_));
    return d;
  }
  // Recomputed for its reason only: every member gets the same one from the same inputs.
  layout::ShardMap previous;
  const auto last = words.subspan(1, shard_count_);
  const bool have_previous = std::any_of(last.begin(), last.end(), [](std::uint64_t m) { return m != 0; });
  if (have_previous) {
    for (std::size_t i = 0; i < spec_.subgroups.size(); ++i) previous.subgroups.push_back({spec_.subgroups[i].name, d.before[sharded_[i]]});
  }
  const auto view = ids_of(members);
  const auto result = layout::compute_layout(spec_, view, have_previous ? &previous : nullptr);
  if (const auto* why = std::get_if<layout::InadequateView>(&result)) d.inadequate = why->reason;
  return d;
}

}  // namespace derecho
