// View changes as a pure state machine (group_harness.hpp): crashes, leader failures in the
// middle of a change, minorities, joins with state transfer, shards, leaving.
#include <map>
#include <string>
#include <vector>

#include "group_harness.hpp"

using namespace derecho;
using namespace derecho::testing;
using namespace std::chrono_literals;


TEST(ViewChange, AllConfiguredMembersStartingTogetherFormOneView) {
  Group g(8);
  form(g, 8);
  for (MemberId id = 0; id < 8; ++id) {
    EXPECT_EQ(g.vid(id), 1u);
    EXPECT_EQ(g.views(id).size(), 1u);
  }
}

TEST(ViewChange, SilentMemberIsRemovedAndSurvivorsDeliverTheSameSequence) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Group g(4, seed);
    form(g, 4);
    g.send_from_all(15);
    g.scramble(150);
    g.crash(3);
    g.advance(1500ms);  // its heartbeat stops: suspected after 1000 ms
    for (MemberId id = 0; id < 3; ++id) {
      ASSERT_EQ(g.view_members(id), (std::vector<MemberId>{0, 1, 2})) << "member " << id;
      EXPECT_EQ(g.vid(id), 2u);
    }
    g.send_from_all(5);
    g.settle();
    // Identical sequences, per view; survivors' messages all delivered once, in order, even
    // those cut off by the change (re-sent in view 2); the crashed sender's ones a prefix.
    for (MemberId id = 1; id < 3; ++id) ASSERT_EQ(g.log(id), g.log(0)) << "member " << id;
    for (MemberId s = 0; s < 3; ++s) expect_all_once(g.log(0), s, g.sent_by(s));
    std::uint64_t from_crashed = 0;
    for (const auto& d : g.log(0)) {
      if (d.sender == 3) {
        ASSERT_EQ(d.seq, from_crashed++);
        ASSERT_EQ(d.vid, 1u);
      }
    }
    // What the crashed member delivered in view 1 is a prefix of what the survivors did.
    const auto survivors_v1 = in_view(g.log(0), 1);
    const auto& crashed = g.log(3);
    ASSERT_LE(crashed.size(), survivors_v1.size());
    EXPECT_TRUE(std::equal(crashed.begin(), crashed.end(), survivors_v1.begin()));
  }
}

TEST(ViewChange, LeaderWhoseLinksBreakIsReplacedByTheNextMember) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Group g(3, seed);
    form(g, 3);
    g.send_from_all(12);
    g.scramble(100);
    g.crash(0);
    g.cut(0, 1);
    g.cut(0, 2);
    g.settle();  // broken links are suspicion at once
    for (MemberId id = 1; id < 3; ++id) {
      ASSERT_EQ(g.view_members(id), (std::vector<MemberId>{1, 2})) << "member " << id;
      EXPECT_EQ(g.views(id).back().leader(), 1u);
      EXPECT_EQ(g.views(id).back().departed, std::vector<MemberId>{0});
    }
    g.send_from_all(4);
    g.settle();
    ASSERT_EQ(g.log(1), g.log(2));
    for (MemberId s = 1; s < 3; ++s) expect_all_once(g.log(1), s, g.sent_by(s));
  }
}

TEST(ViewChange, MinorityStaysWedgedAndRejoinsAfterTheHeal) {
  Group g(5, 7);
  form(g, 5);
  g.send_from_all(10);
  g.scramble(120);
  for (MemberId a : {0u, 1u}) {
    for (MemberId b : {2u, 3u, 4u}) g.cut(a, b);
  }
  const std::size_t minority_before = g.log(0).size() + g.log(1).size();
  g.advance(1500ms);
  for (MemberId id : {2u, 3u, 4u}) {
    ASSERT_EQ(g.view_members(id), (std::vector<MemberId>{2, 3, 4})) << "member " << id;
  }
  for (MemberId id : {0u, 1u}) {
    EXPECT_EQ(g.vid(id), 1u) << "a minority must not install a view";
    EXPECT_TRUE(g.member(id).view().has_value());
  }
  EXPECT_TRUE(g.saw(0, membership::MembershipEvent::minority));
  EXPECT_EQ(g.log(0).size() + g.log(1).size(), minority_before) << "the minority delivers nothing while cut off";
  // Their view-1 deliveries are a prefix of the majority's.
  const auto majority_v1 = in_view(g.log(2), 1);
  for (MemberId id : {0u, 1u}) {
    ASSERT_LE(g.log(id).size(), majority_v1.size());
    EXPECT_TRUE(std::equal(g.log(id).begin(), g.log(id).end(), majority_v1.begin()));
  }
  g.send_from_all(3);  // the majority goes on; the minority's messages wait in their queues
  g.settle();
  g.heal();
  g.advance(200ms);
  for (MemberId id = 0; id < 5; ++id) {
    ASSERT_EQ(g.view_members(id).size(), 5u) << "member " << id << " after the heal";
  }
  EXPECT_TRUE(g.saw(0, membership::MembershipEvent::removed));
  g.send_from_all(2);
  g.settle();
  const auto last = g.vid(2);
  for (MemberId id = 0; id < 5; ++id) EXPECT_EQ(in_view(g.log(id), last), in_view(g.log(2), last)) << id;
}

TEST(ViewChange, LateMemberJoinsDuringAStreamAndDeliversWhatFollows) {
  Group g(4, 3);
  g.initial(3);
  for (MemberId id = 0; id < 2; ++id) g.start(id);
  g.advance(1100ms);
  EXPECT_EQ(g.vid(0), 0u) << "member 0 waits for every initial member";
  g.start(2);
  g.settle();
  for (MemberId id = 0; id < 3; ++id) ASSERT_EQ(g.view_members(id), (std::vector<MemberId>{0, 1, 2}));
  g.send_from_all(10);
  g.scramble(80);
  g.start(3);
  g.settle();
  for (MemberId id = 0; id < 4; ++id) ASSERT_EQ(g.view_members(id).size(), 4u) << "member " << id;
  EXPECT_EQ(g.views(3).front().joined, std::vector<MemberId>{3});
  g.send_from_all(6);
  g.settle();
  for (MemberId s = 0; s < 3; ++s) expect_all_once(g.log(0), s, g.sent_by(s));
  expect_all_once(g.log(0), 3, g.sent_by(3));
  EXPECT_EQ(in_view(g.log(3), 2), in_view(g.log(0), 2));
  // The joiner's state (here: its whole delivery history) equals the others'.
  EXPECT_EQ(g.restores(3), 1u);
  for (MemberId id = 1; id < 4; ++id) EXPECT_EQ(g.log(id), g.log(0)) << "member " << id;
}

TEST(ViewChange, JoinerGetsAStateOfManyChunksBeforeItDeliversAnything) {
  for (std::uint64_t seed = 1; seed <= 10; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Group g(4, seed);
    g.initial(3);
    for (MemberId id = 0; id < 3; ++id) g.start(id);
    g.advance(1100ms);
    for (int round = 0; round < 4; ++round) {
      g.send_from_all(60);
      g.settle();
    }
    ASSERT_GT(g.log(0).size() * sizeof(Delivered), 4u * 4096) << "the state must span several chunks";
    g.send_from_all(20);
    g.scramble(60);  // in flight while 3 joins
    g.start(3);
    g.send_from_all(10);
    g.settle();
    ASSERT_EQ(g.view_members(3).size(), 4u);
    EXPECT_EQ(g.restores(3), 1u);
    for (MemberId id = 1; id < 4; ++id) ASSERT_EQ(g.log(id), g.log(0)) << "member " << id;
    for (MemberId s = 0; s < 4; ++s) expect_all_once(g.log(3), s, g.sent_by(s));
  }
}

TEST(ViewChange, JoinerWhoseSourceCrashesRejoinsAndGetsTheStateFromAnother) {
  // Four of five run, the fifth joins, and the member that would hand it the state stops in
  // the middle. The joiner, still without state, counts as a member that did not install the
  // view: the other three (a majority of five) remove both, then admit the joiner again with
  // the state from the next source.
  Group g(5, 5);
  g.initial(4);
  for (MemberId id = 0; id < 4; ++id) g.start(id);
  g.advance(1100ms);
  for (int round = 0; round < 3; ++round) {
    g.send_from_all(60);
    g.settle();
  }
  g.start(4);
  for (int i = 0; i < 4000 && g.view_members(4).empty(); ++i) g.scramble(1);
  ASSERT_FALSE(g.view_members(4).empty());
  ASSERT_EQ(g.restores(4), 0u) << "the transfer must still be under way";
  g.crash(0);
  for (MemberId b : {1u, 2u, 3u, 4u}) g.cut(0, b);
  g.advance(4000ms);
  for (MemberId id = 1; id < 5; ++id) {
    ASSERT_EQ(g.view_members(id), (std::vector<MemberId>{1, 2, 3, 4})) << "member " << id;
  }
  EXPECT_EQ(g.restores(4), 1u);
  g.send_from_all(5);
  g.settle();
  for (MemberId id = 2; id < 5; ++id) ASSERT_EQ(g.log(id), g.log(1)) << "member " << id;
}

TEST(ViewChange, LeaderFailingInTheMiddleOfAViewChangeIsReplaced) {
  // The leader stops at a random point of the change it leads (before preparing, after
  // proposing, after committing at some members only); the next member finishes it and every
  // survivor ends with the same views and the same deliveries.
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Group g(5, seed);
    form(g, 5);
    g.send_from_all(10);
    g.scramble(100);
    g.crash(4);
    g.cut(4, 0);
    g.cut(4, 1);
    g.cut(4, 2);
    g.cut(4, 3);
    g.scramble(static_cast<int>(seed * 37 % 400));  // the change to a view without 4 is under way
    g.crash(0);
    for (MemberId b : {1u, 2u, 3u}) g.cut(0, b);
    g.advance(200ms);  // a ballot the old leader left is bid over after a heartbeat interval
    for (MemberId id = 1; id < 4; ++id) {
      ASSERT_EQ(g.view_members(id), (std::vector<MemberId>{1, 2, 3})) << "member " << id;
    }
    // Views with the same id agree everywhere, the crashed leader's included.
    std::map<std::uint64_t, std::vector<MemberId>> seen;
    for (MemberId id = 0; id < 4; ++id) {
      for (const auto& v : g.views(id)) {
        const auto [it, fresh] = seen.emplace(v.vid, v.members);
        EXPECT_EQ(it->second, v.members) << "view " << v.vid << " at member " << id;
      }
    }
    g.send_from_all(3);
    g.settle();
    for (MemberId id = 2; id < 4; ++id) ASSERT_EQ(g.log(id), g.log(1));
    for (MemberId s = 1; s < 4; ++s) expect_all_once(g.log(1), s, g.sent_by(s));
    // Whatever the old leader delivered in a view, the survivors delivered too.
    for (const auto& [vid, members] : seen) {
      const auto leader = in_view(g.log(0), vid);
      const auto survivors = in_view(g.log(1), vid);
      ASSERT_LE(leader.size(), survivors.size()) << "view " << vid;
      EXPECT_TRUE(std::equal(leader.begin(), leader.end(), survivors.begin())) << "view " << vid;
    }
  }
}


TEST(ViewChange, ShardedSubgroupMulticastsWithinEachShardOfTheLayout) {
  Group g(6, 2, 1, shards(2, 2, 3));
  form(g, 6);
  const auto v = g.member(0).view();
  ASSERT_EQ(v->shards.at(0).size(), 2u);
  for (MemberId id = 1; id < 6; ++id) EXPECT_EQ(g.member(id).view()->shards, v->shards) << "member " << id;
  g.send_from_all(20);
  g.settle();
  for (MemberId id = 0; id < 6; ++id) {
    const auto shard = shard_of(g, id);
    ASSERT_EQ(shard.size(), 3u);
    for (const auto& d : g.log(id)) {
      ASSERT_TRUE(std::find(shard.begin(), shard.end(), d.sender) != shard.end()) << "delivery across shards";
    }
    EXPECT_EQ(g.log(id), g.log(shard.front())) << "member " << id;
    for (MemberId s : shard) expect_all_once(g.log(id), s, g.sent_by(s));
  }
}

TEST(ViewChange, ShardsKeepTheirMembersWhenAnotherShardLosesOne) {
  Group g(6, 4, 1, shards(2, 1, 3));
  form(g, 6);
  const auto before = g.member(0).view()->shards.at(0);
  const MemberId leaving = before[1].back();
  g.crash(leaving);
  g.advance(1500ms);
  const MemberId observer = before[0].front();
  const auto after = g.member(observer).view()->shards.at(0);
  EXPECT_EQ(after[0], before[0]) << "the shard that lost nobody is untouched";
  auto expected = before[1];
  expected.erase(std::find(expected.begin(), expected.end(), leaving));
  EXPECT_EQ(after[1], expected);
}

TEST(ViewChange, InadequateViewWaitsAndResumesWithStateWhenAMemberJoins) {
  // Two shards of exactly two: losing a member leaves a shard below its minimum, and the
  // sharded subgroup waits (sends queue up) until a fifth configured member joins, gets the
  // shard's state from its remaining member, and the shard runs again.
  Group g(5, 9, 1, shards(2, 2, 2));
  g.initial(4);
  for (MemberId id = 0; id < 4; ++id) g.start(id);
  g.advance(1100ms);
  ASSERT_EQ(g.view_members(0).size(), 4u);
  ASSERT_TRUE(g.member(0).view()->adequate);
  g.send_from_all(10);
  g.settle();
  const auto layout = g.member(0).view()->shards.at(0);
  const MemberId leaving = layout[1][0];
  const MemberId partner = layout[1][1];
  g.crash(leaving);
  g.advance(1500ms);
  const auto waiting = g.member(partner).view();
  ASSERT_EQ(waiting->members.size(), 3u);
  EXPECT_FALSE(waiting->adequate);
  EXPECT_EQ(waiting->inadequate, "subgroup 'sg0' shard 1 needs 2 members, 1 available");
  EXPECT_TRUE(g.saw(partner, membership::MembershipEvent::inadequate));
  const std::size_t delivered_while_waiting = g.log(partner).size();
  g.send_from_all(3);
  g.settle();
  EXPECT_EQ(g.log(partner).size(), delivered_while_waiting) << "an inadequate view delivers nothing";
  g.start(4);
  g.settle();
  const auto resumed = g.member(4).view();
  ASSERT_TRUE(resumed->adequate);
  EXPECT_EQ(resumed->shards.at(0)[0], layout[0]) << "the intact shard keeps its members";
  EXPECT_EQ(shard_of(g, 4), (std::vector<MemberId>{std::min(partner, MemberId{4}), std::max(partner, MemberId{4})}));
  EXPECT_EQ(g.restores(4), 1u);
  g.send_from_all(2);
  g.settle();
  EXPECT_EQ(g.log(4), g.log(partner)) << "the joiner's state and deliveries equal its shard partner's";
  expect_all_once(g.log(partner), partner, g.sent_by(partner));
}

TEST(ViewChange, MemberThatLeavesIsRemovedAndTheOthersGoOn) {
  Group g(4, 11);
  form(g, 4);
  g.send_from_all(10);
  g.settle();
  g.member(0).request_leave();  // the leader itself
  g.settle();
  for (MemberId id = 1; id < 4; ++id) {
    ASSERT_EQ(g.view_members(id), (std::vector<MemberId>{1, 2, 3})) << "member " << id;
    EXPECT_EQ(g.views(id).back().departed, std::vector<MemberId>{0});
  }
  EXPECT_TRUE(g.saw(0, membership::MembershipEvent::left));
  EXPECT_FALSE(g.member(0).view().has_value());
  g.crash(0);
  g.send_from_all(5);
  g.advance(100ms);
  EXPECT_EQ(g.vid(1), 2u) << "a member that left is not admitted again";
  for (MemberId id = 2; id < 4; ++id) EXPECT_EQ(g.log(id), g.log(1));
  for (MemberId s = 1; s < 4; ++s) expect_all_once(g.log(1), s, g.sent_by(s));
}
