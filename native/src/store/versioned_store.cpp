#include "store/versioned_store.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <random>

#include "common/log.hpp"
#include "persistence/checkpoint_file.hpp"
#include "persistence/record_format.hpp"
#include "persistence/volatile_log.hpp"
#include "store/history_digest.hpp"
#include "store/store_snapshot.hpp"

namespace derecho::store {
namespace {

// How often a log that could not grow is tried again.
constexpr std::chrono::milliseconds kLogRetry{100};
constexpr std::uint32_t kCheckpointFormat = 1;
// How far ahead of this member's physical clock a caller's `after` may be: more is a bug (or a
// peer's clock far off), and taking it would stamp every later version in the future.
constexpr std::uint64_t kMaxAfterAheadNs = 60'000'000'000ull;

std::uint64_t random_request_base() {
  std::random_device rd;
  return ((std::uint64_t{rd()} << 32) | rd()) | 1;
}


template <typename T>
void append_pod(std::vector<std::byte>& out, T value) {
  const auto at = out.size();
  out.resize(at + sizeof value);
  std::memcpy(out.data() + at, &value, sizeof value);
}

template <typename T>
T read_pod(std::span<const std::byte> in, std::size_t offset) {
  T value;
  std::memcpy(&value, in.data() + offset, sizeof value);
  return value;
}

}  // namespace

const char* error_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_argument: return "invalid_argument";
    case ErrorCode::unknown_version: return "unknown_version";
    case ErrorCode::not_retained: return "not_retained";
    case ErrorCode::future_time: return "future_time";
    case ErrorCode::log_full: return "log_full";
    case ErrorCode::busy: return "busy";
    case ErrorCode::stopped: return "stopped";
  }
  return "unknown";
}

VersionedStore::VersionedStore(std::string name, MemberId self, const StoreConfig& config, Options options,
                               sst::Sst& sst, Columns columns, persistence::HybridClock& clock, Host host)
    : name_(std::move(name)),
      self_(self),
      config_(config),
      options_(std::move(options)),
      sst_(sst),
      columns_(columns),
      clock_(clock),
      host_(std::move(host)),
      request_base_(random_request_base()),
      next_request_(request_base_) {
  {
    std::lock_guard lock(mutex_);
    load();
    publish_locked();
  }
  if (persistent_log_ && options_.background_persist) persister_ = std::jthread([this](std::stop_token stop) { persist_loop(stop); });
}

VersionedStore::~VersionedStore() = default;

void VersionedStore::persist_loop(std::stop_token stop) {
  std::unique_lock lock(mutex_);
  while (!stop.stop_requested()) {
    if (!persist_wanted_.wait(lock, stop, [this] { return persistent_log_->has_unflushed(); })) return;
    const auto job = persistent_log_->prepare_persist();
    flushing_ = true;
    lock.unlock();
    std::string failure;
    try {
      persistence::PersistentLog::run(job);
    } catch (const std::exception& e) {
      failure = e.what();
    }
    lock.lock();
    flushing_ = false;
    flush_done_.notify_all();
    if (!failure.empty()) {
      // Nothing more is made durable here (persisted stops), writes are refused, reads go on.
      flush_failed_ = "flushing the log failed: " + failure;
      derecho::log(LogLevel::error, "store", "store '" + name_ + "': " + flush_failed_ + "; refusing writes");
      return;
    }
    persistent_log_->finish_persist(job);
    ++flushes_;
    host_.wake();  // the engine publishes the new persisted version
  }
}

void VersionedStore::wait_until_not_flushing(std::unique_lock<std::mutex>& lock) {
  flush_done_.wait(lock, [this] { return !flushing_; });
}

void VersionedStore::load() {
  if (persistent()) {
    if (options_.dir.empty()) {
      throw std::invalid_argument("store '" + name_ + "' is persistent: the member needs a data directory");
    }
    persistence::LogOptions lo;
    lo.dir = options_.dir;
    lo.segment_bytes = config_.segment_bytes;
    lo.flush = options_.flush;
    lo.max_bytes = config_.max_log_bytes;
    auto log = persistence::PersistentLog::open(lo);
    persistent_log_ = log.get();
    repairs_ = log->repairs();
    for (const auto& r : repairs_) {
      derecho::log(LogLevel::warn, "store", "store '" + name_ + "': repaired " + r.file.string() + " at offset " + std::to_string(r.offset) +
                             " (" + r.reason + "), " + std::to_string(r.bytes_dropped) + " bytes dropped");
    }
    log_ = std::move(log);
    bool lineage_known = true;
    try {
      if (const auto lineage = persistence::load_checkpoint(options_.dir / "lineage")) lineage_ = lineage->version;
    } catch (const std::runtime_error& e) {
      lineage_known = false;
      drop_history_locked(options_.dir / "lineage", e.what());
    }
    base_digest_ = lineage_seed(lineage_);
    if (lineage_known) load_checkpoint_locked();
  } else {
    // One more than the window: the store folds the oldest version into its base before the
    // log would drop it by itself.
    log_ = std::make_unique<persistence::VolatileLog>(config_.window + 1);
  }
  rebuild_history();
  persisted_ = std::max(base_, log_->persisted_version());
}

void VersionedStore::load_checkpoint_locked() {
  const auto path = options_.dir / "checkpoint";
  try {
    const auto checkpoint = persistence::load_checkpoint(path);
    if (!checkpoint) return;
    const std::span<const std::byte> bytes = checkpoint->bytes;
    if (bytes.size() < 32 || read_pod<std::uint32_t>(bytes, 0) != kCheckpointFormat) {
      throw std::runtime_error("checkpoint " + path.string() + " is not format " + std::to_string(kCheckpointFormat));
    }
    index_.load_base(bytes.subspan(32));
    base_ = read_pod<std::uint64_t>(bytes, 8);
    base_hlc_ = read_pod<std::uint64_t>(bytes, 16);
    base_digest_ = read_pod<std::uint64_t>(bytes, 24);
  } catch (const std::runtime_error& e) {
    // Without its base the log cannot be replayed.
    drop_history_locked(path, e.what());
  }
}

void VersionedStore::drop_history_locked(const std::filesystem::path& damaged, const std::string& why) {
  // A damaged checkpoint or lineage leaves the log unusable (no base, or no knowing whose
  // history it is): it goes too, and the member takes the whole state from the group when it
  // joins. The damaged file is kept aside for whoever investigates.
  const auto size = std::filesystem::exists(damaged) ? std::filesystem::file_size(damaged) : 0;
  std::filesystem::rename(damaged, damaged.string() + ".damaged");
  std::filesystem::remove(options_.dir / "checkpoint");
  std::filesystem::remove(options_.dir / "lineage");
  log_->reset();
  index_.clear();
  base_ = base_hlc_ = 0;
  lineage_ = 0;
  base_digest_ = 0;
  repairs_.push_back({damaged, 0, size, why + "; the log was dropped with it, the state comes from the group"});
  derecho::log(LogLevel::error, "store", "store '" + name_ + "': " + repairs_.back().reason);
}

void VersionedStore::adopt_lineage_locked(std::uint64_t lineage) {
  lineage_ = lineage;
  if (persistent()) persistence::save_checkpoint(options_.dir / "lineage", lineage, {});
}

void VersionedStore::clear_locked() {
  log_->reset();
  unlogged_.clear();
  index_.clear();
  digests_.clear();
  base_ = base_hlc_ = last_ = last_hlc_ = persisted_ = 0;
  base_digest_ = lineage_seed(view_lineage_);
  if (persistent()) std::filesystem::remove(options_.dir / "checkpoint");
}

void VersionedStore::reset_frontiers_locked(const std::string& why, std::vector<Completion>& out) {
  global_ = stable_hlc_ = tick_covers_ = 0;
  const StoreError e(ErrorCode::stopped, "store '" + name_ + "': " + why);
  for (auto& [version, d] : persist_waits_) out.push_back([d = std::move(d), e] { d(&e, 0); });
  for (auto& [version, d] : delivered_waits_) out.push_back([d = std::move(d), e] { d(&e, 0); });
  for (auto& w : time_waits_) out.push_back([d = std::move(w.done), e] { d(&e, 0); });
  persist_waits_.clear();
  delivered_waits_.clear();
  time_waits_.clear();
}

void VersionedStore::complete_delivered_waits_locked(std::vector<Completion>& out) {
  for (auto it = delivered_waits_.begin(); it != delivered_waits_.end() && it->first <= last_;) {
    out.push_back([d = std::move(it->second), v = last_] { d(nullptr, v); });
    it = delivered_waits_.erase(it);
  }
}

void VersionedStore::rebuild_history() {
  index_.drop_history();
  digests_.clear();
  last_ = base_;
  last_hlc_ = base_hlc_;
  std::uint64_t digest = base_digest_;
  if (log_->last_version() > base_ && log_->first_version() > base_ + 1) {
    throw std::runtime_error("store '" + name_ + "': the log starts at version " + std::to_string(log_->first_version()) +
                             " but the checkpoint holds only up to " + std::to_string(base_));
  }
  for (std::uint64_t v = std::max(base_ + 1, log_->first_version()); v != 0 && v <= log_->last_version(); ++v) {
    const auto record = log_->read(v);
    const Change change = decode_change(record->body);
    if (change.kind != OpKind::tick) {
      index_.apply(change.key, {v, record->hlc, change.kind == OpKind::remove}, change.value);
      last_request_[change.sender] = change.request;
    }
    digest = roll_digest(digest, v, record->crc);
    digests_.push_back(digest);
    last_ = v;
    last_hlc_ = record->hlc;
  }
  clock_.observe(last_hlc_);
}

void VersionedStore::deliver(std::span<const multicast::Delivery> batch) {
  std::vector<Completion> done;
  {
    std::lock_guard lock(mutex_);
    for (const auto& d : batch) {
      std::string why;
      const auto op = decode_op(d.payload, why);
      if (!op) {
        // Every member skips the same bytes, so the replicas stay the same.
        ++bad_operations_;
        derecho::log(LogLevel::warn, "store", "store '" + name_ + "': skipped a message from member " + std::to_string(d.sender) + ": " + why);
        continue;
      }
      apply_locked(*op, d.sender, done);
    }
    complete_delivered_waits_locked(done);
  }
  if (persistent_log_) persist_wanted_.notify_one();
  for (auto& c : done) c();
}

void VersionedStore::apply_locked(const Op& op, MemberId sender, std::vector<Completion>& out) {
  // Sent for another shard's history (queued by a member before the layout moved it): every
  // member of this group skips it alike, and its sender failed it when it moved.
  if (op.lineage != 0 && op.lineage != view_lineage_) return;
  const bool mine = sender == self_;
  if (op.kind == OpKind::query) {
    if (!mine) return;
    const auto it = pending_queries_.find(op.request);
    if (it == pending_queries_.end()) return;
    ReadResult result = read_locked(it->second.first, last_);
    out.push_back([done = std::move(it->second.second), result = std::move(result)] { done(nullptr, result); });
    pending_queries_.erase(it);
    return;
  }
  const std::uint64_t version = last_ + 1;
  const std::uint64_t hlc = std::max(last_hlc_ + 1, op.hlc);
  clock_.observe(hlc);
  add_version_locked(version, hlc, encode_change({op.kind, sender, op.request, op.key, op.value}), out);
}

void VersionedStore::add_version_locked(std::uint64_t version, std::uint64_t hlc, std::vector<std::byte> body,
                                        std::vector<Completion>& out) {
  // A volatile log keeps `window` versions: the oldest is folded into the base before it goes.
  if (!persistent() && version - base_ > config_.window) fold_below_locked(version - config_.window + 1);
  const Change change = decode_change(body);
  if (change.kind != OpKind::tick) index_.apply(change.key, {version, hlc, change.kind == OpKind::remove}, change.value);
  const std::uint32_t sender = change.sender;
  const std::uint64_t request = change.request;
  const bool ours = change.kind != OpKind::tick && sender == self_;
  if (change.kind != OpKind::tick) last_request_[sender] = request;
  const std::uint64_t previous = digest_at_locked(last_);
  digests_.push_back(roll_digest(previous, version, append_locked(version, hlc, std::move(body))));
  last_ = version;
  last_hlc_ = hlc;
  if (!ours) return;
  const auto it = pending_writes_.find(request);
  if (it == pending_writes_.end()) return;
  out.push_back([done = std::move(it->second.done), stamp = Stamp{version, hlc}] { done(nullptr, stamp); });
  pending_writes_.erase(it);
}

std::uint32_t VersionedStore::append_locked(std::uint64_t version, std::uint64_t hlc, std::vector<std::byte> body) {
  if (unlogged_.empty()) {
    const auto result = log_->append(version, hlc, body);
    if (result.status == persistence::AppendResult::Status::ok) return log_->read(version)->crc;
    if (result.status == persistence::AppendResult::Status::too_large) {
      throw std::logic_error("store '" + name_ + "': " + result.error);
    }
    log_error_ = result.error;
    derecho::log(LogLevel::error, "store", "store '" + name_ + "': " + log_error_ + "; refusing puts until the log can grow");
    next_log_retry_ = std::chrono::steady_clock::now() + kLogRetry;
  }
  // Delivered is delivered: the version is kept here until the log takes it.
  const std::uint32_t crc = persistence::record_crc(version, hlc, body);
  unlogged_.push_back({version, hlc, std::move(body)});
  return crc;
}

void VersionedStore::retry_unlogged_locked() {
  while (!unlogged_.empty()) {
    const Unlogged& u = unlogged_.front();
    const auto result = log_->append(u.version, u.hlc, u.body);
    if (result.status != persistence::AppendResult::Status::ok) {
      log_error_ = result.error;
      next_log_retry_ = std::chrono::steady_clock::now() + kLogRetry;
      return;
    }
    unlogged_.pop_front();
  }
  if (persistent_log_) persist_wanted_.notify_one();
  derecho::log(LogLevel::info, "store", "store '" + name_ + "': the log grows again; accepting puts");
  log_error_.clear();
}

std::uint64_t VersionedStore::digest_at_locked(std::uint64_t version) const {
  if (version == base_) return base_digest_;
  if (version < base_ || version - base_ > digests_.size()) {
    throw std::logic_error("store '" + name_ + "': no digest at version " + std::to_string(version));
  }
  return digests_[version - base_ - 1];
}

std::vector<std::byte> VersionedStore::body_of_locked(std::uint64_t version) const {
  if (const auto record = log_->read(version)) return {record->body.begin(), record->body.end()};
  if (!unlogged_.empty() && version >= unlogged_.front().version) {
    return unlogged_[version - unlogged_.front().version].body;
  }
  throw std::logic_error("store '" + name_ + "': version " + std::to_string(version) + " is in neither log nor memory");
}

std::uint64_t VersionedStore::hlc_of_locked(std::uint64_t version) const {
  if (version == base_) return base_hlc_;
  if (const auto record = log_->read(version)) return record->hlc;
  if (!unlogged_.empty() && version >= unlogged_.front().version) return unlogged_[version - unlogged_.front().version].hlc;
  throw std::logic_error("store '" + name_ + "': no time for version " + std::to_string(version));
}

void VersionedStore::fold_below_locked(std::uint64_t version) {
  // Only what the log holds can be folded and dropped from it.
  version = std::min(version, log_->last_version() + 1);
  if (version <= base_ + 1) return;
  for (std::uint64_t v = base_ + 1; v < version; ++v) {
    const auto record = log_->read(v);
    if (!record) throw std::logic_error("store '" + name_ + "': folding version " + std::to_string(v) + ", which the log no longer holds");
    const Change change = decode_change(record->body);
    if (change.kind != OpKind::tick) {
      index_.fold(change.key, {v, record->hlc, change.kind == OpKind::remove}, change.value);
    }
    base_digest_ = digests_.front();
    digests_.pop_front();
    base_hlc_ = record->hlc;
    base_ = v;
  }
  if (persistent()) save_checkpoint_locked();
  log_->truncate_below(version);
}

void VersionedStore::save_checkpoint_locked() {
  std::vector<std::byte> bytes;
  append_pod<std::uint32_t>(bytes, kCheckpointFormat);
  append_pod<std::uint32_t>(bytes, 0);
  append_pod<std::uint64_t>(bytes, base_);
  append_pod<std::uint64_t>(bytes, base_hlc_);
  append_pod<std::uint64_t>(bytes, base_digest_);
  const auto base = index_.encode_base();
  bytes.insert(bytes.end(), base.begin(), base.end());
  persistence::save_checkpoint(options_.dir / "checkpoint", base_, bytes);
}

void VersionedStore::publish_locked() {
  const std::uint64_t digest = digest_at_locked(persisted_);
  sst_.write_own(columns_.lineage, lineage_);
  sst_.write_own(columns_.digest, digest);
  sst_.write_own(columns_.persisted, persisted_);
  published_ = persisted_;
}

bool VersionedStore::step() {
  std::vector<Completion> done;
  bool progress = false;
  {
    std::lock_guard lock(mutex_);
    if (!unlogged_.empty() && std::chrono::steady_clock::now() >= next_log_retry_) retry_unlogged_locked();
    const bool flushed_elsewhere = persistent_log_ && options_.background_persist;
    if (persistent_log_ && !flushed_elsewhere && persistent_log_->has_unflushed()) ++flushes_;
    persisted_ = std::max(base_, flushed_elsewhere ? persistent_log_->persisted_version() : log_->persist());
    if (persisted_ != published_) {
      publish_locked();
      sst_.push();
      progress = true;
    }
    if (open_ && !group_rows_.empty()) {
      std::uint64_t least = std::numeric_limits<std::uint64_t>::max();
      for (std::size_t row : group_rows_) least = std::min(least, sst_.read(row, columns_.persisted));
      least = std::min(least, persisted_);
      if (least > global_ && least >= base_) {
        global_ = least;
        stable_hlc_ = hlc_of_locked(global_);
        progress = true;
      }
    }
    for (auto it = persist_waits_.begin(); it != persist_waits_.end() && it->first <= global_;) {
      done.push_back([d = std::move(it->second), v = it->first] { d(nullptr, v); });
      it = persist_waits_.erase(it);
    }
    std::uint64_t waiting_for = 0;
    for (auto it = time_waits_.begin(); it != time_waits_.end();) {
      if (it->t > stable_hlc_) {
        waiting_for = std::max(waiting_for, it->t);
        ++it;
        continue;
      }
      try {
        const std::uint64_t v = version_at_locked(it->t);
        done.push_back([d = std::move(it->done), v] { d(nullptr, v); });
      } catch (const StoreError& e) {
        done.push_back([d = std::move(it->done), e] { d(&e, 0); });
      }
      it = time_waits_.erase(it);
    }
    // No version stamped at or after t is delivered yet (nobody writes), so nothing will move
    // the frontier past t: a tick, a version that changes no key, stamped now (after t), does.
    if (waiting_for > std::max(tick_covers_, last_hlc_) && outbox_.empty()) {
      Op tick;
      tick.kind = OpKind::tick;
      tick.lineage = view_lineage_;
      tick.hlc = clock_.now();
      tick_covers_ = tick.hlc;
      send_locked(encode_op(tick));
      progress = true;
    }
    while (!outbox_.empty() && host_.send(outbox_.front())) {
      outbox_bytes_ -= outbox_.front().size();
      outbox_.pop_front();
      progress = true;
    }
  }
  for (auto& c : done) c();
  return progress || !done.empty();
}

void VersionedStore::send_locked(std::vector<std::byte> op) {
  if (outbox_.empty() && host_.send(op)) return;
  if (outbox_bytes_ + op.size() > options_.max_outbox_bytes) {
    throw StoreError(ErrorCode::busy, "store '" + name_ + "': " + std::to_string(outbox_bytes_) +
                                          " bytes of operations wait for the send queue; try again later");
  }
  outbox_bytes_ += op.size();
  outbox_.push_back(std::move(op));
  host_.wake();
}

void VersionedStore::enter_view(std::vector<std::size_t> group_rows, std::uint64_t lineage) {
  std::vector<Completion> done;
  {
    std::lock_guard lock(mutex_);
    group_rows_ = std::move(group_rows);
    open_ = false;
    restored_ = false;
    // In no shard of this view (a spare, or an inadequate view): nothing moves; what it holds
    // and what it queued wait for the shard it lands in.
    if (lineage == 0) return;
    const bool moved = view_lineage_ != 0 && view_lineage_ != lineage;
    view_lineage_ = lineage;
    if (moved) {
      // What this member still had queued was meant for its old shard: sent now, the new one
      // skips it (its lineage tag), so it fails here, unapplied.
      const StoreError e(ErrorCode::stopped, "store '" + name_ +
                                                 "': this member moved to another shard before the operation was "
                                                 "applied; it was not applied");
      // Removed in between, the old shard may have delivered it; its state does not come here.
      const StoreError unknown(ErrorCode::stopped, "store '" + name_ +
                                                       "': this member was removed and then moved to another shard; "
                                                       "whether its old shard applied the write is unknown");
      // Sent before this member was in any shard (lineage 0): any shard applies it; it waits.
      for (auto w = pending_writes_.begin(); w != pending_writes_.end();) {
        if (w->second.lineage == 0 && !w->second.in_doubt) {
          ++w;
          continue;
        }
        done.push_back([d = std::move(w->second.done), err = w->second.in_doubt ? unknown : e] { d(&err, Stamp{}); });
        w = pending_writes_.erase(w);
      }
      for (auto& [request, q] : pending_queries_) done.push_back([d = std::move(q.second), e] { d(&e, ReadResult{}); });
      pending_queries_.clear();
      std::erase_if(outbox_, [&](const std::vector<std::byte>& op) {
        std::string why;
        const auto decoded = decode_op(op, why);
        const bool drop = !decoded || decoded->lineage != 0;
        if (drop) outbox_bytes_ -= op.size();
        return drop;
      });
    }
    if (lineage_ != lineage && lineage_ == 0 && last_ == 0 && base_ == 0) {
      adopt_lineage_locked(lineage);
      base_digest_ = lineage_seed(lineage);
      publish_locked();
      sst_.push();
    } else if (lineage_ != lineage) {
      // Another shard's history: nothing here answers for this shard until its state arrives
      // (restore) or it starts afresh (start_over_if_foreign).
      awaiting_state_ = true;
      reset_frontiers_locked("this member moved to another shard", done);
    }
  }
  for (auto& c : done) c();
}

std::uint64_t VersionedStore::lineage() const {
  std::lock_guard lock(mutex_);
  return lineage_;
}

void VersionedStore::start_over_if_foreign() {
  std::vector<Completion> done;
  {
    std::unique_lock lock(mutex_);
    if (lineage_ == view_lineage_) return;
    wait_until_not_flushing(lock);
    derecho::log(LogLevel::warn, "store", "store '" + name_ + "': drops versions up to " + std::to_string(last_) +
                                              " of another history (lineage " + std::to_string(lineage_) +
                                              "): this shard (lineage " + std::to_string(view_lineage_) + ") starts afresh");
    clear_locked();
    adopt_lineage_locked(view_lineage_);
    awaiting_state_ = false;
    reset_frontiers_locked("this member moved to another shard", done);
    publish_locked();
    sst_.push();
  }
  for (auto& c : done) c();
}

void VersionedStore::open() {
  std::vector<Completion> done;
  {
    std::lock_guard lock(mutex_);
    open_ = true;
    if (!group_rows_.empty()) resolve_in_doubt_locked(done);
  }
  for (auto& c : done) c();
  host_.wake();
}

void VersionedStore::resolve_in_doubt_locked(std::vector<Completion>& out) {
  // Back in a shard after a removal. The state received shows, by our last delivered request,
  // which in-doubt writes the group delivered: those it names were completed with their version
  // as their records arrived; one it does not name was folded into a base. The others were not
  // delivered: sent again if still queued, or never, if the queue was dropped.
  const auto it = last_request_.find(self_);
  const std::uint64_t delivered_upto =
      it != last_request_.end() && it->second >= request_base_ && it->second < next_request_ ? it->second : 0;
  const StoreError folded(ErrorCode::stopped, "store '" + name_ +
                                                  "': the write was applied while this member was removed; its "
                                                  "version was folded into a base and is not known here");
  const StoreError never(ErrorCode::stopped, "store '" + name_ +
                                                 "': the write was dropped when this member was removed, and the "
                                                 "group never applied it");
  const StoreError unknown(ErrorCode::stopped, "store '" + name_ +
                                                   "': this member was removed while the write was under way, and "
                                                   "what came back cannot say whether it was applied: unknown");
  for (auto w = pending_writes_.begin(); w != pending_writes_.end();) {
    if (!w->second.in_doubt) {
      ++w;
      continue;
    }
    // Without state from the group (this shard started afresh, or from this member's own log),
    // whatever the old history delivered of ours is nowhere to be seen: unknown.
    const StoreError* verdict = &unknown;
    if (restored_ && w->first <= delivered_upto) {
      verdict = &folded;
    } else if (restored_) {
      verdict = w->second.may_be_resent ? nullptr : w->second.fate_unknown ? &unknown : &never;
    }
    if (!verdict) {
      w->second.in_doubt = false;  // it is sent again and completes when delivered
      ++w;
      continue;
    }
    out.push_back([d = std::move(w->second.done), e = *verdict] { d(&e, Stamp{}); });
    w = pending_writes_.erase(w);
  }
}

void VersionedStore::removed(bool queue_dropped, bool fate_unknown) {
  std::vector<Completion> done;
  {
    std::lock_guard lock(mutex_);
    if (queue_dropped) {
      // Still in our outbox: never handed to the multicast, so never sent. They go now, failed.
      const StoreError unsent(ErrorCode::stopped, "store '" + name_ + "': the write was dropped unsent when this member was removed; it was not applied");
      for (const auto& op : outbox_) {
        std::string why;
        const auto decoded = decode_op(op, why);
        if (!decoded) continue;
        if (const auto it = pending_writes_.find(decoded->request); it != pending_writes_.end()) {
          done.push_back([d = std::move(it->second.done), unsent] { d(&unsent, Stamp{}); });
          pending_writes_.erase(it);
        }
      }
      outbox_.clear();
      outbox_bytes_ = 0;
    }
    for (auto& [request, w] : pending_writes_) {
      w.in_doubt = true;
      w.may_be_resent = !queue_dropped;
      w.fate_unknown = fate_unknown;
    }
    // A tick of ours may have been dropped with the removal: while a read by time still waits,
    // the next step sends another.
    tick_covers_ = 0;
    // Only the sender answers a query, and it does not deliver what the others did for it:
    // a query is harmless to ask again.
    const StoreError e(ErrorCode::stopped, "store '" + name_ + "': the query was dropped when this member was removed; ask again");
    for (auto& [request, q] : pending_queries_) done.push_back([d = std::move(q.second), e] { d(&e, ReadResult{}); });
    pending_queries_.clear();
  }
  for (auto& c : done) c();
}

std::vector<std::byte> VersionedStore::snapshot(std::span<const std::size_t> newcomer_rows) {
  std::lock_guard lock(mutex_);
  // A newcomer whose log ends at a version of our history (same digest there) needs only what
  // follows it; any other (an empty one counts: version 0) starts over from our base.
  bool follows = true;
  std::uint64_t from = last_;
  for (std::size_t row : newcomer_rows) {
    const std::uint64_t tail = sst_.read(row, columns_.persisted);
    const std::uint64_t digest = sst_.read(row, columns_.digest);
    if (tail < base_ || tail > last_ || digest_at_locked(tail) != digest) {
      follows = false;
    } else {
      from = std::min(from, tail);
    }
  }
  StoreSnapshot s;
  if (!follows) {
    s.base = StoreSnapshot::Base{base_, base_hlc_, base_digest_, index_.encode_base()};
    from = base_;
  }
  for (std::uint64_t v = from + 1; v <= last_; ++v) s.records.push_back({v, hlc_of_locked(v), body_of_locked(v)});
  s.last_requests.assign(last_request_.begin(), last_request_.end());
  return encode_snapshot(s);
}

void VersionedStore::restore(std::span<const std::byte> bytes) {
  StoreSnapshot s = decode_snapshot(bytes);
  std::vector<Completion> done;
  std::unique_lock lock(mutex_);
  wait_until_not_flushing(lock);
  const bool moved = lineage_ != view_lineage_;
  if (moved && !s.base) {
    throw std::runtime_error("store '" + name_ + "': a state transfer without a base into a member whose log holds another history");
  }
  if (s.base) {
    log_->reset();
    unlogged_.clear();
    if (persistent()) std::filesystem::remove(options_.dir / "checkpoint");
    // The lineage first: a crash before the checkpoint below leaves an empty log of the new
    // shard, never the new shard's base under the old shard's name.
    if (moved) adopt_lineage_locked(view_lineage_);
    index_.load_base(s.base->keys);
    base_ = s.base->version;
    base_hlc_ = s.base->hlc;
    base_digest_ = s.base->digest;
    digests_.clear();
    last_ = base_;
    last_hlc_ = base_hlc_;
    if (persistent()) save_checkpoint_locked();
  }
  if (moved) reset_frontiers_locked("this member moved to another shard", done);
  awaiting_state_ = false;
  restored_ = true;
  if (s.base) {
    // The frontiers described the history this base replaced.
    global_ = stable_hlc_ = tick_covers_ = 0;
  }
  const std::uint64_t had = last_;
  for (auto& r : s.records) {
    if (r.version <= last_) continue;  // we hold it already: the source checked our digest
    if (r.version != last_ + 1) {
      throw std::runtime_error("store '" + name_ + "': state transfer starts at version " + std::to_string(r.version) +
                               " but this member holds only up to " + std::to_string(last_));
    }
    add_version_locked(r.version, r.hlc, std::move(r.body), done);
  }
  for (const auto& [sender, request] : s.last_requests) last_request_[sender] = request;
  clock_.observe(last_hlc_);
  persisted_ = std::max(base_, log_->persist());
  // What the group had durable everywhere is at most what this member holds now.
  if (global_ > last_ || global_ < base_) {
    global_ = std::min(global_, last_);
    stable_hlc_ = global_ >= base_ ? hlc_of_locked(global_) : 0;
  }
  complete_delivered_waits_locked(done);
  publish_locked();
  sst_.push();
  lock.unlock();
  for (auto& c : done) c();
  if (!s.base && last_ == had) return;
  derecho::log(LogLevel::info, "store", "store '" + name_ + "': " +
                                   (s.base ? "started over from the base at version " + std::to_string(base_) + ", then "
                                           : std::string{}) +
                                   "took versions " + std::to_string(had + 1) + ".." + std::to_string(last_) +
                                   " by state transfer");
}

void VersionedStore::fail_pending(const std::string& why) {
  std::vector<Completion> done;
  {
    std::lock_guard lock(mutex_);
    const StoreError e(ErrorCode::stopped, "store '" + name_ + "': " + why);
    for (auto& [request, w] : pending_writes_) done.push_back([d = std::move(w.done), e] { d(&e, Stamp{}); });
    for (auto& [request, q] : pending_queries_) done.push_back([d = std::move(q.second), e] { d(&e, ReadResult{}); });
    for (auto& [version, d] : persist_waits_) done.push_back([d = std::move(d), e] { d(&e, 0); });
    for (auto& [version, d] : delivered_waits_) done.push_back([d = std::move(d), e] { d(&e, 0); });
    for (auto& w : time_waits_) done.push_back([d = std::move(w.done), e] { d(&e, 0); });
    pending_writes_.clear();
    pending_queries_.clear();
    persist_waits_.clear();
    delivered_waits_.clear();
    time_waits_.clear();
    outbox_.clear();
    outbox_bytes_ = 0;
    stopped_ = true;
  }
  for (auto& c : done) c();
}

void VersionedStore::check_key(std::string_view key) const {
  if (key.empty()) throw StoreError(ErrorCode::invalid_argument, "store '" + name_ + "': the key must not be empty");
  if (key.size() > config_.max_key_bytes) {
    throw StoreError(ErrorCode::invalid_argument, "store '" + name_ + "': a key of " + std::to_string(key.size()) +
                                                      " bytes is over maxKeyBytes (" + std::to_string(config_.max_key_bytes) + ")");
  }
}

void VersionedStore::submit(OpKind kind, std::string_view key, std::span<const std::byte> value, std::uint64_t after_hlc,
                            Done<Stamp> done) {
  check_key(key);
  if (value.size() > config_.max_value_bytes) {
    throw StoreError(ErrorCode::invalid_argument, "store '" + name_ + "': a value of " + std::to_string(value.size()) +
                                                      " bytes is over maxValueBytes (" +
                                                      std::to_string(config_.max_value_bytes) + ")");
  }
  std::lock_guard lock(mutex_);
  check_running_locked();
  if (!unlogged_.empty()) {
    throw StoreError(ErrorCode::log_full, "store '" + name_ + "' refuses writes while its log cannot grow: " + log_error_);
  }
  if (!flush_failed_.empty()) throw StoreError(ErrorCode::log_full, "store '" + name_ + "' refuses writes: " + flush_failed_);
  if (after_hlc > clock_.physical() + kMaxAfterAheadNs) {
    throw StoreError(ErrorCode::future_time, "store '" + name_ + "': `after` " + std::to_string(after_hlc) +
                                                 " is more than 60 s after this member's clock (" +
                                                 std::to_string(clock_.physical()) + ")");
  }
  clock_.observe(after_hlc);
  Op op;
  op.kind = kind;
  op.lineage = view_lineage_;
  op.request = next_request_++;
  op.hlc = clock_.now();
  op.key = key;
  op.value = value;
  pending_writes_.emplace(op.request, PendingWrite{std::move(done), false, false, false, op.lineage});
  try {
    send_locked(encode_op(op));
  } catch (...) {
    pending_writes_.erase(op.request);
    throw;
  }
}

void VersionedStore::put(std::string_view key, std::span<const std::byte> value, std::uint64_t after_hlc, Done<Stamp> done) {
  submit(OpKind::put, key, value, after_hlc, std::move(done));
}

void VersionedStore::remove(std::string_view key, std::uint64_t after_hlc, Done<Stamp> done) {
  submit(OpKind::remove, key, {}, after_hlc, std::move(done));
}

void VersionedStore::check_version_locked(std::uint64_t version) const {
  if (version > last_) {
    throw StoreError(ErrorCode::unknown_version, "store '" + name_ + "': version " + std::to_string(version) +
                                                     " is beyond this shard's latest, " + std::to_string(last_));
  }
  if (version < base_) {
    throw StoreError(ErrorCode::not_retained, "store '" + name_ + "': version " + std::to_string(version) +
                                                  " is below the oldest retained, " + std::to_string(base_));
  }
}

ReadResult VersionedStore::read_locked(std::string_view key, std::uint64_t version) const {
  ReadResult r;
  r.at_version = version;
  const auto found = index_.at(key, version);
  if (!found || found->write.removed) return r;
  r.found = true;
  r.written = {found->write.version, found->write.hlc};
  if (found->value) {
    r.value = *found->value;
  } else {
    const auto body = body_of_locked(found->write.version);
    const auto value = decode_change(body).value;
    r.value.assign(value.begin(), value.end());
  }
  return r;
}

void VersionedStore::check_serving_locked() const {
  if (awaiting_state_) {
    throw StoreError(ErrorCode::busy, "store '" + name_ + "': this member moved to another shard and is taking its state; try again");
  }
}

ReadResult VersionedStore::get(std::string_view key) const {
  check_key(key);
  std::lock_guard lock(mutex_);
  check_serving_locked();
  return read_locked(key, last_);
}

ReadResult VersionedStore::get(std::string_view key, std::uint64_t version) const {
  check_key(key);
  std::lock_guard lock(mutex_);
  check_serving_locked();
  check_version_locked(version);
  return read_locked(key, version);
}

std::vector<std::string> VersionedStore::list_keys() const {
  std::lock_guard lock(mutex_);
  check_serving_locked();
  return index_.keys_at(last_);
}

void VersionedStore::check_running_locked() const {
  if (stopped_) throw StoreError(ErrorCode::stopped, "store '" + name_ + "': the member stopped or left the group");
}

std::vector<std::string> VersionedStore::list_keys(std::uint64_t version) const {
  std::lock_guard lock(mutex_);
  check_serving_locked();
  check_version_locked(version);
  return index_.keys_at(version);
}

std::uint64_t VersionedStore::version_at_locked(std::uint64_t t) const {
  if (base_ > 0 && t < base_hlc_) {
    throw StoreError(ErrorCode::not_retained, "store '" + name_ + "': time " + std::to_string(t) +
                                                  " is before the oldest retained version, " + std::to_string(base_) +
                                                  " (stamped " + std::to_string(base_hlc_) + ")");
  }
  std::uint64_t v = base_;
  if (const auto found = log_->last_at_or_before(t); found && *found > base_) v = *found;
  for (const auto& u : unlogged_) {
    if (u.hlc > t) break;
    v = u.version;
  }
  return v;
}

void VersionedStore::version_at_time(std::uint64_t t, Done<std::uint64_t> done) {
  std::optional<std::uint64_t> now_answer;
  {
    std::lock_guard lock(mutex_);
    check_running_locked();
    check_serving_locked();
    const std::uint64_t now = clock_.now();
    if (t > now) {
      throw StoreError(ErrorCode::future_time, "store '" + name_ + "': time " + std::to_string(t) +
                                                   " is after this member's clock (" + std::to_string(now) + ")");
    }
    if (t <= stable_hlc_) {
      now_answer = version_at_locked(t);
    } else {
      time_waits_.push_back({t, std::move(done)});
    }
  }
  if (now_answer) {
    done(nullptr, *now_answer);
  } else {
    host_.wake();
  }
}

void VersionedStore::get_by_time(std::string_view key, std::uint64_t t, Done<ReadResult> done) {
  check_key(key);
  version_at_time(t, [this, key = std::string(key), done = std::move(done)](const StoreError* error, std::uint64_t v) {
    if (error) return done(error, ReadResult{});
    ReadResult r;
    try {
      std::lock_guard lock(mutex_);
      check_version_locked(v);
      r = read_locked(key, v);
    } catch (const StoreError& e) {
      return done(&e, ReadResult{});
    }
    done(nullptr, r);
  });
}

void VersionedStore::ordered_get(std::string_view key, Done<ReadResult> done) {
  check_key(key);
  std::lock_guard lock(mutex_);
  check_running_locked();
  Op op;
  op.kind = OpKind::query;
  op.lineage = view_lineage_;
  op.request = next_request_++;
  op.hlc = clock_.now();
  op.key = key;
  pending_queries_.emplace(op.request, std::make_pair(std::string(key), std::move(done)));
  try {
    send_locked(encode_op(op));
  } catch (...) {
    pending_queries_.erase(op.request);
    throw;
  }
}

void VersionedStore::wait_global_persisted(std::uint64_t version, Done<std::uint64_t> done) {
  bool now = false;
  {
    std::lock_guard lock(mutex_);
    check_running_locked();
    if (version > last_) {
      throw StoreError(ErrorCode::unknown_version, "store '" + name_ + "': version " + std::to_string(version) +
                                                       " is beyond this shard's latest, " + std::to_string(last_));
    }
    now = version <= global_;
    if (!now) persist_waits_.emplace(version, std::move(done));
  }
  if (now) {
    done(nullptr, version);
  } else {
    host_.wake();
  }
}

void VersionedStore::wait_delivered(std::uint64_t version, Done<std::uint64_t> done) {
  std::optional<std::uint64_t> now;
  {
    std::lock_guard lock(mutex_);
    check_running_locked();
    // Until its new shard's state arrives, last_ counts the old shard's history.
    check_serving_locked();
    if (version <= last_) {
      now = last_;
    } else {
      delivered_waits_.emplace(version, std::move(done));
    }
  }
  if (now) done(nullptr, *now);
}

std::vector<Entry> VersionedStore::entries(std::uint64_t from, std::size_t max_count, std::size_t max_bytes) const {
  if (from == 0) throw StoreError(ErrorCode::invalid_argument, "store '" + name_ + "': versions start at 1, not 0");
  if (max_count == 0) throw StoreError(ErrorCode::invalid_argument, "store '" + name_ + "': max_count must be at least 1");
  std::lock_guard lock(mutex_);
  check_serving_locked();
  // The base holds the state at base_, not the versions that led to it.
  if (from <= base_) {
    throw StoreError(ErrorCode::not_retained, "store '" + name_ + "': version " + std::to_string(from) +
                                                  " is folded into the base at version " + std::to_string(base_) +
                                                  "; entries are kept from version " + std::to_string(base_ + 1));
  }
  std::vector<Entry> out;
  std::size_t bytes = 0;
  for (std::uint64_t v = from; v <= last_ && out.size() < max_count; ++v) {
    const auto body = body_of_locked(v);
    const Change change = decode_change(body);
    const std::size_t size = change.key.size() + change.value.size();
    if (!out.empty() && (bytes >= max_bytes || size > max_bytes - bytes)) break;
    bytes += size;
    Entry& e = out.emplace_back();
    e.version = v;
    e.hlc = hlc_of_locked(v);
    e.kind = change.kind == OpKind::put ? EntryKind::put : change.kind == OpKind::remove ? EntryKind::remove : EntryKind::other;
    e.key = change.key;
    e.value.assign(change.value.begin(), change.value.end());
  }
  return out;
}

Outbox VersionedStore::outbox() const {
  std::lock_guard lock(mutex_);
  return {outbox_.size(), outbox_bytes_};
}

Frontier VersionedStore::frontier() const {
  std::lock_guard lock(mutex_);
  const bool full = !unlogged_.empty() || !flush_failed_.empty();
  return {base_, last_, persisted_, global_, stable_hlc_, full, flush_failed_.empty() ? log_error_ : flush_failed_, flushes_};
}

void VersionedStore::truncate_below(std::uint64_t version) {
  std::unique_lock lock(mutex_);
  wait_until_not_flushing(lock);
  if (version > persisted_) {
    throw StoreError(ErrorCode::unknown_version, "store '" + name_ + "': cannot truncate below version " +
                                                     std::to_string(version) + ": only versions up to " +
                                                     std::to_string(persisted_) + " are durable here");
  }
  fold_below_locked(version + 1);
  next_log_retry_ = {};  // the log may have room now
}

std::vector<persistence::Repair> VersionedStore::repairs() const {
  std::lock_guard lock(mutex_);
  return repairs_;
}

std::uint64_t VersionedStore::bad_operations() const {
  std::lock_guard lock(mutex_);
  return bad_operations_;
}

}  // namespace derecho::store
