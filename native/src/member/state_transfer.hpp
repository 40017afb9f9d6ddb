#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "common/types.hpp"
#include "sst/sst.hpp"
#include "transport/transport.hpp"

namespace derecho {

// Hands a subgroup's application state to a member that joins it (docs/membership.md, "State
// transfer"), over the same one-sided writes as everything else: the source copies a chunk,
// behind a header naming the transfer and chunk, into its own area of the regions and posts it
// to the joiner's, then announces it in its SST row; the joiner checks the header, takes it and
// acknowledges in its row; the next chunk follows. The joiner does
// not announce the view as installed, so nobody sends in it, until every state it needs arrived.
class StateTransfer {
 public:
  struct Columns {
    std::size_t out_id;     // source: which transfer (vid, subgroup, joiner)
    std::size_t out_chunk;  // source: (chunk index + 1) << 33 | last << 32 | length
    std::size_t ack_id;     // joiner: which transfer it acknowledges
    std::size_t ack_chunk;  // joiner: chunks taken
  };
  struct Buffer {
    std::size_t offset;      // the first member's area; member at SST row r has offset + r * area_bytes
    std::size_t bytes;       // chunk data bytes
    std::size_t area_bytes;  // header + data, padded
  };
  static constexpr std::size_t kChunkHeaderBytes = 16;
  struct Send {
    MemberId joiner;
    std::uint32_t subgroup;
  };
  struct Receive {
    MemberId source;
    std::uint32_t subgroup;
  };
  using SnapshotRequest = std::function<void(std::uint32_t subgroup, std::uint64_t vid)>;
  using Restore = std::function<void(std::uint32_t subgroup, std::uint64_t vid, std::span<const std::byte> state)>;

  StateTransfer(sst::Sst& sst, transport::Transport& transport, Columns columns, Buffer buffer);

  // Before start: the application's side. Without a snapshot callback every state is empty.
  void on_snapshot(SnapshotRequest request) { request_ = std::move(request); }
  void on_restore(Restore restore) { restore_ = std::move(restore); }

  // Predicate thread, at the installation of view `vid`: what this member sends and receives.
  // Drops whatever the previous view left unfinished.
  void begin_view(std::uint64_t vid, std::vector<Send> sends, std::vector<Receive> receives);
  // Any thread: the snapshot asked for by on_snapshot(subgroup, vid). Stale ones are ignored.
  void provide_snapshot(std::uint32_t subgroup, std::uint64_t vid, std::vector<std::byte> state);

  bool step();
  // The link to `peer` came back: re-posts the chunk in flight to it, if any.
  void on_link_up(MemberId peer);
  // Stops every transfer of the current view (it is being changed, or we left it).
  void abandon();
  // Every state this member had to receive in the current view has arrived and been restored.
  bool received_all() const { return receives_.empty(); }

 private:
  static std::uint64_t transfer_id(std::uint64_t vid, std::uint32_t subgroup, std::size_t joiner_row);
  bool step_send();
  bool step_receive();
  std::byte* area_of(std::size_t row) const { return transport_.region().data() + buffer_.offset + row * buffer_.area_bytes; }
  void post_chunk(std::uint64_t id, const std::vector<std::byte>& state, std::uint64_t chunks);

  sst::Sst& sst_;
  transport::Transport& transport_;
  Columns cols_;
  Buffer buffer_;
  SnapshotRequest request_;
  Restore restore_;

  std::uint64_t vid_ = 0;
  std::vector<Send> sends_;
  std::vector<Receive> receives_;
  std::vector<std::byte> incoming_;
  std::uint64_t next_incoming_ = 0;
  // Snapshots by subgroup for the current view, filled by provide_snapshot from any thread.
  std::mutex snapshots_mutex_;
  std::map<std::uint32_t, std::optional<std::vector<std::byte>>> snapshots_;
  std::uint64_t snapshots_vid_ = 0;
  bool sending_ = false;      // sends_.front() is under way
  std::vector<std::byte> outgoing_;  // its state, copied when it started
  std::uint64_t chunk_ = 0;   // chunks of it posted so far
  bool opened_ = false;       // receives_.front() is announced in our row
};

}  // namespace derecho
