#include "multicast/subgroup_multicast.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "multicast/view_counter.hpp"

namespace derecho::multicast {

SubgroupMulticast::SubgroupMulticast(std::uint32_t subgroup, const SubgroupConfig& config,
                                     const SubgroupPlacement& placement, sst::Sst& sst,
                                     transport::Transport& transport, DeliverySink& sink,
                                     std::size_t max_queued_bytes)
    : subgroup_(subgroup),
      config_(config),
      placement_(placement),
      sst_(sst),
      transport_(transport),
      sink_(sink),
      configured_sender_(std::find(config.senders.begin(), config.senders.end(), transport.self()) !=
                         config.senders.end()),
      col_sent_(placement.first_column),
      col_delivered_(placement.first_column + 1),
      col_received_(placement.first_column + 2),
      max_queued_bytes_(std::max<std::size_t>(max_queued_bytes, config.max_message_bytes + 4)) {}

void SubgroupMulticast::enter_view(const SubgroupView& view) {
  const MemberId self = transport_.self();
  view_ = view;
  in_view_ = std::find(view.members.begin(), view.members.end(), self) != view.members.end();
  open_ = false;
  wedged_ = false;
  const std::size_t n = view.sender_slots.size();
  order_ = RoundRobin(std::max<std::size_t>(n, 1));
  my_sender_.reset();
  writer_.reset();
  member_rows_.clear();
  sender_rows_.clear();
  peers_.clear();
  readers_.clear();
  for (MemberId m : view.members) {
    member_rows_.push_back(sst_.row_of(m));
    if (m != self) peers_.push_back(m);
  }
  auto region = transport_.region();
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t slot = view.sender_slots[k];
    const MemberId sender = config_.senders.at(slot);
    sender_rows_.push_back(sst_.row_of(sender));
    auto ring = region.subspan(ring_offset_of_slot(slot), placement_.ring_bytes);
    readers_.emplace_back(ring);
    if (sender == self) {
      my_sender_ = k;
      writer_.emplace(ring);
    }
  }
  received_by_me_.assign(n, 0);
  received_by_all_.assign(n, 0);
  app_messages_from_.assign(n, 0);
  delivered_ = 0;
  frontier_ = 0;
  nulls_needed_ = 0;
  write_count(col_sent_, 0);
  write_count(col_delivered_, 0);
  for (std::size_t slot = 0; slot < config_.senders.size(); ++slot) write_count(col_received_ + slot, 0);
}

bool SubgroupMulticast::step() {
  if (!in_view_ || wedged_ || sender_rows_.empty()) return false;
  bool fired = false;
  if (has_new_messages()) {
    receive();
    fired = true;
  }
  if (has_stable_messages()) {
    deliver();
    fired = true;
  }
  if (my_sender_ && open_) {
    if (can_send_queued()) {
      send_queued();
      fired = true;
    }
    if (must_send_nulls()) {
      send_nulls();
      fired = true;
    }
  }
  return fired;
}

std::uint64_t SubgroupMulticast::count(std::size_t row, std::size_t column) const {
  return count_in_view(sst_.read(row, column), view_.vid);
}

void SubgroupMulticast::write_count(std::size_t column, std::uint64_t value) {
  sst_.write_own(column, view_counter(view_.vid, value));
}

void SubgroupMulticast::check_sendable(std::size_t bytes, const std::string& what) const {
  if (!configured_sender_) {
    throw std::invalid_argument("member " + std::to_string(transport_.self()) + " is not a sender of subgroup '" +
                                config_.name + "'");
  }
  if (bytes > config_.max_message_bytes) {
    throw std::invalid_argument(what + " of " + std::to_string(bytes) + " bytes exceeds maxMessageBytes " +
                                std::to_string(config_.max_message_bytes) + " of subgroup '" + config_.name + "'");
  }
}

bool SubgroupMulticast::send(std::span<const std::byte> payload) {
  check_sendable(payload.size(), "message");
  const auto len = static_cast<std::uint32_t>(payload.size());
  std::lock_guard lock(queue_mutex_);
  if (!admit(payload.size() + 4)) return false;
  const std::size_t at = queue_.size();
  queue_.resize(at + 4 + payload.size());
  std::memcpy(queue_.data() + at, &len, 4);
  if (!payload.empty()) std::memcpy(queue_.data() + at + 4, payload.data(), payload.size());
  queued_bytes_.store(queue_.size(), std::memory_order_relaxed);
  ++queue_messages_;
  return true;
}

SubgroupMulticast::Queued SubgroupMulticast::send_packed(std::span<const std::byte> packed) {
  // The whole batch is checked before anything is queued, so a bad one is refused whole.
  std::vector<std::size_t> ends;
  for (std::size_t at = 0; at < packed.size();) {
    const std::string where = "packed message " + std::to_string(ends.size()) + " at byte " + std::to_string(at);
    if (packed.size() - at < 4) throw std::invalid_argument(where + ": truncated length prefix");
    std::uint32_t len;
    std::memcpy(&len, packed.data() + at, 4);
    check_sendable(len, where);
    if (packed.size() - at - 4 < len) {
      throw std::invalid_argument(where + ": claims " + std::to_string(len) + " bytes but only " +
                                  std::to_string(packed.size() - at - 4) + " remain");
    }
    at += 4 + len;
    ends.push_back(at);
  }
  if (ends.empty()) return {};
  std::lock_guard lock(queue_mutex_);
  // The longest prefix of whole messages that the queue takes, in one copy.
  std::size_t count = 0;
  while (count < ends.size() &&
         (queue_.size() + ends[count] <= max_queued_bytes_ || (queue_.empty() && count == 0))) {
    ++count;
  }
  if (count < ends.size()) refused_.store(true, std::memory_order_relaxed);
  if (count == 0) return {};
  queue_.insert(queue_.end(), packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(ends[count - 1]));
  queued_bytes_.store(queue_.size(), std::memory_order_relaxed);
  queue_messages_ += count;
  return {count, ends[count - 1]};
}

bool SubgroupMulticast::admit(std::size_t bytes) {
  if (!queue_.empty() && queue_.size() + bytes > max_queued_bytes_) {
    refused_.store(true, std::memory_order_relaxed);
    return false;
  }
  return true;
}

std::uint64_t SubgroupMulticast::min_over_members(std::size_t column) const {
  std::uint64_t v = std::numeric_limits<std::uint64_t>::max();
  for (std::size_t row : member_rows_) v = std::min(v, count(row, column));
  return v;
}

bool SubgroupMulticast::has_new_messages() const {
  for (std::size_t k = 0; k < sender_rows_.size(); ++k) {
    if (count(sender_rows_[k], col_sent_) > received_by_me_[k]) return true;
  }
  return false;
}

void SubgroupMulticast::receive() {
  // Everything that has arrived from every sender is taken in one pass.
  for (std::size_t k = 0; k < sender_rows_.size(); ++k) {
    const std::uint64_t sent = count(sender_rows_[k], col_sent_);
    if (sent > received_by_me_[k]) {
      received_by_me_[k] = sent;
      write_count(col_received_ + view_.sender_slots[k], sent);
    }
  }
}

std::uint64_t SubgroupMulticast::received_from_slot(std::size_t slot) const {
  for (std::size_t k = 0; k < view_.sender_slots.size(); ++k) {
    if (view_.sender_slots[k] == slot) return received_by_me_[k];
  }
  return 0;
}

bool SubgroupMulticast::has_stable_messages() {
  for (std::size_t k = 0; k < received_by_all_.size(); ++k) {
    received_by_all_[k] = min_over_members(col_received_ + view_.sender_slots[k]);
  }
  frontier_ = order_.stable_frontier(received_by_all_);
  return frontier_ > delivered_ && sink_.ready();
}

void SubgroupMulticast::deliver() { deliver_range(frontier_, {}); }

void SubgroupMulticast::deliver_range(std::uint64_t end, std::span<const std::uint64_t> limit) {
  batch_.clear();
  std::uint64_t bytes = 0;
  const std::size_t n = sender_rows_.size();
  for (std::uint64_t index = delivered_; index < end; ++index) {
    const std::size_t k = order_.sender_of(index);
    if (!limit.empty() && index / n >= limit[k]) continue;
    const RingReader::Message m = readers_[k].next();
    if (m.is_null) continue;
    batch_.push_back({index, app_messages_from_[k]++, subgroup_, config_.senders[view_.sender_slots[k]], m.payload,
                      view_.vid});
    bytes += m.payload.size();
  }
  if (!batch_.empty()) {
    sink_.deliver(batch_);
    delivery_batches_.fetch_add(1, std::memory_order_relaxed);
    delivered_messages_.fetch_add(batch_.size(), std::memory_order_relaxed);
    delivered_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  delivered_ = std::max(delivered_, end);
  write_count(col_delivered_, delivered_);
}

void SubgroupMulticast::deliver_to_edge(std::span<const std::uint64_t> edge) {
  if (!in_view_ || sender_rows_.empty()) return;
  const std::size_t n = sender_rows_.size();
  std::vector<std::uint64_t> limit(n);
  std::uint64_t end = delivered_;
  for (std::size_t k = 0; k < n; ++k) {
    limit[k] = edge[view_.sender_slots[k]];
    // The edge is a minimum over the survivors' final received counts, ours among them.
    if (limit[k] > received_by_me_[k]) {
      throw std::logic_error("ragged edge " + std::to_string(limit[k]) + " for sender " +
                             std::to_string(config_.senders[view_.sender_slots[k]]) + " is beyond what member " +
                             std::to_string(transport_.self()) + " received (" + std::to_string(received_by_me_[k]) +
                             ")");
    }
    if (limit[k] > 0) end = std::max(end, order_.index_of(k, limit[k] - 1) + 1);
  }
  // Everything delivered already is below the edge: normal delivery needs every member's
  // received count, the edge only the survivors'.
  deliver_range(end, limit);
}

std::uint64_t SubgroupMulticast::requeue_cut_off(std::span<const std::uint64_t> edge) {
  if (!in_view_ || !my_sender_) return 0;
  RingReader& mine = readers_[*my_sender_];
  const std::uint64_t my_edge = edge[view_.sender_slots[*my_sender_]];
  if (my_edge == kUnknownEdge) {
    std::uint64_t dropped = 0;
    while (mine.messages_read() < writer_->messages_written()) dropped += mine.next().is_null ? 0 : 1;
    return dropped;
  }
  // A member removed by the change has not delivered up to the edge: what lies below it is
  // delivered by the others, so it is skipped, not sent again.
  while (mine.messages_read() < my_edge) mine.next();
  std::vector<std::byte> again;
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
  while (mine.messages_read() < writer_->messages_written()) {
    const RingReader::Message m = mine.next();
    if (m.is_null) continue;
    const auto len = static_cast<std::uint32_t>(m.payload.size());
    const std::size_t at = again.size();
    again.resize(at + 4 + len);
    std::memcpy(again.data() + at, &len, 4);
    if (len) std::memcpy(again.data() + at + 4, m.payload.data(), len);
    ++messages;
    bytes += len;
  }
  if (messages == 0) return 0;
  again.insert(again.end(), staging_.begin() + static_cast<std::ptrdiff_t>(staging_pos_), staging_.end());
  staging_ = std::move(again);
  staging_pos_ = 0;
  staged_messages_.store(staged_messages_.load(std::memory_order_relaxed) + messages, std::memory_order_relaxed);
  staged_bytes_.store(staged_bytes_.load(std::memory_order_relaxed) + bytes, std::memory_order_relaxed);
  resent_.fetch_add(messages, std::memory_order_relaxed);
  return 0;
}

std::uint64_t SubgroupMulticast::drop_pending() {
  std::uint64_t dropped = 0;
  if (in_view_ && my_sender_) {
    RingReader& mine = readers_[*my_sender_];
    while (mine.messages_read() < writer_->messages_written()) dropped += mine.next().is_null ? 0 : 1;
  }
  for (std::size_t at = staging_pos_; at < staging_.size(); at += 4 + next_staged_length_at(at)) ++dropped;
  staging_.clear();
  staging_pos_ = 0;
  std::lock_guard lock(queue_mutex_);
  staged_messages_.store(0, std::memory_order_relaxed);
  staged_bytes_.store(0, std::memory_order_relaxed);
  for (std::size_t at = 0; at < queue_.size();) {
    std::uint32_t len;
    std::memcpy(&len, queue_.data() + at, 4);
    at += 4 + len;
    ++dropped;
  }
  queue_.clear();
  queue_messages_ = 0;
  queued_bytes_.store(0, std::memory_order_relaxed);
  return dropped;
}

void SubgroupMulticast::release_ring_space() {
  writer_->release_delivered(order_.messages_below(min_over_members(col_delivered_), *my_sender_));
}

void SubgroupMulticast::push_ring_writes() {
  const std::size_t my_ring = ring_offset_of_slot(view_.sender_slots[*my_sender_]);
  for (const RingRange& r : writer_->dirty()) {
    for (MemberId peer : peers_) transport_.post_write(peer, my_ring + r.offset, r.length);
  }
  writer_->clear_dirty();
  write_count(col_sent_, writer_->messages_written());
}

std::uint32_t SubgroupMulticast::next_staged_length_at(std::size_t at) const {
  std::uint32_t len;
  std::memcpy(&len, staging_.data() + at, 4);
  return len;
}

bool SubgroupMulticast::can_send_queued() {
  if (staging_pos_ >= staging_.size()) {
    if (queued_bytes_.load(std::memory_order_relaxed) == 0) return false;
    staging_.clear();
    staging_pos_ = 0;
    {
      std::lock_guard lock(queue_mutex_);
      std::swap(staging_, queue_);
      queued_bytes_.store(0, std::memory_order_relaxed);
      staged_messages_.store(queue_messages_, std::memory_order_relaxed);
      staged_bytes_.store(staging_.size() - 4 * queue_messages_, std::memory_order_relaxed);
      queue_messages_ = 0;
    }
    if (writable_ && refused_.exchange(false)) writable_();
  }
  release_ring_space();
  return writer_->can_append(next_staged_length_at(staging_pos_));
}

void SubgroupMulticast::send_queued() {
  std::uint64_t appended = 0;
  std::uint64_t bytes = 0;
  while (staging_pos_ < staging_.size()) {
    const std::uint32_t len = next_staged_length_at(staging_pos_);
    if (!writer_->append_message({staging_.data() + staging_pos_ + 4, len})) break;
    staging_pos_ += 4 + len;
    ++appended;
    bytes += len;
  }
  sent_.fetch_add(appended, std::memory_order_relaxed);
  staged_messages_.store(staged_messages_.load(std::memory_order_relaxed) - appended, std::memory_order_relaxed);
  staged_bytes_.store(staged_bytes_.load(std::memory_order_relaxed) - bytes, std::memory_order_relaxed);
  push_ring_writes();
}

bool SubgroupMulticast::must_send_nulls() {
  if (staging_pos_ < staging_.size() || queued_bytes_.load(std::memory_order_relaxed) != 0) return false;
  const std::uint64_t needed = order_.needed_to_unblock(*my_sender_, received_by_me_);
  if (needed <= writer_->messages_written()) return false;
  release_ring_space();
  nulls_needed_ = needed - writer_->messages_written();
  return writer_->can_append(0);
}

void SubgroupMulticast::send_nulls() {
  const auto count = static_cast<std::uint32_t>(std::min<std::uint64_t>(nulls_needed_, UINT32_MAX));
  writer_->append_nulls(count);
  nulls_sent_.fetch_add(count, std::memory_order_relaxed);
  push_ring_writes();
}

void SubgroupMulticast::on_link_up(MemberId peer) {
  if (!in_view_ || !my_sender_ || std::find(peers_.begin(), peers_.end(), peer) == peers_.end()) return;
  transport_.post_write(peer, ring_offset_of_slot(view_.sender_slots[*my_sender_]), placement_.ring_bytes);
}

SubgroupMulticast::Stats SubgroupMulticast::stats() const {
  std::lock_guard lock(queue_mutex_);
  return {sent_.load(),
          nulls_sent_.load(),
          delivered_messages_.load(),
          delivered_bytes_.load(),
          delivery_batches_.load(),
          resent_.load(),
          queue_messages_ + staged_messages_.load(std::memory_order_relaxed),
          queue_.size() - 4 * queue_messages_ + staged_bytes_.load(std::memory_order_relaxed)};
}

}  // namespace derecho::multicast
