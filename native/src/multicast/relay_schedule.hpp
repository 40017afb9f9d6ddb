#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace derecho::multicast {

// One block moving at one step of a block relay, seen from one end: to `peer` (a send) or from
// `peer` (a receive). Ranks: 0 is the object's sender, 1.. the other members in view order.
struct BlockTransfer {
  std::uint32_t step;
  std::uint32_t peer;
  std::uint32_t block;
};

// Who sends which block to whom, step by step, when rank 0 multicasts an object of `blocks`
// blocks to ranks 1..members-1 (docs/protocol-rdmc.md). A pure function of (members, blocks),
// so every member computes the same schedule. In each step every rank sends at most one block
// and receives at most one, and only forwards blocks it received in an earlier step. It is the
// binomial pipeline: ranks trade blocks along one hypercube dimension per step while the sender
// hands out a new block every step, so no single link carries the whole object to everyone;
// where the member count is no power of two, ranks without a partner in a step are matched
// greedily with ranks still free to send. Within a few steps of the lower bound up to 40 ranks.
class RelaySchedule {
 public:
  static RelaySchedule compute(std::size_t members, std::size_t blocks);

  std::size_t members() const { return sends_.size(); }
  std::size_t blocks() const { return blocks_; }
  std::uint32_t steps() const { return steps_; }
  // In step order.
  std::span<const BlockTransfer> sends(std::size_t rank) const { return sends_.at(rank); }
  std::span<const BlockTransfer> receives(std::size_t rank) const { return receives_.at(rank); }

  // The fewest steps any schedule can take: a rank receives one block per step, and the last
  // block needs ceil(log2 members) steps to reach everyone once the sender has let go of it.
  static std::uint32_t lower_bound(std::size_t members, std::size_t blocks);

 private:
  std::size_t blocks_ = 0;
  std::uint32_t steps_ = 0;
  std::vector<std::vector<BlockTransfer>> sends_;
  std::vector<std::vector<BlockTransfer>> receives_;
};

}  // namespace derecho::multicast
