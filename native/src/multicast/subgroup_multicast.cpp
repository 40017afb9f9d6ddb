#include "multicast/subgroup_multicast.hpp"

#include <algorithm>
#include <array>
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
      col_progress_(placement.first_column + 2 + config.senders.size()),
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
  objects_.clear();
  own_object_index_.reset();
  if (takes_objects()) {
    // Blocks relayed in earlier views must not land in areas this view reuses.
    transport_.fence_bulk_below(view.vid);
    for (std::size_t k = 0; k < n; ++k) objects_.emplace_back(region.subspan(ring_offset_of_slot(view.sender_slots[k]), placement_.ring_bytes));
    for (std::size_t slot = 0; slot < config_.senders.size(); ++slot) write_count(col_progress_ + slot, 0);
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
  if (!objects_.empty() && relay_objects()) fired = true;
  if (has_new_messages()) {
    receive();
    fired = true;
  }
  if (has_stable_messages()) {
    deliver();
    fired = true;
  }
  if (my_sender_ && open_) {
    if (own_object_index_ && own_object_delivered()) fired = true;
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
  if (takes_objects() && payload.size() > config_.large_objects->threshold_bytes) {
    // The object's one copy on the way in.
    return send_object(payload.size(), [&](std::span<std::byte> area) { std::memcpy(area.data(), payload.data(), payload.size()); });
  }
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
    if (takes_objects() && len > config_.large_objects->threshold_bytes) {
      throw std::invalid_argument(where + ": " + std::to_string(len) + " bytes is a large object in subgroup '" +
                                  config_.name + "' (above thresholdBytes " +
                                  std::to_string(config_.large_objects->threshold_bytes) +
                                  "): send objects one at a time");
    }
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

bool SubgroupMulticast::send_object(std::size_t bytes, const std::function<void(std::span<std::byte>)>& fill) {
  if (!takes_objects()) {
    throw std::invalid_argument("subgroup '" + config_.name + "' takes no large objects (no largeObjects in its config)");
  }
  const LargeObjectConfig& large = *config_.large_objects;
  if (!configured_sender_) check_sendable(0, "object");
  if (bytes <= large.threshold_bytes || bytes > large.max_object_bytes) {
    throw std::invalid_argument("an object of subgroup '" + config_.name + "' has " +
                                std::to_string(large.threshold_bytes + 1) + ".." + std::to_string(large.max_object_bytes) +
                                " bytes (thresholdBytes + 1 .. maxObjectBytes), got " + std::to_string(bytes));
  }
  {
    std::lock_guard lock(queue_mutex_);
    if (own_object_busy_.load(std::memory_order_relaxed)) {
      refused_.store(true, std::memory_order_relaxed);
      return false;
    }
    own_object_busy_.store(true, std::memory_order_relaxed);
    filling_ = true;
  }
  // Our area is ours alone while no object of ours is in flight: it is filled without the lock,
  // and the relay reads the blocks from there.
  const std::size_t slot = static_cast<std::size_t>(
      std::find(config_.senders.begin(), config_.senders.end(), transport_.self()) - config_.senders.begin());
  try {
    fill(transport_.region().subspan(object_area_of_slot(slot), bytes));
  } catch (...) {
    std::lock_guard lock(queue_mutex_);
    filling_ = false;
    own_object_busy_.store(false, std::memory_order_release);
    throw;
  }
  std::array<std::byte, ObjectDescriptor::kBytes> descriptor;
  ObjectDescriptor{bytes, large.block_bytes}.encode(descriptor);
  const std::uint32_t entry = static_cast<std::uint32_t>(descriptor.size()) | kObjectEntry;
  std::lock_guard lock(queue_mutex_);
  filling_ = false;
  const std::size_t at = queue_.size();
  queue_.resize(at + 4 + descriptor.size());
  std::memcpy(queue_.data() + at, &entry, 4);
  std::memcpy(queue_.data() + at + 4, descriptor.data(), descriptor.size());
  queued_bytes_.store(queue_.size(), std::memory_order_relaxed);
  ++queue_messages_;
  return true;
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
    const std::uint64_t sent = count(sender_rows_[k], col_sent_);
    if (objects_.empty()) {
      if (sent > received_by_me_[k]) return true;
      continue;
    }
    const SenderObjects& o = objects_[k];
    // Held at an object still on its way: only its arrival is news.
    if (o.message && *o.message == received_by_me_[k]) {
      if (o.transfer->complete()) return true;
      continue;
    }
    if (sent > o.scanner.messages_read()) return true;
  }
  return false;
}

void SubgroupMulticast::receive() {
  // Everything that has arrived from every sender is taken in one pass.
  for (std::size_t k = 0; k < sender_rows_.size(); ++k) {
    const std::uint64_t sent = count(sender_rows_[k], col_sent_);
    const std::uint64_t got = objects_.empty() ? sent : receive_from(k, sent);
    if (got > received_by_me_[k]) {
      received_by_me_[k] = got;
      write_count(col_received_ + view_.sender_slots[k], got);
    }
  }
}

// How many of sender k's messages are here: all it published, up to the first object that has
// not wholly arrived. Object records found on the way start their relay.
std::uint64_t SubgroupMulticast::receive_from(std::size_t k, std::uint64_t sent) {
  SenderObjects& o = objects_[k];
  std::uint64_t received = received_by_me_[k];
  for (;;) {
    if (o.message && *o.message == received) {
      if (!o.transfer->complete()) break;
      ++received;
      continue;
    }
    if (o.scanner.messages_read() >= sent) break;
    const RingReader::Message m = o.scanner.next();
    if (m.is_object) {
      start_object(k, received, m.payload);
      continue;
    }
    ++received;
  }
  return received;
}

std::shared_ptr<const RelaySchedule> SubgroupMulticast::schedule_for(std::size_t members, std::uint64_t blocks) {
  const auto key = std::pair{members, blocks};
  if (const auto it = schedules_.find(key); it != schedules_.end()) return it->second;
  // Objects of a few sizes are the common case; a long tail of sizes is not kept.
  if (schedules_.size() >= 16) schedules_.clear();
  auto schedule = std::make_shared<const RelaySchedule>(RelaySchedule::compute(members, static_cast<std::size_t>(blocks)));
  schedules_.emplace(key, schedule);
  return schedule;
}

void SubgroupMulticast::start_object(std::size_t k, std::uint64_t message, std::span<const std::byte> descriptor) {
  SenderObjects& o = objects_[k];
  const MemberId sender = config_.senders[view_.sender_slots[k]];
  if (o.message) {
    // A sender starts an object only once every member delivered its previous one, us included.
    throw std::runtime_error("member " + std::to_string(sender) + " sent object " + std::to_string(message) +
                             " of subgroup '" + config_.name + "' while its object " + std::to_string(*o.message) +
                             " was still on its way here");
  }
  const ObjectDescriptor object = ObjectDescriptor::decode(descriptor, config_.large_objects->max_object_bytes);
  // The sender is rank 0, the other members follow in view order.
  std::vector<MemberId> ranks{sender};
  for (MemberId m : view_.members) {
    if (m != sender) ranks.push_back(m);
  }
  o.rank_rows.clear();
  for (MemberId m : ranks) o.rank_rows.push_back(sst_.row_of(m));
  const auto rank = static_cast<std::size_t>(std::find(ranks.begin(), ranks.end(), transport_.self()) - ranks.begin());
  o.message = message;
  o.transfer.emplace(ObjectTransfer::Setup{schedule_for(ranks.size(), object.blocks()), rank, std::move(ranks),
                                           object_area_of_slot(view_.sender_slots[k]), object, o.progress_base,
                                           view_.vid});
  write_count(col_progress_ + view_.sender_slots[k], o.transfer->progress());
}

bool SubgroupMulticast::relay_objects() {
  bool moved = false;
  for (std::size_t k = 0; k < objects_.size(); ++k) {
    SenderObjects& o = objects_[k];
    if (!o.transfer) continue;
    ObjectTransfer& t = *o.transfer;
    const std::size_t column = col_progress_ + view_.sender_slots[k];
    const std::size_t arrived = t.take_arrivals([&](std::size_t rank) { return count(o.rank_rows[rank], column); });
    // Progress goes out after every block, so the receiver can pass it on while we go on.
    const std::size_t sent = t.post_sends(transport_, kRelayQueueBlocks * t.object().block_bytes, [&] {
      write_count(column, t.progress());
      sst_.push();
      transport_.flush();
    });
    object_blocks_received_.fetch_add(arrived, std::memory_order_relaxed);
    object_blocks_sent_.fetch_add(sent, std::memory_order_relaxed);
    moved |= arrived > 0 || sent > 0;
  }
  return moved;
}

// Once we delivered sender k's object, every member has it whole (that is what made it
// stable, or what put it below the ragged edge), so nobody needs our part of the relay.
void SubgroupMulticast::finish_object(std::size_t k) {
  SenderObjects& o = objects_[k];
  o.progress_base = o.transfer->progress_end();
  write_count(col_progress_ + view_.sender_slots[k], o.progress_base);
  o.transfer.reset();
  o.message.reset();
}

bool SubgroupMulticast::own_object_delivered() {
  if (min_over_members(col_delivered_) <= *own_object_index_) return false;
  free_own_object();
  return true;
}

void SubgroupMulticast::free_own_object() {
  own_object_index_.reset();
  bool was_refused = false;
  {
    // Under the lock send_object refuses under: a refusal is either seen here or sees the area free.
    std::lock_guard lock(queue_mutex_);
    own_object_busy_.store(false, std::memory_order_release);
    was_refused = refused_.exchange(false);
  }
  if (writable_ && was_refused) writable_();
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
  objects_delivered_.clear();
  std::uint64_t bytes = 0;
  const std::size_t n = sender_rows_.size();
  for (std::uint64_t index = delivered_; index < end; ++index) {
    const std::size_t k = order_.sender_of(index);
    if (!limit.empty() && index / n >= limit[k]) continue;
    const RingReader::Message m = readers_[k].next();
    if (m.is_null) continue;
    std::span<const std::byte> payload = m.payload;
    if (m.is_object) {
      // Received means the whole object is in the sender's area here: it is delivered from there.
      const SenderObjects* o = objects_.empty() ? nullptr : &objects_[k];
      if (!o || !o->message || *o->message != index / n) {
        throw std::logic_error("delivering object " + std::to_string(index / n) + " of member " +
                               std::to_string(config_.senders[view_.sender_slots[k]]) + " in subgroup '" +
                               config_.name + "' that was never relayed here");
      }
      payload = transport_.region().subspan(object_area_of_slot(view_.sender_slots[k]), o->transfer->object().bytes);
      objects_delivered_.push_back(k);
    }
    batch_.push_back({index, app_messages_from_[k]++, subgroup_, config_.senders[view_.sender_slots[k]], payload,
                      view_.vid});
    bytes += payload.size();
  }
  if (!batch_.empty()) {
    sink_.deliver(batch_);
    delivery_batches_.fetch_add(1, std::memory_order_relaxed);
    delivered_messages_.fetch_add(batch_.size(), std::memory_order_relaxed);
    delivered_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  for (std::size_t k : objects_delivered_) finish_object(k);
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
    if (own_object_index_) free_own_object();
    return dropped;
  }
  // A member removed by the change has not delivered up to the edge: what lies below it is
  // delivered by the others, so it is skipped, not sent again.
  while (mine.messages_read() < my_edge) mine.next();
  std::vector<std::byte> again;
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
  bool object_again = false;
  while (mine.messages_read() < writer_->messages_written()) {
    const RingReader::Message m = mine.next();
    if (m.is_null) continue;
    const auto len = static_cast<std::uint32_t>(m.payload.size());
    const std::uint32_t entry = len | (m.is_object ? kObjectEntry : 0);
    object_again |= m.is_object;
    const std::size_t at = again.size();
    again.resize(at + 4 + len);
    std::memcpy(again.data() + at, &entry, 4);
    if (len) std::memcpy(again.data() + at + 4, m.payload.data(), len);
    ++messages;
    bytes += len;
  }
  // Our object is sent again with its record, from the area that still holds it; otherwise it
  // lay below the edge, delivered by every survivor.
  if (own_object_index_) {
    if (object_again) {
      own_object_index_.reset();
    } else {
      free_own_object();
    }
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
    std::uint32_t entry;
    std::memcpy(&entry, queue_.data() + at, 4);
    at += 4 + (entry & ~kObjectEntry);
    ++dropped;
  }
  queue_.clear();
  queue_messages_ = 0;
  queued_bytes_.store(0, std::memory_order_relaxed);
  own_object_index_.reset();
  // An object being filled right now is queued after this drop and stays in flight.
  if (!filling_) own_object_busy_.store(false, std::memory_order_release);
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
  std::uint32_t entry;
  std::memcpy(&entry, staging_.data() + at, 4);
  return entry & ~kObjectEntry;
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
    std::uint32_t entry;
    std::memcpy(&entry, staging_.data() + staging_pos_, 4);
    const std::span<const std::byte> payload{staging_.data() + staging_pos_ + 4, len};
    if ((entry & kObjectEntry) != 0) {
      if (!writer_->append_object(payload)) break;
      own_object_index_ = order_.index_of(*my_sender_, writer_->messages_written() - 1);
    } else if (!writer_->append_message(payload)) {
      break;
    }
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
  if (!in_view_ || std::find(peers_.begin(), peers_.end(), peer) == peers_.end()) return;
  if (my_sender_) transport_.post_write(peer, ring_offset_of_slot(view_.sender_slots[*my_sender_]), placement_.ring_bytes);
  // A wedged view's relays are over: the next view starts them afresh.
  if (wedged_) return;
  for (const SenderObjects& o : objects_) {
    if (o.transfer) o.transfer->repost_to(transport_, peer);
  }
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
          queue_.size() - 4 * queue_messages_ + staged_bytes_.load(std::memory_order_relaxed),
          object_blocks_received_.load(std::memory_order_relaxed),
          object_blocks_sent_.load(std::memory_order_relaxed)};
}

}  // namespace derecho::multicast
