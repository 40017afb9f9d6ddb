// The ordering protocol as a pure state machine: real Members share one in-process network whose
// writes are applied in a seeded random order, and each member's predicates run one pass at a
// time on the test thread. No sockets, no threads, every schedule replayable from its seed.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "member/member.hpp"
#include "member/region_layout.hpp"
#include "transport/memory_network.hpp"

using namespace derecho;

namespace {

struct Delivered {
  std::uint64_t index;
  std::uint64_t sender_seq;
  MemberId sender;
  std::string payload;
  bool operator==(const Delivered&) const = default;
};

class RecordingSink final : public multicast::DeliverySink {
 public:
  bool ready() override { return ready_; }
  void deliver(std::span<const multicast::Delivery> batch) override {
    ++batches;
    for (const auto& d : batch) {
      log.push_back({d.index, d.sender_seq, d.sender,
                     std::string(reinterpret_cast<const char*>(d.payload.data()), d.payload.size())});
    }
  }
  bool ready_ = true;
  std::size_t batches = 0;
  std::vector<Delivered> log;
};

struct SimMember {
  RecordingSink sink;
  std::unique_ptr<Member> member;
};

class Group {
 public:
  Group(std::size_t n, std::uint32_t ring_bytes, std::uint64_t seed, std::vector<MemberId> senders = {}) {
    std::vector<MemberId> ids;
    for (std::size_t i = 0; i < n; ++i) ids.push_back(static_cast<MemberId>(i));
    config_.group_name = "ordered-delivery";
    config_.transport = TransportKind::shm;
    // These tests break links on purpose to check the multicast's re-push under a fixed view.
    config_.suspect_on_link_down = false;
    for (MemberId id : ids) config_.members.push_back({id, "", 0});
    SubgroupConfig sg;
    sg.name = "sg";
    sg.members = ids;
    sg.senders = senders.empty() ? ids : senders;
    sg.ring_bytes = ring_bytes;
    sg.max_message_bytes = ring_bytes / 4 - 16;
    config_.subgroups.push_back(sg);
    net_ = std::make_unique<transport::MemoryNetwork>(ids, RegionLayout::compute(config_).region_bytes, seed);
    for (MemberId id : ids) {
      auto m = std::make_unique<SimMember>();
      Member::Options options;
      options.max_queued_bytes = 1u << 20;
      options.make_transport = [this, id](const transport::TransportOptions&) { return net_->endpoint(id); };
      options.clock = [this] { return now_; };  // frozen: no heartbeat ever times out here
      m->member = std::make_unique<Member>(config_, id, m->sink, options);
      members_.push_back(std::move(m));
    }
    // The members form one view (member 0 bootstraps it) before any test step.
    settle();
    for (auto& m : members_) {
      const auto view = m->member->view();
      if (!view || view->members.size() != n) ADD_FAILURE() << "member did not install the full view";
    }
  }

  SimMember& at(std::size_t i) { return *members_[i]; }
  transport::MemoryNetwork& net() { return *net_; }
  std::size_t size() const { return members_.size(); }

  // One random step: a predicate pass at a random member, or one write landing on a random link.
  void step() {
    auto& rng = net_->random();
    if (net_->pending() > 0 && rng() % 2 == 0) {
      net_->deliver_one();
    } else {
      members_[rng() % members_.size()]->member->run_once();
    }
  }

  // Runs passes and deliveries until nothing moves any more.
  void settle() {
    for (int round = 0; round < 100000; ++round) {
      bool moved = net_->pending() > 0;
      net_->deliver_all();
      for (auto& m : members_) moved |= m->member->run_once();
      if (!moved) return;
    }
    FAIL() << "group did not settle";
  }

 private:
  GroupConfig config_;
  std::chrono::steady_clock::time_point now_{};
  std::unique_ptr<transport::MemoryNetwork> net_;
  std::vector<std::unique_ptr<SimMember>> members_;
};

std::vector<std::byte> payload_for(MemberId sender, std::uint64_t seq, std::size_t size) {
  std::vector<std::byte> p(size);
  for (std::size_t i = 0; i < size; ++i) p[i] = static_cast<std::byte>((sender * 131 + seq * 7 + i) & 0xff);
  return p;
}

std::string as_string(const std::vector<std::byte>& b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

}  // namespace

TEST(OrderedDelivery, EveryMemberDeliversTheSameSequenceUnderRandomSchedules) {
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const std::size_t n = 2 + seed % 4;
    Group g(n, 1024, seed);
    std::mt19937_64 rng(seed * 977);
    std::vector<std::uint64_t> sent(n, 0);
    std::vector<std::size_t> quota(n);
    for (auto& q : quota) q = rng() % 60;  // some senders send nothing at all
    for (int s = 0; s < 4000; ++s) {
      const std::size_t who = rng() % n;
      if (sent[who] < quota[who] && rng() % 3 == 0) {
        const auto p = payload_for(static_cast<MemberId>(who), sent[who], rng() % 200);
        if (g.at(who).member->send(0, p)) ++sent[who];
      }
      g.step();
    }
    for (std::size_t who = 0; who < n; ++who) {
      while (sent[who] < quota[who]) {
        const auto p = payload_for(static_cast<MemberId>(who), sent[who], 17);
        if (g.at(who).member->send(0, p)) ++sent[who];
        g.settle();
      }
    }
    g.settle();
    std::uint64_t total = 0;
    for (auto s : sent) total += s;
    const auto& reference = g.at(0).sink.log;
    ASSERT_EQ(reference.size(), total);
    for (std::size_t m = 1; m < n; ++m) ASSERT_EQ(g.at(m).sink.log, reference) << "member " << m;
    std::vector<std::uint64_t> next_seq(n, 0);
    std::uint64_t last_index = 0;
    for (std::size_t i = 0; i < reference.size(); ++i) {
      const auto& d = reference[i];
      if (i > 0) {
        EXPECT_GT(d.index, last_index);
      }
      last_index = d.index;
      EXPECT_EQ(d.index % n, d.sender);  // round-robin slot of its sender
      ASSERT_EQ(d.sender_seq, next_seq[d.sender]++);  // nothing lost, nothing duplicated
    }
    for (std::size_t m = 0; m < n; ++m) EXPECT_EQ(next_seq[m], sent[m]);
  }
}

TEST(OrderedDelivery, IdleSendersFillTheirTurnsWithNulls) {
  Group g(3, 4096, 7);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(g.at(0).member->send(0, payload_for(0, i, 10)));
  g.settle();
  for (std::size_t m = 0; m < 3; ++m) ASSERT_EQ(g.at(m).sink.log.size(), 5u) << m;
  // Sender 0's 5th message has index 12; senders 1 and 2 each filled indices below it.
  EXPECT_EQ(g.at(0).sink.log.back().index, 12u);
  EXPECT_EQ(g.at(1).member->stats().nulls_sent, 4u);  // 1, 4, 7, 10
  EXPECT_EQ(g.at(2).member->stats().nulls_sent, 4u);  // 2, 5, 8, 11
  EXPECT_EQ(g.at(0).member->stats().nulls_sent, 0u);
}

TEST(OrderedDelivery, NothingIsDeliveredUntilEveryMemberHasReceivedIt) {
  Group g(3, 4096, 3, std::vector<MemberId>{0});
  ASSERT_TRUE(g.at(0).member->send(0, payload_for(0, 0, 10)));
  g.at(0).member->run_once();  // writes the message to 1 and 2, raises num_sent
  // Only member 1 gets it; member 2's link stays held.
  while (g.net().deliver_from(0, 1)) {
  }
  for (int i = 0; i < 5; ++i) {
    g.at(1).member->run_once();
    while (g.net().deliver_from(1, 0)) {
    }
    g.at(0).member->run_once();
  }
  EXPECT_TRUE(g.at(0).sink.log.empty());
  EXPECT_TRUE(g.at(1).sink.log.empty());
  g.settle();  // member 2 receives and reports: now it is stable everywhere
  for (std::size_t m = 0; m < 3; ++m) EXPECT_EQ(g.at(m).sink.log.size(), 1u) << m;
}

TEST(OrderedDelivery, SenderWaitsForTheSlowestMemberBeforeReusingItsRing) {
  Group g(2, 256, 5, std::vector<MemberId>{0});  // 256 B ring: four 64 B records at most
  const auto p = payload_for(0, 0, 40);
  int accepted = 0;
  while (accepted < 20 && g.at(0).member->send(0, p)) ++accepted;
  // Member 1 never runs: member 0 can fill its ring once, then must stop.
  for (int i = 0; i < 50; ++i) {
    g.at(0).member->run_once();
    while (g.net().deliver_from(0, 1)) {
    }
  }
  EXPECT_EQ(g.at(0).member->stats().sent, 4u);
  g.settle();
  EXPECT_EQ(g.at(0).member->stats().sent, static_cast<std::uint64_t>(accepted));
  EXPECT_EQ(g.at(1).sink.log.size(), static_cast<std::size_t>(accepted));
  for (const auto& d : g.at(1).sink.log) EXPECT_EQ(d.payload, as_string(p));
}

TEST(OrderedDelivery, ConsumerThatIsNotReadyHoldsDeliveryBack) {
  Group g(2, 4096, 9);
  g.at(1).sink.ready_ = false;
  ASSERT_TRUE(g.at(0).member->send(0, payload_for(0, 0, 10)));
  g.settle();
  EXPECT_EQ(g.at(0).sink.log.size(), 1u);
  EXPECT_TRUE(g.at(1).sink.log.empty());
  g.at(1).sink.ready_ = true;
  g.settle();
  EXPECT_EQ(g.at(1).sink.log.size(), 1u);
}

TEST(OrderedDelivery, ReceiversTakeEverythingThatArrivedInOneBatch) {
  Group g(2, 1 << 16, 11, std::vector<MemberId>{0});
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(g.at(0).member->send(0, payload_for(0, i, 8)));
  g.settle();
  EXPECT_EQ(g.at(1).sink.log.size(), 100u);
  EXPECT_LE(g.at(1).sink.batches, 2u);
}

TEST(OrderedDelivery, OversizedMessageIsRefusedWithAClearError) {
  Group g(2, 1024, 1);
  const std::vector<std::byte> big(2000);
  try {
    g.at(0).member->send(0, big);
    FAIL() << "expected invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("exceeds maxMessageBytes"), std::string::npos) << e.what();
  }
}

namespace {

std::vector<std::byte> packed(const std::vector<std::size_t>& sizes) {
  std::vector<std::byte> out;
  for (std::size_t size : sizes) {
    const auto len = static_cast<std::uint32_t>(size);
    const auto* p = reinterpret_cast<const std::byte*>(&len);
    out.insert(out.end(), p, p + 4);
    out.insert(out.end(), size, std::byte{7});
  }
  return out;
}

}  // namespace

TEST(OrderedDelivery, PackedBatchesQueueAPrefixAndRefuseBadInputWhole) {
  Group g(2, 1024, 2);
  auto& sender = *g.at(0).member;
  // A message over maxMessageBytes (240 here) anywhere in the batch: nothing is queued.
  EXPECT_THROW(sender.send_packed(0, packed({10, 10, 500})), std::invalid_argument);
  auto truncated = packed({10, 10});
  truncated.resize(truncated.size() - 3);
  EXPECT_THROW(sender.send_packed(0, truncated), std::invalid_argument);
  g.settle();
  EXPECT_TRUE(g.at(1).sink.log.empty());
  // A good batch is queued whole, in order.
  const auto q = sender.send_packed(0, packed({1, 2, 3}));
  EXPECT_EQ(q.messages, 3u);
  g.settle();
  ASSERT_EQ(g.at(1).sink.log.size(), 3u);
  EXPECT_EQ(g.at(1).sink.log[2].payload.size(), 3u);
}

TEST(OrderedDelivery, LinkThatComesBackMidPassDoesNotLetACounterOvertakeItsData) {
  // Sender 0's 256 B ring holds four 64 B records. Its link to member 1 breaks, messages go on
  // to member 2, and the link comes back in the middle of a pass, before the pass pushes the
  // SST row that announces ring bytes member 1 never got. That row must not reach member 1
  // before the re-push, or member 1 reads a stale ring slot.
  Group g(3, 256, 4, std::vector<MemberId>{0});
  std::uint64_t seq = 0;
  const auto send = [&] { ASSERT_TRUE(g.at(0).member->send(0, payload_for(0, seq, 40))); ++seq; };
  for (int i = 0; i < 4; ++i) send();
  g.settle();
  ASSERT_EQ(g.at(1).sink.log.size(), 4u);

  g.net().break_link(0, 1);
  send();
  g.at(0).member->run_once();
  while (g.net().deliver_from(0, 2)) {
  }
  g.at(2).member->run_once();  // member 2 reports it has received 5
  while (g.net().deliver_from(2, 0)) {
  }
  while (g.net().deliver_from(2, 1)) {
  }
  g.net().restore_link_mid_pass(0, 1);
  send();
  g.at(0).member->run_once();  // the link comes back during this pass
  while (g.net().deliver_from(0, 1)) {
  }
  g.at(1).member->run_once();
  g.at(1).member->run_once();
  g.settle();
  for (std::size_t m = 0; m < 3; ++m) {
    ASSERT_EQ(g.at(m).sink.log.size(), 6u) << "member " << m;
    for (std::uint64_t i = 0; i < 6; ++i) {
      EXPECT_EQ(g.at(m).sink.log[i].payload, as_string(payload_for(0, i, 40))) << "member " << m << " seq " << i;
    }
  }
}
