// The in-process network the simulator and the state-machine tests run on: FIFO links whose
// writes land only when the test says so, links that break and come back, and members that are
// replaced by a new incarnation with a fresh region.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "transport/memory_network.hpp"

using namespace derecho;
using transport::MemoryNetwork;

namespace {

constexpr std::size_t kRegion = 2 * kRegionHeaderBytes;
constexpr std::size_t kAt = kRegionHeaderBytes + 64;

void put(transport::Transport& t, std::uint64_t value) { std::memcpy(t.region().data() + kAt, &value, sizeof value); }

std::uint64_t word_at(std::span<const std::byte> region) {
  std::uint64_t v;
  std::memcpy(&v, region.data() + kAt, sizeof v);
  return v;
}

bool all_zero(std::span<const std::byte> region) {
  return std::all_of(region.begin(), region.end(), [](std::byte b) { return b == std::byte{0}; });
}

}  // namespace

TEST(MemoryNetwork, WritesWaitOnTheirLinkUntilDelivered) {
  MemoryNetwork net({0, 1}, kRegion, 1);
  auto a = net.endpoint(0);
  auto b = net.endpoint(1);
  ASSERT_EQ(a->take_link_events().size(), 1u);  // the link's first session opens
  put(*a, 7);
  a->post_write(1, kAt, 8);
  put(*a, 8);
  a->post_write(1, kAt, 8);
  EXPECT_EQ(net.pending(0, 1), 2u);
  EXPECT_EQ(net.pending(1, 0), 0u);
  EXPECT_EQ(word_at(b->region()), 0u);
  ASSERT_TRUE(net.deliver_from(0, 1));
  EXPECT_EQ(word_at(net.region_of(1)), 7u);  // FIFO: the older write first
  ASSERT_TRUE(net.deliver_from(0, 1));
  EXPECT_EQ(word_at(net.region_of(1)), 8u);
  EXPECT_FALSE(net.deliver_from(0, 1));
}

TEST(MemoryNetwork, OneEndpointPerMemberAtATime) {
  MemoryNetwork net({0, 1}, kRegion, 1);
  auto a = net.endpoint(0);
  EXPECT_THROW(net.endpoint(0), std::logic_error);
  a.reset();
  EXPECT_NO_THROW(net.endpoint(0));
  EXPECT_THROW(net.endpoint(5), std::out_of_range);
}

TEST(MemoryNetwork, ResetMemberGivesANewIncarnationAFreshRegionAndCutsItsLinks) {
  MemoryNetwork net({0, 1, 2}, kRegion, 1);
  auto a = net.endpoint(0);
  auto b = net.endpoint(1);
  a->take_link_events();
  b->take_link_events();
  put(*a, 11);
  a->post_write(1, kAt, 8);
  ASSERT_TRUE(net.deliver_from(0, 1));
  put(*a, 12);
  a->post_write(1, kAt, 8);  // still in flight when 1 is replaced
  put(*b, 21);
  b->post_write(0, kAt, 8);  // in flight from the old incarnation
  EXPECT_THROW(net.reset_member(1), std::logic_error);  // its endpoint is still alive
  b.reset();
  net.reset_member(1);
  EXPECT_TRUE(all_zero(net.region_of(1)));
  EXPECT_EQ(net.pending(0, 1), 0u);
  EXPECT_EQ(net.pending(1, 0), 0u);
  EXPECT_FALSE(net.link_up_between(0, 1));
  EXPECT_FALSE(net.link_up_between(1, 0));
  EXPECT_FALSE(net.link_up_between(1, 2));
  // The peer hears that its link went down.
  const auto events = a->take_link_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].peer, 1u);
  EXPECT_FALSE(events[0].up);
  // The new incarnation starts with no events and no links; the test brings them back.
  auto b2 = net.endpoint(1);
  EXPECT_TRUE(b2->take_link_events().empty());
  net.restore_link(0, 1);
  net.restore_link(1, 0);
  put(*a, 13);
  a->post_write(1, kAt, 8);  // before 0's engine took the up event: dropped
  EXPECT_EQ(net.pending(0, 1), 0u);
  const auto up = a->take_link_events();
  ASSERT_EQ(up.size(), 1u);
  EXPECT_TRUE(up[0].up);
  a->post_write(1, kAt, 8);
  ASSERT_TRUE(net.deliver_from(0, 1));
  EXPECT_EQ(word_at(b2->region()), 13u);
  ASSERT_EQ(b2->take_link_events().size(), 1u);
  put(*b2, 22);
  b2->post_write(0, kAt, 8);
  ASSERT_TRUE(net.deliver_from(1, 0));
  EXPECT_EQ(word_at(a->region()), 22u);
}

TEST(MemoryNetwork, BreakingADownLinkCancelsARestoreAtTheNextPass) {
  MemoryNetwork net({0, 1}, kRegion, 1);
  auto a = net.endpoint(0);
  a->take_link_events();
  net.break_link(0, 1);
  net.restore_link_mid_pass(0, 1);
  net.break_link(0, 1);
  put(*a, 5);
  a->post_write(1, kAt, 8);  // would have restored the link
  EXPECT_FALSE(net.link_up_between(0, 1));
  net.restore_link_mid_pass(0, 1);
  a->post_write(1, kAt, 8);  // restores it in this "pass"; the write itself is dropped
  EXPECT_TRUE(net.link_up_between(0, 1));
  EXPECT_EQ(net.pending(0, 1), 0u);
}
