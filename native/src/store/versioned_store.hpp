#pragma once
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/group_config.hpp"
#include "multicast/delivery.hpp"
#include "persistence/hybrid_clock.hpp"
#include "persistence/persistent_log.hpp"
#include "persistence/version_log.hpp"
#include "sst/sst.hpp"
#include "store/key_index.hpp"
#include "store/store_error.hpp"
#include "store/store_ops.hpp"

namespace derecho::store {

struct Stamp {
  std::uint64_t version = 0;
  std::uint64_t hlc = 0;
};

struct ReadResult {
  std::uint64_t at_version = 0;  // the version the read ran at
  bool found = false;
  Stamp written;                 // the put that wrote the value, when found
  std::vector<std::byte> value;
};

// What one version did, as entries() reads it back: `other` is a version that changes no key
// (a clock tick), with an empty key and value.
enum class EntryKind : std::uint8_t { put, remove, other };

struct Entry {
  std::uint64_t version = 0;
  std::uint64_t hlc = 0;
  EntryKind kind = EntryKind::other;
  std::string key;
  std::vector<std::byte> value;  // empty unless a put
};

// Operations of this member waiting for room in the subgroup's send queue.
struct Outbox {
  std::size_t operations = 0;
  std::size_t bytes = 0;
};

struct Frontier {
  std::uint64_t first_retained = 0;    // the oldest version reads can ask for (0: everything)
  std::uint64_t delivered = 0;         // the latest version here
  std::uint64_t persisted = 0;         // durable here (volatile: delivered)
  std::uint64_t global_persisted = 0;  // durable at every member of the shard
  std::uint64_t stable_hlc = 0;        // reads at times up to here are final
  bool log_full = false;
  std::string log_error;
  std::uint64_t flushes = 0;  // persistent: flushes that made something durable
};

// Completions run on the engine thread (or at once on the caller's, when already decided).
template <typename T>
using Done = std::function<void(const StoreError* error, const T& result)>;

// One shard's replicated, versioned key-value state at one member (docs/store.md), fed by the
// subgroup's ordered multicast. Every delivered put or remove becomes the next version, stamped
// with a hybrid logical clock time that never decreases with the version, so "the state at time
// t" is "the state at the last version stamped at or before t". The member publishes what its
// log made durable in its SST row; the least over the shard is globally persisted, and times up
// to that version's stamp are stable: a read there sees every write that will ever be stamped
// at or before it, on this shard and (by the clock) on every other.
class VersionedStore final : public multicast::DeliverySink {
 public:
  struct Options {
    std::filesystem::path dir;  // persistent: the log's directory
    persistence::FlushMode flush = persistence::FlushMode::automatic;
    // Operations waiting for room in the subgroup's send queue; past this, puts are refused (busy).
    std::size_t max_outbox_bytes = 4u << 20;
    // Flush on a thread of its own (false: in step(), for a harness that drives every step).
    bool background_persist = true;
  };
  struct Columns {
    std::size_t persisted;  // this member's durable version
    std::size_t digest;     // the history digest at that version (state transfer checks it)
    std::size_t lineage;    // which history the log holds (shard index + 1; 0: none yet)
  };
  struct Host {
    std::function<bool(std::span<const std::byte>)> send;  // multicast in the subgroup; false: queue full
    std::function<void()> wake;                             // run step() soon
  };

  // Opens (persistent: recovers) the state. Writes our columns; the caller pushes them.
  VersionedStore(std::string name, MemberId self, const StoreConfig& config, Options options, sst::Sst& sst,
                 Columns columns, persistence::HybridClock& clock, Host host);
  ~VersionedStore() override;

  // --- engine thread ---
  bool ready() override { return true; }
  void deliver(std::span<const multicast::Delivery> batch) override;
  // Persists what was delivered, publishes it, advances the global frontier, completes waits,
  // sends clock ticks for reads waiting on an idle shard, and sends what queued up.
  bool step();
  // The members this one multicasts with in the installed view (SST rows), and whether the
  // view is open: the global frontier is taken over them only then, after every joiner's
  // state arrived.
  // `lineage` names the shard (index + 1; 1 when not sharded): a member whose log holds
  // another shard's history gets this one's by state transfer, or starts over when it has
  // no source (start_over).
  void enter_view(std::vector<std::size_t> group_rows, std::uint64_t lineage);
  void open();
  // The group starts afresh without a source: a log of another shard's history is dropped.
  void start_over_if_foreign();
  std::uint64_t lineage() const;
  // State transfer: what newcomers (their SST rows) need, and taking it in.
  std::vector<std::byte> snapshot(std::span<const std::size_t> newcomer_rows);
  void restore(std::span<const std::byte> snapshot);
  // Every pending operation fails with `why` and later calls are refused (the member stopped
  // or left the group).
  void fail_pending(const std::string& why);
  // The member was removed: its pending writes are in doubt (the others may have delivered some,
  // below the ragged edge or before it learned of the removal) until the state it gets back at
  // its rejoin says which (docs/store.md, "Writes across removals"). `queue_dropped`: there was
  // no ragged edge and its unsent operations were dropped, so none of them is sent again;
  // `fate_unknown`: they were dropped because nobody of its shard survived to say which of them
  // were delivered (so one the state does not show may still have been applied, then lost).
  void removed(bool queue_dropped, bool fate_unknown);

  // --- any thread ---
  // Throws StoreError (invalid_argument, log_full, busy) without sending anything; `after_hlc`:
  // the latest time the caller has seen (a read's stamp), so this write is stamped after it.
  void put(std::string_view key, std::span<const std::byte> value, std::uint64_t after_hlc, Done<Stamp> done);
  void remove(std::string_view key, std::uint64_t after_hlc, Done<Stamp> done);
  ReadResult get(std::string_view key) const;
  ReadResult get(std::string_view key, std::uint64_t version) const;  // throws unknown_version, not_retained
  std::vector<std::string> list_keys(std::uint64_t version) const;
  std::vector<std::string> list_keys() const;  // latest
  // The version current at time t, once t is stable here (throws future_time, not_retained).
  void version_at_time(std::uint64_t t, Done<std::uint64_t> done);
  void get_by_time(std::string_view key, std::uint64_t t, Done<ReadResult> done);
  // A read ordered with the writes: it runs where it is delivered, at that version.
  void ordered_get(std::string_view key, Done<ReadResult> done);
  // Completes once `version` is durable at every member of the shard.
  void wait_global_persisted(std::uint64_t version, Done<std::uint64_t> done);
  // Completes with the latest delivered version once it is `version` or later (a reader that
  // follows the log waits here for what it has not seen). Fails `stopped` when the member stops
  // or moves to another shard, whose versions are another history.
  void wait_delivered(std::uint64_t version, Done<std::uint64_t> done);
  // The delivered versions from `from` on, oldest first: at most `max_count`, and no more once
  // the next would take the keys and values past `max_bytes`, but always the first one there
  // is. Empty when `from` is not delivered yet. Throws invalid_argument for `from` 0 or
  // `max_count` 0, not_retained for a version folded into the base (at or below
  // first_retained, once something was folded).
  std::vector<Entry> entries(std::uint64_t from, std::size_t max_count, std::size_t max_bytes) const;
  Frontier frontier() const;
  // Reads below `version` are refused from now on (not_retained); the state at `version` is
  // kept as the base, in a checkpoint for a persistent log, which then frees its segments.
  // Throws unknown_version above the version persisted here.
  void truncate_below(std::uint64_t version);
  std::vector<persistence::Repair> repairs() const;
  std::uint64_t bad_operations() const;
  Outbox outbox() const;

 private:
  struct TimeWait {
    std::uint64_t t;
    Done<std::uint64_t> done;
  };
  struct Unlogged {
    std::uint64_t version;
    std::uint64_t hlc;
    std::vector<std::byte> body;
  };
  using Completion = std::function<void()>;

  void load();
  void persist_loop(std::stop_token stop);
  void wait_until_not_flushing(std::unique_lock<std::mutex>& lock);
  void load_checkpoint_locked();
  void adopt_lineage_locked(std::uint64_t lineage);
  void clear_locked();
  void reset_frontiers_locked(const std::string& why, std::vector<Completion>& out);
  void complete_delivered_waits_locked(std::vector<Completion>& out);
  void rebuild_history();
  void apply_locked(const Op& op, MemberId sender, std::vector<Completion>& out);
  void add_version_locked(std::uint64_t version, std::uint64_t hlc, std::vector<std::byte> body,
                          std::vector<Completion>& out);
  // Returns the record's checksum, which the history digest rolls in.
  std::uint32_t append_locked(std::uint64_t version, std::uint64_t hlc, std::vector<std::byte> body);
  void retry_unlogged_locked();
  void fold_below_locked(std::uint64_t version);
  void save_checkpoint_locked();
  ReadResult read_locked(std::string_view key, std::uint64_t version) const;
  std::vector<std::byte> body_of_locked(std::uint64_t version) const;
  std::uint64_t hlc_of_locked(std::uint64_t version) const;
  std::uint64_t digest_at_locked(std::uint64_t version) const;
  std::uint64_t version_at_locked(std::uint64_t t) const;
  void check_version_locked(std::uint64_t version) const;
  void check_key(std::string_view key) const;
  void check_running_locked() const;
  void check_serving_locked() const;
  void resolve_in_doubt_locked(std::vector<Completion>& out);
  void drop_history_locked(const std::filesystem::path& damaged, const std::string& why);
  void send_locked(std::vector<std::byte> op);
  void submit(OpKind kind, std::string_view key, std::span<const std::byte> value, std::uint64_t after_hlc,
              Done<Stamp> done);
  void publish_locked();
  bool persistent() const { return config_.storage == StorageKind::persistent; }

  std::string name_;
  MemberId self_;
  StoreConfig config_;
  Options options_;
  sst::Sst& sst_;
  Columns columns_;
  persistence::HybridClock& clock_;
  Host host_;

  mutable std::mutex mutex_;
  std::unique_ptr<persistence::VersionLog> log_;
  persistence::PersistentLog* persistent_log_ = nullptr;  // log_, when persistent
  // The persistence thread flushes appended versions while the engine goes on delivering
  // (Derecho's persistence thread); `flushing_` while a flush runs outside the lock.
  std::condition_variable_any persist_wanted_;
  std::condition_variable flush_done_;
  bool flushing_ = false;
  std::vector<persistence::Repair> repairs_;
  KeyIndex index_;
  // The base: the state at version base_ (everything older is folded into the index's base).
  std::uint64_t base_ = 0;
  std::uint64_t base_hlc_ = 0;
  std::uint64_t base_digest_ = 0;
  std::uint64_t last_ = 0;
  std::uint64_t last_hlc_ = 0;
  std::deque<std::uint64_t> digests_;  // digests_[i]: the digest at version base_ + 1 + i
  std::deque<Unlogged> unlogged_;      // delivered, not yet in the log (it could not grow)
  std::string log_error_;
  std::chrono::steady_clock::time_point next_log_retry_{};
  std::uint64_t persisted_ = 0;
  std::uint64_t published_ = 0;
  std::uint64_t global_ = 0;
  std::uint64_t stable_hlc_ = 0;
  std::vector<std::size_t> group_rows_;
  bool open_ = false;
  std::uint64_t lineage_ = 0;       // the history this store holds
  std::uint64_t view_lineage_ = 0;  // the history of the group it is in now
  bool stopped_ = false;
  bool awaiting_state_ = false;          // moved to another shard; its state has not arrived
  bool restored_ = false;  // state arrived by transfer in the current view
  std::string flush_failed_;             // the persistence thread stopped on an error

  std::uint64_t request_base_;  // this incarnation's first request
  std::uint64_t next_request_;
  // Per sender, the last request delivered: a sender's operations are delivered in the order it
  // sent them, so everything of its up to here was delivered (handed on in state transfers).
  std::map<MemberId, std::uint64_t> last_request_;
  struct PendingWrite {
    Done<Stamp> done;
    bool in_doubt = false;       // removed since it was sent
    bool may_be_resent = false;  // still queued or requeued in the multicast
    bool fate_unknown = false;   // dropped where no survivor could tell whether it was delivered
    std::uint64_t lineage = 0;   // what it was sent for (0: before this member was in a shard)
  };
  std::map<std::uint64_t, PendingWrite> pending_writes_;
  std::map<std::uint64_t, std::pair<std::string, Done<ReadResult>>> pending_queries_;
  std::multimap<std::uint64_t, Done<std::uint64_t>> persist_waits_;
  std::multimap<std::uint64_t, Done<std::uint64_t>> delivered_waits_;
  std::vector<TimeWait> time_waits_;
  std::uint64_t tick_covers_ = 0;  // the clock time of the latest tick sent
  std::deque<std::vector<std::byte>> outbox_;
  std::size_t outbox_bytes_ = 0;
  std::uint64_t bad_operations_ = 0;
  std::uint64_t flushes_ = 0;
  std::jthread persister_;  // last: stopped and joined first
};

}  // namespace derecho::store
