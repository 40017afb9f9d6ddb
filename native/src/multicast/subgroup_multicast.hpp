#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/group_config.hpp"
#include "multicast/delivery.hpp"
#include "multicast/object_transfer.hpp"
#include "multicast/relay_schedule.hpp"
#include "multicast/ring.hpp"
#include "multicast/round_robin.hpp"
#include "sst/sst.hpp"
#include "transport/transport.hpp"

namespace derecho::multicast {

// Where one subgroup's state lives: its SST columns and a ring per configured sender ("slot")
// in the region. Placement is fixed for the life of the group; a view uses the slots of the
// configured senders it contains.
struct SubgroupPlacement {
  std::size_t first_column;  // num_sent, delivered, received[slot...], then progress[slot...] with large objects
  std::size_t ring_offset;   // slot k's ring at ring_offset + k * ring_bytes
  std::size_t ring_bytes;
  // Large objects: slot k's object area at object_area_offset + k * object_area_bytes; 0 bytes
  // for a subgroup that takes none.
  std::size_t object_area_offset = 0;
  std::size_t object_area_bytes = 0;

  static std::size_t columns_for(std::size_t slots, bool large_objects) { return 2 + slots * (large_objects ? 2 : 1); }
};

// A ragged edge for a sender whose group (subgroup or shard) has no surviving member: nobody is
// left who must deliver its messages, and whoever did is gone, so their fate is unknown.
inline constexpr std::uint64_t kUnknownEdge = (std::uint64_t{1} << 40) - 1;

// The subgroup as one view sees it.
struct SubgroupView {
  std::uint64_t vid = 0;
  std::vector<MemberId> members;          // config order, restricted to the view
  std::vector<std::size_t> sender_slots;  // config sender index of each sender in the view, in order
};

// Small-message ordered multicast (SMC) for one subgroup, at one member (docs/protocol-smc.md).
//
// Senders append records to their own ring and push the new bytes to every member, then raise
// num_sent in their SST row. Receivers copy num_sent into received[k] for all senders in one
// pass (receiver-side batching). A message is stable once every member's received covers it;
// stable messages are delivered in round-robin index order straight from the ring, after which
// delivered rises and, once every member has delivered a record, its ring bytes are reused.
//
// Large objects (docs/protocol-rdmc.md): a message above the subgroup's threshold is copied
// into the sender's object area and announced by an object record in its ring; every member
// relays the object's blocks along a relay schedule and counts the record received only once
// the whole object is in its area, so stability, delivery order and the ragged edge treat it
// like any message. A sender has one object in flight: the next waits until every member
// delivered it.
//
// Across views (docs/membership.md): enter_view() restarts rings and counters for a new view,
// closed for sending until open(); wedge() freezes receiving, delivering and sending so the
// received counts are final; deliver_to_edge() delivers exactly up to the ragged edge the
// leader decided; requeue_cut_off() puts our own messages beyond the edge back in front of the
// send queue, to be sent again in the next view. The send queue lives across views.
class SubgroupMulticast {
 public:
  struct Stats {
    std::uint64_t sent = 0;
    std::uint64_t nulls_sent = 0;
    std::uint64_t delivered = 0;
    std::uint64_t delivered_bytes = 0;
    std::uint64_t delivery_batches = 0;
    std::uint64_t resent = 0;
    // Accepted by send but not yet appended to the ring (payload bytes, without length prefixes).
    std::uint64_t queued_messages = 0;
    std::uint64_t queued_bytes = 0;
    // Large objects: blocks that arrived here through the relay, and that we passed on.
    std::uint64_t object_blocks_received = 0;
    std::uint64_t object_blocks_sent = 0;
  };

  SubgroupMulticast(std::uint32_t subgroup, const SubgroupConfig& config, const SubgroupPlacement& placement,
                    sst::Sst& sst, transport::Transport& transport, DeliverySink& sink,
                    std::size_t max_queued_bytes);

  // Predicate thread. One round of the receive, deliver, send and null steps; true when any
  // of them did something.
  bool step();

  void enter_view(const SubgroupView& view);
  void open() { open_ = true; }
  void wedge() { wedged_ = true; }
  bool in_view() const { return in_view_; }
  std::uint64_t vid() const { return view_.vid; }
  const SubgroupView& view() const { return view_; }
  // Our final received count for a config sender slot in the current view (after wedge()).
  std::uint64_t received_from_slot(std::size_t slot) const;
  // Delivers, in round-robin order, every message of sender slot k with sequence below
  // edge[k] not delivered yet. edge is indexed by config sender slot.
  void deliver_to_edge(std::span<const std::uint64_t> edge);
  // After deliver_to_edge (or instead of it, when we were removed): our messages beyond our
  // edge go back in front of the send queue. With kUnknownEdge (we were removed and no member
  // of our group survived) the ones we had not delivered are dropped instead, since some gone
  // member may have delivered them; returns how many.
  std::uint64_t requeue_cut_off(std::span<const std::uint64_t> edge);
  // Removed without knowing the edge: every message we have not seen delivered is dropped,
  // queued ones included, so no later message of ours can overtake one of unknown fate.
  // Returns how many.
  std::uint64_t drop_pending();

  bool is_configured_sender() const { return configured_sender_; }
  // Any thread. Queues a copy; false when the queue is full, or for a large object while our
  // previous one is still in flight. Throws std::invalid_argument for a payload over
  // max_message_bytes (over max_object_bytes where the subgroup takes large objects) or when
  // this member is not a sender.
  bool send(std::span<const std::byte> payload);
  // Any thread. A large object of `bytes` written in place: `fill` gets the sender's area (the
  // object's final bytes, no copy) and must fill all of it before returning. False, without
  // calling fill, while our previous object is in flight. Throws std::invalid_argument for a
  // subgroup without large objects, a size outside thresholdBytes+1..maxObjectBytes, or when
  // this member is not a sender.
  bool send_object(std::size_t bytes, const std::function<void(std::span<std::byte>)>& fill);
  struct Queued {
    std::size_t messages = 0;
    std::size_t bytes = 0;  // of the packed input; less than its size when the queue filled up
  };
  // Queues messages packed as [u32 length][payload]...: the longest prefix the queue takes.
  // Throws std::invalid_argument, queueing nothing, when any message is malformed or too big
  // (above the large-object threshold too: objects go one at a time through send()).
  Queued send_packed(std::span<const std::byte> packed);
  // Called on the predicate thread when it takes the queue after a send was refused.
  void on_writable(std::function<void()> callback) { writable_ = std::move(callback); }

  // Re-pushes our ring to a peer whose link came back (writes may have been lost).
  void on_link_up(MemberId peer);

  Stats stats() const;

 private:
  // Staged and queued entries are [u32 length][payload]; this bit of the length marks an
  // object record (the payload is its descriptor).
  static constexpr std::uint32_t kObjectEntry = 0x8000'0000u;
  // A relay keeps at most this many bytes of blocks queued per peer in the transport.
  static constexpr std::size_t kRelayQueueBlocks = 2;

  // Large objects, per sender of the view.
  struct SenderObjects {
    explicit SenderObjects(std::span<const std::byte> ring) : scanner(ring) {}
    RingReader scanner;                    // walks the ring ahead of delivery for object records
    std::optional<std::uint64_t> message;  // the sender's message number of the object being relayed
    std::optional<ObjectTransfer> transfer;
    std::vector<std::size_t> rank_rows;    // SST row of each rank of the transfer
    std::uint64_t progress_base = 0;       // relay steps of this sender's earlier objects in the view
  };

  bool takes_objects() const { return placement_.object_area_bytes != 0; }
  std::size_t object_area_of_slot(std::size_t slot) const {
    return placement_.object_area_offset + slot * placement_.object_area_bytes;
  }
  std::uint64_t receive_from(std::size_t k, std::uint64_t sent);
  void start_object(std::size_t k, std::uint64_t message, std::span<const std::byte> descriptor);
  bool relay_objects();
  void finish_object(std::size_t k);
  bool own_object_delivered();
  void free_own_object();
  std::shared_ptr<const RelaySchedule> schedule_for(std::size_t members, std::uint64_t blocks);

  bool has_new_messages() const;
  void receive();
  bool has_stable_messages();
  void deliver();
  bool can_send_queued();
  void send_queued();
  bool must_send_nulls();
  void send_nulls();

  void deliver_range(std::uint64_t end, std::span<const std::uint64_t> limit);
  std::uint64_t count(std::size_t row, std::size_t column) const;
  void write_count(std::size_t column, std::uint64_t value);
  void release_ring_space();
  std::uint32_t next_staged_length_at(std::size_t at) const;
  void check_sendable(std::size_t bytes, const std::string& what) const;
  bool admit(std::size_t bytes);
  void push_ring_writes();
  std::size_t ring_offset_of_slot(std::size_t slot) const { return placement_.ring_offset + slot * placement_.ring_bytes; }
  std::uint64_t min_over_members(std::size_t column) const;

  std::uint32_t subgroup_;
  SubgroupConfig config_;
  SubgroupPlacement placement_;
  sst::Sst& sst_;
  transport::Transport& transport_;
  DeliverySink& sink_;
  bool configured_sender_ = false;
  std::size_t col_sent_, col_delivered_, col_received_;
  std::size_t col_progress_;  // large objects: relay progress per config sender slot

  // Per view.
  SubgroupView view_;
  bool in_view_ = false;
  bool open_ = false;
  bool wedged_ = false;
  RoundRobin order_{1};
  std::optional<std::size_t> my_sender_;   // our index among the view's senders
  std::vector<std::size_t> member_rows_;   // SST rows of the view's subgroup members
  std::vector<std::size_t> sender_rows_;   // SST rows of the view's senders, in order
  std::vector<MemberId> peers_;            // view subgroup members other than us
  std::optional<RingWriter> writer_;
  std::vector<RingReader> readers_;
  std::vector<std::uint64_t> received_by_me_;
  std::vector<std::uint64_t> received_by_all_;
  std::vector<std::uint64_t> app_messages_from_;
  std::uint64_t delivered_ = 0;
  std::uint64_t frontier_ = 0;
  std::uint64_t nulls_needed_ = 0;
  std::vector<Delivery> batch_;
  std::vector<std::size_t> objects_delivered_;  // senders whose object the batch delivered
  std::vector<SenderObjects> objects_;          // empty when the subgroup takes no large objects
  std::map<std::pair<std::size_t, std::uint64_t>, std::shared_ptr<const RelaySchedule>> schedules_;
  // Our own large object: its bytes sit in our area from send() until every member delivered
  // it (or it was dropped). Its record's global index in this view once it is in the ring.
  std::atomic<bool> own_object_busy_{false};
  bool filling_ = false;  // under queue_mutex_: send_object is writing our area
  std::optional<std::uint64_t> own_object_index_;

  // Application send queue: packed [u32 length][payload]..., filled by any thread.
  mutable std::mutex queue_mutex_;
  std::vector<std::byte> queue_;
  std::size_t queue_messages_ = 0;  // in queue_, under queue_mutex_
  std::size_t max_queued_bytes_;
  std::atomic<bool> refused_{false};
  std::atomic<std::size_t> queued_bytes_{0};
  // Taken from queue_ by the predicate thread; consumed as ring space allows.
  std::vector<std::byte> staging_;
  std::size_t staging_pos_ = 0;
  // What staging_ holds from staging_pos_ on, for stats() on other threads; written by the
  // predicate thread only, under queue_mutex_ when taking the queue so stats() sees no message twice.
  std::atomic<std::uint64_t> staged_messages_{0};
  std::atomic<std::uint64_t> staged_bytes_{0};
  std::function<void()> writable_;

  std::atomic<std::uint64_t> sent_{0};
  std::atomic<std::uint64_t> nulls_sent_{0};
  std::atomic<std::uint64_t> delivered_messages_{0};
  std::atomic<std::uint64_t> delivered_bytes_{0};
  std::atomic<std::uint64_t> delivery_batches_{0};
  std::atomic<std::uint64_t> resent_{0};
  std::atomic<std::uint64_t> object_blocks_received_{0};
  std::atomic<std::uint64_t> object_blocks_sent_{0};
};

}  // namespace derecho::multicast
