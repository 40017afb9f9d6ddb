#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/group_config.hpp"
#include "multicast/delivery.hpp"
#include "multicast/ring.hpp"
#include "multicast/round_robin.hpp"
#include "sst/predicate_thread.hpp"
#include "sst/sst.hpp"
#include "transport/transport.hpp"

namespace derecho::multicast {

// Where one subgroup's state lives: its SST columns and its per-sender rings in the region.
struct SubgroupPlacement {
  std::size_t first_column;  // num_sent, delivered, received[senders...]
  std::size_t ring_offset;   // sender k's ring at ring_offset + k * ring_bytes
  std::size_t ring_bytes;

  static std::size_t columns_for(std::size_t senders) { return 2 + senders; }
};

// Small-message ordered multicast (SMC) for one subgroup, at one member.
//
// Senders append records to their own ring and push the new bytes to every member, then raise
// num_sent in their SST row. Receivers copy num_sent into received[k] for all senders in one
// pass (receiver-side batching). A message is stable once every member's received covers it;
// stable messages are delivered in round-robin index order straight from the ring, after which
// delivered rises and, once every member has delivered a record, its ring bytes are reused
// (flow control: a sender never overwrites what someone has not delivered yet).
class SubgroupMulticast {
 public:
  struct Stats {
    std::uint64_t sent = 0;
    std::uint64_t nulls_sent = 0;
    std::uint64_t delivered = 0;
    std::uint64_t delivered_bytes = 0;
    std::uint64_t delivery_batches = 0;
  };

  SubgroupMulticast(std::uint32_t subgroup, const SubgroupConfig& config, const SubgroupPlacement& placement,
                    sst::Sst& sst, transport::Transport& transport, DeliverySink& sink,
                    std::size_t max_queued_bytes);

  void register_predicates(sst::PredicateThread& thread);

  bool is_sender() const { return my_sender_.has_value(); }
  // Any thread. Queues a copy; false when the queue is full. Throws std::invalid_argument for
  // a payload over max_message_bytes or when this member is not a sender.
  bool send(std::span<const std::byte> payload);
  struct Queued {
    std::size_t messages = 0;
    std::size_t bytes = 0;  // of the packed input; less than its size when the queue filled up
  };
  // Queues messages packed as [u32 length][payload]...: the longest prefix the queue takes.
  // Throws std::invalid_argument, queueing nothing, when any message is malformed or too big.
  Queued send_packed(std::span<const std::byte> packed);
  // Called on the predicate thread when it takes the queue after a send was refused.
  void on_writable(std::function<void()> callback) { writable_ = std::move(callback); }

  // Re-pushes our ring to a peer whose link came back (writes may have been lost).
  void on_link_up(MemberId peer);

  Stats stats() const;

 private:
  // Predicates (checks, which may prepare state for their trigger) and triggers.
  bool has_new_messages() const;
  void receive();
  bool has_stable_messages();
  void deliver();
  bool can_send_queued();
  void send_queued();
  bool must_send_nulls();
  void send_nulls();

  void release_ring_space();
  std::uint32_t next_staged_length() const;
  void check_sendable(std::size_t bytes, const std::string& what) const;
  // Under queue_mutex_: whether `bytes` more may be queued (a lone message always may).
  bool admit(std::size_t bytes);
  void push_ring_writes();
  std::uint64_t min_over_members(std::size_t column) const;

  std::uint32_t subgroup_;
  SubgroupConfig config_;
  SubgroupPlacement placement_;
  sst::Sst& sst_;
  transport::Transport& transport_;
  DeliverySink& sink_;
  RoundRobin order_;
  std::optional<std::size_t> my_sender_;
  std::vector<std::size_t> member_rows_;   // SST rows of the subgroup's members
  std::vector<std::size_t> sender_rows_;   // SST rows of the senders, in sender order
  std::vector<MemberId> peers_;            // subgroup members other than us
  std::size_t col_sent_, col_delivered_, col_received_;

  std::optional<RingWriter> writer_;
  std::vector<RingReader> readers_;
  std::vector<std::uint64_t> received_by_me_;
  std::vector<std::uint64_t> received_by_all_;
  std::vector<std::uint64_t> app_messages_from_;  // per sender, for sender_seq
  std::uint64_t delivered_ = 0;
  std::uint64_t frontier_ = 0;
  std::uint64_t nulls_needed_ = 0;
  std::vector<Delivery> batch_;

  // Application send queue: packed [u32 length][payload]..., filled by any thread.
  std::mutex queue_mutex_;
  std::vector<std::byte> queue_;
  std::size_t max_queued_bytes_;
  std::atomic<bool> refused_{false};
  std::atomic<std::size_t> queued_bytes_{0};
  // Taken from queue_ by the predicate thread; consumed as ring space allows.
  std::vector<std::byte> staging_;
  std::size_t staging_pos_ = 0;
  std::function<void()> writable_;

  std::atomic<std::uint64_t> sent_{0};
  std::atomic<std::uint64_t> nulls_sent_{0};
  std::atomic<std::uint64_t> delivered_messages_{0};
  std::atomic<std::uint64_t> delivered_bytes_{0};
  std::atomic<std::uint64_t> delivery_batches_{0};
};

}  // namespace derecho::multicast
