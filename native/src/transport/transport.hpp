#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/doorbell.hpp"
#include "common/group_config.hpp"
#include "common/types.hpp"

namespace derecho::transport {

struct LinkEvent {
  MemberId peer = 0;
  bool up = false;
  std::string reason;
  // The link session an up event opens. A transport accepts post_write for a peer only once the
  // engine has taken the up event of the peer's current session, so nothing posted in a pass
  // that began before the link (re)appeared can get through ahead of the engine's re-push.
  std::uint64_t session = 0;
};

// One-sided writes between equally sized memory regions, one region per member.
//
// Every member owns a region of `region_bytes`; the first kRegionHeaderBytes belong to the
// transport. post_write(peer, off, len) copies the caller's own region [off, off+len) to the
// same offset of `peer`'s region. Writes to one peer land in the order they were posted (a
// later write is never visible before an earlier one), which is what lets a sender write data
// first and a counter second. Different peers are independent.
//
// post_write/flush/completed are called from one thread (the engine's predicate thread).
class Transport {
 public:
  virtual ~Transport() = default;
  Transport() = default;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  virtual MemberId self() const = 0;
  virtual std::span<std::byte> region() = 0;

  // Connects to peers (or maps their regions). Returns once links to all peers are up or the
  // timeout passes; links still down keep being retried in the background.
  virtual void start(std::chrono::milliseconds timeout) = 0;
  virtual void stop() = 0;

  virtual void post_write(MemberId peer, std::size_t offset, std::size_t len) = 0;
  // A post_write of bulk data the caller does not change until it has landed and that the peer
  // reads only once a later write announces it (large-object blocks): a transport may send it
  // without taking a copy first, or copy it without ordering each word. `epoch` is the writer's
  // view: the peer drops a bulk write whose epoch is below its fence (fence_bulk_below).
  virtual void post_bulk_write(MemberId peer, std::size_t offset, std::size_t len, std::uint64_t /*epoch*/) {
    post_write(peer, offset, len);
  }
  // A post_bulk_write whose bytes are taken now: for a write nobody needs any more by the time
  // the caller may change them (a block sent again after a link came back).
  virtual void post_bulk_copy(MemberId peer, std::size_t offset, std::size_t len, std::uint64_t epoch) {
    post_bulk_write(peer, offset, len, epoch);
  }
  // From now on bulk writes of an epoch below `epoch` do not land here, whenever they were
  // posted (the fence only rises). A relay that fell behind (removed from the view, frozen,
  // partitioned) relays blocks into areas that later views reuse for other objects: this keeps
  // them out. A transport that cannot fence (verbs) lets them through.
  virtual void fence_bulk_below(std::uint64_t /*epoch*/) {}
  // Bytes posted to `peer` that the transport still holds, not yet handed to the link; a sender
  // of bulk data waits while this is high instead of queueing a whole object.
  virtual std::size_t queued_bytes(MemberId /*peer*/) const { return 0; }
  // Pushes everything posted so far and rings the doorbell of every peer that got writes.
  virtual void flush() = 0;
  // Writes to `peer` known to have landed in its region, counted in post_write calls.
  virtual std::uint64_t completed(MemberId peer) const = 0;

  // Rung whenever a peer's write lands in our region (or a link event is queued).
  virtual Doorbell& doorbell() = 0;

  // Link state changes since the last call. Writes to a peer are dropped from the moment its
  // link goes down until the engine has taken the up event of its new session here; the engine
  // then re-pushes everything it owns, data before counters.
  virtual std::vector<LinkEvent> take_link_events() = 0;
  virtual bool link_up(MemberId peer) const = 0;

  // Frames from peers that were refused as malformed (their link was cut). Zero for transports
  // without frames (shm).
  virtual std::uint64_t bad_frames() const { return 0; }
};

struct TransportOptions {
  GroupConfig group;   // members and addresses, group name, transport kind
  MemberId self = 0;
  std::size_t region_bytes = 0;  // >= kRegionHeaderBytes, multiple of 4096
};

std::unique_ptr<Transport> make_transport(const TransportOptions& options);

// Copies into region memory that another process or thread may read concurrently. Aligned
// 8-byte words are stored whole (never torn), in ascending address order, each a release
// store, so a reader that sees a word also sees everything written before it, in this copy or
// an earlier one.
void copy_into_region(std::byte* dst, const std::byte* src, std::size_t len);

}  // namespace derecho::transport
