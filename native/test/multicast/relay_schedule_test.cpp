#include "multicast/relay_schedule.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

using derecho::multicast::RelaySchedule;

namespace {

// Replays a schedule step by step and fails on anything a real relay could not do.
void expect_valid(const RelaySchedule& s, std::size_t members, std::size_t blocks) {
  const std::string where = std::to_string(members) + " members, " + std::to_string(blocks) + " blocks";
  std::vector<std::map<std::size_t, std::uint32_t>> got_at(members);  // block -> step it arrived
  for (std::size_t b = 0; b < blocks; ++b) got_at[0][b] = 0;
  std::map<std::pair<std::uint32_t, std::size_t>, int> sends_in_step, receives_in_step;
  std::size_t total = 0;
  for (std::size_t r = 0; r < members; ++r) {
    std::uint32_t last = 0;
    for (const auto& t : s.receives(r)) {
      ASSERT_GE(t.step, last) << where << ": receives of rank " << r << " out of step order";
      last = t.step;
      ASSERT_LT(t.block, blocks) << where;
      ASSERT_TRUE(got_at[r].emplace(t.block, t.step).second) << where << ": rank " << r << " gets block " << t.block << " twice";
      const int receiving = ++receives_in_step[std::pair{t.step, r}];
      ASSERT_EQ(receiving, 1) << where << ": rank " << r << " receives twice in step " << t.step;
      ++total;
    }
  }
  for (std::size_t r = 0; r < members; ++r) {
    std::uint32_t last = 0;
    for (const auto& t : s.sends(r)) {
      ASSERT_GE(t.step, last) << where;
      last = t.step;
      const int sending = ++sends_in_step[std::pair{t.step, r}];
      ASSERT_EQ(sending, 1) << where << ": rank " << r << " sends twice in step " << t.step;
      // Only what arrived in an earlier step can be forwarded (the sender holds everything).
      const auto held = got_at[r].find(t.block);
      ASSERT_TRUE(held != got_at[r].end()) << where << ": rank " << r << " forwards block " << t.block << " it never gets";
      if (r != 0) {
        ASSERT_LT(held->second, t.step) << where << ": rank " << r << " forwards block " << t.block << " too early";
      }
      // Every send is some receive, and the other way round.
      bool matched = false;
      for (const auto& in : s.receives(t.peer)) matched |= in.step == t.step && in.peer == r && in.block == t.block;
      ASSERT_TRUE(matched) << where << ": send without a receive";
    }
  }
  EXPECT_EQ(s.receives(0).size(), 0u) << where;
  for (std::size_t r = 1; r < members; ++r) EXPECT_EQ(got_at[r].size(), blocks) << where << ": rank " << r;
  EXPECT_EQ(total, (members - 1) * blocks) << where;
}

}  // namespace

TEST(RelaySchedule, EveryRankGetsEveryBlockOnceAndForwardsOnlyWhatItHas) {
  for (std::size_t members = 1; members <= 17; ++members) {
    for (std::size_t blocks : {1u, 2u, 3u, 5u, 8u, 13u, 64u, 100u}) {
      const auto s = RelaySchedule::compute(members, blocks);
      expect_valid(s, members, blocks);
    }
  }
}

// The point of the relay: close to one block per step at every rank whatever the group size,
// not (members - 1) blocks per step out of the sender's link.
TEST(RelaySchedule, TakesCloseToTheFewestStepsPossible) {
  for (std::size_t members = 2; members <= 16; ++members) {
    for (std::size_t blocks : {1u, 4u, 16u, 100u, 256u}) {
      const auto s = RelaySchedule::compute(members, blocks);
      const std::uint32_t bound = RelaySchedule::lower_bound(members, blocks);
      EXPECT_GE(s.steps(), bound) << members << " members, " << blocks << " blocks";
      EXPECT_LE(s.steps(), bound + 3) << members << " members, " << blocks << " blocks";
    }
  }
}

TEST(RelaySchedule, SenderPassesEachBlockOnBeforeRepeatingAny) {
  // While new blocks remain, the sender hands out a new one every step; a relay sends the rest.
  const auto s = RelaySchedule::compute(5, 40);
  const auto sends = s.sends(0);
  ASSERT_GE(sends.size(), 40u);
  for (std::uint32_t b = 0; b < 40; ++b) {
    EXPECT_EQ(sends[b].block, b);
    EXPECT_EQ(sends[b].step, b);
  }
  EXPECT_LE(sends.size(), 44u) << "the sender should not carry the relays' load";
}

TEST(RelaySchedule, RefusesWhatCannotBeScheduled) {
  EXPECT_THROW(RelaySchedule::compute(0, 4), std::invalid_argument);
  EXPECT_THROW(RelaySchedule::compute(3, 0), std::invalid_argument);
  EXPECT_EQ(RelaySchedule::compute(1, 4).steps(), 0u);
}
