#include "multicast/object_transfer.hpp"

#include <stdexcept>
#include <string>

namespace derecho::multicast {

ObjectTransfer::ObjectTransfer(Setup setup)
    : schedule_(std::move(setup.schedule)),
      rank_(setup.rank),
      ranks_(std::move(setup.ranks)),
      area_offset_(setup.area_offset),
      object_(setup.object),
      base_(setup.progress_base),
      epoch_(setup.epoch),
      have_(static_cast<std::size_t>(object_.blocks()), rank_ == 0),
      from_rank_(ranks_.size()),
      arrived_from_(ranks_.size(), 0) {
  if (schedule_->members() != ranks_.size() || schedule_->blocks() != object_.blocks() || rank_ >= ranks_.size()) {
    throw std::logic_error("relay schedule for " + std::to_string(schedule_->members()) + " members and " +
                           std::to_string(schedule_->blocks()) + " blocks used for rank " + std::to_string(rank_) +
                           " of " + std::to_string(ranks_.size()) + " and " + std::to_string(object_.blocks()) +
                           " blocks");
  }
  const auto receives = schedule_->receives(rank_);
  for (std::uint32_t i = 0; i < receives.size(); ++i) from_rank_[receives[i].peer].push_back(i);
}

std::uint64_t ObjectTransfer::progress() const {
  const auto sends = schedule_->sends(rank_);
  return base_ + (next_send_ < sends.size() ? sends[next_send_].step : schedule_->steps());
}

std::size_t ObjectTransfer::take_arrivals(const std::function<std::uint64_t(std::size_t rank)>& read_progress) {
  const auto receives = schedule_->receives(rank_);
  const std::size_t before = arrived_;
  for (std::size_t from = 0; from < ranks_.size(); ++from) {
    const auto& mine = from_rank_[from];
    std::size_t& next = arrived_from_[from];
    if (next == mine.size()) continue;
    const std::uint64_t progress = read_progress(from);
    // Progress still below our base belongs to the sender's previous object.
    const std::uint64_t steps_done = progress > base_ ? progress - base_ : 0;
    while (next < mine.size() && receives[mine[next]].step < steps_done) {
      have_[receives[mine[next]].block] = true;
      ++next;
      ++arrived_;
    }
  }
  return arrived_ - before;
}

void ObjectTransfer::post(transport::Transport& transport, const BlockTransfer& send) const {
  transport.post_bulk_write(ranks_[send.peer], area_offset_ + std::size_t{send.block} * object_.block_bytes,
                            object_.block_length(send.block), epoch_);
}

std::size_t ObjectTransfer::post_sends(transport::Transport& transport, std::size_t queue_limit,
                                       const std::function<void()>& posted) {
  const auto sends = schedule_->sends(rank_);
  const std::size_t before = next_send_;
  while (next_send_ < sends.size()) {
    const BlockTransfer& send = sends[next_send_];
    if (!have_[send.block] || transport.queued_bytes(ranks_[send.peer]) >= queue_limit) break;
    post(transport, send);
    ++next_send_;
    posted();
  }
  return next_send_ - before;
}

// The peer may have had these blocks from the first sends already, and the object may be
// delivered everywhere and the area refilled before the repeats go out: they are copied now.
void ObjectTransfer::repost_to(transport::Transport& transport, MemberId peer) const {
  const auto sends = schedule_->sends(rank_);
  for (std::size_t i = 0; i < next_send_; ++i) {
    const BlockTransfer& send = sends[i];
    if (ranks_[send.peer] != peer) continue;
    transport.post_bulk_copy(peer, area_offset_ + std::size_t{send.block} * object_.block_bytes,
                             object_.block_length(send.block), epoch_);
  }
}

}  // namespace derecho::multicast
