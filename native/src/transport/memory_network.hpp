#pragma once
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <vector>

#include "transport/transport.hpp"

namespace derecho::transport {

// A whole network in one process for deterministic tests and simulation: every endpoint's
// writes wait in a FIFO per (from, to) link until the test applies them, in an order chosen by a
// seeded generator. Links keep FIFO order, as real transports do; nothing else is ordered.
class MemoryNetwork {
 public:
  MemoryNetwork(std::vector<MemberId> members, std::size_t region_bytes, std::uint64_t seed);
  ~MemoryNetwork();

  // The endpoint of one member; the network must outlive it. One endpoint per member at a
  // time: std::logic_error while the previous one is alive.
  std::unique_ptr<Transport> endpoint(MemberId id);

  // A new incarnation of `id` (a restarted process, or one starting late): its region is zeroed
  // and its pending link events dropped; every link from or to it goes down, writes queued on
  // them are lost, and the peers get down events for links that were up. The test then restores
  // the links it wants, as a real transport reconnects to a new process. The old endpoint must
  // be gone; the next endpoint(id) is the new incarnation's.
  void reset_member(MemberId id);

  // Cuts the link from -> to: writes waiting on it are lost, later ones are dropped, and `from`
  // gets a down event. On a link that is down already it cancels a restore_link_mid_pass. restore_link brings it back as a new session with an up event; writes
  // flow again once `from`'s engine has taken that event, as with the real transports.
  void break_link(MemberId from, MemberId to);
  void restore_link(MemberId from, MemberId to);
  // Restores the link at the moment `from` next posts a write, i.e. in the middle of one of its
  // passes, the way a real link can come back at any instant.
  void restore_link_mid_pass(MemberId from, MemberId to);
  bool link_up_between(MemberId from, MemberId to) const;
  void restore_all_links();

  // Applies the oldest write of one randomly chosen non-empty link; false when none is pending.
  bool deliver_one();
  // Applies the oldest write of the link from -> to; false when that link is empty.
  bool deliver_from(MemberId from, MemberId to);
  void deliver_all();
  std::size_t pending() const;
  // Writes waiting on the link from -> to.
  std::size_t pending(MemberId from, MemberId to) const;
  // A member's region as it is now, for a test that inspects state (read only).
  std::span<const std::byte> region_of(MemberId id) const;
  std::mt19937_64& random() { return random_; }

 private:
  class Endpoint;
  struct Write {
    std::size_t offset;
    std::vector<std::byte> bytes;
    std::optional<std::uint64_t> bulk_epoch;  // a bulk write: dropped at a receiver fenced beyond it
  };
  struct Node {
    std::vector<std::byte> region;
    Doorbell* doorbell = nullptr;
    bool has_endpoint = false;
    std::vector<LinkEvent> events;  // for this node's engine to take
    std::uint64_t bulk_fence = 0;
  };
  struct Link {
    std::deque<Write> writes;
    bool up = true;
    std::uint64_t session = 1;
    std::uint64_t engine_session = 0;  // the session whose up event the sender's engine took
    bool restore_on_next_post = false;
  };

  bool enqueue(MemberId from, MemberId to, std::size_t offset, std::span<const std::byte> bytes,
               std::optional<std::uint64_t> bulk_epoch = std::nullopt);
  void queue_event(MemberId at, LinkEvent event);
  void apply(MemberId to, const Write& w);

  std::vector<MemberId> members_;
  std::size_t region_bytes_;
  std::mt19937_64 random_;
  std::map<MemberId, Node> nodes_;
  std::map<std::pair<MemberId, MemberId>, Link> links_;
};

}  // namespace derecho::transport
