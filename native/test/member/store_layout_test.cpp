// Stores when the layout moves members between shards and when members are removed and come
// back (docs/store.md, "Lineage", "Writes across removals"): nothing one shard wrote is applied,
// served or lost in another, and callers are told the truth about their writes.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "store_harness.hpp"

namespace derecho::testing {
namespace {

std::string shown(const std::vector<std::vector<MemberId>>& layout) {
  std::string s;
  for (const auto& shard : layout) {
    s += "[";
    for (MemberId m : shard) s += std::to_string(m) + ",";
    s += "]";
  }
  return s;
}

bool in_shard(const std::vector<MemberId>& shard, MemberId m) { return std::find(shard.begin(), shard.end(), m) != shard.end(); }

// Member 4 is cut off and learns of its removal only after the group moved on twice (no ragged
// edge: its unsent operations are dropped), then rejoins.
struct LateRemoval {
  Group& g;
  void cut_off_4() {
    for (MemberId m = 0; m < 4; ++m) g.pass(m);
    for (MemberId m = 0; m < 4; ++m) g.net().break_link(m, 4);
    g.net().deliver_all();
    for (MemberId m = 0; m < 4; ++m) g.cut(m, 4);
  }
  void remove_and_move_on(int more_puts) {
    g.advance(1500ms);
    g.crash(3);
    g.advance(1500ms);
    for (int i = 0; i < more_puts; ++i) put(g, 0, "more" + std::to_string(i), "y");
    g.settle();
  }
  void rejoin() {
    for (MemberId m = 0; m < 3; ++m) {
      g.net().restore_link(m, 4);
      g.net().restore_link(4, m);
    }
    g.advance(1500ms);
    g.advance(4000ms);
  }
};

// Writes still in the store's outbox (the multicast queue was full) are dropped unsent: failed
// as not applied, and never sent later.
TEST(StoreLayout, WritesDroppedUnsentAreNeverAppliedLater) {
  Group g(5);
  g.max_queued(512);
  g.use_store(volatile_store(), {});
  form(g, 5);
  LateRemoval flow{g};
  flow.cut_off_4();
  std::vector<std::shared_ptr<Outcome<store::Stamp>>> outs;
  for (int i = 0; i < 300; ++i) outs.push_back(put(g, 4, "u" + std::to_string(i), "v"));
  flow.remove_and_move_on(1);
  flow.rejoin();
  ASSERT_EQ(g.view_members(4).size(), 4u);
  int failed = 0;
  for (int i = 0; i < 300; ++i) {
    const bool found = g.member(0).store(0).get("u" + std::to_string(i)).found;
    ASSERT_TRUE(outs[i]->done) << "put " << i;
    if (outs[i]->error) {
      ++failed;
      EXPECT_FALSE(found) << "put " << i << " was reported not applied, but the group holds it";
    } else {
      EXPECT_TRUE(found) << "put " << i;
    }
  }
  EXPECT_GT(failed, 0) << "the flow should drop some unsent writes";
}

// A dropped write the group applied, when the rejoin's state comes as a base past it (a small
// volatile window folded it in): the caller hears it was applied, never "not applied".
TEST(StoreLayout, ADroppedWriteFoldedIntoABaseIsNotReportedNeverApplied) {
  Group g(5);
  g.use_store(volatile_store(5), {});
  form(g, 5);
  struct Heard {
    bool done = false;
    std::string error;
  };
  auto heard = std::make_shared<Heard>();
  g.member(4).store(0).put("lost", bytes("x"), 0, [heard](const StoreError* e, const store::Stamp&) {
    heard->done = true;
    if (e) heard->error = e->what();
  });
  g.pass(4);
  g.net().deliver_all();
  g.pass(4);
  g.net().deliver_all();
  LateRemoval flow{g};
  flow.cut_off_4();
  flow.remove_and_move_on(20);
  flow.rejoin();
  ASSERT_EQ(g.view_members(4).size(), 4u);
  ASSERT_TRUE(g.member(0).store(0).get("lost").found) << "the group applied it";
  ASSERT_TRUE(heard->done);
  // No record names it any more, but the group's last delivered request of member 4 covers
  // it: the caller hears that it was applied (its version unknown here), never "not applied".
  EXPECT_EQ(heard->error.find("never applied"), std::string::npos) << heard->error;
  if (!heard->error.empty()) {
    EXPECT_NE(heard->error.find("was applied"), std::string::npos) << heard->error;
  }
}

// An unreadable lineage file: the member drops its log (it cannot tell whose history it is),
// reports it, and takes the state from the group.
TEST(StoreLayout, AnUnreadableLineageFileIsReportedAndTheStateComesFromTheGroup) {
  TempDir dir;
  {
    Group g(3);
    g.use_store(persistent_store(), dir.path);
    form(g, 3);
    for (int i = 0; i < 60; ++i) put(g, static_cast<MemberId>(i % 3), "k" + std::to_string(i % 7), "v" + std::to_string(i));
    g.settle();
    for (MemberId id = 0; id < 3; ++id) g.member(id).store(0).truncate_below(40);
  }
  const auto lineage = dir.path / "1" / "sg0" / "lineage";
  ASSERT_TRUE(fs::exists(lineage));
  {
    std::fstream f(lineage, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.put('\x5a');
  }
  Group g(3);
  g.use_store(persistent_store(), dir.path);
  ASSERT_NO_THROW(form(g, 3));
  g.settle();
  EXPECT_FALSE(g.member(1).store(0).repairs().empty());
  for (MemberId id = 0; id < 3; ++id) EXPECT_EQ(g.member(id).store(0).frontier().delivered, 60u) << "member " << id;
  expect_same_state(g, {0, 1, 2}, 40);
}

// minPerShard 2 and a reserve: shard 1 never empties, but after crashes its latest state lives
// on members that the restart's fresh layout puts in another shard. The restart takes shard 1's
// state from the most advanced log of its lineage, wherever that member now sits.
TEST(StoreLayout, ATotalRestartFindsAShardsLatestLogInAnotherShard) {
  TempDir dir;
  const std::size_t n = 7;
  std::vector<MemberId> crashed;
  {
    Group g(n, 1, 1, shards(2, 2, 3));
    g.use_store(persistent_store(), dir.path);
    form(g, n);
    auto layout = g.member(0).view()->shards[0];
    for (int i = 0; i < 10; ++i) put(g, layout[1][0], "s1-" + std::to_string(i), "one");
    g.settle();
    const std::vector<MemberId> original = layout[1];
    for (MemberId victim : original) {
      g.crash(victim);
      crashed.push_back(victim);
      g.advance(1500ms);
      MemberId alive = 0;
      while (std::find(crashed.begin(), crashed.end(), alive) != crashed.end()) ++alive;
      layout = g.member(alive).view()->shards[0];
      if (layout[1].size() < 2) break;
      for (int i = 0; i < 3; ++i) put(g, layout[1][0], "late" + std::to_string(victim) + "-" + std::to_string(i), "x");
      g.settle();
    }
  }
  Group g(n, 1, 1, shards(2, 2, 3));
  g.use_store(persistent_store(), dir.path);
  form(g, n);
  g.settle();
  const auto layout = g.member(0).view()->shards[0];
  for (MemberId m : layout[1]) {
    for (MemberId v : crashed) {
      EXPECT_TRUE(g.member(m).store(0).get("late" + std::to_string(v) + "-0").found)
          << "member " << m << " of shard 1 lacks late" << v << "-0 after the restart, layout " << shown(layout);
    }
  }
  for (std::size_t s = 0; s < layout.size(); ++s) expect_same_state(g, layout[s], g.member(layout[s][0]).store(0).frontier().first_retained);
}

// Between the view that moves a member and the arrival of its new shard's state, it answers
// nothing from its old shard.
TEST(StoreLayout, AMovedMemberServesNothingFromItsOldShard) {
  Group g(5, 1, 1, shards(2, 2, 3));
  g.use_store(volatile_store(), {});
  form(g, 5);
  auto layout = g.member(0).view()->shards[0];
  for (int i = 0; i < 3; ++i) put(g, layout[1][0], "s1-" + std::to_string(i), "one");
  g.settle();
  for (int i = 0; i < 30; ++i) put(g, layout[0][0], "s0-" + std::to_string(i), "zero");
  g.settle();
  const MemberId mover = layout[0].back();
  const std::uint64_t t = g.member(mover).store(0).frontier().stable_hlc;
  struct Seen {
    bool taken = false, s0_found = false, answered = false;
    std::uint64_t version = 0;
  };
  auto seen = std::make_shared<Seen>();
  Member* member = &g.member(mover);
  member->on_view([seen, member, mover, t](const membership::View& v) {
    if (seen->taken || v.shards.empty() || !in_shard(v.shards[0][1], mover)) return;
    seen->taken = true;
    auto& st = member->store(0);
    try {
      seen->s0_found = st.get("s0-0").found;
    } catch (const StoreError& e) {
      EXPECT_EQ(e.code(), ErrorCode::busy);
    }
    try {
      st.version_at_time(t, [seen](const StoreError* e, std::uint64_t version) {
        seen->answered = e == nullptr;
        seen->version = version;
      });
    } catch (const StoreError& e) {
      EXPECT_EQ(e.code(), ErrorCode::busy);
    }
  });
  g.crash(layout[1].back());
  g.advance(1500ms);
  ASSERT_TRUE(seen->taken);
  auto after = version_at(g, mover, t);
  g.settle();
  EXPECT_FALSE(seen->s0_found) << "served shard 0's key while in shard 1";
  ASSERT_TRUE(after->done);
  if (seen->answered) {
    EXPECT_EQ(seen->version, after->value) << "a read at a stable time answered from the old shard";
  }
}

// Puts a member queued in its old shard, sent after the layout moved it, are applied nowhere,
// and their callers hear so.
TEST(StoreLayout, PutsQueuedBeforeAMoveAreNotAppliedInTheNewShard) {
  Group g(5, 1, 1, shards(2, 2, 3));
  g.use_store(volatile_store(), {});
  form(g, 5);
  auto layout = g.member(0).view()->shards[0];
  const MemberId mover = layout[0].back();
  g.crash(layout[1].back());
  g.advance(1000ms);
  std::vector<std::shared_ptr<Outcome<store::Stamp>>> outs;
  for (int step = 0; step < 200; ++step) {
    for (int i = 0; i < 20; ++i) outs.push_back(put(g, mover, "mv-" + std::to_string(outs.size()), "x"));
    g.advance(20ms);
    if (in_shard(g.member(mover).view()->shards[0][1], mover)) break;
  }
  g.advance(500ms);
  layout = g.member(0).view()->shards[0];
  ASSERT_TRUE(in_shard(layout[1], mover));
  for (std::size_t i = 0; i < outs.size(); ++i) {
    const std::string k = "mv-" + std::to_string(i);
    for (MemberId m : layout[1]) EXPECT_FALSE(g.member(m).store(0).get(k).found) << k << " applied in shard 1 at " << m;
    ASSERT_TRUE(outs[i]->done) << k;
    const bool in_old = g.member(layout[0][0]).store(0).get(k).found;
    EXPECT_EQ(!outs[i]->error, in_old) << k << ": the outcome must match shard 0";
  }
}

}  // namespace
}  // namespace derecho::testing
