// The SST and its predicate thread over real shared-memory regions, with real threads.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "sst/predicate_thread.hpp"
#include "sst/sst.hpp"
#include "transport/shm_transport.hpp"

#include "../support/eventually.hpp"

using namespace derecho;
using namespace std::chrono_literals;
using derecho::testing::eventually;

namespace {

constexpr std::size_t kColumns = 4;
constexpr std::size_t kRegion = 8192;

GroupConfig shm_group(std::size_t n) {
  GroupConfig c;
  c.group_name = "sst-test-" + std::to_string(getpid());
  c.transport = TransportKind::shm;
  for (std::size_t i = 0; i < n; ++i) c.members.push_back({static_cast<MemberId>(i), "", 0});
  return c;
}

struct Node {
  std::unique_ptr<transport::Transport> transport;
  std::unique_ptr<sst::Sst> sst;
};

std::vector<Node> make_nodes(std::size_t n) {
  const auto config = shm_group(n);
  std::vector<MemberId> ids;
  for (const auto& m : config.members) ids.push_back(m.id);
  std::vector<Node> nodes;
  for (MemberId id : ids) {
    Node node;
    node.transport = transport::make_shm_transport({config, id, kRegion});
    nodes.push_back(std::move(node));
  }
  for (auto& node : nodes) {
    node.transport->start(2s);
    // Writes go out only once the engine has taken the link-up events (transport.hpp).
    EXPECT_EQ(node.transport->take_link_events().size(), n - 1);
    node.sst = std::make_unique<sst::Sst>(*node.transport, ids, kRegionHeaderBytes, kColumns);
  }
  return nodes;
}

}  // namespace

TEST(Sst, OwnRowWritesReachEveryPeerAfterPush) {
  auto nodes = make_nodes(3);
  nodes[1].sst->write_own(2, 42);
  EXPECT_EQ(nodes[0].sst->read(1, 2), 0u);  // not pushed yet
  nodes[1].sst->push();
  nodes[1].transport->flush();
  EXPECT_EQ(nodes[0].sst->read(1, 2), 42u);
  EXPECT_EQ(nodes[2].sst->read(1, 2), 42u);
  EXPECT_EQ(nodes[0].sst->read(0, 2), 0u);  // nobody else's row changed
}

TEST(Sst, RowsAreCacheLineAlignedAndSized) {
  EXPECT_EQ(sst::Sst::bytes_needed(3, 4), 3u * 64);
  EXPECT_EQ(sst::Sst::bytes_needed(2, 9), 2u * 128);
}

TEST(PredicateThread, TriggerFiresWhenAPeerRowChanges) {
  auto nodes = make_nodes(2);
  sst::PredicateThread thread(*nodes[0].transport, *nodes[0].sst, {});
  std::atomic<std::uint64_t> seen{0};
  thread.add("peer-counter", [&] { return nodes[0].sst->read(1, 1) > seen.load(); },
             [&] { seen.store(nodes[0].sst->read(1, 1)); });
  thread.start();
  for (std::uint64_t v = 1; v <= 50; ++v) {
    nodes[1].sst->write_own(1, v);
    nodes[1].sst->push();
    nodes[1].transport->flush();
  }
  EXPECT_TRUE(eventually([&] { return seen.load() == 50; }));
  thread.stop();
}

TEST(PredicateThread, IdleThreadSleepsInsteadOfSpinning) {
  auto nodes = make_nodes(2);
  sst::PredicateThread thread(*nodes[0].transport, *nodes[0].sst, {std::chrono::microseconds(50), 1s});
  std::atomic<int> fired{0};
  thread.add("peer-counter", [&] { return nodes[0].sst->read(1, 1) > static_cast<std::uint64_t>(fired.load()); },
             [&] { fired.fetch_add(1); });
  thread.start();
  ASSERT_TRUE(eventually([&] { return thread.stats().sleeps >= 1; }));
  const auto before = thread.stats();
  std::this_thread::sleep_for(300ms);
  const auto idle = thread.stats();
  // Asleep on the doorbell with a 1 s bound: a few passes at most, where a spinning loop would
  // have made millions.
  EXPECT_LT(idle.passes - before.passes, 100u);
  // A peer's write rings the doorbell and wakes it at once.
  nodes[1].sst->write_own(1, 1);
  nodes[1].sst->push();
  nodes[1].transport->flush();
  EXPECT_TRUE(eventually([&] { return fired.load() == 1; }, 500ms));
  thread.stop();
}

TEST(PredicateThread, RegistrationAfterStartIsRefused) {
  auto nodes = make_nodes(2);
  sst::PredicateThread thread(*nodes[0].transport, *nodes[0].sst, {});
  thread.start();
  EXPECT_THROW(thread.add("late", [] { return false; }, [] {}), std::logic_error);
  thread.stop();
}
