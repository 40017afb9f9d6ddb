#include "layout/shard_layout.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace derecho::layout {

// gtest finds these by argument-dependent lookup, so failures print layouts, not bytes.
void PrintTo(const ShardMap& map, std::ostream* os) {
  for (const auto& sg : map.subgroups) {
    for (std::size_t i = 0; i < sg.shards.size(); ++i) {
      *os << sg.name << "[" << i << "]={";
      for (std::size_t j = 0; j < sg.shards[i].size(); ++j) *os << (j ? "," : "") << sg.shards[i][j];
      *os << "} ";
    }
  }
}

void PrintTo(const InadequateView& v, std::ostream* os) { *os << "inadequate: " << v.reason; }

}  // namespace derecho::layout

namespace {

using derecho::MemberId;
using derecho::layout::compute_layout;
using derecho::layout::DeliveryMode;
using derecho::layout::InadequateView;
using derecho::layout::LayoutResult;
using derecho::layout::LayoutSpec;
using derecho::layout::ShardMap;
using derecho::layout::SubgroupSpec;

SubgroupSpec subgroup(std::string name, std::uint32_t shards, std::uint32_t min, std::uint32_t max,
                      std::vector<std::vector<MemberId>> reserved = {}) {
  return SubgroupSpec{std::move(name), shards, min, max, std::move(reserved), DeliveryMode::ordered};
}

std::string validation_error(const LayoutSpec& spec) {
  try {
    derecho::layout::validate(spec);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

std::optional<ShardMap> adequate(const LayoutResult& result) {
  if (const auto* map = std::get_if<ShardMap>(&result)) return *map;
  return std::nullopt;
}

// The sensors group of the design's DerechoGroup example: a sharded kv store and a log.
LayoutSpec sensors_spec() {
  return LayoutSpec{{subgroup("readings", 2, 2, 3), subgroup("alerts", 1, 1, 2)}};
}

TEST(LayoutValidate, NamesTheOffendingField) {
  EXPECT_EQ(validation_error(LayoutSpec{}), "subgroups: at least one subgroup is required");
  EXPECT_EQ(validation_error({{subgroup("", 1, 1, 1)}}), "subgroups[0].name: must not be empty");
  EXPECT_EQ(validation_error({{subgroup("a", 1, 1, 1), subgroup("a", 1, 1, 1)}}),
            "subgroups[1].name: duplicate subgroup name 'a'");
  EXPECT_EQ(validation_error({{subgroup("a", 0, 1, 1)}}), "subgroups[0].shards: must be 1..4096, got 0");
  EXPECT_EQ(validation_error({{subgroup("a", 4097, 1, 1)}}), "subgroups[0].shards: must be 1..4096, got 4097");
  EXPECT_EQ(validation_error({{subgroup("a", 1, 0, 1)}}), "subgroups[0].minPerShard: must be >= 1");
  EXPECT_EQ(validation_error({{subgroup("a", 1, 2, 1)}}), "subgroups[0].maxPerShard: must be >= minPerShard (2)");
  EXPECT_EQ(validation_error({{subgroup("a", 2, 1, 3, {{1}, {2}, {3}})}}),
            "subgroups[0].reserved: has 3 lists, more than shards (2)");
  EXPECT_EQ(validation_error({{subgroup("a", 1, 1, 1), subgroup("b", 2, 1, 3, {{}, {1, 2, 3, 4}})}}),
            "subgroups[1].reserved[1]: has 4 ids, more than maxPerShard (3)");
  EXPECT_EQ(validation_error({{subgroup("a", 2, 1, 3, {{7}, {8, 7}})}}),
            "subgroups[0].reserved[1][1]: member 7 is already reserved in shard 0 of this subgroup");
  EXPECT_EQ(validation_error({{subgroup("a", 1, 1, 3, {{7, 7}})}}),
            "subgroups[0].reserved[0][1]: member 7 is already reserved in shard 0 of this subgroup");
}

TEST(LayoutValidate, AcceptsSharedReservedIdsAcrossSubgroupsAndFewerListsThanShards) {
  EXPECT_EQ(validation_error(sensors_spec()), "");
  EXPECT_EQ(validation_error({{subgroup("a", 3, 1, 2, {{7}}), subgroup("b", 1, 1, 1, {{7}})}}), "");
}

TEST(LayoutCompute, RejectsInvalidSpecAndRepeatedViewMember) {
  const std::vector<MemberId> view{1, 2, 3};
  EXPECT_THROW(compute_layout({{subgroup("a", 1, 2, 1)}}, view, nullptr), std::invalid_argument);
  const std::vector<MemberId> repeated{4, 5, 5};
  try {
    compute_layout(sensors_spec(), repeated, nullptr);
    FAIL() << "a view listing an id twice was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "view[2]: member 5 is listed twice");
  }
}

// Worked by hand in docs/layout.md ("Examples"): joins, leaves, a donation, an inadequate view
// and recovery from it, each step fed the last adequate layout.
TEST(LayoutCompute, GoldenSensorsSequence) {
  const auto spec = sensors_spec();
  const std::vector<MemberId> v1{10, 11, 12, 13, 14, 15};
  const auto l1 = adequate(compute_layout(spec, v1, nullptr));
  ASSERT_TRUE(l1);
  EXPECT_EQ(*l1, (ShardMap{{{"readings", {{10, 11}, {12, 13}}}, {"alerts", {{14, 15}}}}}));

  const std::vector<MemberId> v2{10, 11, 12, 13, 14, 15, 16, 17};
  const auto l2 = adequate(compute_layout(spec, v2, &*l1));
  ASSERT_TRUE(l2);
  EXPECT_EQ(*l2, (ShardMap{{{"readings", {{10, 11, 16}, {12, 13, 17}}}, {"alerts", {{14, 15}}}}}));

  const std::vector<MemberId> v3{10, 12, 13, 14, 15, 16, 17};  // 11 left a shard above its minimum
  const auto l3 = adequate(compute_layout(spec, v3, &*l2));
  ASSERT_TRUE(l3);
  EXPECT_EQ(*l3, (ShardMap{{{"readings", {{10, 16}, {12, 13, 17}}}, {"alerts", {{14, 15}}}}}));

  // 10 leaves readings[0] below its minimum and nobody is spare: readings[1] and alerts are both
  // one above their minimum, so the first of them gives up its most junior member, 17.
  const std::vector<MemberId> v4{12, 13, 14, 15, 16, 17};
  const auto l4 = adequate(compute_layout(spec, v4, &*l3));
  ASSERT_TRUE(l4);
  EXPECT_EQ(*l4, (ShardMap{{{"readings", {{16, 17}, {12, 13}}}, {"alerts", {{14, 15}}}}}));

  const std::vector<MemberId> v5{13, 14, 15, 16, 17};
  const auto l5 = adequate(compute_layout(spec, v5, &*l4));
  ASSERT_TRUE(l5);
  EXPECT_EQ(*l5, (ShardMap{{{"readings", {{16, 17}, {13, 15}}}, {"alerts", {{14}}}}}));

  const std::vector<MemberId> v6{14, 15, 16, 17};
  EXPECT_EQ(compute_layout(spec, v6, &*l5),
            LayoutResult(InadequateView{"readings", 1, 2, 1,
                                        "subgroup 'readings' shard 1 needs 2 members, 1 available"}));

  // The group waited; the next view is laid out from the last adequate layout, l5.
  const std::vector<MemberId> v7{14, 15, 16, 17, 18};
  const auto l7 = adequate(compute_layout(spec, v7, &*l5));
  ASSERT_TRUE(l7);
  EXPECT_EQ(*l7, (ShardMap{{{"readings", {{16, 17}, {15, 18}}}, {"alerts", {{14}}}}}));
}

TEST(LayoutCompute, InadequateVerdictNamesShardNeedAndSupply) {
  const std::vector<MemberId> three{1, 2, 3};
  EXPECT_EQ(compute_layout({{subgroup("readings", 2, 2, 3)}}, three, nullptr),
            LayoutResult(InadequateView{"readings", 1, 2, 1,
                                        "subgroup 'readings' shard 1 needs 2 members, 1 available"}));

  const std::vector<MemberId> two{1, 2};
  EXPECT_EQ(compute_layout({{subgroup("readings", 1, 2, 2), subgroup("alerts", 1, 1, 1)}}, two, nullptr),
            LayoutResult(InadequateView{"alerts", 0, 1, 0, "subgroup 'alerts' shard 0 needs 1 member, 0 available"}));

  // A reserved id is never filler elsewhere, even when that leaves another subgroup short.
  const std::vector<MemberId> only_reserved{7};
  EXPECT_EQ(compute_layout({{subgroup("a", 1, 1, 1, {{7}}), subgroup("b", 1, 1, 1)}}, only_reserved, nullptr),
            LayoutResult(InadequateView{"b", 0, 1, 0, "subgroup 'b' shard 0 needs 1 member, 0 available"}));

  const std::vector<MemberId> empty;
  EXPECT_EQ(compute_layout({{subgroup("a", 1, 1, 1)}}, empty, nullptr),
            LayoutResult(InadequateView{"a", 0, 1, 0, "subgroup 'a' shard 0 needs 1 member, 0 available"}));
}

TEST(LayoutCompute, ReservedIdsJoinTheirShardsInEverySubgroupThatReservesThem) {
  const LayoutSpec spec{{subgroup("readings", 2, 1, 2, {{}, {5}}), subgroup("alerts", 1, 1, 2, {{5}})}};
  const std::vector<MemberId> with5{1, 2, 3, 4, 5};
  EXPECT_EQ(adequate(compute_layout(spec, with5, nullptr)),
            (ShardMap{{{"readings", {{1, 2}, {5, 3}}}, {"alerts", {{5, 4}}}}}));

  // Absent, its shards are filled by others, and it is not waited for.
  const std::vector<MemberId> without5{1, 2, 3, 4};
  const auto before = adequate(compute_layout(spec, without5, nullptr));
  ASSERT_TRUE(before);
  EXPECT_EQ(*before, (ShardMap{{{"readings", {{1, 4}, {2}}}, {"alerts", {{3}}}}}));

  // Back, it takes its places; nobody moves because its shards have room.
  const std::vector<MemberId> back{1, 2, 3, 4, 5};
  EXPECT_EQ(adequate(compute_layout(spec, back, &*before)),
            (ShardMap{{{"readings", {{1, 4}, {2, 5}}}, {"alerts", {{3, 5}}}}}));
}

TEST(LayoutCompute, ReturningReservedMemberDisplacesTheMostJuniorOfAFullShard) {
  const LayoutSpec spec{{subgroup("x", 1, 1, 2, {{9}}), subgroup("y", 1, 1, 3)}};
  const std::vector<MemberId> view{1, 2, 3};
  const auto before = adequate(compute_layout(spec, view, nullptr));
  ASSERT_TRUE(before);
  EXPECT_EQ(*before, (ShardMap{{{"x", {{1, 3}}}, {"y", {{2}}}}}));

  const std::vector<MemberId> joined{1, 2, 3, 9};
  EXPECT_EQ(adequate(compute_layout(spec, joined, &*before)), (ShardMap{{{"x", {{1, 9}}}, {"y", {{2, 3}}}}}));
}

TEST(LayoutCompute, PreviousLayoutWhoseMembersAllLeftIsLikeNoPrevious) {
  const LayoutSpec spec{{subgroup("readings", 2, 1, 2)}};
  const std::vector<MemberId> old_view{1, 2, 3, 4};
  const auto previous = adequate(compute_layout(spec, old_view, nullptr));
  ASSERT_TRUE(previous);

  const std::vector<MemberId> fresh{5, 6, 7};
  const auto result = compute_layout(spec, fresh, &*previous);
  EXPECT_EQ(result, compute_layout(spec, fresh, nullptr));
  EXPECT_EQ(adequate(result), (ShardMap{{{"readings", {{5, 7}, {6}}}}}));

  const std::vector<MemberId> lonely{8};
  EXPECT_EQ(compute_layout(spec, lonely, &*previous),
            LayoutResult(InadequateView{"readings", 1, 1, 0,
                                        "subgroup 'readings' shard 1 needs 1 member, 0 available"}));
}

TEST(LayoutCompute, SpecChangeMatchesPreviousSubgroupsByNameAndShardIndex) {
  const std::vector<MemberId> view{1, 2, 3, 4, 5, 6};
  const auto previous = adequate(compute_layout({{subgroup("readings", 2, 1, 3)}}, view, nullptr));
  ASSERT_TRUE(previous);
  EXPECT_EQ(*previous, (ShardMap{{{"readings", {{1, 3, 5}, {2, 4, 6}}}}}));

  // A subgroup added in front and a shard removed: readings[0] keeps its members.
  EXPECT_EQ(adequate(compute_layout({{subgroup("alerts", 1, 1, 1), subgroup("readings", 1, 2, 3)}}, view, &*previous)),
            (ShardMap{{{"alerts", {{2}}}, {"readings", {{1, 3, 5}}}}}));

  // A smaller max keeps the most senior members.
  EXPECT_EQ(adequate(compute_layout({{subgroup("readings", 2, 1, 2)}}, view, &*previous)),
            (ShardMap{{{"readings", {{1, 3}, {2, 4}}}}}));

  // An id reserved in two subgroups and then unreserved stays only in the first, and the other
  // subgroup is refilled by a donation.
  const std::vector<MemberId> pair{7, 1};
  const LayoutSpec both{{subgroup("a", 1, 1, 2, {{7}}), subgroup("b", 1, 1, 2, {{7}})}};
  const auto reserved = adequate(compute_layout(both, pair, nullptr));
  ASSERT_TRUE(reserved);
  EXPECT_EQ(*reserved, (ShardMap{{{"a", {{7, 1}}}, {"b", {{7}}}}}));
  EXPECT_EQ(adequate(compute_layout({{subgroup("a", 1, 1, 2), subgroup("b", 1, 1, 2)}}, pair, &*reserved)),
            (ShardMap{{{"a", {{7}}}, {"b", {{1}}}}}));
}

// ---- Seeded sweeps --------------------------------------------------------------------------
// Only the raw mt19937_64 stream is used (std distributions differ between standard libraries),
// so a seed names the same scenario on every platform.

constexpr int kSeeds = 2000;
constexpr int kStepsPerSeed = 25;
constexpr MemberId kIdUniverse = 24;

struct Rng {
  std::mt19937_64 engine;
  std::uint64_t below(std::uint64_t n) { return engine() % n; }
};

LayoutSpec random_spec(Rng& rng) {
  LayoutSpec spec;
  const auto subgroups = 1 + rng.below(3);
  for (std::uint64_t s = 0; s < subgroups; ++s) {
    const auto shards = static_cast<std::uint32_t>(1 + rng.below(3));
    const auto min = static_cast<std::uint32_t>(1 + rng.below(3));
    const auto max = static_cast<std::uint32_t>(min + rng.below(3));
    SubgroupSpec sg = subgroup("sg" + std::to_string(s), shards, min, max);
    sg.mode = rng.below(2) ? DeliveryMode::raw : DeliveryMode::ordered;
    if (rng.below(3) == 0) {
      std::set<MemberId> used;  // an id is reserved in at most one shard of a subgroup
      sg.reserved.resize(rng.below(shards + 1));
      for (auto& list : sg.reserved) {
        const auto count = rng.below(std::min<std::uint64_t>(2, max) + 1);
        for (std::uint64_t k = 0; k < count; ++k) {
          const auto id = static_cast<MemberId>(rng.below(kIdUniverse));
          if (used.insert(id).second) list.push_back(id);
        }
      }
    }
    spec.subgroups.push_back(std::move(sg));
  }
  return spec;
}

std::vector<MemberId> random_view(Rng& rng) {
  std::vector<MemberId> all;
  for (MemberId id = 0; id < kIdUniverse; ++id) all.push_back(id);
  for (std::size_t i = all.size(); i > 1; --i) std::swap(all[i - 1], all[rng.below(i)]);
  all.resize(rng.below(kIdUniverse + 1));
  return all;
}

std::set<MemberId> reserved_ids(const LayoutSpec& spec) {
  std::set<MemberId> ids;
  for (const auto& sg : spec.subgroups)
    for (const auto& list : sg.reserved) ids.insert(list.begin(), list.end());
  return ids;
}

bool contains(const std::vector<MemberId>& ids, MemberId id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

// Whether any layout could give every shard its minimum: reserved members present cover part of
// their shards' minimums and every other member of the view can cover one unit anywhere.
bool feasible(const LayoutSpec& spec, const std::vector<MemberId>& view) {
  const auto pinned = reserved_ids(spec);
  std::uint64_t need = 0;
  for (const auto& sg : spec.subgroups) {
    for (std::uint32_t i = 0; i < sg.shards; ++i) {
      std::uint64_t present = 0;
      if (i < sg.reserved.size())
        for (const MemberId id : sg.reserved[i]) present += contains(view, id);
      need += sg.min_per_shard > present ? sg.min_per_shard - present : 0;
    }
  }
  const auto unpinned = std::count_if(view.begin(), view.end(), [&](MemberId id) { return !pinned.contains(id); });
  return need <= static_cast<std::uint64_t>(unpinned);
}

// Shard position of a member that is not reserved anywhere (such members are in at most one).
struct Place {
  std::size_t subgroup;
  std::size_t shard;
  bool operator==(const Place&) const = default;
};

std::optional<Place> place_of(const ShardMap& map, MemberId id) {
  for (std::size_t s = 0; s < map.subgroups.size(); ++s)
    for (std::size_t i = 0; i < map.subgroups[s].shards.size(); ++i)
      if (contains(map.subgroups[s].shards[i], id)) return Place{s, i};
  return std::nullopt;
}

void expect_invariants(const LayoutSpec& spec, const std::vector<MemberId>& view, const ShardMap& map) {
  const auto pinned = reserved_ids(spec);
  ASSERT_EQ(map.subgroups.size(), spec.subgroups.size());
  std::set<MemberId> placed_unpinned;
  bool some_shard_has_room = false;
  for (std::size_t s = 0; s < spec.subgroups.size(); ++s) {
    const auto& sg = spec.subgroups[s];
    EXPECT_EQ(map.subgroups[s].name, sg.name);
    ASSERT_EQ(map.subgroups[s].shards.size(), sg.shards);
    for (std::uint32_t i = 0; i < sg.shards; ++i) {
      const auto& members = map.subgroups[s].shards[i];
      const std::vector<MemberId> none;
      const auto& reserved_here = i < sg.reserved.size() ? sg.reserved[i] : none;
      EXPECT_GE(members.size(), sg.min_per_shard) << sg.name << "[" << i << "]";
      EXPECT_LE(members.size(), sg.max_per_shard) << sg.name << "[" << i << "]";
      some_shard_has_room |= members.size() < sg.max_per_shard;
      EXPECT_EQ(std::set<MemberId>(members.begin(), members.end()).size(), members.size()) << "repeated id";
      for (const MemberId id : members) {
        EXPECT_TRUE(contains(view, id)) << id << " is not in the view";
        if (pinned.contains(id)) {
          EXPECT_TRUE(contains(reserved_here, id)) << id << " is reserved elsewhere but placed in " << sg.name;
        } else {
          EXPECT_TRUE(placed_unpinned.insert(id).second) << id << " is in two shards";
        }
      }
      for (const MemberId id : reserved_here) {
        if (contains(view, id)) {
          EXPECT_TRUE(contains(members, id)) << "reserved " << id << " missing";
        }
      }
    }
  }
  const auto spare = std::count_if(view.begin(), view.end(),
                                   [&](MemberId id) { return !pinned.contains(id) && !placed_unpinned.contains(id); });
  if (spare > 0) {
    EXPECT_FALSE(some_shard_has_room) << spare << " members left spare while a shard has room";
  }
}

// The previous layout with one member appended to the smallest shard that has room (ties: first),
// or unchanged when every shard is full: what a non-reserved join must produce.
ShardMap with_join(const LayoutSpec& spec, ShardMap map, MemberId joiner) {
  std::vector<MemberId>* target = nullptr;
  for (std::size_t s = 0; s < spec.subgroups.size(); ++s) {
    for (auto& members : map.subgroups[s].shards) {
      if (members.size() < spec.subgroups[s].max_per_shard && (target == nullptr || members.size() < target->size()))
        target = &members;
    }
  }
  if (target != nullptr) target->push_back(joiner);
  return map;
}

// Walks a seed's scenario: a random spec, a random first view, then single leaves and joins, each
// laid out from the last adequate layout. `step` sees every computed step.
struct Step {
  const LayoutSpec& spec;
  const std::vector<MemberId>& view;
  const LayoutResult& result;
  const ShardMap* previous;       // the last adequate layout fed in
  bool previous_is_last_view;     // previous was computed for the view just before this one
  std::optional<MemberId> left;   // the one member that left since then
  std::optional<MemberId> joined; // the one member that joined since then
};

template <typename F>
void walk_scenario(std::uint64_t seed, F&& step) {
  Rng rng{std::mt19937_64(seed)};
  const LayoutSpec spec = random_spec(rng);
  std::vector<MemberId> view = random_view(rng);
  std::optional<ShardMap> last;
  bool last_is_previous_view = false;
  std::optional<MemberId> left, joined;
  for (int i = 0; i < kStepsPerSeed; ++i) {
    const auto result = compute_layout(spec, view, last ? &*last : nullptr);
    step(Step{spec, view, result, last ? &*last : nullptr, last_is_previous_view, left, joined});
    const auto map = adequate(result);
    if (map) last = map;
    last_is_previous_view = map.has_value();

    left.reset();
    joined.reset();
    std::vector<MemberId> absent;
    for (MemberId id = 0; id < kIdUniverse; ++id)
      if (!contains(view, id)) absent.push_back(id);
    if (!view.empty() && (absent.empty() || rng.below(2) == 0)) {
      const auto at = rng.below(view.size());
      left = view[at];
      view.erase(view.begin() + static_cast<std::ptrdiff_t>(at));
    } else {
      joined = absent[rng.below(absent.size())];
      view.push_back(*joined);  // a joiner takes the last rank
    }
  }
}

TEST(LayoutSweep, AdequateExactlyWhenFeasibleAndLayoutsRespectMinMaxDisjointnessAndReservations) {
  int adequate_views = 0, inadequate_views = 0;
  for (std::uint64_t seed = 1; seed <= kSeeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    walk_scenario(seed, [&](const Step& s) {
      const auto map = adequate(s.result);
      EXPECT_EQ(map.has_value(), feasible(s.spec, s.view));
      if (map) {
        ++adequate_views;
        expect_invariants(s.spec, s.view, *map);
      } else {
        ++inadequate_views;
      }
    });
    if (HasFailure()) return;
  }
  // Both verdicts must be exercised, or the sweep proves little.
  EXPECT_GT(adequate_views, kSeeds);
  EXPECT_GT(inadequate_views, kSeeds);
}

std::string serialize(const LayoutResult& result) {
  if (const auto* v = std::get_if<InadequateView>(&result)) return v->reason + ";";
  std::string out;
  for (const auto& sg : std::get<ShardMap>(result).subgroups)
    for (const auto& members : sg.shards) {
      out += sg.name + ":";
      for (const MemberId id : members) out += std::to_string(id) + ",";
      out += ";";
    }
  return out;
}

TEST(LayoutSweep, DeterministicAcrossCallsAndPinnedAcrossBuilds) {
  std::uint64_t fingerprint = 14695981039346656037ull;  // FNV-1a over every result of the sweep
  for (std::uint64_t seed = 1; seed <= kSeeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    walk_scenario(seed, [&](const Step& s) {
      // Independent copies of every input: nothing but their values may matter.
      const LayoutSpec spec = s.spec;
      const std::vector<MemberId> view = s.view;
      const std::optional<ShardMap> previous = s.previous ? std::optional<ShardMap>(*s.previous) : std::nullopt;
      EXPECT_EQ(compute_layout(spec, view, previous ? &*previous : nullptr), s.result);
      for (const char c : serialize(s.result)) {
        fingerprint = (fingerprint ^ static_cast<unsigned char>(c)) * 1099511628211ull;
      }
    });
    if (HasFailure()) return;
  }
  // Every member, on whatever build it runs during a rolling upgrade, must compute the same
  // layout; a change of this value is a change of the layout rules and needs a protocol version.
  EXPECT_EQ(fingerprint, 9968497486204615126ull);
}

TEST(LayoutSweep, OneLeaveMovesAtMostOneSurvivorAndOnlyToFillAMinimum) {
  int leaves = 0, moves = 0;
  for (std::uint64_t seed = 1; seed <= kSeeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    walk_scenario(seed, [&](const Step& s) {
      if (!s.left || !s.previous_is_last_view) return;
      const auto map = adequate(s.result);
      if (!map) return;
      ++leaves;
      const auto pinned = reserved_ids(s.spec);
      const ShardMap& before = *s.previous;
      // A reserved leaver may have been in several shards, each of which may need a member.
      std::size_t shards_left = 0;
      bool had_spare = false;
      for (const auto& sg : before.subgroups)
        for (const auto& members : sg.shards) shards_left += contains(members, *s.left);
      for (const MemberId id : s.view)
        if (!pinned.contains(id) && !place_of(before, id)) had_spare = true;

      std::size_t moved_here = 0;
      for (const MemberId id : s.view) {
        if (pinned.contains(id)) continue;  // reserved members are pinned; invariants check them
        const auto was = place_of(before, id);
        const auto now = place_of(*map, id);
        if (!was) continue;  // a spare may be placed; that moves nobody
        ASSERT_TRUE(now) << id << " lost its shard";
        if (*was == *now) continue;
        ++moved_here;
        // It went to a shard whose survivors alone were below the minimum.
        const auto& old_members = before.subgroups[now->subgroup].shards[now->shard];
        const auto survivors = std::count_if(old_members.begin(), old_members.end(),
                                             [&](MemberId m) { return m != *s.left; });
        EXPECT_LT(static_cast<std::uint32_t>(survivors), s.spec.subgroups[now->subgroup].min_per_shard);
      }
      EXPECT_LE(moved_here, shards_left);
      if (!pinned.contains(*s.left)) {
        EXPECT_LE(moved_here, 1u);
      }
      if (had_spare) {
        EXPECT_EQ(moved_here, 0u) << "moved a member although a spare could fill";
      }
      moves += static_cast<int>(moved_here);

      // Seniority: each shard starts with its previous members that stayed, in their old order.
      for (std::size_t g = 0; g < before.subgroups.size(); ++g)
        for (std::size_t i = 0; i < before.subgroups[g].shards.size(); ++i) {
          std::vector<MemberId> stayed;
          for (const MemberId id : before.subgroups[g].shards[i])
            if (contains(map->subgroups[g].shards[i], id)) stayed.push_back(id);
          const auto& now = map->subgroups[g].shards[i];
          EXPECT_TRUE(std::equal(stayed.begin(), stayed.end(), now.begin()));
        }
    });
    if (HasFailure()) return;
  }
  EXPECT_GT(leaves, kSeeds);
  EXPECT_GT(moves, 0) << "no leave needed a donation, so the sweep did not test one";
  RecordProperty("leaves", leaves);
  RecordProperty("moves", moves);
  std::printf("  %d single leaves between adequate views, %d survivors moved to fill a minimum\n", leaves, moves);
}

TEST(LayoutSweep, OneJoinFillsTheSmallestShardWithoutMovingAnyone) {
  int joins = 0, placed = 0, reserved_joins = 0;
  for (std::uint64_t seed = 1; seed <= kSeeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    walk_scenario(seed, [&](const Step& s) {
      if (!s.joined || !s.previous_is_last_view) return;
      const auto pinned = reserved_ids(s.spec);
      const auto map = adequate(s.result);
      ASSERT_TRUE(map) << "a join made an adequate view inadequate";
      if (pinned.contains(*s.joined)) {
        // A reserved joiner takes its places; it can displace only the most junior member of a
        // full shard that reserves it, so nobody else's shard changes.
        ++reserved_joins;
        for (const MemberId id : s.view) {
          const auto was = pinned.contains(id) ? std::nullopt : place_of(*s.previous, id);
          if (!was || place_of(*map, id) == was) continue;
          const auto& sg = s.spec.subgroups[was->subgroup];
          ASSERT_LT(was->shard, sg.reserved.size());
          EXPECT_TRUE(contains(sg.reserved[was->shard], *s.joined));
          EXPECT_EQ(s.previous->subgroups[was->subgroup].shards[was->shard].size(), sg.max_per_shard);
        }
        return;
      }
      ++joins;
      const auto expected = with_join(s.spec, *s.previous, *s.joined);
      EXPECT_EQ(*map, expected);
      placed += expected != *s.previous;
    });
    if (HasFailure()) return;
  }
  EXPECT_GT(joins, kSeeds);
  EXPECT_GT(placed, 0);
  EXPECT_LT(placed, joins) << "every join found room, so joining a full layout was not tested";
  EXPECT_GT(reserved_joins, 0);
}

}  // namespace
