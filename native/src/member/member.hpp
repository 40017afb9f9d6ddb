#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "common/group_config.hpp"
#include "member/layout_plan.hpp"
#include "member/region_layout.hpp"
#include "member/state_transfer.hpp"
#include "membership/view.hpp"
#include "membership/view_manager.hpp"
#include "multicast/delivery.hpp"
#include "multicast/subgroup_multicast.hpp"
#include "sst/predicate_thread.hpp"
#include "persistence/hybrid_clock.hpp"
#include "persistence/log_options.hpp"
#include "sst/sst.hpp"
#include "store/versioned_store.hpp"
#include "transport/transport.hpp"

namespace derecho {

// One group member: its transport, SST, predicate thread, membership (views) and the multicast
// of every subgroup it is configured in. The config lists every member that may ever belong to
// the group; the installed view says which of them do now (docs/membership.md).
class Member {
 public:
  struct Stats {
    std::uint64_t sent = 0;
    std::uint64_t nulls_sent = 0;
    std::uint64_t resent = 0;
    std::uint64_t delivered = 0;
    std::uint64_t delivered_bytes = 0;
    std::uint64_t delivery_batches = 0;
    std::uint64_t predicate_passes = 0;
    std::uint64_t sleeps = 0;
    std::uint64_t bad_frames = 0;
    std::uint64_t vid = 0;
    bool failed = false;
  };
  // One subgroup at this member.
  struct SubgroupStats {
    std::uint64_t delivered = 0;        // application messages (a store's operations), all views
    std::uint64_t delivered_bytes = 0;  // their payload bytes
    // Queued here, not yet sent into the ring (a store's own outbox included), payload bytes.
    std::uint64_t queued_messages = 0;
    std::uint64_t queued_bytes = 0;
    // Large objects: blocks that arrived here through the relay, and that this member passed on.
    std::uint64_t object_blocks_received = 0;
    std::uint64_t object_blocks_sent = 0;
  };

  using TransportFactory =
      std::function<std::unique_ptr<transport::Transport>(const transport::TransportOptions&)>;
  using Clock = membership::ViewManager::Clock;
  using ViewCallback = std::function<void(const membership::View&)>;
  using EventCallback = std::function<void(membership::MembershipEvent, const std::string&)>;

  struct Options {
    std::size_t max_queued_bytes = 8u << 20;
    TransportFactory make_transport = transport::make_transport;
    Clock clock = [] { return std::chrono::steady_clock::now(); };
    std::uint64_t boot = 0;  // this incarnation's nonce; 0: a random one
    // Persistent stores keep their logs in data_dir/<subgroup name>; required when this member
    // is in one.
    std::filesystem::path data_dir;
    persistence::FlushMode flush = persistence::FlushMode::automatic;
    // Persistent stores flush on a thread of their own; false: on the engine thread, in each
    // pass (a harness that drives every pass itself).
    bool background_persist = true;
    // The physical time under the stores' hybrid clock (tests skew it).
    persistence::HybridClock::Physical physical_clock = persistence::HybridClock::wall_ns;
  };

  // Validates the config (std::invalid_argument naming the field) and creates the transport.
  Member(GroupConfig config, MemberId self, multicast::DeliverySink& sink, Options options);
  Member(GroupConfig config, MemberId self, multicast::DeliverySink& sink)
      : Member(std::move(config), self, sink, Options{}) {}
  ~Member();
  Member(const Member&) = delete;
  Member& operator=(const Member&) = delete;

  // Before start(): called on the engine thread for every view installed and membership event.
  void on_view(ViewCallback callback) { view_callback_ = std::move(callback); }
  void on_event(EventCallback callback) { event_callback_ = std::move(callback); }
  // Before start(): state transfer to joiners. At a view that admits members into a subgroup,
  // one old member of it is asked for a snapshot (engine thread, after every delivery of the
  // previous view and before any of the new one) and answers with provide_snapshot (any
  // thread, may be later); the joiner gets it in on_restore (engine thread) before it delivers
  // anything in the new view. Without on_snapshot the state handed over is empty.
  // Store subgroups hand over their own state; these see only the others.
  void on_snapshot(StateTransfer::SnapshotRequest request) { snapshot_callback_ = std::move(request); }
  void on_restore(StateTransfer::Restore restore) { restore_callback_ = std::move(restore); }
  void provide_snapshot(std::uint32_t subgroup, std::uint64_t vid, std::vector<std::byte> state) {
    state_->provide_snapshot(subgroup, vid, std::move(state));
  }

  // Connects to the peers and starts the engine; the member joins (or bootstraps) the group.
  // Returns whether, within `timeout`, it is in a view with every configured member.
  bool start(std::chrono::milliseconds timeout);
  // Waits until the installed view has at least `members` members and is open for sending.
  bool wait_for_members(std::size_t members, std::chrono::milliseconds timeout);
  void stop();
  // Leaves the group: the others install a view without this member. Returns whether that
  // happened within `timeout`; stops the engine either way. A group of two cannot lose one
  // member (no majority), so leaving it times out.
  bool leave(std::chrono::milliseconds timeout);
  // The first half of leave(), for a simulator that runs the passes itself.
  void request_leave() {
    views_->leave();
    predicates_->wake();
  }
  // One predicate pass on the calling thread, for a simulator that drives every step itself
  // (never together with start()). True when some predicate fired.
  bool run_once() { return predicates_->run_once(); }

  // Any thread. False when the subgroup's send queue is full: call again after on_writable.
  // Messages queue across view changes; they are sent once this member is in an open view.
  bool send(std::uint32_t subgroup, std::span<const std::byte> payload);
  // Any thread. A large object written in place; see SubgroupMulticast::send_object.
  bool send_object(std::uint32_t subgroup, std::size_t bytes, const std::function<void(std::span<std::byte>)>& fill);
  // Any thread. Messages packed as [u32 length][payload]...; see SubgroupMulticast::send_packed.
  multicast::SubgroupMulticast::Queued send_packed(std::uint32_t subgroup, std::span<const std::byte> packed);
  void on_writable(std::function<void(std::uint32_t subgroup)> callback);
  // Any thread: the engine re-checks its predicates at once (e.g. a consumer became ready).
  void wake() { predicates_->wake(); }

  // Any thread: the versioned store of a subgroup configured with `store` (docs/store.md).
  // Throws std::invalid_argument when the subgroup has none or this member is not in it.
  store::VersionedStore& store(std::uint32_t subgroup);

  Stats stats() const;
  // Any thread. Throws std::invalid_argument for an unknown subgroup or one without this member.
  SubgroupStats subgroup_stats(std::uint32_t subgroup) const;
  // Any thread: the installed view, if any.
  std::optional<membership::View> view() const;
  MemberId self() const { return self_; }
  const GroupConfig& config() const { return config_; }

 private:
  multicast::SubgroupMulticast& subgroup(std::uint32_t index) const;
  membership::ViewManager::Host view_host();
  std::vector<std::uint64_t> ragged_edge(std::span<const MemberId> survivors) const;
  std::vector<std::uint64_t> plan_layout(std::uint64_t members, std::uint64_t carried_on,
                                         std::span<const std::uint64_t> current) const;
  std::uint64_t restart_source(std::size_t subgroup, std::size_t shard, const std::vector<MemberId>& group,
                               const std::vector<std::vector<MemberId>>& carriers, std::uint64_t members,
                               std::uint64_t carried_on) const;
  // Decision words for store restart sources: one per shard of each subgroup (1 unsharded).
  std::size_t restart_slots(std::size_t subgroup) const;
  // Which history a store group holds: its shard index + 1 (1 when not sharded).
  std::uint64_t lineage_of(std::size_t subgroup, std::size_t shard) const;
  void create_stores(const Options& options);
  void fail_store_operations(const std::string& why);
  void install(membership::View view, std::span<const std::uint64_t> layout_words);
  void plan_state_transfer(std::uint64_t vid);
  std::uint64_t bits_of(std::span<const MemberId> ids) const;

  GroupConfig config_;
  MemberId self_;
  LayoutPlan plan_;
  RegionLayout layout_;
  // Per subgroup, for the installed view: the groups of members that multicast together (its
  // shards, or the whole subgroup), and who was in each group before.
  std::vector<std::vector<std::vector<MemberId>>> groups_;
  std::vector<std::vector<std::vector<MemberId>>> before_;
  std::unique_ptr<transport::Transport> transport_;
  std::unique_ptr<sst::Sst> sst_;
  std::unique_ptr<sst::PredicateThread> predicates_;
  persistence::HybridClock clock_;
  // Indexed by subgroup; null where the subgroup is no store or this member is not in it.
  std::vector<std::unique_ptr<store::VersionedStore>> stores_;
  // Per subgroup, the SST rows of the members the state transfer of this view hands state to.
  std::vector<std::vector<std::size_t>> newcomer_rows_;
  std::vector<std::uint64_t> restart_words_;
  // Indexed by subgroup; null where this member is not configured in the subgroup.
  std::vector<std::unique_ptr<multicast::SubgroupMulticast>> subgroups_;
  std::unique_ptr<StateTransfer> state_;
  std::unique_ptr<membership::ViewManager> views_;
  StateTransfer::SnapshotRequest snapshot_callback_;
  StateTransfer::Restore restore_callback_;
  ViewCallback view_callback_;
  EventCallback event_callback_;
  mutable std::mutex view_mutex_;
  std::condition_variable view_changed_;
  std::optional<membership::View> installed_;
  bool open_ = false;
  bool left_ = false;
  bool started_ = false;
};

}  // namespace derecho
