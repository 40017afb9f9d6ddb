#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "common/types.hpp"
#include "multicast/object_descriptor.hpp"
#include "multicast/relay_schedule.hpp"
#include "transport/transport.hpp"

namespace derecho::multicast {

// One large object's trip through the block relay, at one member (docs/protocol-rdmc.md).
//
// The object sits in the sender's area, at the same offset in every member's region. Following
// the relay schedule, a rank writes each block it is to pass on straight into the receiver's
// area, then raises its progress: the number of schedule steps (counted from `progress_base`,
// across this view's objects of this sender) whose sends it has posted. A rank knows a block has
// arrived when the rank that sends it has published progress past that step: writes to one peer
// land in order, so the block is there before the progress that announces it.
class ObjectTransfer {
 public:
  struct Setup {
    std::shared_ptr<const RelaySchedule> schedule;
    std::size_t rank = 0;          // ours; rank 0 is the object's sender
    std::vector<MemberId> ranks;   // the member at each rank
    std::size_t area_offset = 0;   // the sender's area
    ObjectDescriptor object;
    std::uint64_t progress_base = 0;
    std::uint64_t epoch = 0;  // the view: its blocks are fenced out once a receiver moved on
  };

  explicit ObjectTransfer(Setup setup);

  // Takes the blocks whose sending rank's progress (read_progress(rank)) announces them;
  // returns how many arrived.
  std::size_t take_arrivals(const std::function<std::uint64_t(std::size_t rank)>& read_progress);
  // Posts, in schedule order, the sends whose block is here, while the transport holds less
  // than `queue_limit` bytes for the receiver; after each one, `posted()` (which publishes
  // progress()). Returns how many were posted.
  std::size_t post_sends(transport::Transport& transport, std::size_t queue_limit, const std::function<void()>& posted);
  // Writes again every block already sent to `peer` (its link came back; writes may be lost).
  void repost_to(transport::Transport& transport, MemberId peer) const;

  bool complete() const { return arrived_ == schedule_->receives(rank_).size(); }
  std::uint64_t progress() const;
  // Progress once every step is done: the next object's base.
  std::uint64_t progress_end() const { return base_ + schedule_->steps(); }
  const ObjectDescriptor& object() const { return object_; }

 private:
  void post(transport::Transport& transport, const BlockTransfer& send) const;

  std::shared_ptr<const RelaySchedule> schedule_;
  std::size_t rank_;
  std::vector<MemberId> ranks_;
  std::size_t area_offset_;
  ObjectDescriptor object_;
  std::uint64_t base_;
  std::uint64_t epoch_;
  std::vector<bool> have_;
  std::size_t arrived_ = 0;
  // Per sending rank, our receives from it (indexes into the schedule's list), and how many of
  // them have arrived: a rank's progress only grows, so they arrive in this order.
  std::vector<std::vector<std::uint32_t>> from_rank_;
  std::vector<std::size_t> arrived_from_;
  std::size_t next_send_ = 0;
};

}  // namespace derecho::multicast
