#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "common/group_config.hpp"
#include "member/region_layout.hpp"
#include "multicast/delivery.hpp"
#include "multicast/subgroup_multicast.hpp"
#include "sst/predicate_thread.hpp"
#include "sst/sst.hpp"
#include "transport/transport.hpp"

namespace derecho {

// One group member: its transport, SST, predicate thread and the multicast of every subgroup
// it belongs to, wired together for a static group read from a config.
class Member {
 public:
  struct Stats {
    std::uint64_t sent = 0;
    std::uint64_t nulls_sent = 0;
    std::uint64_t delivered = 0;
    std::uint64_t delivered_bytes = 0;
    std::uint64_t delivery_batches = 0;
    std::uint64_t predicate_passes = 0;
    std::uint64_t sleeps = 0;
    std::uint64_t bad_frames = 0;
    bool failed = false;
  };

  using TransportFactory =
      std::function<std::unique_ptr<transport::Transport>(const transport::TransportOptions&)>;

  // Validates the config (std::invalid_argument naming the field) and creates the transport,
  // by default the one the config names; the simulator passes endpoints of an in-memory network.
  Member(GroupConfig config, MemberId self, multicast::DeliverySink& sink,
         std::size_t max_queued_bytes = 8u << 20, const TransportFactory& make_transport = transport::make_transport);
  ~Member();
  Member(const Member&) = delete;
  Member& operator=(const Member&) = delete;

  // Connects to the peers (waiting up to `timeout` for all links) and starts delivering.
  // Returns whether every link came up in time.
  bool start(std::chrono::milliseconds timeout);
  void stop();
  // One predicate pass on the calling thread, for a simulator that drives every step itself
  // (never together with start()). True when some predicate fired.
  bool run_once() { return predicates_->run_once(); }

  // Any thread. False when the subgroup's send queue is full: call again after on_writable.
  bool send(std::uint32_t subgroup, std::span<const std::byte> payload);
  // Any thread. Messages packed as [u32 length][payload]...; see SubgroupMulticast::send_packed.
  multicast::SubgroupMulticast::Queued send_packed(std::uint32_t subgroup, std::span<const std::byte> packed);
  void on_writable(std::function<void(std::uint32_t subgroup)> callback);
  // Any thread: the engine re-checks its predicates at once (e.g. a consumer became ready).
  void wake() { predicates_->wake(); }

  Stats stats() const;
  MemberId self() const { return self_; }
  const GroupConfig& config() const { return config_; }

 private:
  multicast::SubgroupMulticast& subgroup(std::uint32_t index);

  GroupConfig config_;
  MemberId self_;
  RegionLayout layout_;
  std::unique_ptr<transport::Transport> transport_;
  std::unique_ptr<sst::Sst> sst_;
  std::unique_ptr<sst::PredicateThread> predicates_;
  // Indexed by subgroup; null where this member is not in the subgroup.
  std::vector<std::unique_ptr<multicast::SubgroupMulticast>> subgroups_;
  bool started_ = false;
};

}  // namespace derecho
