// Versioned stores on real members over the in-process network (docs/store.md): versions and
// times agree at every member, reads by version and time, stability, state transfer from logs,
// total restart, truncation, a full log, and a consistent cut across shards.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>

#include "store_harness.hpp"

namespace derecho::testing {
namespace {

TEST(Store, PutsFromEveryMemberGetTheSameVersionsAndTimesEverywhere) {
  Group g(3);
  g.use_store(volatile_store(), {});
  form(g, 3);
  std::vector<std::shared_ptr<Outcome<store::Stamp>>> puts;
  for (int round = 0; round < 5; ++round) {
    for (MemberId id = 0; id < 3; ++id) puts.push_back(put(g, id, "k" + std::to_string(round % 3), "v" + std::to_string(round) + "-" + std::to_string(id)));
  }
  g.settle();
  std::set<std::uint64_t> versions;
  for (const auto& p : puts) {
    ASSERT_TRUE(p->done);
    ASSERT_FALSE(p->error);
    versions.insert(p->value.version);
  }
  EXPECT_EQ(versions.size(), puts.size());
  EXPECT_EQ(*versions.rbegin(), puts.size());
  // Times never decrease with the version.
  std::uint64_t previous = 0;
  for (std::uint64_t v = 1; v <= puts.size(); ++v) {
    for (const auto& p : puts) {
      if (p->value.version != v) continue;
      EXPECT_GT(p->value.hlc, previous);
      previous = p->value.hlc;
    }
  }
  expect_same_state(g, {0, 1, 2});
  // A remove is a version too, and the key is gone from it on.
  auto r = std::make_shared<Outcome<store::Stamp>>();
  g.member(1).store(0).remove("k0", 0, [r](const StoreError*, const store::Stamp& s) { r->done = true, r->value = s; });
  g.settle();
  ASSERT_TRUE(r->done);
  for (MemberId id = 0; id < 3; ++id) {
    EXPECT_FALSE(g.member(id).store(0).get("k0").found);
    EXPECT_TRUE(g.member(id).store(0).get("k0", r->value.version - 1).found);
    EXPECT_EQ(g.member(id).store(0).list_keys(r->value.version), (std::vector<std::string>{"k1", "k2"}));
  }
}

TEST(Store, ReadsByTimeWaitForStabilityAndTickAnIdleShard) {
  TempDir dir;
  Group g(3);
  g.use_store(persistent_store(), dir.path);
  form(g, 3);
  auto a = put(g, 0, "x", "1");
  g.settle();
  auto b = put(g, 1, "x", "2");
  g.settle();
  ASSERT_TRUE(a->done && b->done);
  auto& st = g.member(2).store(0);
  EXPECT_EQ(st.frontier().global_persisted, b->value.version);
  auto at_b = version_at(g, 2, b->value.hlc);
  auto before_b = version_at(g, 2, b->value.hlc - 1);
  ASSERT_TRUE(at_b->done && before_b->done);
  EXPECT_EQ(at_b->value, b->value.version);
  EXPECT_EQ(before_b->value, a->value.version);
  // Now is past every stamp: nobody writes, so the member ticks the shard to answer.
  const auto now = persistence::HybridClock::wall_ns() + 1'000'000;
  std::this_thread::sleep_for(2ms);
  auto idle = version_at(g, 2, now);
  EXPECT_FALSE(idle->done);
  g.settle();
  ASSERT_TRUE(idle->done);
  EXPECT_EQ(idle->value, b->value.version);
  EXPECT_EQ(st.frontier().delivered, b->value.version + 1);  // the tick
  EXPECT_EQ(st.get("x").found, true);
  EXPECT_EQ(text(st.get("x").value), "2");
  EXPECT_EQ(code_of([&] { st.version_at_time(persistence::HybridClock::wall_ns() + 10'000'000'000ull, [](auto, auto) {}); }),
            ErrorCode::future_time);
}

TEST(Store, BadInputIsRefusedAndWritesNothing) {
  Group g(3);
  g.use_store(volatile_store(), {});
  form(g, 3);
  auto& st = g.member(0).store(0);
  auto ok = put(g, 0, "k", "v");
  g.settle();
  const auto before = st.frontier().delivered;
  EXPECT_EQ(code_of([&] { st.put("", bytes("v"), 0, [](auto, auto) {}); }), ErrorCode::invalid_argument);
  EXPECT_EQ(code_of([&] { st.put(std::string(33, 'k'), bytes("v"), 0, [](auto, auto) {}); }), ErrorCode::invalid_argument);
  EXPECT_EQ(code_of([&] { st.put("k", bytes(std::string(129, 'v')), 0, [](auto, auto) {}); }), ErrorCode::invalid_argument);
  EXPECT_EQ(code_of([&] { st.get("k", before + 1); }), ErrorCode::unknown_version);
  EXPECT_EQ(code_of([&] { st.list_keys(before + 5); }), ErrorCode::unknown_version);
  EXPECT_EQ(code_of([&] { st.wait_global_persisted(before + 1, [](auto, auto) {}); }), ErrorCode::unknown_version);
  g.settle();
  for (MemberId id = 0; id < 3; ++id) EXPECT_EQ(g.member(id).store(0).frontier().delivered, before);
  EXPECT_THROW(g.member(0).store(7), std::invalid_argument);
}

TEST(Store, ARestartedMemberCatchesUpFromItsLogAndTheGroup) {
  TempDir dir;
  Group g(3);
  g.use_store(persistent_store(), dir.path);
  form(g, 3);
  for (int i = 0; i < 20; ++i) put(g, static_cast<MemberId>(i % 3), "k" + std::to_string(i % 4), "a" + std::to_string(i));
  g.settle();
  g.crash(2);
  g.advance(1500ms);
  ASSERT_EQ(g.view_members(0).size(), 2u);
  for (int i = 0; i < 20; ++i) put(g, static_cast<MemberId>(i % 2), "k" + std::to_string(i % 5), "b" + std::to_string(i));
  g.settle();
  g.restart(2, {0, 1});
  g.advance(500ms);
  ASSERT_EQ(g.view_members(2).size(), 3u);
  ASSERT_EQ(g.member(2).store(0).frontier().delivered, 40u);
  expect_same_state(g, {0, 1, 2});
  EXPECT_EQ(g.member(2).store(0).frontier().persisted, 40u);
}

TEST(Store, TotalRestartRecoversTheMostAdvancedLogAtEveryMember) {
  TempDir dir;
  std::vector<std::pair<std::string, std::string>> latest;
  {
    Group g(3);
    g.use_store(persistent_store(), dir.path);
    form(g, 3);
    for (int i = 0; i < 30; ++i) put(g, static_cast<MemberId>(i % 3), "k" + std::to_string(i % 7), "v" + std::to_string(i));
    g.settle();
    // Member 2 stops first; the other two go on without it, then stop too.
    g.crash(2);
    g.advance(1500ms);
    for (int i = 0; i < 10; ++i) put(g, static_cast<MemberId>(i % 2), "k" + std::to_string(i % 3), "w" + std::to_string(i));
    g.settle();
    ASSERT_EQ(g.member(0).store(0).frontier().persisted, 40u);
    for (const auto& k : g.member(0).store(0).list_keys(40)) latest.emplace_back(k, text(g.member(0).store(0).get(k).value));
  }
  Group g(3);
  g.use_store(persistent_store(), dir.path);
  form(g, 3);
  g.settle();
  for (MemberId id = 0; id < 3; ++id) {
    auto& st = g.member(id).store(0);
    ASSERT_EQ(st.frontier().delivered, 40u) << "member " << id;
    for (const auto& [k, v] : latest) EXPECT_EQ(text(st.get(k).value), v) << "member " << id << " key " << k;
  }
  expect_same_state(g, {0, 1, 2}, 1);
  // And it goes on from there.
  auto p = put(g, 2, "after", "restart");
  g.settle();
  ASSERT_TRUE(p->done);
  EXPECT_EQ(p->value.version, 41u);
}

TEST(Store, TruncationKeepsTheLatestStateAcrossARestart) {
  TempDir dir;
  {
    Group g(3);
    g.use_store(persistent_store(), dir.path);
    form(g, 3);
    for (int i = 0; i < 200; ++i) put(g, static_cast<MemberId>(i % 3), "k" + std::to_string(i % 10), "v" + std::to_string(i));
    g.settle();
    for (MemberId id = 0; id < 3; ++id) g.member(id).store(0).truncate_below(150);
    auto& st = g.member(0).store(0);
    EXPECT_EQ(st.frontier().first_retained, 150u);
    EXPECT_EQ(code_of([&] { st.get("k1", 149); }), ErrorCode::not_retained);
    EXPECT_EQ(text(st.get("k1", 150).value), "v141");
    EXPECT_EQ(text(st.get("k9").value), "v199");
  }
  Group g(3);
  g.use_store(persistent_store(), dir.path);
  form(g, 3);
  g.settle();
  for (MemberId id = 0; id < 3; ++id) {
    auto& st = g.member(id).store(0);
    EXPECT_EQ(st.frontier().delivered, 200u);
    for (int k = 0; k < 10; ++k) EXPECT_EQ(text(st.get("k" + std::to_string(k)).value), "v" + std::to_string(190 + k));
  }
  expect_same_state(g, {0, 1, 2}, 150);
}

TEST(Store, AFullLogRefusesPutsKeepsReadingAndRecovers) {
  TempDir dir;
  StoreConfig config = persistent_store();
  config.max_log_bytes = 2 * config.segment_bytes;
  Group g(3);
  g.use_store(config, dir.path);
  form(g, 3);
  const std::string value(100, 'v');
  std::uint64_t written = 0;
  for (int i = 0; i < 400 && !g.member(0).store(0).frontier().log_full; ++i) {
    put(g, 0, "k" + std::to_string(i % 10), value);
    g.settle();
    ++written;
  }
  auto& st = g.member(0).store(0);
  ASSERT_TRUE(st.frontier().log_full);
  EXPECT_NE(st.frontier().log_error.find("quota"), std::string::npos) << st.frontier().log_error;
  EXPECT_EQ(code_of([&] { st.put("k", bytes("v"), 0, [](auto, auto) {}); }), ErrorCode::log_full);
  // Delivered versions stay readable; what the log holds stays durable.
  EXPECT_EQ(st.frontier().delivered, written);
  EXPECT_LT(st.frontier().persisted, written);
  EXPECT_EQ(text(st.get("k0").value), value);
  for (MemberId id = 0; id < 3; ++id) g.member(id).store(0).truncate_below(g.member(id).store(0).frontier().persisted);
  g.advance(200ms);
  EXPECT_FALSE(st.frontier().log_full);
  EXPECT_EQ(st.frontier().persisted, written);
  auto p = put(g, 0, "k", "again");
  g.settle();
  ASSERT_TRUE(p->done);
  EXPECT_FALSE(p->error);
}

// Writers on two shards, each write on B made after reading A's latest write: at any time t, a
// read of both shards at t never shows an effect (on B) without its cause (on A). Clocks are
// skewed so that B's writer runs 160 ms behind A's: only the caller's `after` (the time it read)
// keeps B's stamps after A's, and without it the same run shows effects before causes.
std::size_t causal_violations(bool carry_time) {
  Group g(6, 1, 1, shards(2, 3, 3));
  g.use_store(volatile_store(), {});
  for (MemberId id = 0; id < 6; ++id) g.skew(id, id % 2 == 0 ? 80'000'000 : -80'000'000);
  form(g, 6);
  const auto layout = g.member(0).view()->shards[0];
  EXPECT_EQ(layout.size(), 2u);
  if (layout.size() != 2) return 0;
  auto pick = [](const std::vector<MemberId>& shard, int parity) {
    for (MemberId m : shard) {
      if (static_cast<int>(m % 2) == parity) return m;
    }
    return shard[0];
  };
  const MemberId a = pick(layout[0], 0);  // clock ahead
  const MemberId b = pick(layout[1], 1);  // clock behind
  EXPECT_EQ(a % 2, 0u);
  EXPECT_EQ(b % 2, 1u);
  std::uint64_t first = 0, last = 0;
  for (int i = 1; i <= 15; ++i) {
    auto cause = put(g, a, "cause", std::to_string(i));
    g.settle();
    const auto seen = g.member(a).store(0).get("cause");  // what B's writer read
    auto effect = put(g, b, "effect", std::to_string(i), carry_time ? seen.written.hlc : 0);
    g.settle();
    EXPECT_TRUE(cause->done && effect->done);
    if (first == 0) first = cause->value.hlc;
    last = std::max({last, cause->value.hlc, effect->value.hlc});
  }
  // Every clock passes the last stamp, so no time asked for is in anyone's future.
  const auto wall = persistence::HybridClock::wall_ns();
  if (wall < last + 200'000'000) std::this_thread::sleep_for(std::chrono::nanoseconds(last + 200'000'000 - wall));
  std::size_t violations = 0;
  for (std::uint64_t t = first - 1'000'000; t <= last + 1'000'000; t += (last - first) / 300 + 1) {
    auto va = version_at(g, a, t);
    auto vb = version_at(g, b, t);
    g.settle();
    EXPECT_TRUE(va->done && vb->done && !va->error && !vb->error);
    const auto c = g.member(a).store(0).get("cause", va->value);
    const auto e = g.member(b).store(0).get("effect", vb->value);
    if (!e.found) continue;
    if (!c.found || std::stoi(text(c.value)) < std::stoi(text(e.value))) ++violations;
  }
  return violations;
}

TEST(Store, AReadAtOneTimeAcrossShardsNeverShowsAnEffectWithoutItsCause) {
  EXPECT_EQ(causal_violations(true), 0u);
  EXPECT_GT(causal_violations(false), 0u) << "the skewed clocks should break causality without the caller's time";
}

// A member whose log went its own way (it was not in the restart that the group's history
// continued from) is recognised by its history digest and starts over from the group's state.
TEST(Store, AMemberWithADivergentLogIsResetFromTheGroup) {
  TempDir dir;
  TempDir other;
  {
    // Member 2's log, written in another group's history under the same name.
    Group g(3);
    g.use_store(persistent_store(), other.path);
    form(g, 3);
    for (int i = 0; i < 12; ++i) put(g, static_cast<MemberId>(i % 3), "k" + std::to_string(i % 3), "other" + std::to_string(i));
    g.settle();
  }
  fs::create_directories(dir.path / "2");
  fs::copy(other.path / "2", dir.path / "2", fs::copy_options::recursive);
  Group g(3);
  g.use_store(persistent_store(), dir.path);
  g.initial(2);
  g.start(0);
  g.start(1);
  g.advance(1500ms);
  ASSERT_EQ(g.view_members(0).size(), 2u);
  for (int i = 0; i < 5; ++i) put(g, static_cast<MemberId>(i % 2), "k" + std::to_string(i % 2), "ours" + std::to_string(i));
  g.settle();
  g.start(2);
  g.advance(500ms);
  ASSERT_EQ(g.view_members(2).size(), 3u);
  auto& st = g.member(2).store(0);
  EXPECT_EQ(st.frontier().delivered, 5u);
  EXPECT_FALSE(st.get("k2").found);
  expect_same_state(g, {0, 1, 2});
}

}  // namespace
}  // namespace derecho::testing
