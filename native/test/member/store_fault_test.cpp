// Stores when things go wrong around them (docs/store.md): a volatile window smaller than a
// delivery batch, members the layout moves between shards, writes of a member the group
// removes, a full send queue when a tick is due, bad times, and calls after stop.
#include <gtest/gtest.h>

#include <fstream>
#include <limits>
#include <string>
#include <thread>

#include "store_harness.hpp"

namespace derecho::testing {
namespace {

std::vector<std::string> keys_of(Group& g, MemberId id) { return g.member(id).store(0).list_keys(); }

bool holds_key_starting(Group& g, MemberId id, const std::string& prefix) {
  for (const auto& k : keys_of(g, id)) {
    if (k.starts_with(prefix)) return true;
  }
  return false;
}

// Delivery batches longer than the window: the oldest versions fold into the base one by one.
TEST(StoreFault, AVolatileWindowSmallerThanADeliveryBatch) {
  for (std::uint64_t window : {1u, 2u, 5u}) {
    Group g(3);
    g.use_store(volatile_store(window), {});
    form(g, 3);
    for (int i = 0; i < 8; ++i) {
      put(g, 0, "a" + std::to_string(i), "v");
      g.settle();
    }
    std::vector<std::shared_ptr<Outcome<store::Stamp>>> puts;
    for (int i = 0; i < 4; ++i) {
      for (MemberId id = 0; id < 3; ++id) puts.push_back(put(g, id, "b" + std::to_string(i) + std::to_string(id), "w"));
    }
    g.settle();
    for (const auto& p : puts) ASSERT_TRUE(p->done && !p->error);
    for (MemberId id = 0; id < 3; ++id) {
      const auto f = g.member(id).store(0).frontier();
      EXPECT_EQ(f.delivered, 20u);
      EXPECT_EQ(f.first_retained, 20u - window) << "window " << window;
      EXPECT_EQ(keys_of(g, id).size(), 20u) << "every key keeps its latest value";
    }
    expect_same_state(g, {0, 1, 2}, 20 - window);
  }
}

// Shard 1's only member crashes; the layout moves a member of shard 0 there. It must not serve
// shard 0's keys as shard 1's, and when the crashed member returns, every member holds only its
// own shard's history.
TEST(StoreFault, AMemberMovedToAnotherShardDropsTheOldShardsHistory) {
  TempDir dir;
  Group g(3, 1, 1, shards(2, 1, 2));
  g.use_store(persistent_store(), dir.path);
  form(g, 3);
  auto layout = g.member(0).view()->shards[0];
  ASSERT_EQ(layout.size(), 2u);
  ASSERT_EQ(layout[1].size(), 1u);
  for (int i = 0; i < 5; ++i) put(g, layout[0][0], "s0-" + std::to_string(i), "zero");
  for (int i = 0; i < 3; ++i) put(g, layout[1][0], "s1-" + std::to_string(i), "one");
  g.settle();
  const MemberId lone = layout[1][0];
  g.crash(lone);
  g.advance(1500ms);
  const MemberId any = layout[0][0];
  layout = g.member(any).view()->shards[0];
  ASSERT_EQ(layout.size(), 2u);
  for (MemberId m : layout[1]) {
    EXPECT_FALSE(holds_key_starting(g, m, "s0-")) << "member " << m << " serves shard 0's keys in shard 1";
    EXPECT_EQ(g.member(m).store(0).lineage(), 2u);
    const auto f = g.member(m).store(0).frontier();
    EXPECT_LE(f.global_persisted, f.delivered);
    auto p = put(g, m, "s1-new", "x");
    g.settle();
    ASSERT_TRUE(p->done && !p->error);
    EXPECT_EQ(p->value.version, 1u) << "shard 1 started afresh";
  }
  std::vector<MemberId> peers;
  for (MemberId m = 0; m < 3; ++m) {
    if (m != lone) peers.push_back(m);
  }
  g.restart(lone, peers);
  g.advance(1000ms);
  layout = g.member(any).view()->shards[0];
  for (std::size_t shard = 0; shard < layout.size(); ++shard) {
    const std::string foreign = shard == 0 ? "s1-" : "s0-";
    for (MemberId m : layout[shard]) {
      EXPECT_FALSE(holds_key_starting(g, m, foreign)) << "member " << m << " in shard " << shard;
      EXPECT_EQ(g.member(m).store(0).lineage(), shard + 1);
    }
    expect_same_state(g, layout[shard], g.member(layout[shard][0]).store(0).frontier().first_retained);
  }
}

// A member moved into a shard with a source is reset by state transfer; what its old shard had
// made stable must not answer reads in the new one.
TEST(StoreFault, AMovedMemberDoesNotKeepItsOldShardsFrontiers) {
  Group g(5, 1, 1, shards(2, 2, 3));
  g.use_store(volatile_store(), {});
  g.skew(2, -80'000'000);
  g.skew(3, -80'000'000);
  form(g, 5);
  auto layout = g.member(0).view()->shards[0];
  ASSERT_EQ(layout.size(), 2u);
  for (int i = 0; i < 3; ++i) put(g, layout[1][0], "s1-" + std::to_string(i), "one");
  g.settle();
  for (int i = 0; i < 30; ++i) put(g, layout[0][0], "s0-" + std::to_string(i), "zero");
  g.settle();
  const MemberId mover = layout[0].back();
  const std::uint64_t t = g.member(mover).store(0).frontier().stable_hlc;
  g.crash(layout[1].back());
  g.advance(1500ms);
  layout = g.member(0).view()->shards[0];
  ASSERT_TRUE(std::find(layout[1].begin(), layout[1].end(), mover) != layout[1].end()) << "the layout moved member " << mover;
  const auto f = g.member(mover).store(0).frontier();
  EXPECT_LE(f.global_persisted, f.delivered);
  EXPECT_FALSE(holds_key_starting(g, mover, "s0-"));
  auto first = version_at(g, mover, t);
  g.settle();
  const MemberId other = layout[1][0] == mover ? layout[1][1] : layout[1][0];
  put(g, other, "late", "x");
  g.settle();
  auto again = version_at(g, mover, t);
  g.settle();
  ASSERT_TRUE(first->done && again->done);
  EXPECT_EQ(first->value, again->value) << "a read at a stable time changed its answer";
}

// Member 2's put reaches the others, then it is cut off and removed; the others deliver the put
// at the ragged edge. When 2 is back, its put completes with the version the group gave it.
TEST(StoreFault, APutOfARemovedMemberCompletesWhenItRejoins) {
  Group g(3);
  g.use_store(volatile_store(), {});
  form(g, 3);
  auto p = put(g, 2, "lost", "x");
  g.pass(2);
  g.net().deliver_all();
  g.pass(2);
  g.net().deliver_all();
  g.pass(0);
  g.pass(1);
  g.net().break_link(0, 2);
  g.net().break_link(1, 2);
  g.net().deliver_all();
  g.cut(0, 2);
  g.cut(1, 2);
  g.advance(1500ms);
  ASSERT_EQ(g.view_members(0).size(), 2u);
  ASSERT_TRUE(g.member(0).store(0).get("lost").found);
  g.heal();
  g.advance(1500ms);
  ASSERT_EQ(g.view_members(2).size(), 3u);
  ASSERT_TRUE(p->done);
  EXPECT_FALSE(p->error);
  EXPECT_EQ(p->value.version, g.member(0).store(0).get("lost").written.version);
}

// The same when member 4 learns of its removal only after the group moved on twice (its unsent
// operations are dropped): the put the group applied is reported done, not dropped.
TEST(StoreFault, ADroppedPutThatTheGroupAppliedIsReportedDone) {
  Group g(5);
  g.use_store(volatile_store(), {});
  form(g, 5);
  auto p = put(g, 4, "lost", "x");
  auto never = std::make_shared<Outcome<store::Stamp>>();
  g.pass(4);
  g.net().deliver_all();
  g.pass(4);
  g.net().deliver_all();
  for (MemberId m = 0; m < 4; ++m) g.pass(m);
  for (MemberId m = 0; m < 4; ++m) g.net().break_link(m, 4);
  g.net().deliver_all();
  for (MemberId m = 0; m < 4; ++m) g.cut(m, 4);
  // Queued while cut off: never sent, so it must fail once 4 rejoins.
  g.member(4).store(0).put("unsent", bytes("y"), 0, [never](const StoreError* e, const store::Stamp&) {
    never->done = true;
    if (e) never->error = e->code();
  });
  g.advance(1500ms);
  g.crash(3);
  g.advance(1500ms);
  put(g, 0, "more", "y");
  g.settle();
  for (MemberId m = 0; m < 3; ++m) {
    g.net().restore_link(m, 4);
    g.net().restore_link(4, m);
  }
  g.advance(1500ms);
  ASSERT_EQ(g.view_members(4).size(), 4u);
  ASSERT_TRUE(p->done);
  EXPECT_FALSE(p->error);
  EXPECT_TRUE(g.member(4).store(0).get("lost").found);
  if (g.member(0).store(0).get("unsent").found) {
    EXPECT_TRUE(never->done && !never->error);
  } else {
    EXPECT_TRUE(never->done);
    EXPECT_EQ(never->error, ErrorCode::stopped);
  }
}

// A read that needs a tick while the send queue is full: the tick waits, the engine goes on.
TEST(StoreFault, ATickWaitsForAFullSendQueue) {
  Group g(3);
  g.use_store(volatile_store(), {});
  form(g, 3);
  auto& st = g.member(0).store(0);
  std::uint64_t accepted = 0;
  for (;;) {
    try {
      st.put(std::string(32, 'k'), bytes(std::string(128, 'v')), 0, [](auto, auto) {});
      ++accepted;
    } catch (const StoreError& e) {
      ASSERT_EQ(e.code(), ErrorCode::busy);
      break;
    }
  }
  std::this_thread::sleep_for(2ms);
  auto r = version_at(g, 0, persistence::HybridClock::wall_ns() - 1'000'000);
  EXPECT_NO_THROW(g.pass(0));
  // 16 MiB of puts to deliver: more rounds than settle() allows.
  for (int round = 0; round < 1'000'000 && !(r->done && st.frontier().delivered >= accepted); ++round) {
    g.net().deliver_all();
    for (MemberId id = 0; id < 3; ++id) ASSERT_NO_THROW(g.pass(id));
  }
  EXPECT_TRUE(r->done);
  EXPECT_FALSE(r->error);
  EXPECT_GE(st.frontier().delivered, accepted);
}

TEST(StoreFault, AnAfterTimeFarAheadIsRefusedAndTheShardGoesOn) {
  Group g(3);
  g.use_store(volatile_store(), {});
  form(g, 3);
  auto& st = g.member(0).store(0);
  try {
    st.put("a", bytes("1"), std::numeric_limits<std::uint64_t>::max() - 1, [](auto, auto) {});
    ADD_FAILURE() << "accepted";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.code(), ErrorCode::future_time);
  }
  auto b = put(g, 1, "b", "2");
  g.settle();
  ASSERT_TRUE(b->done);
  EXPECT_FALSE(b->error);
  EXPECT_EQ(b->value.version, 1u);
}

// A checkpoint damaged on disk: the member reports it, drops its log (useless without the base)
// and takes the whole state from the others.
TEST(StoreFault, ADamagedCheckpointIsReportedAndTheStateComesFromTheGroup) {
  TempDir dir;
  {
    Group g(3);
    g.use_store(persistent_store(), dir.path);
    form(g, 3);
    for (int i = 0; i < 60; ++i) put(g, static_cast<MemberId>(i % 3), "k" + std::to_string(i % 7), "v" + std::to_string(i));
    g.settle();
    for (MemberId id = 0; id < 3; ++id) g.member(id).store(0).truncate_below(40);
  }
  const auto checkpoint = dir.path / "1" / "sg0" / "checkpoint";
  ASSERT_TRUE(fs::exists(checkpoint));
  {
    std::fstream f(checkpoint, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(checkpoint) / 2));
    f.put('\x5a');
  }
  Group g(3);
  g.use_store(persistent_store(), dir.path);
  form(g, 3);
  g.settle();
  const auto repairs = g.member(1).store(0).repairs();
  ASSERT_FALSE(repairs.empty());
  EXPECT_EQ(repairs.back().file, checkpoint);
  EXPECT_TRUE(fs::exists(checkpoint.parent_path() / "checkpoint.damaged"));
  for (MemberId id = 0; id < 3; ++id) {
    EXPECT_EQ(g.member(id).store(0).frontier().delivered, 60u) << "member " << id;
    EXPECT_EQ(g.member(id).store(0).list_keys(), g.member(0).store(0).list_keys());
  }
  expect_same_state(g, {0, 1, 2}, 40);
}

TEST(StoreFault, CallsAfterStopAreRefused) {
  Group g(3);
  g.use_store(volatile_store(), {});
  form(g, 3);
  g.member(0).stop();
  try {
    put(g, 0, "k", "v");
    ADD_FAILURE() << "accepted";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.code(), ErrorCode::stopped);
  }
}

}  // namespace
}  // namespace derecho::testing
