// Whole members (transport + SST + predicate thread + multicast) over real shm and TCP, each
// with its own engine thread, all sending at once.
#include "member/member.hpp"

#include "../support/free_ports.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <chrono>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace derecho;
using namespace std::chrono_literals;

namespace {

struct Record {
  std::uint64_t index;
  std::uint64_t sender_seq;
  MemberId sender;
  std::uint64_t digest;
  bool operator==(const Record&) const = default;
};

std::uint64_t fnv(std::span<const std::byte> bytes) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::byte b : bytes) h = (h ^ static_cast<std::uint8_t>(b)) * 1099511628211ull;
  return h;
}

class LoggingSink final : public multicast::DeliverySink {
 public:
  bool ready() override { return true; }
  void deliver(std::span<const multicast::Delivery> batch) override {
    std::lock_guard lock(mutex);
    for (const auto& d : batch) log.push_back({d.index, d.sender_seq, d.sender, fnv(d.payload)});
    count.store(log.size());
  }
  std::mutex mutex;
  std::vector<Record> log;
  std::atomic<std::size_t> count{0};
};

GroupConfig group(TransportKind kind, std::size_t n, const std::string& tag) {
  static int runs = 0;
  GroupConfig c;
  c.group_name = "member-test-" + tag + "-" + std::to_string(getpid()) + "-" + std::to_string(runs++);
  c.transport = kind;
  SubgroupConfig sg;
  sg.name = "all";
  const auto ports = derecho::testing::free_ports(n);
  for (std::size_t i = 0; i < n; ++i) {
    c.members.push_back({static_cast<MemberId>(i), "127.0.0.1", ports[i]});
    sg.members.push_back(static_cast<MemberId>(i));
    sg.senders.push_back(static_cast<MemberId>(i));
  }
  sg.ring_bytes = 1u << 20;
  sg.max_message_bytes = 64u << 10;
  c.subgroups.push_back(sg);
  return c;
}

std::vector<std::byte> payload_for(MemberId sender, std::uint64_t seq, std::mt19937& rng) {
  // Sizes from 1 B to 64 KiB, mostly small.
  const std::size_t size = (rng() % 8 == 0) ? 1 + rng() % (64u << 10) : 1 + rng() % 512;
  std::vector<std::byte> p(size);
  for (std::size_t i = 0; i < size; ++i) p[i] = static_cast<std::byte>((sender * 31 + seq * 7 + i) & 0xff);
  return p;
}

void run_group(TransportKind kind, std::size_t n, std::size_t per_sender) {
  const auto config = group(kind, n, kind == TransportKind::tcp ? "tcp" : "shm");
  std::vector<std::unique_ptr<LoggingSink>> sinks;
  std::vector<std::unique_ptr<Member>> members;
  for (std::size_t i = 0; i < n; ++i) {
    sinks.push_back(std::make_unique<LoggingSink>());
    members.push_back(std::make_unique<Member>(config, static_cast<MemberId>(i), *sinks.back()));
  }
  std::vector<std::thread> starters;
  std::atomic<int> up{0};
  for (auto& m : members) starters.emplace_back([&, mp = m.get()] { up += mp->start(10s) ? 1 : 0; });
  for (auto& t : starters) t.join();
  ASSERT_EQ(up.load(), static_cast<int>(n));

  std::vector<std::thread> senders;
  for (std::size_t i = 0; i < n; ++i) {
    senders.emplace_back([&, i] {
      std::mt19937 rng(static_cast<unsigned>(i + 1));
      for (std::uint64_t seq = 0; seq < per_sender; ++seq) {
        const auto payload = payload_for(static_cast<MemberId>(i), seq, rng);
        while (!members[i]->send(0, payload)) std::this_thread::sleep_for(100us);
      }
    });
  }
  for (auto& t : senders) t.join();
  const std::size_t total = n * per_sender;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  for (auto& s : sinks) {
    while (s->count.load() < total && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(2ms);
  }
  for (auto& m : members) m->stop();
  ASSERT_EQ(sinks[0]->log.size(), total);
  for (std::size_t i = 1; i < n; ++i) ASSERT_EQ(sinks[i]->log, sinks[0]->log) << "member " << i;
  std::vector<std::uint64_t> next(n, 0);
  std::vector<std::mt19937> rngs;
  for (std::size_t i = 0; i < n; ++i) rngs.emplace_back(static_cast<unsigned>(i + 1));
  for (const auto& r : sinks[0]->log) {
    ASSERT_EQ(r.sender_seq, next[r.sender]);
    ASSERT_EQ(r.digest, fnv(payload_for(r.sender, next[r.sender], rngs[r.sender])));
    ++next[r.sender];
  }
}

}  // namespace

TEST(Member, ThreeMembersOverShmDeliverOneOrder) { run_group(TransportKind::shm, 3, 3000); }
TEST(Member, FiveMembersOverShmDeliverOneOrder) { run_group(TransportKind::shm, 5, 1500); }
TEST(Member, ThreeMembersOverTcpDeliverOneOrder) { run_group(TransportKind::tcp, 3, 3000); }
TEST(Member, FiveMembersOverTcpDeliverOneOrder) { run_group(TransportKind::tcp, 5, 1500); }

TEST(Member, InvalidConfigNamesTheField) {
  LoggingSink sink;
  auto c = group(TransportKind::shm, 3, "bad");
  c.subgroups[0].senders.push_back(9);
  try {
    Member m(c, 0, sink);
    FAIL() << "expected invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "subgroups[0].senders[3]: member 9 is not a member of the subgroup");
  }
  c = group(TransportKind::shm, 3, "bad");
  c.subgroups[0].ring_bytes = 1000;
  EXPECT_THROW(Member(c, 0, sink), std::invalid_argument);
  c = group(TransportKind::shm, 3, "bad");
  EXPECT_THROW(Member(c, 7, sink), std::out_of_range);
  c = group(TransportKind::shm, 3, "bad");
  c.group_name = "a.b";  // would share /dev/shm files with "a_b" if names were mangled
  try {
    Member m(c, 0, sink);
    FAIL() << "expected invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "group: may contain only letters, digits, '-' and '_', found '.'");
  }
}

TEST(Member, SendToUnknownSubgroupIsRefused) {
  LoggingSink sink;
  Member m(group(TransportKind::shm, 1, "one"), 0, sink);
  const std::vector<std::byte> p(4);
  EXPECT_THROW(m.send(3, p), std::invalid_argument);
}

TEST(Member, TcpMemberThatStopsIsRemovedAndItsRestartJoinsWithTheState) {
  // Real engines over TCP: member 2 stops (its sockets close, the others see the links go
  // down), a new incarnation of member 2 starts, joins, gets the state and delivers again.
  auto config = group(TransportKind::tcp, 3, "restart");
  struct Node {
    LoggingSink sink;
    std::unique_ptr<Member> member;
    std::atomic<int> restores{0};
  };
  std::vector<std::unique_ptr<Node>> nodes;
  const auto start = [&](MemberId id) {
    auto node = std::make_unique<Node>();
    node->member = std::make_unique<Member>(config, id, node->sink);
    node->member->on_snapshot([n = node.get()](std::uint32_t subgroup, std::uint64_t vid) {
      std::lock_guard lock(n->sink.mutex);
      std::vector<std::byte> state(n->sink.log.size() * sizeof(Record));
      if (!state.empty()) std::memcpy(state.data(), n->sink.log.data(), state.size());
      n->member->provide_snapshot(subgroup, vid, std::move(state));
    });
    node->member->on_restore([n = node.get()](std::uint32_t, std::uint64_t, std::span<const std::byte> state) {
      std::lock_guard lock(n->sink.mutex);
      n->sink.log.resize(state.size() / sizeof(Record));
      if (!state.empty()) std::memcpy(n->sink.log.data(), state.data(), state.size());
      n->sink.count.store(n->sink.log.size());
      ++n->restores;
    });
    return node;
  };
  for (MemberId id = 0; id < 3; ++id) nodes.push_back(start(id));
  std::vector<std::thread> starters;
  for (auto& n : nodes) starters.emplace_back([m = n->member.get()] { EXPECT_TRUE(m->start(10s)); });
  for (auto& t : starters) t.join();
  std::mt19937 rng(3);
  std::uint64_t sent = 0;
  const auto send_round = [&](std::initializer_list<MemberId> from) {
    for (int i = 0; i < 50; ++i) {
      for (MemberId id : from) {
        const auto p = payload_for(id, sent++, rng);
        while (!nodes[id]->member->send(0, p)) std::this_thread::sleep_for(100us);
      }
    }
  };
  send_round({0, 1, 2});
  nodes[2]->member->stop();
  ASSERT_TRUE(nodes[0]->member->wait_for_members(2, 10s));
  auto shrunk = nodes[0]->member->view();
  while (shrunk && shrunk->members.size() != 2) {
    std::this_thread::sleep_for(10ms);
    shrunk = nodes[0]->member->view();
  }
  ASSERT_EQ(shrunk->members, (std::vector<MemberId>{0, 1}));
  send_round({0, 1});
  nodes[2] = start(2);
  EXPECT_TRUE(nodes[2]->member->start(10s)) << "the restarted member is admitted into a view of all three";
  send_round({0, 1, 2});
  const auto quiet = [&] {
    for (int i = 0; i < 500; ++i) {
      const std::size_t c = nodes[0]->sink.count.load();
      std::this_thread::sleep_for(20ms);
      if (c == nodes[0]->sink.count.load() && c == nodes[1]->sink.count.load() && c == nodes[2]->sink.count.load()) return;
    }
  };
  quiet();
  EXPECT_EQ(nodes[2]->restores.load(), 1);
  for (auto& n : nodes) n->member->stop();
  // The restarted member's history (transferred, then its own deliveries) is the others'.
  EXPECT_EQ(nodes[1]->sink.log.size(), nodes[0]->sink.log.size());
  EXPECT_TRUE(nodes[1]->sink.log == nodes[0]->sink.log);
  EXPECT_TRUE(nodes[2]->sink.log == nodes[0]->sink.log);
}
