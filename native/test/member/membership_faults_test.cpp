// Membership under faults found by an independent review: each test is a scenario that once
// broke safety or liveness (docs/membership.md). Pure state machine over the in-process network.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "member/member.hpp"
#include "member/region_layout.hpp"
#include "transport/memory_network.hpp"

using namespace derecho;
using namespace std::chrono_literals;

namespace {

struct Delivered {
  std::uint64_t vid;
  MemberId sender;
  std::uint64_t seq;
  std::uint32_t subgroup;
  bool operator==(const Delivered&) const = default;
};

class RecordingSink final : public multicast::DeliverySink {
 public:
  bool ready() override { return true; }
  void deliver(std::span<const multicast::Delivery> batch) override {
    for (const auto& d : batch) {
      std::uint64_t seq;
      std::memcpy(&seq, d.payload.data(), sizeof seq);
      log.push_back({d.vid, d.sender, seq, d.subgroup});
    }
  }
  std::vector<Delivered> log;
};

std::vector<std::byte> payload(std::uint64_t seq) {
  std::vector<std::byte> p(24 + seq % 40);
  std::memcpy(p.data(), &seq, sizeof seq);
  return p;
}

class Group {
 public:
  Group(std::size_t configured, std::uint64_t seed, std::size_t subgroups = 1,
        std::optional<ShardingConfig> sharding = {}) {
    for (std::size_t i = 0; i < configured; ++i) ids_.push_back(static_cast<MemberId>(i));
    config_.group_name = "faults";
    config_.transport = TransportKind::shm;
    for (MemberId id : ids_) config_.members.push_back({id, "", 0});
    for (std::size_t s = 0; s < subgroups; ++s) {
      SubgroupConfig sg;
      sg.name = "sg" + std::to_string(s);
      sg.members = ids_;
      sg.senders = ids_;
      sg.ring_bytes = 4096;
      sg.max_message_bytes = 256;
      sg.sharding = sharding;
      config_.subgroups.push_back(sg);
    }
    config_.state_chunk_bytes = 4096;
    net_ = std::make_unique<transport::MemoryNetwork>(ids_, RegionLayout::compute(config_).region_bytes, seed);
    nodes_.resize(configured);
  }

  // Before the first start: how many of the first configured members found the group.
  void initial(std::uint32_t members) { config_.initial_members = members; }

  void start(MemberId id) {
    auto node = std::make_unique<Node>();
    Member::Options options;
    options.make_transport = [this, id](const transport::TransportOptions&) { return net_->endpoint(id); };
    options.clock = [this] { return now_; };
    options.boot = 1000 + id + 100 * (++incarnations_[id]);
    node->member = std::make_unique<Member>(config_, id, node->sink, options);
    Node* n = node.get();
    node->member->on_view([n](const membership::View& v) { n->views.push_back(v); });
    node->member->on_event([n](membership::MembershipEvent e, const std::string&) { n->events.push_back(e); });
    node->member->on_snapshot([n](std::uint32_t subgroup, std::uint64_t vid) {
      std::vector<Delivered> mine;
      for (const auto& d : n->sink.log) {
        if (d.subgroup == subgroup) mine.push_back(d);
      }
      std::vector<std::byte> state(mine.size() * sizeof(Delivered));
      if (!state.empty()) std::memcpy(state.data(), mine.data(), state.size());
      n->member->provide_snapshot(subgroup, vid, std::move(state));
    });
    node->member->on_restore([n](std::uint32_t subgroup, std::uint64_t, std::span<const std::byte> state) {
      std::vector<Delivered> keep;
      for (const auto& d : n->sink.log) {
        if (d.subgroup != subgroup) keep.push_back(d);
      }
      const std::size_t at = keep.size();
      keep.resize(at + state.size() / sizeof(Delivered));
      if (!state.empty()) std::memcpy(keep.data() + at, state.data(), state.size());
      n->sink.log = keep;
      ++n->restores;
      if (n->after_restore) n->after_restore();
    });
    nodes_[id] = std::move(node);
  }

  // A new incarnation of `id` (fresh process, empty state), with links only to `peers`.
  void restart(MemberId id, const std::vector<MemberId>& peers) {
    nodes_[id].reset();
    net_->reset_member(id);
    start(id);
    for (MemberId p : peers) {
      net_->restore_link(id, p);
      net_->restore_link(p, id);
    }
  }

  bool pass(MemberId id) { return running(id) && nodes_[id]->member->run_once(); }

  void settle() {
    for (int round = 0; round < 20000; ++round) {
      bool moved = net_->pending() > 0;
      net_->deliver_all();
      for (MemberId id : ids_) moved |= pass(id);
      if (!moved) return;
    }
    FAIL() << "group did not settle";
  }
  void advance(std::chrono::milliseconds total) {
    for (auto done = 0ms; done < total; done += 20ms) {
      now_ += 20ms;
      settle();
    }
  }
  void crash(MemberId id) { nodes_[id]->crashed = true; }
  void cut(MemberId a, MemberId b) {
    net_->break_link(a, b);
    net_->break_link(b, a);
  }
  void heal() { net_->restore_all_links(); }
  bool running(MemberId id) const { return nodes_[id] && !nodes_[id]->crashed; }
  Member& member(MemberId id) { return *nodes_[id]->member; }
  const std::vector<Delivered>& log(MemberId id) const { return nodes_[id]->sink.log; }
  std::vector<Delivered> log_of(MemberId id, std::uint32_t sg) const {
    std::vector<Delivered> out;
    for (const auto& d : log(id)) {
      if (d.subgroup == sg) out.push_back(d);
    }
    return out;
  }
  std::vector<MemberId> view_members(MemberId id) const {
    const auto v = nodes_[id]->member->view();
    return v ? v->members : std::vector<MemberId>{};
  }
  std::uint64_t vid(MemberId id) const {
    const auto v = nodes_[id]->member->view();
    return v ? v->vid : 0;
  }
  std::size_t restores(MemberId id) const { return nodes_[id]->restores; }
  void set_after_restore(MemberId id, std::function<void()> f) { nodes_[id]->after_restore = std::move(f); }
  void send(MemberId id, std::uint32_t sg, std::uint64_t count) {
    for (std::uint64_t i = 0; i < count; ++i) ASSERT_TRUE(nodes_[id]->member->send(sg, payload(nodes_[id]->next_seq[sg]++)));
  }
  void send_from_all(std::uint64_t count, std::uint32_t sg = 0) {
    for (MemberId id : ids_) {
      if (running(id)) send(id, sg, count);
    }
  }
  std::uint64_t sent_by(MemberId id, std::uint32_t sg = 0) { return nodes_[id]->next_seq[sg]; }
  void scramble(int steps) {
    auto& rng = net_->random();
    for (int i = 0; i < steps; ++i) {
      if (net_->pending() > 0 && rng() % 2 == 0) {
        net_->deliver_one();
      } else {
        const MemberId id = ids_[rng() % ids_.size()];
        pass(id);
      }
    }
  }
  transport::MemoryNetwork& net() { return *net_; }
  bool saw(MemberId id, membership::MembershipEvent e) const {
    for (auto x : nodes_[id]->events) {
      if (x == e) return true;
    }
    return false;
  }
  const std::vector<membership::View>& views(MemberId id) const { return nodes_[id]->views; }

 private:
  struct Node {
    RecordingSink sink;
    std::unique_ptr<Member> member;
    std::vector<membership::View> views;
    std::vector<membership::MembershipEvent> events;
    std::map<std::uint32_t, std::uint64_t> next_seq;
    std::size_t restores = 0;
    bool crashed = false;
    std::function<void()> after_restore;
  };
  std::vector<MemberId> ids_;
  GroupConfig config_;
  std::chrono::steady_clock::time_point now_{};
  std::unique_ptr<transport::MemoryNetwork> net_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::map<MemberId, int> incarnations_;
};

ShardingConfig shards(std::uint32_t count, std::uint32_t min, std::uint32_t max) {
  ShardingConfig c;
  c.shards = count;
  c.min_per_shard = min;
  c.max_per_shard = max;
  return c;
}

// Every message of `sender` delivered once, in send order.
void expect_sender(const std::vector<Delivered>& log, MemberId sender, std::uint64_t sent) {
  std::uint64_t next = 0;
  for (const auto& d : log) {
    if (d.sender == sender) {
      EXPECT_EQ(d.seq, next++) << "sender " << sender;
    }
  }
  EXPECT_EQ(next, sent) << "sender " << sender;
}

}  // namespace

// Once: the source of two transfers to one joiner misses the joiner's final ack of the
// first when the joiner opens the second in its very next pass (both rows land before the
// source's next pass): the source stays on transfer 1 forever and never serves transfer 2.
TEST(MembershipFaults, SourceTakesTheJoinersNextTransferAsTheAckOfTheLast) {
  Group g(3, 1, /*subgroups=*/2);
  g.initial(2);
  g.start(0);
  g.start(1);
  g.advance(1100ms);  // 0 bootstraps {0,1}
  ASSERT_EQ(g.view_members(0), (std::vector<MemberId>{0, 1}));
  g.send_from_all(5, 0);
  g.send_from_all(5, 1);
  g.settle();
  g.start(2);
  // J runs a second pass right after restoring its first state, before anything lands at 0.
  bool again = false;
  g.set_after_restore(2, [&] { again = true; });
  for (int round = 0; round < 2000; ++round) {
    g.net().deliver_all();
    for (MemberId id : {0u, 1u, 2u}) {
      g.pass(id);
      if (id == 2 && again) {
        again = false;
        g.pass(2);  // opens the second transfer: ack_id moves on before 0 saw the final ack
      }
    }
  }
  EXPECT_EQ(g.restores(2), 2u) << "joiner 2 should have restored both subgroups' states";
  EXPECT_EQ(g.view_members(0).size(), 3u);
}

// Once: with sharding, a member that was removed (inadequate view in between) and comes
// back is counted as 'was here' because `before` is the last adequate layout, so it gets no
// state transfer. Here: a fresh process (empty state) re-enters its old shard.
TEST(MembershipFaults, ShardMemberThatRestartsAcrossAnInadequateViewGetsTheState) {
  Group g(4, 9, 1, shards(2, 2, 2));
  for (MemberId id = 0; id < 4; ++id) g.start(id);
  g.settle();
  ASSERT_EQ(g.view_members(0).size(), 4u);
  g.send_from_all(10);
  g.settle();
  const auto layout = g.member(0).view()->shards.at(0);
  const MemberId leaving = layout[1][0];
  const MemberId partner = layout[1][1];
  g.crash(leaving);
  for (MemberId p = 0; p < 4; ++p) {
    if (p != leaving) g.cut(leaving, p);
  }
  g.advance(1500ms);
  ASSERT_FALSE(g.member(partner).view()->adequate);
  std::vector<MemberId> peers;
  for (MemberId p = 0; p < 4; ++p) {
    if (p != leaving) peers.push_back(p);
  }
  g.restart(leaving, peers);  // fresh process: empty log
  g.advance(200ms);
  ASSERT_EQ(g.view_members(partner).size(), 4u);
  ASSERT_TRUE(g.member(partner).view()->adequate);
  g.send_from_all(2);
  g.settle();
  EXPECT_EQ(g.restores(leaving), 1u) << "the restarted member must get its shard's state";
  EXPECT_EQ(g.log(leaving), g.log(partner));
}

// Once: a sender removed by a view change (minority side) loses its messages beyond the
// ragged edge, but its later queued messages are sent after it rejoins: a gap in its FIFO
// stream that the survivors deliver.
TEST(MembershipFaults, RemovedSenderSendsItsCutOffMessagesAgainAfterRejoining) {
  int gaps = 0;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    Group g(5, seed);
    for (MemberId id = 0; id < 5; ++id) g.start(id);
    g.settle();
    g.send_from_all(10);
    g.scramble(120);
    for (MemberId a : {0u, 1u}) {
      for (MemberId b : {2u, 3u, 4u}) g.cut(a, b);
    }
    g.advance(1500ms);
    g.heal();
    g.advance(200ms);
    g.send_from_all(3);
    g.settle();
    std::vector<std::uint64_t> seqs;
    for (const auto& d : g.log(2)) {
      if (d.sender == 0) seqs.push_back(d.seq);
    }
    bool gap = false;
    for (std::size_t i = 0; i < seqs.size(); ++i) gap |= seqs[i] != i;
    if (gap) ++gaps;
  }
  EXPECT_EQ(gaps, 0);
}

// Once: bootstrap is not consensus. A live group {3,4} (a legitimate majority chain
// 5 -> 3 -> 2) and three restarted members that cannot reach it: member 0 bootstraps a second
// group, and both deliver.
TEST(MembershipFaults, RestartedMembersThatCannotReachTheGroupDoNotFoundASecondOne) {
  Group g(5, 3);
  for (MemberId id = 0; id < 5; ++id) g.start(id);
  g.settle();
  ASSERT_EQ(g.view_members(4).size(), 5u);
  for (MemberId a : {0u, 1u}) {
    g.crash(a);
    for (MemberId b = 0; b < 5; ++b) {
      if (a != b) g.cut(a, b);
    }
  }
  g.advance(1500ms);
  ASSERT_EQ(g.view_members(3), (std::vector<MemberId>{2, 3, 4}));
  g.crash(2);
  for (MemberId b = 0; b < 5; ++b) {
    if (b != 2) g.cut(2, b);
  }
  g.advance(1500ms);
  ASSERT_EQ(g.view_members(3), (std::vector<MemberId>{3, 4}));
  // 0, 1, 2 come back as new processes in a partition that cannot reach 3 and 4.
  g.restart(0, {});
  g.restart(1, {0});
  g.restart(2, {0, 1});
  g.advance(1500ms);
  g.send_from_all(3);
  g.settle();
  EXPECT_FALSE(g.member(0).view().has_value() && g.member(3).view().has_value())
      << "two disjoint groups both have installed views and deliver";
}

// Once: joiners count toward the view's size for the majority rule although, until their
// state has arrived, they cannot promise (follow() needs announced_). A group of three that
// admits two members and loses one old member during the transfer is left with 2 of 5.
TEST(MembershipFaults, TwoJoinersAndACrashDuringTheirTransferLeaveAWorkingMajority) {
  Group g(5, 5);
  g.initial(3);
  for (MemberId id = 0; id < 3; ++id) g.start(id);
  g.advance(1100ms);
  ASSERT_EQ(g.view_members(0), (std::vector<MemberId>{0, 1, 2}));
  for (int round = 0; round < 3; ++round) {
    g.send_from_all(60);
    g.settle();
  }
  g.start(3);
  g.start(4);
  for (int i = 0; i < 4000 && (g.view_members(3).empty() || g.view_members(4).empty()); ++i) g.scramble(1);
  ASSERT_EQ(g.view_members(3).size(), 5u);
  ASSERT_EQ(g.restores(3) + g.restores(4), 0u) << "transfers under way";
  g.crash(0);
  for (MemberId b : {1u, 2u, 3u, 4u}) g.cut(0, b);
  g.advance(5000ms);
  EXPECT_EQ(g.view_members(1), (std::vector<MemberId>{1, 2, 3, 4}));
}

// Once: one broken link between two members makes every member suspect both
// (suspicion spreads, the pair suspect each other), so a 3-member group loses 2 and stalls.
TEST(MembershipFaults, OneBrokenLinkInAGroupOfThreeCostsOnlyOneMember) {
  Group g(3, 2);
  for (MemberId id = 0; id < 3; ++id) g.start(id);
  g.settle();
  g.cut(0, 1);
  g.advance(3000ms);
  // Exactly one end of the broken link goes; the other and member 2 go on.
  const auto view = g.view_members(2);
  ASSERT_EQ(view.size(), 2u);
  const MemberId kept = view[0];
  ASSERT_TRUE(kept == 0 || kept == 1);
  EXPECT_EQ(g.view_members(kept), view);
  g.send_from_all(5);
  g.settle();
  EXPECT_EQ(g.log(kept), g.log(2));
  expect_sender(g.log(2), kept, g.sent_by(kept));
  expect_sender(g.log(2), 2, g.sent_by(2));
}

// Once: RegionLayout places the rings after an SST of only the multicast columns
// (bytes_needed(members, column) is computed before the membership and state-transfer columns
// are added), so with 9+ members the SST rows run into the first sender's ring.
TEST(MembershipFaults, SstRowsNeverOverlapTheRings) {
  for (std::size_t n : {8u, 9u, 16u, 40u}) {
    GroupConfig c;
    c.group_name = "x";
    c.transport = TransportKind::shm;
    std::vector<MemberId> ids;
    for (std::size_t i = 0; i < n; ++i) ids.push_back(static_cast<MemberId>(i));
    for (MemberId id : ids) c.members.push_back({id, "", 0});
    SubgroupConfig sg;
    sg.name = "sg";
    sg.members = ids;
    sg.senders = ids;
    sg.ring_bytes = 4096;
    sg.max_message_bytes = 256;
    c.subgroups.push_back(sg);
    const auto l = RegionLayout::compute(c);
    const std::size_t sst_end = l.sst_offset + sst::Sst::bytes_needed(n, l.sst_columns);
    EXPECT_LE(sst_end, l.subgroups[0].ring_offset) << n << " members";
  }
}

TEST(MembershipFaults, NineMembersDeliverIdentically) {
  Group g(9, 1);
  for (MemberId id = 0; id < 9; ++id) g.start(id);
  g.settle();
  ASSERT_EQ(g.view_members(0).size(), 9u);
  g.send_from_all(20);
  g.settle();
  for (MemberId id = 0; id < 9; ++id) {
  }
  for (MemberId id = 1; id < 9; ++id) EXPECT_EQ(g.log(id), g.log(0)) << id;
  EXPECT_EQ(g.log(0).size(), 9u * 20u);
}

// Once: a joiner that the leader can reach but others cannot is admitted, suspected, removed
// and admitted again, forever; every cycle wedges the group.
TEST(MembershipFaults, JoinerReachableOnlyFromTheLeaderWaitsWithoutChurn) {
  Group g(4, 3);
  g.initial(3);
  for (MemberId id = 0; id < 3; ++id) g.start(id);
  g.advance(1100ms);
  ASSERT_EQ(g.view_members(0).size(), 3u);
  g.start(3);
  g.cut(3, 1);
  g.cut(3, 2);
  const auto vid0 = g.vid(0);
  std::size_t before = g.log(1).size();
  for (int i = 0; i < 50; ++i) {
    g.send(1, 0, 2);
    g.advance(100ms);
  }
  EXPECT_LE(g.vid(0), vid0 + 2) << "no churn while the joiner cannot be reached by everyone";
  EXPECT_EQ(g.log(1).size() - before, 100u) << "the group goes on delivering meanwhile";
}
