#include "member/state_transfer.hpp"

#include <algorithm>
#include <cstring>

namespace derecho {
namespace {

constexpr std::uint64_t chunk_word(std::uint64_t index, bool last, std::uint64_t length) {
  return ((index + 1) << 33) | (std::uint64_t{last} << 32) | length;
}

}  // namespace

StateTransfer::StateTransfer(sst::Sst& sst, transport::Transport& transport, Columns columns, Buffer buffer)
    : sst_(sst), transport_(transport), cols_(columns), buffer_(buffer) {}

std::uint64_t StateTransfer::transfer_id(std::uint64_t vid, std::uint32_t subgroup, std::size_t joiner_row) {
  return (vid << 24) | (std::uint64_t{subgroup & 0xffff} << 8) | (joiner_row + 1);
}

void StateTransfer::begin_view(std::uint64_t vid, std::vector<Send> sends, std::vector<Receive> receives) {
  vid_ = vid;
  sends_ = std::move(sends);
  receives_ = std::move(receives);
  incoming_.clear();
  next_incoming_ = 0;
  chunk_ = 0;
  sending_ = false;
  outgoing_.clear();
  opened_ = false;
  sst_.write_own(cols_.out_id, 0);
  sst_.write_own(cols_.ack_id, 0);
  std::vector<std::uint32_t> wanted;
  for (const auto& s : sends_) {
    if (std::find(wanted.begin(), wanted.end(), s.subgroup) == wanted.end()) wanted.push_back(s.subgroup);
  }
  {
    std::lock_guard lock(snapshots_mutex_);
    snapshots_vid_ = vid;
    snapshots_.clear();
    for (std::uint32_t s : wanted) snapshots_[s].reset();
  }
  for (std::uint32_t s : wanted) {
    if (request_) {
      request_(s, vid);
    } else {
      provide_snapshot(s, vid, {});
    }
  }
}

void StateTransfer::provide_snapshot(std::uint32_t subgroup, std::uint64_t vid, std::vector<std::byte> state) {
  std::lock_guard lock(snapshots_mutex_);
  if (vid != snapshots_vid_ || !snapshots_.contains(subgroup)) return;
  snapshots_[subgroup] = std::move(state);
  transport_.doorbell().ring();
}

bool StateTransfer::step() {
  bool fired = step_receive();
  fired |= step_send();
  return fired;
}

bool StateTransfer::step_send() {
  if (sends_.empty()) return false;
  if (!sending_) {
    // Serve whichever joiner has opened a transfer from us: a joiner takes its states one at a
    // time, in its own order.
    for (std::size_t i = 0; i < sends_.size(); ++i) {
      const std::size_t row = sst_.row_of(sends_[i].joiner);
      if (sst_.read(row, cols_.ack_id) != transfer_id(vid_, sends_[i].subgroup, row)) continue;
      std::lock_guard lock(snapshots_mutex_);
      const auto& snapshot = snapshots_[sends_[i].subgroup];
      if (!snapshot) continue;  // the application has not answered yet
      // The transfer sends this copy to its end, whatever happens to the map meanwhile.
      outgoing_ = *snapshot;
      std::rotate(sends_.begin(), sends_.begin() + static_cast<std::ptrdiff_t>(i), sends_.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      sending_ = true;
      chunk_ = 0;
      break;
    }
    if (!sending_) return false;
  }
  const Send& current = sends_.front();
  const std::size_t row = sst_.row_of(current.joiner);
  const std::uint64_t id = transfer_id(vid_, current.subgroup, row);
  const std::vector<std::byte>& state = outgoing_;
  const std::uint64_t chunks = std::max<std::uint64_t>(1, (state.size() + buffer_.bytes - 1) / buffer_.bytes);
  if (chunk_ > 0) {
    const std::uint64_t acked_id = sst_.read(row, cols_.ack_id);
    // After the last chunk the joiner may open its next transfer before we see its final ack:
    // its moving on is the ack.
    const bool finished = chunk_ == chunks && (acked_id != id || sst_.read(row, cols_.ack_chunk) >= chunk_);
    if (finished) {
      sends_.erase(sends_.begin());
      sending_ = false;
      outgoing_.clear();
      return true;
    }
    if (acked_id != id || sst_.read(row, cols_.ack_chunk) < chunk_) return false;
  }
  post_chunk(id, state, chunks);
  return true;
}

void StateTransfer::post_chunk(std::uint64_t id, const std::vector<std::byte>& state, std::uint64_t chunks) {
  const MemberId joiner = sends_.front().joiner;
  const std::size_t at = chunk_ * buffer_.bytes;
  const std::size_t length = std::min(buffer_.bytes, state.size() - at);
  const std::uint64_t word = chunk_word(chunk_, chunk_ + 1 == chunks, length);
  std::byte* area = area_of(sst_.my_row());
  std::memcpy(area, &id, 8);
  std::memcpy(area + 8, &word, 8);
  if (length > 0) std::memcpy(area + kChunkHeaderBytes, state.data() + at, length);
  transport_.post_write(joiner, static_cast<std::size_t>(area - transport_.region().data()), kChunkHeaderBytes + length);
  // Pushed with the SST row after the chunk, so the joiner sees the announcement after the bytes.
  sst_.write_own(cols_.out_id, id);
  sst_.write_own(cols_.out_chunk, word);
  ++chunk_;
}

bool StateTransfer::step_receive() {
  if (receives_.empty()) return false;
  const Receive& current = receives_.front();
  const std::uint64_t id = transfer_id(vid_, current.subgroup, sst_.my_row());
  if (!opened_) {
    sst_.write_own(cols_.ack_id, id);
    sst_.write_own(cols_.ack_chunk, 0);
    opened_ = true;
    return true;
  }
  const std::size_t source = sst_.row_of(current.source);
  if (sst_.read(source, cols_.out_id) != id) return false;
  const std::uint64_t word = sst_.read(source, cols_.out_chunk);
  if ((word >> 33) != next_incoming_ + 1) return false;
  // The chunk names its transfer and index: bytes a source of another view or another transfer
  // left in this area are never taken for this one.
  const std::byte* area = area_of(source);
  std::uint64_t header_id, header_word;
  std::memcpy(&header_id, area, 8);
  std::memcpy(&header_word, area + 8, 8);
  if (header_id != id || header_word != word) return false;
  const std::size_t length = word & 0xffffffffu;
  const bool last = (word >> 32) & 1;
  incoming_.insert(incoming_.end(), area + kChunkHeaderBytes, area + kChunkHeaderBytes + length);
  ++next_incoming_;
  sst_.write_own(cols_.ack_chunk, next_incoming_);
  if (last) {
    if (restore_) restore_(current.subgroup, vid_, incoming_);
    receives_.erase(receives_.begin());
    incoming_.clear();
    next_incoming_ = 0;
    opened_ = false;
  }
  return true;
}

void StateTransfer::on_link_up(MemberId peer) {
  // A chunk posted while the link was down was lost; the announcement in our row is re-pushed
  // after this, so the bytes must go again first.
  if (!sending_ || chunk_ == 0 || sends_.front().joiner != peer) return;
  std::lock_guard lock(snapshots_mutex_);
  const std::vector<std::byte>& state = *snapshots_[sends_.front().subgroup];
  const std::size_t length = std::min(buffer_.bytes, state.size() - (chunk_ - 1) * buffer_.bytes);
  const std::byte* area = area_of(sst_.my_row());
  transport_.post_write(peer, static_cast<std::size_t>(area - transport_.region().data()), kChunkHeaderBytes + length);
}

void StateTransfer::abandon() {
  sends_.clear();
  receives_.clear();
  incoming_.clear();
  next_incoming_ = 0;
  sending_ = false;
  opened_ = false;
  chunk_ = 0;
  outgoing_.clear();
  sst_.write_own(cols_.out_id, 0);
  sst_.write_own(cols_.ack_id, 0);
  std::lock_guard lock(snapshots_mutex_);
  snapshots_.clear();
}

}  // namespace derecho
