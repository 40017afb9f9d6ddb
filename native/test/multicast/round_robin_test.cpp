#include "multicast/round_robin.hpp"

#include <gtest/gtest.h>

#include <vector>

using derecho::multicast::RoundRobin;

TEST(RoundRobin, IndexesInterleaveSenders) {
  RoundRobin rr(3);
  EXPECT_EQ(rr.index_of(0, 0), 0u);
  EXPECT_EQ(rr.index_of(2, 0), 2u);
  EXPECT_EQ(rr.index_of(1, 4), 13u);
  EXPECT_EQ(rr.sender_of(13), 1u);
}

TEST(RoundRobin, MessagesBelowFrontier) {
  RoundRobin rr(3);
  EXPECT_EQ(rr.messages_below(0, 0), 0u);
  EXPECT_EQ(rr.messages_below(1, 0), 1u);
  EXPECT_EQ(rr.messages_below(1, 1), 0u);
  EXPECT_EQ(rr.messages_below(7, 0), 3u);  // indices 0, 3, 6
  EXPECT_EQ(rr.messages_below(7, 1), 2u);  // 1, 4
  EXPECT_EQ(rr.messages_below(7, 2), 2u);  // 2, 5
}

TEST(RoundRobin, StableFrontierStopsAtFirstMissingMessage) {
  RoundRobin rr(3);
  // Everyone has 2 from sender 0, 2 from sender 1, 1 from sender 2: indices 0..4 are stable,
  // index 5 (sender 2's second) is missing.
  std::vector<std::uint64_t> received{2, 2, 1};
  EXPECT_EQ(rr.stable_frontier(received), 5u);
  received = {0, 5, 5};
  EXPECT_EQ(rr.stable_frontier(received), 0u);
  received = {3, 3, 3};
  EXPECT_EQ(rr.stable_frontier(received), 9u);
}

TEST(RoundRobin, IdleSenderNeedsNullsUpToHighestIndexSeen) {
  RoundRobin rr(3);
  // Sender 0 sent 4 (last index 9); sender 1 must reach index > 9: seqs 0..3 -> 4 messages.
  std::vector<std::uint64_t> received{4, 0, 0};
  EXPECT_EQ(rr.needed_to_unblock(1, received), 3u);  // indices 1, 4, 7 < 9; 10 is not needed
  EXPECT_EQ(rr.needed_to_unblock(2, received), 3u);  // 2, 5, 8
  // A sender never needs nulls for its own messages or for indices below its own next one.
  received = {1, 0, 0};
  EXPECT_EQ(rr.needed_to_unblock(0, received), 0u);
  EXPECT_EQ(rr.needed_to_unblock(1, received), 0u);
  // Nulls do not breed nulls: after 1 and 2 filled indices up to 8, sender 0 (4 sent, last
  // index 9) needs only 3, which it already has.
  received = {4, 3, 3};
  EXPECT_EQ(rr.needed_to_unblock(0, received), 3u);
}
