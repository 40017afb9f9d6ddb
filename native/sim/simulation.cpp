#include "simulation.hpp"

#include <algorithm>
#include <bit>
#include <cctype>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>

#include "common/log.hpp"
#include "member/layout_plan.hpp"
#include "member/member.hpp"
#include "member/region_layout.hpp"
#include "membership/membership_columns.hpp"
#include "sst/sst.hpp"
#include "transport/memory_network.hpp"

namespace derecho::sim {
namespace {

using namespace std::chrono_literals;
using membership::View;
// (view id, subgroup, shard): one sequence of deliveries. An unsharded subgroup is one shard, 0.
using Key = std::tuple<std::uint64_t, std::uint32_t, std::uint32_t>;
using VidG = std::pair<std::uint64_t, std::uint32_t>;  // (view id, subgroup)

// Every payload starts with who sent it and its number, so a delivery names its message:
// u32 number (the sender's messages in the subgroup, over all its incarnations), u32
// (incarnation << 16 | sender << 8 | subgroup); the rest is derived from those. Zero-length
// messages carry nothing: the walker works out which one they are from the sender's send order.
constexpr std::size_t kHeaderBytes = 8;

std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::uint64_t digest_of(std::span<const std::byte> bytes) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::byte b : bytes) h = (h ^ static_cast<std::uint8_t>(b)) * 1099511628211ull;
  return h;
}

std::vector<std::byte> make_payload(std::uint32_t g, MemberId sender, std::uint32_t number, std::uint32_t inc,
                                    std::size_t size) {
  std::vector<std::byte> p(size);
  const std::uint32_t header[2] = {number, (inc << 16) | (sender << 8) | g};
  std::memcpy(p.data(), header, kHeaderBytes);
  const std::uint64_t seed = mix((std::uint64_t{g} << 56) ^ (std::uint64_t{sender} << 48) ^ number);
  for (std::size_t i = kHeaderBytes; i < size; i += 8) {
    const std::uint64_t w = mix(seed + i);
    std::memcpy(p.data() + i, &w, std::min<std::size_t>(8, size - i));
  }
  return p;
}

std::string ids_text(const std::vector<MemberId>& ids) {
  std::string s = "[";
  for (std::size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

std::string bits_text(std::uint64_t bits) {
  std::vector<MemberId> ids;
  for (std::size_t r = 0; r < 64; ++r) {
    if (bits & (std::uint64_t{1} << r)) ids.push_back(static_cast<MemberId>(r));
  }
  return ids_text(ids);
}

bool has(std::uint64_t bits, MemberId id) { return (bits >> id) & 1; }

bool contains(const std::vector<MemberId>& ids, MemberId id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); }

std::string shards_text(const std::vector<std::vector<MemberId>>& shards) {
  std::string s;
  for (const auto& shard : shards) s += ids_text(shard);
  return s.empty() ? "(none)" : s;
}

std::string key_text(const Key& k) {
  return "view " + std::to_string(std::get<0>(k)) + " subgroup " + std::to_string(std::get<1>(k)) + " shard " +
         std::to_string(std::get<2>(k));
}

struct Entry {
  std::uint64_t index = 0;
  std::uint64_t sender_seq = 0;
  MemberId sender = 0;
  std::uint32_t number = 0;  // from the payload header
  std::uint32_t inc = 0;     // the sender's incarnation, from the header
  std::uint32_t header_ids = 0;
  std::uint32_t size = 0;
  std::uint64_t digest = 0;
  bool operator==(const Entry&) const = default;
};

std::string describe(const Entry& e) {
  return "sender " + std::to_string(e.sender) + "#" + std::to_string(e.inc) + " message " + std::to_string(e.number) +
         " (index " + std::to_string(e.index) + ", seq " + std::to_string(e.sender_seq) + ", " +
         std::to_string(e.size) + " B)";
}

// The application state the simulator keeps per subgroup: a hash chain over what it delivered,
// handed to joiners by state transfer.
struct AppState {
  std::uint64_t count = 0;
  std::uint64_t hash = 0;
  void apply(const Entry& e) {
    ++count;
    hash = mix(hash ^ mix((std::uint64_t{e.sender} << 40) ^ (std::uint64_t{e.inc} << 32) ^ e.number) ^ e.digest);
  }
  bool operator==(const AppState&) const = default;
  std::string text() const { return "(" + std::to_string(count) + " messages, hash " + std::to_string(hash % 100000) + ")"; }
};

// The bytes a snapshot carries: the state, then (in runs with big states) padding derived from
// it, long enough to take several chunks of state transfer.
std::vector<std::byte> snapshot_bytes(const AppState& s, std::uint32_t g, bool big) {
  const std::size_t pad = big ? static_cast<std::size_t>(mix(s.hash ^ s.count ^ g) % 12000) : 0;
  std::vector<std::byte> bytes(sizeof(AppState) + pad);
  std::memcpy(bytes.data(), &s, sizeof(AppState));
  for (std::size_t i = 0; i < pad; ++i) bytes[sizeof(AppState) + i] = static_cast<std::byte>(mix(s.hash + i) & 0xff);
  return bytes;
}

// The state a snapshot holds, or a count of ~0 when the bytes are not a snapshot we made.
AppState restore_bytes(std::span<const std::byte> bytes, std::uint32_t g, bool big) {
  AppState s;
  s.count = ~std::uint64_t{0};
  if (bytes.size() < sizeof(AppState)) return s;
  AppState got;
  std::memcpy(&got, bytes.data(), sizeof(AppState));
  const auto expect = snapshot_bytes(got, g, big);
  if (expect.size() != bytes.size() || !std::equal(expect.begin(), expect.end(), bytes.begin())) return s;
  return got;
}

class Simulation;

struct Incarnation;

class Sink final : public multicast::DeliverySink {
 public:
  Sink(Simulation& sim, Incarnation& inc) : sim_(sim), inc_(inc) {}
  bool ready() override;
  void deliver(std::span<const multicast::Delivery> batch) override;

 private:
  Simulation& sim_;
  Incarnation& inc_;
};

struct Incarnation {
  MemberId id = 0;
  std::uint32_t number = 0;
  std::uint64_t boot = 0;
  std::unique_ptr<Sink> sink;      // declared before the member, which refers to it
  std::unique_ptr<Member> member;
  bool alive = true;
  bool ready = true;               // the consumer takes deliveries
  std::size_t frozen_until = 0;    // no passes before this step (a stopped process)
  bool leaving = false;            // asked to leave (request_leave)
  std::size_t back_after = 0;      // a leaver: steps after it left that it starts again (0: never)
  bool left = false;               // reported MembershipEvent::left, then stopped
  bool left_from_view = false;     // it was in a view when it left (not still joining)
  std::optional<View> view;        // installed, as the callbacks told
  std::uint64_t last_vid = 0;
  std::uint64_t first_vid = 0;
  std::uint64_t commit_ref = 0;    // the commit column of its own row, last seen
  std::map<Key, std::vector<Entry>> logs;
  std::map<Key, std::size_t> checked;
  std::set<Key> touched;
  std::vector<AppState> app;       // per subgroup (for a sharded one: of the shard it is in)
  std::set<VidG> must_restore;     // joined a subgroup (shard) with state to receive, not restored yet
  // As the engine's callbacks tell it, inside a pass (before check() sees the events): the view
  // it is in and, per subgroup, its shard in it (-1: none: not a member, a spare, an inadequate view).
  bool cb_in_view = false;
  std::uint64_t cb_vid = 0;
  std::vector<int> cb_shard;
  bool inadequate_event_due = false;  // installed an inadequate view: MembershipEvent::inadequate must follow
  // Its versioned store (runs with one): the history (epoch) its content belongs to (-1: none
  // yet), whether it is a newcomer in its shard still waiting for its state (its content is
  // then unknown: not read until it announces its view), and how far its versions were compared.
  std::int64_t store_epoch = -1;
  bool store_pending = false;
  std::uint64_t store_scanned = 0;  // versions up to here compared (0: none)
  std::uint32_t removals = 0;       // times it was removed from a view (MembershipEvent::removed)
  std::string name() const { return "m" + std::to_string(id) + "#" + std::to_string(number); }
};

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Simulation {
 public:
  explicit Simulation(const Options& options)
      : options_(options), rng_(options.seed), srng_(mix(options.seed ^ 0x73746f7265ull)), orng_(mix(options.seed ^ 0x6f626a656374ull)) {}
  // Members go first: a store completes its pending operations (stopped) as its member stops,
  // and the completions must not reach a half-destroyed simulation.
  ~Simulation() {
    tearing_down_ = true;
    for (auto& per_id : incs_) {
      for (auto& inc : per_id) inc->member.reset();
    }
  }
  Simulation(const Simulation&) = delete;
  Simulation& operator=(const Simulation&) = delete;

  Outcome run() {
    Outcome out;
    // The engine's own log lines (suspicions, installs, rejoins) go into the trace.
    set_log_level(LogLevel::info);
    set_log_sink([this](LogLevel, std::string_view component, std::string_view message) {
      note(std::string(component) + ": " + std::string(message));
    });
    try {
      setup();
      out.members = config_.members.size();
      out.subgroups = config_.subgroups.size();
      for (step_ = 0; step_ < options_.steps; ++step_) {
        apply_planned();
        random_step();
        store_step();
        check();
        if (options_.dump_every && step_ % options_.dump_every == 0) note("own SST rows:\n" + describe_rows());
      }
      settle();
      final_store_check();
    } catch (const std::exception& e) {
      out.ok = false;
      out.failure = e.what();
    }
    set_log_sink(nullptr);
    set_log_level(LogLevel::error);
    out.scenario = scenario_;
    out.trace.assign(trace_.begin(), trace_.end());
    for (const auto& per_id : incs_) {
      for (const auto& inc : per_id) {
        for (const auto& [key, log] : inc->logs) out.delivered += log.size();
      }
    }
    for (const auto& [key, msgs] : sent_) out.sent += msgs.size();
    out.views = decided_.empty() ? 0 : decided_.rbegin()->first;
    out.transitions = transitions_;
    out.restores = restores_checked_;
    out.link_breaks = counts_.link_breaks;
    out.partitions = counts_.partitions;
    out.crashes = counts_.crashes;
    out.restarts = counts_.restarts;
    out.late_joins = counts_.late_joins;
    out.freezes = counts_.freezes;
    out.clock_jumps = counts_.clock_jumps;
    out.leaves = counts_.leaves;
    out.left = counts_.left;
    out.snapshots_late = counts_.snapshots_late;
    out.snapshots_unanswered = counts_.snapshots_unanswered;
    out.packed_sends = counts_.packed_sends;
    out.empty_messages = counts_.empty_messages;
    out.objects = counts_.objects;
    out.inadequate_views = counts_.inadequate_views;
    out.shard_restores = counts_.shard_restores;
    out.sharded = sharded_;
    for (const auto& [key, n] : lost_by_removal_) out.lost_by_removal += n;
    out.majority_lost = majority_lost_;
    out.converged = converged_;
    out.store = store_g_.has_value();
    out.store_sharded = store_g_ && config_.subgroups[*store_g_].sharding.has_value();
    out.store_ops = scounts_.ops;
    out.store_completed = scounts_.completed;
    out.store_failed = scounts_.failed;
    out.store_never_applied = scounts_.never_applied;
    out.store_refused = scounts_.refused;
    out.store_versions = scounts_.versions;
    out.store_reads = scounts_.reads;
    out.store_time_answers = scounts_.time_answers;
    out.store_epochs = epochs_.size();
    return out;
  }

  // Called from the sinks and member callbacks, inside a pass.
  bool ready_of(const Incarnation& inc) const { return inc.ready; }
  void on_delivery(Incarnation& inc, const multicast::Delivery& d);

 private:
  enum class Status { waiting, running, crashed };
  enum class Act { break_link, restore_link, partition, heal, crash, mass_crash, restart, start, freeze, clock_jump, leave };
  struct Planned {
    Act act;
    MemberId a = 0, b = 0;
    std::size_t duration = 0;
    bool flag = false;
  };
  struct Decision {
    std::uint64_t members = 0;
    std::uint64_t previous = 0;
    std::vector<std::uint64_t> boots;
    std::vector<std::uint64_t> layout;  // the layout words (member/layout_plan.hpp)
    bool adequate = true;
    std::string inadequate;
    std::vector<std::vector<std::vector<MemberId>>> shards;  // per subgroup: its shards (empty if unsharded)
    // Per subgroup and member: the shard whose state the member holds at the end of this view
    // (-1: none). For an unsharded subgroup 0 for its members in the view.
    std::vector<std::vector<int>> track;
    std::size_t step = 0;
    std::string by;
  };
  struct ViewGroup {
    std::vector<Entry> canon;  // the longest delivery sequence seen in this view and subgroup
    std::map<MemberId, std::uint64_t> seq_of;
    std::optional<std::size_t> final;  // what members that left the view to the next delivered
    std::string final_by;
  };
  struct Chain {  // one sender's messages in one subgroup, in the order the group delivered them
    std::int64_t inc = -1;
    std::uint32_t next = 0;
    std::uint64_t view = 0;  // of the last one
  };
  struct Walker {  // walks each subgroup's history view by view, in order, every shard of it
    std::uint64_t view = 1;
    std::vector<std::size_t> pos;  // per shard of the view
    bool started = false;
    std::map<std::uint32_t, AppState> state;  // per shard index: what it delivered so far
  };
  struct Restored {
    std::string who;
    std::uint32_t g;
    std::uint64_t vid;
    std::uint32_t shard;
    AppState state;
    bool held = false;  // not a restore: the state a member that stays in the shard holds at the start of the view
  };
  struct Event {
    enum Kind { install, removed, left, note } kind;
    Incarnation* inc;
    std::optional<View> view;
    std::string text;
  };

  // ---- setup ---------------------------------------------------------------------------------

  std::size_t pick(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(rng_() % n); }
  bool chance(std::size_t percent) { return pick(100) < percent; }
  std::string at() const { return "[" + std::to_string(step_) + " t=" + std::to_string(now_ms()) + "ms] "; }
  long long now_ms() const { return std::chrono::duration_cast<std::chrono::milliseconds>(now_.time_since_epoch()).count(); }

  void setup() {
    make_config();
    layout_ = RegionLayout::compute(config_);
    row_bytes_ = sst::Sst::bytes_needed(1, layout_.sst_columns);
    std::vector<MemberId> ids;
    for (const auto& m : config_.members) ids.push_back(m.id);
    net_ = std::make_unique<transport::MemoryNetwork>(ids, layout_.region_bytes, rng_());
    incs_.resize(ids.size());
    status_.assign(ids.size(), Status::waiting);
    walkers_.resize(config_.subgroups.size());
    plan_faults();
    for (MemberId id : ids) {
      if (!late_.contains(id)) start_incarnation(id);
    }
    sync_all_links(false);
    check();
  }

  void make_config() {
    const std::size_t n = 3 + pick(5);
    config_.group_name = "sim-" + std::to_string(options_.seed);
    config_.transport = TransportKind::shm;
    config_.heartbeat_interval = 10ms;
    config_.suspect_after = std::chrono::milliseconds(100 + 50 * pick(3));
    config_.state_chunk_bytes = 4096;
    std::vector<MemberId> ids;
    for (std::size_t i = 0; i < n; ++i) {
      ids.push_back(static_cast<MemberId>(i));
      config_.members.push_back({static_cast<MemberId>(i), "sim", 1});
    }
    // Some groups are founded by their first members only; the others (spares) join later.
    if (chance(20) && options_.features.spares) config_.initial_members = static_cast<std::uint32_t>(1 + pick(n - 1));
    const std::size_t subgroups = 1 + pick(2);
    for (std::size_t s = 0; s < subgroups; ++s) {
      SubgroupConfig sg;
      sg.name = "sg" + std::to_string(s);
      if (chance(30) && options_.features.shards) {
        // Sharded: every member is a candidate (the layout places members of the view) and
        // sends; shards, minimum and maximum small enough that views go from adequate to not.
        ShardingConfig sh;
        sh.shards = static_cast<std::uint32_t>(1 + pick(std::min<std::size_t>(3, n)));
        sh.min_per_shard = static_cast<std::uint32_t>(1 + pick(2));
        sh.max_per_shard = sh.min_per_shard + static_cast<std::uint32_t>(pick(3));
        if (chance(30)) {
          sh.reserved.resize(sh.shards);
          sh.reserved[pick(sh.shards)].push_back(ids[pick(n)]);
        }
        sg.members = ids;
        sg.senders = ids;
        sg.sharding = sh;
        sharded_ = true;
      } else {
        for (MemberId id : ids) {
          if (s == 0 || pick(3) != 0) sg.members.push_back(id);
        }
        if (sg.members.empty()) sg.members.push_back(ids[pick(ids.size())]);
        const bool all_send = chance(50);
        for (MemberId id : sg.members) {
          if (all_send || pick(2) == 0) sg.senders.push_back(id);
        }
        if (sg.senders.empty()) sg.senders.push_back(sg.members[pick(sg.members.size())]);
      }
      sg.ring_bytes = 256u << pick(4);
      sg.max_message_bytes = std::max<std::uint32_t>(kHeaderBytes, (sg.ring_bytes - 64) / 4);
      // Some subgroups take large objects (an RNG of their own: runs without them draw as before):
      // a few blocks each, so relays of several steps meet the faults.
      if (options_.features.objects && opick(3) == 0) {
        const std::uint32_t threshold = std::max<std::uint32_t>(kHeaderBytes, sg.max_message_bytes / 2);
        sg.large_objects = LargeObjectConfig{threshold, 4096 * (1 + opick(5)) + opick(4096), 4096};
      }
      config_.subgroups.push_back(sg);
    }
    app_subgroups_ = config_.subgroups.size();
    // A third of the runs (chosen with an RNG of their own, so runs without a store draw exactly
    // as before) get one more subgroup: a volatile versioned store with every member in it.
    if (options_.features.stores && spick(3) == 0) add_store(ids);
    validate(config_);
    plan_ = std::make_unique<LayoutPlan>(config_);
    for (const auto& sg : config_.subgroups) {
      if (!sg.sharding) continue;
      for (const auto& list : sg.sharding->reserved) {
        for (MemberId id : list) pinned_.insert(id);
      }
    }
    // Members that start late (never the first, who bootstraps), fewer than half; spares (beyond
    // the initial members) start late more often.
    const std::size_t initial = config_.initial_members ? config_.initial_members : n;
    for (MemberId id = 1; id < n; ++id) {
      if (id >= initial) {
        if (chance(50)) late_.insert(id);
      } else if (late_.size() < (n - 1) / 2 && pick(5) == 0) {
        late_.insert(id);
      }
    }
    late_snapshots_ = chance(40) && options_.features.late_snapshots;
    big_state_ = chance(30) && options_.features.big_states;
    scenario_ = std::to_string(n) + " members" +
                (config_.initial_members ? " (" + std::to_string(config_.initial_members) + " initial)" : std::string()) +
                ", suspect after " + std::to_string(config_.suspect_after.count()) + " ms;";
    for (const auto& sg : config_.subgroups) {
      scenario_ += " " + sg.name + " members " + ids_text(sg.members) + " senders " + ids_text(sg.senders) + " ring " +
                   std::to_string(sg.ring_bytes);
      if (sg.large_objects) {
        scenario_ += " objects " + std::to_string(sg.large_objects->threshold_bytes + 1) + ".." +
                     std::to_string(sg.large_objects->max_object_bytes);
      }
      if (sg.sharding) {
        scenario_ += " sharded " + std::to_string(sg.sharding->shards) + " x " + std::to_string(sg.sharding->min_per_shard) +
                     ".." + std::to_string(sg.sharding->max_per_shard);
        if (!sg.sharding->reserved.empty()) scenario_ += " reserved " + shards_text(sg.sharding->reserved);
      }
      scenario_ += ";";
    }
    if (store_g_) {
      const auto& st = *config_.subgroups[*store_g_].store;
      scenario_ += " " + config_.subgroups[*store_g_].name + " is a volatile store, window " + std::to_string(st.window) +
                   ", values up to " + std::to_string(st.max_value_bytes) + " B";
      bool skewed = false;
      for (auto k : skew_ns_) skewed = skewed || k != 0;
      if (skewed) {
        scenario_ += ", store clocks skewed (us):";
        for (auto k : skew_ns_) scenario_ += " " + std::to_string(k / 1000);
      }
      scenario_ += ";";
    }
    if (late_snapshots_) scenario_ += " snapshots answered late or never;";
    if (big_state_) scenario_ += " multi-chunk states;";
  }

  // Expected simulated milliseconds per step (see random_step): the clock moves 12 % of steps by 2 ms.
  static constexpr double kMsPerStep = 0.24;

  void plan(std::size_t step, Planned p) { planned_.emplace(step, p); }

  void plan_faults() {
    const std::size_t k = options_.steps;
    const std::size_t n = config_.members.size();
    const auto random_pair = [&] {
      const auto a = static_cast<MemberId>(pick(n));
      auto b = static_cast<MemberId>(pick(n - 1));
      if (b >= a) ++b;
      return std::pair{a, b};
    };
    std::size_t breaks = pick(4), partitions = pick(3);
    const std::size_t crashes = pick(3), freezes = pick(3);
    const bool mass = chance(8), jump = chance(4);
    if (breaks + partitions == 0) (chance(50) ? breaks : partitions) = 1;  // every run has a network fault
    std::string text = " plan:";
    for (MemberId id : late_) {
      const std::size_t t = pick(k * 2 / 3);
      plan(t, {Act::start, id});
      text += " m" + std::to_string(id) + " starts late@" + std::to_string(t) + ";";
    }
    for (std::size_t i = 0; i < breaks; ++i) {
      const auto [a, b] = random_pair();
      const std::size_t t = pick(k);
      plan(t, {Act::break_link, a, b});
      text += " link " + std::to_string(a) + "->" + std::to_string(b) + " breaks@" + std::to_string(t);
      if (!chance(15)) {
        const std::size_t back = t + 20 + pick(k / 3);
        plan(back, {Act::restore_link, a, b});
        text += ".." + std::to_string(back);
      }
      text += ";";
    }
    for (std::size_t i = 0; i < partitions; ++i) {
      const std::size_t t = pick(k);
      const std::size_t heal = t + 50 + pick(k / 2);
      Planned p{Act::partition};
      p.duration = heal - t;
      plan(t, p);
      text += " partition@" + std::to_string(t) + ".." + std::to_string(heal) + ";";
    }
    for (std::size_t i = 0; i < crashes; ++i) {
      const std::size_t t = pick(k);
      Planned p{Act::crash};
      p.flag = chance(30);  // silent: peers' links to it stay up, only heartbeats tell
      p.duration = chance(60) ? 50 + pick(k / 3) : 0;  // restart after, or never
      plan(t, p);
      text += std::string(" crash") + (p.flag ? " (silent)" : "") + "@" + std::to_string(t) +
              (p.duration ? " restart +" + std::to_string(p.duration) : "") + ";";
    }
    if (mass) {
      const std::size_t t = k / 4 + pick(k / 2);
      plan(t, {Act::mass_crash});
      text += " majority crash@" + std::to_string(t) + ";";
    }
    const auto suspect_steps = static_cast<std::size_t>(static_cast<double>(config_.suspect_after.count()) / kMsPerStep);
    for (std::size_t i = 0; i < freezes; ++i) {
      const std::size_t t = pick(k);
      Planned p{Act::freeze, static_cast<MemberId>(pick(n))};
      p.duration = chance(50) ? 30 + pick(200) : suspect_steps + pick(suspect_steps);
      plan(t, p);
      text += " m" + std::to_string(p.a) + " freezes@" + std::to_string(t) + "+" + std::to_string(p.duration) + ";";
    }
    if (jump) {
      const std::size_t t = pick(k);
      plan(t, {Act::clock_jump});
      text += " clock jump@" + std::to_string(t) + ";";
    }
    const std::size_t leaves = chance(25) && options_.features.leave ? 1 + pick(2) : 0;
    for (std::size_t i = 0; i < leaves; ++i) {
      const std::size_t t = pick(k);
      Planned p{Act::leave};
      p.duration = chance(40) ? 50 + pick(k / 3) : 0;  // comes back (a new process) after it left, or never
      plan(t, p);
      text += " leave@" + std::to_string(t) + (p.duration ? " back +" + std::to_string(p.duration) : "") + ";";
    }
    scenario_ += text;
  }

  // ---- incarnations and links ------------------------------------------------------------------

  Incarnation* current(MemberId id) {
    if (incs_[id].empty()) return nullptr;
    return incs_[id].back().get();
  }
  Incarnation* running(MemberId id) { return status_[id] == Status::running ? current(id) : nullptr; }
  // Whether the incarnation of `id` with this boot nonce asked to leave.
  bool leaving_incarnation(MemberId id, std::uint64_t boot) const {
    for (const auto& inc : incs_[id]) {
      if (inc->boot == boot) return inc->leaving;
    }
    return false;
  }

  void start_incarnation(MemberId id) {
    auto inc = std::make_unique<Incarnation>();
    inc->id = id;
    inc->number = static_cast<std::uint32_t>(incs_[id].size());
    inc->boot = mix(options_.seed * 1000003 + id * 1009 + inc->number) % (membership::kValueMask - 1) + 1;
    inc->app.assign(config_.subgroups.size(), {});
    inc->cb_shard.assign(config_.subgroups.size(), -1);
    inc->sink = std::make_unique<Sink>(*this, *inc);
    if (inc->number > 0 || late_.contains(id)) net_->reset_member(id);
    Member::Options mo;
    mo.max_queued_bytes = 1u << 14;
    mo.make_transport = [this, id](const transport::TransportOptions&) { return net_->endpoint(id); };
    mo.clock = [this] { return now_; };
    mo.boot = inc->boot;
    // The stores' hybrid clocks run on the simulated clock too (skewed per member in some runs),
    // so stamps and reads by time replay with the seed.
    mo.physical_clock = [this, skew = skew_ns_.empty() ? 0 : skew_ns_[id]] {
      return static_cast<std::uint64_t>(kEpochNs + std::chrono::duration_cast<std::chrono::nanoseconds>(now_.time_since_epoch()).count() + skew);
    };
    mo.background_persist = false;  // the simulator drives every pass
    inc->member = std::make_unique<Member>(config_, id, *inc->sink, mo);
    Incarnation* self = inc.get();
    inc->member->on_view([this, self](const View& v) {
      prepare_view(*self, v);
      events_.push_back({Event::install, self, v, {}});
    });
    inc->member->on_event([this, self](membership::MembershipEvent e, const std::string& why) {
      using membership::MembershipEvent;
      if (e == MembershipEvent::removed) {
        self->cb_in_view = false;
        ++self->removals;
        events_.push_back({Event::removed, self, std::nullopt, why});
      } else if (e == MembershipEvent::left) {
        self->left_from_view = self->cb_in_view;
        self->cb_in_view = false;
        events_.push_back({Event::left, self, std::nullopt, why});
      } else {
        if (e == MembershipEvent::inadequate) {
          if (!self->inadequate_event_due) anomalies_.push_back(self->name() + " reported an inadequate view (" + why + ") without installing one");
          self->inadequate_event_due = false;
        }
        const char* what = e == MembershipEvent::wedged       ? "wedged"
                           : e == MembershipEvent::minority   ? "minority"
                           : e == MembershipEvent::inadequate ? "inadequate"
                                                              : "event";
        events_.push_back({Event::note, self, std::nullopt, std::string(what) + ": " + why});
      }
    });
    inc->member->on_snapshot([this, self](std::uint32_t g, std::uint64_t vid) { on_snapshot_request(*self, g, vid); });
    inc->member->on_restore([this, self](std::uint32_t g, std::uint64_t vid, std::span<const std::byte> state) {
      const AppState s = restore_bytes(state, g, big_state_);
      self->app[g] = s;
      self->must_restore.erase({vid, g});
      const int shard = self->cb_in_view && self->cb_vid == vid ? self->cb_shard[g] : -1;
      if (shard < 0) {
        anomalies_.push_back("state transfer: " + self->name() + " restored a state for subgroup " + std::to_string(g) +
                             " in view " + std::to_string(vid) + " where it is in no shard of it");
        return;
      }
      restored_.push_back({self->name(), g, vid, static_cast<std::uint32_t>(shard), s});
    });
    status_[id] = Status::running;
    incs_[id].push_back(std::move(inc));
  }

  bool wanted_up(MemberId a, MemberId b) const {
    if (status_[a] != Status::running || status_[b] != Status::running) return false;
    if (broken_.contains({a, b})) return false;
    if (partition_ && has(partition_side_, a) != has(partition_side_, b)) return false;
    return true;
  }

  void sync_link(MemberId a, MemberId b, bool mid_pass) {
    const bool up = net_->link_up_between(a, b);
    if (wanted_up(a, b)) {
      if (up) return;
      if (mid_pass && chance(50)) {
        net_->restore_link_mid_pass(a, b);
      } else {
        net_->restore_link(a, b);
      }
    } else if (up || status_[a] == Status::running) {
      // A link to a member that crashed silently stays up: nothing tells the sender.
      if (up && status_[a] == Status::running && silent_.contains(b)) return;
      net_->break_link(a, b);  // also cancels a restore waiting for the next pass
    }
  }

  void sync_all_links(bool mid_pass) {
    for (MemberId a = 0; a < incs_.size(); ++a) {
      for (MemberId b = 0; b < incs_.size(); ++b) {
        if (a != b) sync_link(a, b, mid_pass);
      }
    }
  }

  // ---- steps -------------------------------------------------------------------------------------

  void note(std::string line) {
    trace_.push_back(at() + std::move(line));
    if (trace_.size() > options_.trace_lines) trace_.pop_front();
  }

  [[noreturn]] void fail(const std::string& what) { throw Failure(at() + what); }

  void apply_planned() {
    answer_due_snapshots();
    while (!planned_.empty() && planned_.begin()->first <= step_) {
      const Planned p = planned_.begin()->second;
      planned_.erase(planned_.begin());
      apply(p);
    }
  }

  void apply(const Planned& p) {
    switch (p.act) {
      case Act::start:
        if (status_[p.a] != Status::waiting) return;
        start_incarnation(p.a);
        sync_all_links(true);
        ++counts_.late_joins;
        note("m" + std::to_string(p.a) + " starts (late join) as " + current(p.a)->name());
        return;
      case Act::break_link:
        broken_.insert({p.a, p.b});
        sync_link(p.a, p.b, false);
        ++counts_.link_breaks;
        note("link " + std::to_string(p.a) + "->" + std::to_string(p.b) + " breaks");
        return;
      case Act::restore_link:
        broken_.erase({p.a, p.b});
        sync_link(p.a, p.b, true);
        note("link " + std::to_string(p.a) + "->" + std::to_string(p.b) + " may come back" +
             (net_->link_up_between(p.a, p.b) ? "" : " (at its next pass, if nothing else holds it down)"));
        return;
      case Act::partition: {
        if (partition_) return;
        const std::size_t n = incs_.size();
        std::uint64_t side = 0;
        while (side == 0 || side == (std::uint64_t{1} << n) - 1) side = rng_() & ((std::uint64_t{1} << n) - 1);
        partition_ = true;
        partition_side_ = side;
        partition_start_ = step_;
        ++counts_.partitions;
        sync_all_links(false);
        plan(step_ + p.duration, {Act::heal});
        note("partition " + bits_text(side) + " | " + bits_text(~side & ((std::uint64_t{1} << n) - 1)));
        return;
      }
      case Act::heal:
        if (!partition_) return;
        partition_ = false;
        sync_all_links(true);
        note("partition heals");
        return;
      case Act::crash: {
        if (lost_at_) return;
        std::vector<MemberId> candidates;
        for (MemberId id = 0; id < incs_.size(); ++id) {
          if (running(id) && majority_survives_without({id})) candidates.push_back(id);
        }
        if (candidates.empty()) {
          note("no member can crash without losing the majority: crash skipped");
          return;
        }
        const MemberId victim = candidates[pick(candidates.size())];
        crash(victim, p.flag);
        if (p.duration) plan(step_ + p.duration, {Act::restart, victim});
        return;
      }
      case Act::mass_crash: {
        if (decided_.empty()) return;
        const Decision& d = decided_.rbegin()->second;
        std::vector<MemberId> in_view;
        for (MemberId id = 0; id < incs_.size(); ++id) {
          if (has(d.members, id) && running(id)) in_view.push_back(id);
        }
        std::shuffle(in_view.begin(), in_view.end(), rng_);
        std::vector<MemberId> victims;
        const auto size = static_cast<std::size_t>(std::popcount(d.members));
        while (!in_view.empty() && 2 * alive_in(d, victims) > size) {
          victims.push_back(in_view.back());
          in_view.pop_back();
        }
        note("a majority of view " + std::to_string(decided_.rbegin()->first) + " crashes: " + ids_text(victims));
        for (MemberId v : victims) crash(v, false);
        return;
      }
      case Act::restart: {
        if (status_[p.a] != Status::crashed || lost_at_) return;
        if (config_.initial_members && p.a < config_.initial_members) {
          // Not modelled: a restarted initial member that sees no row yet founds a second group
          // when the initial members are fewer than all (docs/simulator.md).
          note("m" + std::to_string(p.a) + " is an initial member of a group founded by " +
               std::to_string(config_.initial_members) + ": it does not restart");
          return;
        }
        start_incarnation(p.a);
        silent_.erase(p.a);
        sync_all_links(true);
        ++counts_.restarts;
        note("m" + std::to_string(p.a) + " restarts as " + current(p.a)->name() + " (fresh region, boot " +
             std::to_string(current(p.a)->boot % 100000) + ")");
        return;
      }
      case Act::freeze: {
        Incarnation* inc = running(p.a);
        if (!inc) return;
        inc->frozen_until = step_ + p.duration;
        ++counts_.freezes;
        note(inc->name() + " freezes for " + std::to_string(p.duration) + " steps");
        return;
      }
      case Act::leave: {
        std::vector<MemberId> candidates;
        for (MemberId id = 0; id < incs_.size(); ++id) {
          Incarnation* inc = running(id);
          if (inc && !inc->leaving && majority_survives_without({id})) candidates.push_back(id);
        }
        if (candidates.empty()) {
          note("no member can leave without losing the majority: leave skipped");
          return;
        }
        Incarnation* inc = current(candidates[pick(candidates.size())]);
        inc->leaving = true;
        inc->back_after = p.duration;
        inc->member->request_leave();
        ++counts_.leaves;
        note(inc->name() + " asks to leave");
        return;
      }
      case Act::clock_jump: {
        const auto jump = config_.suspect_after + std::chrono::milliseconds(pick(static_cast<std::size_t>(config_.suspect_after.count())));
        now_ += jump;
        ++counts_.clock_jumps;
        note("the clock jumps " + std::to_string(jump.count()) + " ms (nobody ran meanwhile)");
        return;
      }
    }
  }

  void crash(MemberId victim, bool silent) {
    Incarnation* inc = current(victim);
    // Some of what it had posted lands first: it crashed in the middle of sending.
    std::size_t landed = 0;
    for (MemberId peer = 0; peer < incs_.size(); ++peer) {
      if (peer == victim) continue;
      for (std::size_t k = pick(net_->pending(victim, peer) + 1); k > 0; --k) landed += net_->deliver_from(victim, peer);
    }
    inc->member.reset();
    inc->alive = false;
    status_[victim] = Status::crashed;
    if (silent) silent_.insert(victim);
    sync_all_links(false);
    ++counts_.crashes;
    note(inc->name() + " crashes" + (silent ? " silently" : "") + " (" + std::to_string(landed) +
         " of its writes in flight landed)");
    update_lost();
  }

  // Members of d alive as the incarnation d admitted; with leavers_gone, members that asked to
  // leave count as gone already.
  // A member that reported MembershipEvent::left stops (Member::leave stops the engine): its
  // links go down like a crashed process's; it may start again later as a new process.
  void stop_left(Incarnation& inc) {
    // A graceful stop: what it wrote (join = 0 among it) reaches the peers it has links to.
    for (MemberId peer = 0; peer < incs_.size(); ++peer) {
      while (peer != inc.id && net_->deliver_from(inc.id, peer)) {
      }
    }
    inc.left = true;
    inc.member.reset();
    inc.alive = false;
    status_[inc.id] = Status::crashed;
    sync_all_links(false);
    ++counts_.left;
    note(inc.name() + " stops after leaving");
    if (inc.back_after) plan(step_ + inc.back_after, {Act::restart, inc.id});
    update_lost();
  }

  // ---- state transfer: the application's side -------------------------------------------------

  // Inside the pass that installs `view`, before anything is delivered in it: what the
  // application does with its state. Per subgroup (shard) the member is in: one that stays in
  // its shard keeps its state (checked against the group's); one new in it gets the shard's
  // state if a member of the shard stays in it, or starts afresh.
  void prepare_view(Incarnation& inc, const View& view) {
    inc.cb_in_view = true;
    inc.cb_vid = view.vid;
    inc.inadequate_event_due = !view.adequate;
    const auto prev_it = decided_.find(view.vid - 1);
    const Decision* prev = prev_it == decided_.end() ? nullptr : &prev_it->second;
    if (!prev && view.joined.size() != view.members.size()) {
      anomalies_.push_back(inc.name() + " installed view " + std::to_string(view.vid) +
                           " which keeps members of a view nobody decided");
      prev = nullptr;
    }
    for (std::uint32_t g = 0; g < config_.subgroups.size(); ++g) {
      inc.cb_shard[g] = -1;
      if (!in_subgroup(g, inc.id)) continue;
      std::vector<std::vector<MemberId>> groups;
      if (config_.subgroups[g].sharding) {
        if (view.adequate && g < view.shards.size()) groups = view.shards[g];
      } else {
        groups.emplace_back();
        for (MemberId m : config_.subgroups[g].members) {
          if (view.contains(m)) groups.back().push_back(m);
        }
      }
      int shard = -1;
      for (std::size_t i = 0; i < groups.size(); ++i) {
        if (contains(groups[i], inc.id)) shard = static_cast<int>(i);
      }
      if (store_g_ && g == *store_g_ && inc.store_pending) {
        // A newcomer that announced the view before (it is not joined now) had its state by then;
        // one joined again, or in no shard now, may or may not have got it: unknown content.
        if (!contains(view.joined, inc.id)) {
          inc.store_pending = false;
        } else if (shard < 0) {
          inc.store_pending = false;
          inc.store_epoch = -1;
        }
      }
      if (shard < 0) continue;
      inc.cb_shard[g] = shard;
      const auto stays = [&](MemberId m) {
        return prev && !contains(view.joined, m) && m < prev->track[g].size() && prev->track[g][m] == shard;
      };
      if (store_g_ && g == *store_g_) {
        enter_store_shard(inc, view, prev, groups[shard], static_cast<std::uint32_t>(shard), stays);
        continue;
      }
      if (stays(inc.id)) {
        held_.push_back({inc.name(), g, view.vid, static_cast<std::uint32_t>(shard), inc.app[g], true});
        continue;
      }
      bool source = false;
      for (MemberId m : groups[shard]) source = source || stays(m);
      if (source) {
        inc.must_restore.insert({view.vid, g});
      } else {
        inc.app[g] = {};
      }
    }
  }

  // The engine asks `inc` for subgroup g's state at view vid. Answered at once, or (in runs with
  // late snapshots) some steps later or never: a joiner that never gets its state is removed and
  // admitted again, and the next request may be answered.
  void on_snapshot_request(Incarnation& inc, std::uint32_t g, std::uint64_t vid) {
    std::size_t delay = 0;
    if (late_snapshots_) {
      const std::size_t roll = pick(100);
      if (roll >= 88 && !settling_) {
        ++counts_.snapshots_unanswered;
        events_.push_back({Event::note, &inc, std::nullopt,
                           "will never answer the snapshot request for subgroup " + std::to_string(g) + " view " +
                               std::to_string(vid)});
        return;
      }
      if (roll >= 60) delay = 1 + (settling_ ? pick(50) : pick(300));
    }
    if (delay == 0) {
      inc.member->provide_snapshot(g, vid, snapshot_bytes(inc.app[g], g, big_state_));
      return;
    }
    ++counts_.snapshots_late;
    late_answers_.push_back({&inc, g, vid, step_ + delay});
    events_.push_back({Event::note, &inc, std::nullopt,
                       "will answer the snapshot request for subgroup " + std::to_string(g) + " view " +
                           std::to_string(vid) + " at step " + std::to_string(step_ + delay)});
  }

  // Late answers whose time has come: the state as the application has it now.
  void answer_due_snapshots() {
    for (auto it = late_answers_.begin(); it != late_answers_.end();) {
      if (it->due > step_) {
        ++it;
        continue;
      }
      Incarnation* inc = it->inc;
      if (inc->alive && inc->member) {
        inc->member->provide_snapshot(it->g, it->vid, snapshot_bytes(inc->app[it->g], it->g, big_state_));
        note(inc->name() + " answers the snapshot request for subgroup " + std::to_string(it->g) + " view " +
             std::to_string(it->vid) + " " + inc->app[it->g].text());
      }
      it = late_answers_.erase(it);
    }
  }

  std::size_t alive_in(const Decision& d, const std::vector<MemberId>& without, bool leavers_gone = false) {
    std::size_t alive = 0;
    for (MemberId id = 0; id < incs_.size(); ++id) {
      if (!has(d.members, id) || std::find(without.begin(), without.end(), id) != without.end()) continue;
      const Incarnation* inc = current(id);
      if (inc && inc->alive && inc->boot == d.boots[id] && !(leavers_gone && inc->leaving)) ++alive;
    }
    return alive;
  }

  bool majority_survives_without(const std::vector<MemberId>& victims) {
    // Every view decided recently must keep a majority alive (a change may still be under way).
    if (decided_.empty()) return false;  // before view 1 the first member must stay
    std::size_t seen = 0;
    for (auto it = decided_.rbegin(); it != decided_.rend() && seen < 2; ++it, ++seen) {
      if (2 * alive_in(it->second, victims, true) <= static_cast<std::size_t>(std::popcount(it->second.members))) return false;
    }
    return true;
  }

  void random_step() {
    const std::size_t roll = pick(100);
    if (roll < 30) {
      std::vector<Incarnation*> can;
      for (MemberId id = 0; id < incs_.size(); ++id) {
        Incarnation* inc = running(id);
        if (inc && inc->frozen_until <= step_) can.push_back(inc);
      }
      if (can.empty()) return;
      pass(*can[pick(can.size())], true);
    } else if (roll < 66) {
      deliver_some();
    } else if (roll < 78) {
      now_ += std::chrono::milliseconds(1 + pick(3));
    } else if (roll < 95) {
      send_one();
    } else {
      Incarnation* inc = running(static_cast<MemberId>(pick(incs_.size())));
      if (!inc) return;
      inc->ready = !inc->ready;
      note(std::string("the consumer at ") + inc->name() + " turns " + (inc->ready ? "ready" : "busy"));
    }
  }

  // Writes land on one random link that has some: its oldest, or a burst of them.
  void deliver_some() {
    std::vector<std::pair<MemberId, MemberId>> busy;
    for (MemberId a = 0; a < incs_.size(); ++a) {
      for (MemberId b = 0; b < incs_.size(); ++b) {
        if (a != b && net_->pending(a, b) > 0) busy.push_back({a, b});
      }
    }
    if (busy.empty()) return;
    const auto [a, b] = busy[pick(busy.size())];
    for (std::size_t k = 1 + pick(net_->pending(a, b)); k > 0; --k) net_->deliver_from(a, b);
  }

  void pass(Incarnation& inc, bool traced) {
    bool fired = false;
    try {
      fired = inc.member->run_once();
    } catch (const std::exception& e) {
      fail(inc.name() + "'s pass threw: " + e.what());
    }
    if (traced && fired) note("pass at " + inc.name());
    scan_commit(inc);
    if (store_g_) store_touched_.insert({inc.id, inc.number});
  }

  // A random sender sends one message (now and then an empty one), or a batch of several,
  // some empty, with send_packed.
  void send_one() {
    const auto g = static_cast<std::uint32_t>(pick(app_subgroups_));
    const auto& sg = config_.subgroups[g];
    const MemberId sender = sg.senders[pick(sg.senders.size())];
    Incarnation* inc = running(sender);
    if (!inc) return;
    auto& msgs = sent_[{g, sender}];
    // Objects go one at a time through send(): everything else stays within the ring's share.
    const std::size_t ring_limit = sg.large_objects ? sg.large_objects->threshold_bytes : sg.max_message_bytes;
    const auto random_size = [&](std::size_t empty_percent) {
      return chance(empty_percent) && options_.features.empty ? std::size_t{0} : kHeaderBytes + pick(ring_limit - kHeaderBytes + 1);
    };
    const auto payload = [&](std::uint32_t number, std::size_t size) {
      return size == 0 ? std::vector<std::byte>{} : make_payload(g, sender, number, inc->number, size);
    };
    const auto accepted = [&](std::size_t size) {
      const auto number = static_cast<std::uint32_t>(msgs.size());
      if (!first_number_.contains({g, sender, inc->number})) first_number_[{g, sender, inc->number}] = number;
      msgs.push_back({static_cast<std::uint32_t>(size), inc->number});
      if (size == 0) ++counts_.empty_messages;
    };
    if (chance(15) && options_.features.packed) {
      const std::size_t k = 2 + pick(4);
      std::vector<std::byte> packed;
      std::vector<std::size_t> sizes;
      std::string text;
      for (std::size_t i = 0; i < k; ++i) {
        const std::size_t size = random_size(30);
        const auto bytes = payload(static_cast<std::uint32_t>(msgs.size() + i), size);
        const auto len = static_cast<std::uint32_t>(size);
        const std::size_t at = packed.size();
        packed.resize(at + 4 + size);
        std::memcpy(packed.data() + at, &len, 4);
        if (size) std::memcpy(packed.data() + at + 4, bytes.data(), size);
        sizes.push_back(size);
      }
      const std::size_t first = msgs.size();
      const auto queued = inc->member->send_packed(g, packed);
      if (queued.messages > sizes.size() || (queued.messages > 0 && queued.bytes != [&] {
            std::size_t b = 0;
            for (std::size_t i = 0; i < queued.messages; ++i) b += 4 + sizes[i];
            return b;
          }())) {
        fail(inc->name() + "'s send_packed of " + std::to_string(k) + " messages says it queued " +
             std::to_string(queued.messages) + " messages, " + std::to_string(queued.bytes) + " bytes");
      }
      for (std::size_t i = 0; i < queued.messages; ++i) {
        accepted(sizes[i]);
        text += (i ? "," : "") + std::to_string(sizes[i]);
      }
      if (queued.messages > 0) {
        ++counts_.packed_sends;
        note(inc->name() + " sends #" + std::to_string(first) + ".." + std::to_string(msgs.size() - 1) + " packed (" + text +
             " B) in " + sg.name + (queued.messages < k ? " (" + std::to_string(k - queued.messages) + " refused)" : ""));
      }
      return;
    }
    const std::size_t size = random_size(8);
    const auto number = static_cast<std::uint32_t>(msgs.size());
    if (sg.large_objects && opick(4) == 0) {
      const auto& large = *sg.large_objects;
      const std::size_t object = large.threshold_bytes + 1 + opick(large.max_object_bytes - large.threshold_bytes);
      if (inc->member->send(g, payload(number, object))) {
        accepted(object);
        ++counts_.objects;
        note(inc->name() + " sends #" + std::to_string(number) + " (an object of " + std::to_string(object) + " B) in " + sg.name);
      }
      return;
    }
    if (inc->member->send(g, payload(number, size))) {
      accepted(size);
      note(inc->name() + " sends #" + std::to_string(number) + " (" + std::to_string(size) + " B) in " + sg.name);
    }
  }

  // ---- what the members did: decisions, installs, deliveries -------------------------------------

  std::uint64_t own_word(MemberId id, std::size_t column) const {
    const auto region = net_->region_of(id);
    std::uint64_t w;
    std::memcpy(&w, region.data() + layout_.sst_offset + id * row_bytes_ + column * sizeof(std::uint64_t), sizeof w);
    return w;
  }

  // A member's own commit column names a decided transition; its own slot holds the decision.
  void scan_commit(Incarnation& inc) {
    const auto& cols = layout_.membership;
    const std::uint64_t ref = own_word(inc.id, cols.commit());
    if (ref == inc.commit_ref) return;
    inc.commit_ref = ref;
    const std::uint64_t vid = membership::ref_vid(ref);
    if (vid == 0) return;
    // Every word of the slot carries the tag its writer gave the whole proposal (the ballot,
    // however the engine encodes it): a slot with mixed tags is not one decision.
    const std::size_t base = cols.slot(vid);
    const std::uint64_t tag = membership::tag_of(own_word(inc.id, base));
    const auto word = [&](std::size_t i) {
      const std::uint64_t w = own_word(inc.id, base + i);
      if (membership::tag_of(w) != tag) {
        fail(inc.name() + " committed view " + std::to_string(vid) + " (ballot " +
             std::to_string(membership::ref_ballot(ref)) + ") but word " + std::to_string(i) +
             " of its own slot carries tag " + std::to_string(membership::tag_of(w)) + " where word 0 carries " +
             std::to_string(tag));
      }
      return membership::value_of(w);
    };
    if (word(membership::MembershipColumns::kNextVid) != vid) fail(inc.name() + " committed a slot of another view");
    Decision d;
    d.members = word(membership::MembershipColumns::kMembers);
    d.previous = word(membership::MembershipColumns::kPrevious);
    for (std::size_t r = 0; r < cols.universe; ++r) d.boots.push_back(word(membership::MembershipColumns::kBoots + r));
    // The shard layout's words; the store restart sources after them are the store's business.
    for (std::size_t i = 0; i < plan_->words(); ++i) d.layout.push_back(word(cols.layout_offset() + i));
    d.step = step_;
    d.by = inc.name();
    record_decision(vid, std::move(d));
  }

  std::string decision_text(const Decision& d) const { return bits_text(d.members) + " (after " + bits_text(d.previous) + ")"; }

  void record_decision(std::uint64_t vid, Decision d) {
    const auto it = decided_.find(vid);
    if (it != decided_.end() && vid == 1 && it->second.previous == 0 && d.previous == 0 &&
        it->second.members == d.members && it->second.boots != d.boots) {
      // The first member bootstrapped view 1 again after a restart: its earlier incarnation had
      // decided it alone and nobody else learned it. Same members, new incarnation.
      note("view 1 " + bits_text(d.members) + " is bootstrapped again by " + d.by + " (" + it->second.by +
           " had decided it with other incarnations)");
      d.step = it->second.step;
      lay_out(vid, d);
      it->second = std::move(d);
      update_lost();
      return;
    }
    if (it != decided_.end()) {
      if (it->second.members != d.members || it->second.previous != d.previous || it->second.boots != d.boots) {
        fail("view agreement: two decisions for view " + std::to_string(vid) + ": " + decision_text(it->second) +
             " committed by " + it->second.by + " and " + decision_text(d) + " committed by " + d.by);
      }
      return;
    }
    note("view " + std::to_string(vid) + " " + bits_text(d.members) + " is decided (" + d.by + " committed it)");
    if (vid > 1) {
      const auto prev = decided_.find(vid - 1);
      if (prev == decided_.end()) fail("view " + std::to_string(vid) + " decided by " + d.by + " but no view " + std::to_string(vid - 1) + " was");
      const Decision& p = prev->second;
      // `previous`: the members of view vid-1 that carry on into vid with the state they have
      // (the engine leaves out a joiner that never announced vid-1: it joins again).
      if ((d.previous & ~p.members) != 0) {
        fail("view " + std::to_string(vid) + " says it follows " + bits_text(d.previous) + " but view " +
             std::to_string(vid - 1) + " was " + bits_text(p.members));
      }
      // A member that asked to leave still votes on the view without it (docs/membership.md,
      // Leaving): it counts toward the majority that decided it.
      std::size_t stayed = 0, left = 0;
      for (MemberId id = 0; id < incs_.size(); ++id) {
        if (!has(p.members, id)) continue;
        if (has(d.members, id) && p.boots[id] == d.boots[id]) {
          ++stayed;
        } else if (leaving_incarnation(id, p.boots[id])) {
          ++left;
        }
      }
      if (2 * (stayed + left) <= static_cast<std::size_t>(std::popcount(p.members))) {
        fail("majority: view " + std::to_string(vid) + " " + bits_text(d.members) + " keeps only " + std::to_string(stayed) +
             " (and " + std::to_string(left) + " that left) of the " + std::to_string(std::popcount(p.members)) +
             " members (incarnations) of view " + std::to_string(vid - 1) + " " + bits_text(p.members));
      }
    }
    if (lost_at_ && vid >= *lost_at_ + 2) {
      fail("view " + std::to_string(vid) + " decided although a majority of view " + std::to_string(*lost_at_) +
           " had crashed before view " + std::to_string(*lost_at_ + 1) + " was decided");
    }
    // Leave: a member that reported MembershipEvent::left is in no view decided after that.
    for (MemberId id = 0; id < incs_.size(); ++id) {
      if (!has(d.members, id)) continue;
      for (const auto& inc : incs_[id]) {
        if (inc->left && inc->boot == d.boots[id] && !inc->left_from_view) {
          // It left while still joining: a leader may have taken its join request before it
          // was withdrawn. It is a dead joiner now, suspected like a crashed one.
          note("view " + std::to_string(vid) + " admits " + inc->name() + ", which left before it was admitted");
        } else if (inc->left && inc->boot == d.boots[id]) {
          fail("leave: view " + std::to_string(vid) + " " + bits_text(d.members) + " includes " + inc->name() +
               ", which had left the group");
        }
      }
    }
    lay_out(vid, d);
    if (!d.adequate) ++counts_.inadequate_views;
    if (sharded_) {
      std::string map;
      for (std::uint32_t g = 0; g < config_.subgroups.size(); ++g) {
        if (config_.subgroups[g].sharding) map += " sg" + std::to_string(g) + " " + shards_text(d.shards[g]);
      }
      note("view " + std::to_string(vid) + " layout:" + (d.adequate ? map : " inadequate (" + d.inadequate + ")"));
    }
    decided_[vid] = std::move(d);
    update_lost();
  }

  // The shard layout decided with view vid: the one computed from the view before's (the chain of
  // last adequate layouts), and within the rules (docs/layout.md) on its own terms.
  void lay_out(std::uint64_t vid, Decision& d) {
    const std::size_t groups = config_.subgroups.size();
    const Decision* prev = nullptr;
    if (vid > 1) prev = &decided_.at(vid - 1);
    if (plan_->words() > 0) {
      const std::vector<std::uint64_t> zeros(plan_->words(), 0);
      const auto expected =
          plan_->plan(d.members, prev ? d.previous : 0, prev ? std::span<const std::uint64_t>(prev->layout) : zeros);
      if (expected != d.layout) {
        const auto e = plan_->decode(expected, d.members);
        const auto got = plan_->decode(d.layout, d.members);
        std::string a, b;
        for (std::uint32_t g = 0; g < groups; ++g) a += shards_text(e.now[g]), b += shards_text(got.now[g]);
        fail("layout: view " + std::to_string(vid) + " " + bits_text(d.members) + " was decided with the shard map " + b +
             (got.adequate ? "" : " (inadequate)") + " where the layout from view " + std::to_string(vid - 1) +
             "'s gives " + a + (e.adequate ? "" : " (inadequate)"));
      }
      const auto decoded = plan_->decode(d.layout, d.members);
      d.adequate = decoded.adequate;
      d.inadequate = decoded.inadequate;
      d.shards = decoded.now;
    } else {
      d.shards.assign(groups, {});
    }
    check_layout(vid, d);
    d.track.assign(groups, std::vector<int>(incs_.size(), -1));
    for (std::uint32_t g = 0; g < groups; ++g) {
      for (MemberId id = 0; id < incs_.size(); ++id) {
        if (!has(d.members, id) || !in_subgroup(g, id)) continue;
        if (!config_.subgroups[g].sharding) {
          d.track[g][id] = 0;
        } else if (d.adequate) {
          for (std::size_t i = 0; i < d.shards[g].size(); ++i) {
            if (contains(d.shards[g][i], id)) d.track[g][id] = static_cast<int>(i);
          }
        } else if (prev && has(d.previous, id) && prev->boots[id] == d.boots[id]) {
          d.track[g][id] = prev->track[g][id];  // an inadequate view delivers nothing: the state stays
        }
      }
    }
  }

  void check_layout(std::uint64_t vid, const Decision& d) {
    if (plan_->words() == 0) return;
    const std::string at = "layout of view " + std::to_string(vid) + " " + bits_text(d.members) + ": ";
    // Adequate exactly when the minimums can be met: sum over shards of what their reserved
    // members present leave short, against the unpinned members of the view.
    std::size_t unpinned = 0, short_of = 0;
    for (MemberId id = 0; id < incs_.size(); ++id) {
      if (has(d.members, id) && !pinned_.contains(id)) ++unpinned;
    }
    for (const auto& sg : config_.subgroups) {
      if (!sg.sharding) continue;
      for (std::uint32_t i = 0; i < sg.sharding->shards; ++i) {
        std::size_t present = 0;
        if (i < sg.sharding->reserved.size()) {
          for (MemberId id : sg.sharding->reserved[i]) present += has(d.members, id);
        }
        short_of += sg.sharding->min_per_shard > present ? sg.sharding->min_per_shard - present : 0;
      }
    }
    if (d.adequate != (short_of <= unpinned)) {
      fail(at + (d.adequate ? "adequate" : "inadequate (" + d.inadequate + ")") + " but the shards need " +
           std::to_string(short_of) + " unpinned members and the view has " + std::to_string(unpinned));
    }
    if (!d.adequate) return;
    std::map<MemberId, std::size_t> placed;  // unpinned members: how many shards they are in
    bool room = false;
    for (std::uint32_t g = 0; g < config_.subgroups.size(); ++g) {
      const auto& sg = config_.subgroups[g];
      if (!sg.sharding) continue;
      const auto& sh = *sg.sharding;
      if (d.shards[g].size() != sh.shards) fail(at + sg.name + " has " + std::to_string(d.shards[g].size()) + " shards");
      for (std::uint32_t i = 0; i < sh.shards; ++i) {
        const auto& shard = d.shards[g][i];
        const std::string where = at + sg.name + " shard " + std::to_string(i) + " " + ids_text(shard);
        if (shard.size() < sh.min_per_shard || shard.size() > sh.max_per_shard) {
          fail(where + " has not between " + std::to_string(sh.min_per_shard) + " and " + std::to_string(sh.max_per_shard) +
               " members");
        }
        room = room || shard.size() < sh.max_per_shard;
        const std::vector<MemberId> none;
        const auto& reserved = i < sh.reserved.size() ? sh.reserved[i] : none;
        for (MemberId id : reserved) {
          if (has(d.members, id) && !contains(shard, id)) fail(where + " lacks member " + std::to_string(id) + " reserved in it");
        }
        std::set<MemberId> seen;
        for (MemberId id : shard) {
          if (!has(d.members, id)) fail(where + " has member " + std::to_string(id) + ", which is not in the view");
          if (!seen.insert(id).second) fail(where + " lists member " + std::to_string(id) + " twice");
          if (pinned_.contains(id)) {
            if (!contains(reserved, id)) fail(where + " has member " + std::to_string(id) + ", reserved elsewhere");
          } else if (++placed[id] > 1) {
            fail(at + "unpinned member " + std::to_string(id) + " is in two shards");
          }
        }
      }
    }
    for (MemberId id = 0; id < incs_.size(); ++id) {
      if (room && has(d.members, id) && !pinned_.contains(id) && !placed.contains(id)) {
        fail(at + "member " + std::to_string(id) + " is a spare while a shard has room");
      }
    }
  }

  void update_lost() {
    if (decided_.empty()) return;
    const auto& [vid, d] = *decided_.rbegin();
    if (2 * alive_in(d, {}) <= static_cast<std::size_t>(std::popcount(d.members))) {
      if (!lost_at_ || *lost_at_ < vid) {
        lost_at_ = vid;
        majority_lost_ = true;
        note("no majority of view " + std::to_string(vid) + " is alive: no view may follow " + std::to_string(vid + 1));
      }
    } else if (lost_at_ && vid > *lost_at_) {
      lost_at_.reset();
    }
  }

  void check() {
    // Events in the order the members raised them.
    for (std::size_t i = 0; i < events_.size(); ++i) {
      Event e = events_[i];
      switch (e.kind) {
        case Event::install:
          on_install(*e.inc, *e.view);
          break;
        case Event::removed:
          note(e.inc->name() + " removed: " + e.text);
          if (e.inc->leaving) fail("leave: " + e.inc->name() + " asked to leave but was told it was removed (" + e.text + ")");
          e.inc->view.reset();
          note_drops(*e.inc, e.text);
          break;
        case Event::left:
          note(e.inc->name() + " left: " + e.text);
          if (!e.inc->leaving) fail("leave: " + e.inc->name() + " reported that it left the group without asking to");
          e.inc->view.reset();
          if (e.inc->alive) stop_left(*e.inc);
          break;
        case Event::note:
          note(e.inc->name() + " " + e.text);
          break;
      }
    }
    events_.clear();
    for (const auto& a : anomalies_) fail(a);
    for (auto& per_id : incs_) {
      for (auto& inc : per_id) {
        if (inc->inadequate_event_due) fail(inc->name() + " installed an inadequate view without MembershipEvent::inadequate");
      }
    }
    for (auto& per_id : incs_) {
      for (auto& inc : per_id) {
        if (!inc->touched.empty()) check_deliveries(*inc);
      }
    }
    for (std::uint32_t g = 0; g < walkers_.size(); ++g) walk(g);
    for (const auto& r : restored_) check_restore(r);
    restored_.clear();
    for (const auto& r : held_) check_restore(r);
    held_.clear();
    if (store_g_) check_store();
  }

  // A member that learns of its removal only from a later view (the decision, and so its edge,
  // is gone) drops what it had not seen delivered, and says how many in the event: everything it
  // sent so far may be missing (docs/membership.md). Messages it sends later must arrive.
  void note_drops(const Incarnation& inc, const std::string& why) {
    const std::string marker = " messages whose fate is unknown were dropped";
    const auto at = why.find(marker);
    if (at == std::string::npos) return;
    auto begin = at;
    while (begin > 0 && std::isdigit(static_cast<unsigned char>(why[begin - 1]))) --begin;
    if (begin == at || std::stoull(why.substr(begin, at - begin)) == 0) return;
    for (std::uint32_t g = 0; g < config_.subgroups.size(); ++g) {
      const auto it = sent_.find({g, inc.id});
      if (it == sent_.end()) continue;
      drop_horizon_[{g, inc.id}] = it->second.size();
      // Where the decision is gone it dropped everything (Member: drop_pending): views decided
      // from now on deliver only what it sends after the drop. (Removed from a view whose shard
      // or subgroup kept no survivor, it drops only what it had posted; what it had queued is
      // sent later.)
      if (why.find("the decision is gone") != std::string::npos) {
        drops_[{g, inc.id}].push_back({decided_.empty() ? 0 : decided_.rbegin()->first, it->second.size()});
      }
    }
  }

  std::vector<MemberId> senders_in(std::uint32_t g, std::uint64_t members) const {
    std::vector<MemberId> s;
    for (MemberId id : config_.subgroups[g].senders) {
      if (has(members, id)) s.push_back(id);
    }
    return s;
  }
  std::vector<MemberId> members_in(std::uint32_t g, std::uint64_t members) const {
    std::vector<MemberId> s;
    for (MemberId id : config_.subgroups[g].members) {
      if (has(members, id)) s.push_back(id);
    }
    return s;
  }
  bool in_subgroup(std::uint32_t g, MemberId id) const {
    const auto& m = config_.subgroups[g].members;
    return std::find(m.begin(), m.end(), id) != m.end();
  }

  void on_install(Incarnation& inc, const View& view) {
    const std::uint64_t vid = view.vid;
    note(inc.name() + " installs view " + std::to_string(vid) + " " + ids_text(view.members) +
         (view.joined.empty() ? "" : " joined " + ids_text(view.joined)) +
         (view.departed.empty() ? "" : " departed " + ids_text(view.departed)));
    const auto it = decided_.find(vid);
    if (it == decided_.end()) fail(inc.name() + " installed view " + std::to_string(vid) + " that nobody committed");
    const Decision& d = it->second;
    std::uint64_t bits = 0;
    for (MemberId id : view.members) bits |= std::uint64_t{1} << id;
    if (bits != d.members) {
      fail("view agreement: " + inc.name() + " installed view " + std::to_string(vid) + " as " + ids_text(view.members) +
           " but it was decided as " + bits_text(d.members));
    }
    if (d.boots[inc.id] != inc.boot) {
      fail(inc.name() + " installed view " + std::to_string(vid) + ", which admitted another incarnation of it");
    }
    std::vector<MemberId> joined, departed;
    for (MemberId id = 0; id < incs_.size(); ++id) {
      if (has(d.members, id) && !has(d.previous, id)) joined.push_back(id);
      if (!has(d.members, id) && has(d.previous, id)) departed.push_back(id);
    }
    if (joined != view.joined || departed != view.departed) {
      fail(inc.name() + " installed view " + std::to_string(vid) + " with joined " + ids_text(view.joined) + " departed " +
           ids_text(view.departed) + ", expected " + ids_text(joined) + " and " + ids_text(departed));
    }
    if (vid <= inc.last_vid) {
      fail(inc.name() + " installed view " + std::to_string(vid) + " after view " + std::to_string(inc.last_vid));
    }
    if (inc.view) {
      if (vid != inc.view->vid + 1) {
        fail(inc.name() + " went from view " + std::to_string(inc.view->vid) + " to view " + std::to_string(vid));
      }
      leave_view(inc, inc.view->vid);
    }
    // Minority: no side of a partition decides a view without a majority of the view before.
    if (partition_ && d.step >= partition_start_ && vid > 1) {
      const bool side = has(partition_side_, inc.id);
      std::size_t inside = 0;
      const Decision& prev = decided_.at(vid - 1);
      for (MemberId id = 0; id < incs_.size(); ++id) {
        if (has(prev.members, id) && has(partition_side_, id) == side) ++inside;
      }
      if (2 * inside <= static_cast<std::size_t>(std::popcount(prev.members))) {
        fail("minority: " + inc.name() + " installed view " + std::to_string(vid) + " " + bits_text(d.members) +
             ", decided during the partition on a side with " + std::to_string(inside) + " of the " +
             std::to_string(std::popcount(prev.members)) + " members of view " + std::to_string(vid - 1));
      }
    }
    // Layout: every member installs the decided shard map (the state a member keeps or gets in
    // it was settled by prepare_view, inside the pass).
    if (view.adequate != d.adequate || view.inadequate != d.inadequate) {
      fail("layout: " + inc.name() + " installed view " + std::to_string(vid) + " as " +
           (view.adequate ? "adequate" : "inadequate (" + view.inadequate + ")") + " but it was decided " +
           (d.adequate ? "adequate" : "inadequate (" + d.inadequate + ")"));
    }
    for (std::uint32_t g = 0; g < config_.subgroups.size(); ++g) {
      const auto none = std::vector<std::vector<MemberId>>{};
      const auto& got = g < view.shards.size() ? view.shards[g] : none;
      if (got != d.shards[g]) {
        fail("layout: " + inc.name() + " installed view " + std::to_string(vid) + " with subgroup " + std::to_string(g) +
             " shards " + shards_text(got) + " but it was decided with " + shards_text(d.shards[g]));
      }
    }
    inc.view = view;
    inc.last_vid = vid;
    if (inc.first_vid == 0) inc.first_vid = vid;
  }

  // The groups of members that multicast together in subgroup g in a decided view: its shards
  // (none in an inadequate view), or all its members in the view.
  std::vector<std::vector<MemberId>> groups_of(const Decision& d, std::uint32_t g) const {
    if (config_.subgroups[g].sharding) return d.adequate ? d.shards[g] : std::vector<std::vector<MemberId>>{};
    return {members_in(g, d.members)};
  }
  static int group_of(const std::vector<std::vector<MemberId>>& groups, MemberId id) {
    for (std::size_t i = 0; i < groups.size(); ++i) {
      if (contains(groups[i], id)) return static_cast<int>(i);
    }
    return -1;
  }

  // `inc` installs v+1 from v: its deliveries in v (in its shard) are final and equal to those
  // of everyone else of the shard.
  void leave_view(Incarnation& inc, std::uint64_t v) {
    ++transitions_;
    check_deliveries(inc);
    const Decision& d = decided_.at(v);
    for (std::uint32_t g = 0; g < config_.subgroups.size(); ++g) {
      if (!in_subgroup(g, inc.id)) continue;
      const int shard = group_of(groups_of(d, g), inc.id);
      if (shard < 0) continue;  // in no shard: it delivered nothing (checked at delivery)
      const Key key{v, g, static_cast<std::uint32_t>(shard)};
      const std::size_t size = inc.logs.contains(key) ? inc.logs[key].size() : 0;
      ViewGroup& vg = vgs_[key];
      if (!vg.final) {
        if (vg.canon.size() > size) {
          fail("virtual synchrony: in " + key_text(key) + " someone delivered " + std::to_string(vg.canon.size()) +
               " messages, but " + inc.name() + " installed view " + std::to_string(v + 1) + " after delivering " +
               std::to_string(size) + " (a delivery beyond the ragged edge)");
        }
        vg.final = size;
        vg.final_by = inc.name();
      } else if (*vg.final != size) {
        fail("virtual synchrony: " + inc.name() + " left " + key_text(key) + " having delivered " + std::to_string(size) +
             " messages, " + vg.final_by + " left it with " + std::to_string(*vg.final));
      }
    }
  }

  void check_deliveries(Incarnation& inc) {
    for (const Key& key : inc.touched) {
      const auto& log = inc.logs[key];
      std::size_t& checked = inc.checked[key];
      ViewGroup& vg = vgs_[key];
      for (; checked < log.size(); ++checked) {
        const Entry& e = log[checked];
        const std::string where = inc.name() + " " + key_text(key) + " delivery #" + std::to_string(checked);
        if (vg.final && checked >= *vg.final) {
          fail("virtual synchrony: " + where + " (" + describe(e) + ") is beyond the ragged edge: " + vg.final_by +
               " installed the next view after " + std::to_string(*vg.final));
        }
        if (checked < vg.canon.size()) {
          if (!(vg.canon[checked] == e)) {
            fail("order: " + where + " is " + describe(e) + " where another member delivered " + describe(vg.canon[checked]));
          }
          continue;
        }
        validate_new(where, key, e, vg);
        vg.canon.push_back(e);
      }
    }
    inc.touched.clear();
  }

  // Which incarnation of `id` a decided view admitted (-1: none of those the simulator started).
  std::int64_t incarnation_in(const Decision& d, MemberId id) const {
    for (const auto& inc : incs_[id]) {
      if (inc->boot == d.boots[id]) return inc->number;
    }
    return -1;
  }

  // The first delivery of a position in a view: the right message, in its sender's slot among
  // the senders of its shard, from the incarnation the view admitted.
  void validate_new(const std::string& where, const Key& key, const Entry& e, ViewGroup& vg) {
    const auto [vid, g, shard] = key;
    const Decision& d = decided_.at(vid);
    const auto groups = groups_of(d, g);
    if (shard >= groups.size()) fail(where + ": the view has no such shard (" + shards_text(groups) + ")");
    if (!contains(groups[shard], e.sender)) {
      fail("shards: " + where + " (" + describe(e) + ") comes from a sender outside the shard " + ids_text(groups[shard]));
    }
    std::vector<MemberId> senders;
    for (MemberId id : config_.subgroups[g].senders) {
      if (contains(groups[shard], id)) senders.push_back(id);
    }
    const auto rank = static_cast<std::size_t>(std::find(senders.begin(), senders.end(), e.sender) - senders.begin());
    if (rank == senders.size() || e.index % senders.size() != rank) {
      fail(where + ": index " + std::to_string(e.index) + " is not a slot of sender " + std::to_string(e.sender) +
           " among the shard's senders " + ids_text(senders));
    }
    if (!vg.canon.empty() && e.index <= vg.canon.back().index) fail(where + ": index did not increase");
    auto& seq = vg.seq_of[e.sender];
    if (e.sender_seq != seq) {
      fail(where + ": sender_seq " + std::to_string(e.sender_seq) + ", expected " + std::to_string(seq));
    }
    ++seq;
    const auto sent = sent_.find({g, e.sender});
    const std::int64_t admitted = incarnation_in(d, e.sender);
    if (e.size == 0) {
      bool any = false;
      if (sent != sent_.end()) {
        for (const auto& m : sent->second) any = any || (m.size == 0 && m.inc == admitted);
      }
      if (!any) fail("integrity: " + where + " is an empty message, but " + std::to_string(e.sender) + "#" +
                     std::to_string(admitted) + " sent none");
      return;
    }
    const std::uint32_t expect_ids = (e.inc << 16) | (e.sender << 8) | g;
    if (e.size < kHeaderBytes || e.header_ids != expect_ids || sent == sent_.end() || e.number >= sent->second.size() ||
        sent->second[e.number].inc != e.inc || sent->second[e.number].size != e.size ||
        e.digest != digest_of(make_payload(g, e.sender, e.number, e.inc, e.size))) {
      fail("integrity: " + where + " (" + describe(e) + ") is not a message its sender sent");
    }
    if (static_cast<std::int64_t>(e.inc) != admitted) {
      fail("integrity: " + where + " (" + describe(e) + ") comes from incarnation " + std::to_string(e.inc) +
           " but view " + std::to_string(vid) + " admitted incarnation " + std::to_string(admitted));
    }
  }

  // ---- the group's history, view after view ---------------------------------------------------

  std::optional<std::size_t> final_of(const Key& key, const std::vector<MemberId>& members) {
    ViewGroup& vg = vgs_[key];
    if (vg.final) return vg.final;
    const std::uint64_t v = std::get<0>(key);
    const Decision& d = decided_.at(v);
    if (members.empty()) return 0;
    if (!decided_.contains(v + 1)) return std::nullopt;
    // Nobody of the shard went on from v to v+1 (all crashed or removed): v is over once no
    // member of it can still install or deliver in it.
    for (MemberId id : members) {
      const Incarnation* inc = current(id);
      if (!inc || !inc->alive || inc->boot != d.boots[id]) continue;
      if (inc->last_vid < v) return std::nullopt;
      if (inc->view && inc->view->vid == v) return std::nullopt;
    }
    vg.final = vg.canon.size();
    vg.final_by = "(nobody of the shard went on)";
    return vg.final;
  }

  void walk(std::uint32_t g) {
    Walker& w = walkers_[g];
    while (decided_.contains(w.view)) {
      const auto groups = groups_of(decided_.at(w.view), g);
      if (!w.started) start_view(g, w, groups);
      bool over = true;
      for (std::uint32_t i = 0; i < groups.size(); ++i) {
        const Key key{w.view, g, i};
        const ViewGroup& vg = vgs_[key];
        for (; w.pos[i] < vg.canon.size(); ++w.pos[i]) follow_sender(g, i, w, vg.canon[w.pos[i]]);
        const auto final = final_of(key, groups[i]);
        if (!final || w.pos[i] < *final) over = false;
      }
      if (!over) return;
      ++w.view;
      w.started = false;
    }
  }

  // The state each shard starts view w.view with: what it had if one of its members stays in it
  // (holding the shard's state since the last adequate view), else nothing (it starts afresh).
  void start_view(std::uint32_t g, Walker& w, const std::vector<std::vector<MemberId>>& groups) {
    const Decision& d = decided_.at(w.view);
    const Decision* prev = w.view > 1 ? &decided_.at(w.view - 1) : nullptr;
    w.pos.assign(groups.size(), 0);
    for (std::uint32_t i = 0; i < groups.size(); ++i) {
      bool source = false;
      for (MemberId m : groups[i]) source = source || (prev && has(d.previous, m) && prev->track[g][m] == static_cast<int>(i));
      if (!source) w.state[i] = {};
      state_at_start_[{w.view, g, i}] = w.state[i];
    }
    w.started = true;
    for (auto it = waiting_restores_.begin(); it != waiting_restores_.end();) {
      if (it->g == g && it->vid == w.view) {
        check_restore(*it);
        it = waiting_restores_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void check_restore(const Restored& r) {
    const auto it = state_at_start_.find({r.vid, r.g, r.shard});
    if (it == state_at_start_.end()) {
      if (r.vid < walkers_[r.g].view || (r.vid == walkers_[r.g].view && walkers_[r.g].started)) {
        fail("state transfer: " + r.who + " has a state for subgroup " + std::to_string(r.g) + " shard " +
             std::to_string(r.shard) + " in view " + std::to_string(r.vid) + ", which has no such shard");
      }
      waiting_restores_.push_back(r);
      return;
    }
    ++restores_checked_;
    if (!r.held && config_.subgroups[r.g].sharding) ++counts_.shard_restores;
    if (!(it->second == r.state)) {
      if (r.held) {
        fail("state: " + r.who + " stays in subgroup " + std::to_string(r.g) + " shard " + std::to_string(r.shard) +
             " into view " + std::to_string(r.vid) + " holding " + r.state.text() + ", but the shard had delivered " +
             it->second.text() + " before it (its state is not the shard's; it should have received it)");
      }
      fail("state transfer: " + r.who + " restored " + r.state.text() + " for subgroup " + std::to_string(r.g) + " shard " +
           std::to_string(r.shard) + " in view " + std::to_string(r.vid) + ", but the shard had delivered " +
           it->second.text() + " before it");
    }
  }

  bool joined_between(MemberId id, std::uint64_t after, std::uint64_t upto) const {
    for (std::uint64_t u = after + 1; u <= upto; ++u) {
      const Decision& d = decided_.at(u);
      if (has(d.members, id) && !has(d.previous, id)) return true;
    }
    return false;
  }

  void follow_sender(std::uint32_t g, std::uint32_t shard, Walker& w, const Entry& delivered) {
    Chain& c = chains_[{g, delivered.sender}];
    Entry e = delivered;
    if (e.size == 0) {
      // An empty message names nothing: it is the admitted incarnation's first empty message
      // not yet delivered (a gap before it is judged as for any other message).
      const auto inc = static_cast<std::uint32_t>(incarnation_in(decided_.at(w.view), e.sender));
      const auto& msgs = sent_.at({g, e.sender});
      std::uint32_t n = c.inc == static_cast<std::int64_t>(inc) ? c.next : first_number_.at({g, e.sender, inc});
      if (const auto d = drops_.find({g, e.sender}); d != drops_.end()) {
        for (const auto& [view, horizon] : d->second) {
          if (view < w.view) n = std::max(n, static_cast<std::uint32_t>(horizon));
        }
      }
      while (n < msgs.size() && (msgs[n].size != 0 || msgs[n].inc != inc)) ++n;
      if (n == msgs.size()) {
        fail("integrity: sender " + std::to_string(e.sender) + "#" + std::to_string(inc) + " in subgroup " +
             std::to_string(g) + " view " + std::to_string(w.view) + ": an empty message delivered, but it sent no other");
      }
      e.number = n;
      e.inc = inc;
    }
    const std::string who = "sender " + std::to_string(e.sender) + "#" + std::to_string(e.inc) + " in subgroup " +
                            std::to_string(g) + " view " + std::to_string(w.view);
    std::uint32_t expected = c.next;
    std::uint64_t since = c.view;
    if (c.inc != static_cast<std::int64_t>(e.inc)) {
      if (static_cast<std::int64_t>(e.inc) < c.inc) fail("integrity: " + who + ": a message of an older incarnation after newer ones");
      expected = first_number_.at({g, e.sender, e.inc});
      since = current_first_vid(e.sender, e.inc);
    }
    if (e.number < expected) {
      fail("integrity: " + who + ": message " + std::to_string(e.number) + " delivered again or out of order (next was " +
           std::to_string(expected) + ")");
    }
    if (e.number > expected) {
      if (!joined_between(e.sender, since, w.view)) {
        fail("integrity: " + who + ": messages " + std::to_string(expected) + ".." + std::to_string(e.number - 1) +
             " were lost although the sender stayed in every view since view " + std::to_string(since));
      }
      lost_by_removal_[{g, e.sender}] += e.number - expected;
      note("subgroup " + std::to_string(g) + ": sender " + std::to_string(e.sender) + "#" + std::to_string(e.inc) +
           "'s messages " + std::to_string(expected) + ".." + std::to_string(e.number - 1) +
           " are lost (it was removed from a view after view " + std::to_string(since) + "), view " +
           std::to_string(w.view) + " delivers " + std::to_string(e.number) + " next");
    }
    c.inc = e.inc;
    c.next = e.number + 1;
    // Which empty message this was is a guess where messages may be missing (the sender was
    // removed and joined again): the next message may still skip some, as at this one.
    if (delivered.size != 0 || !joined_between(e.sender, since, w.view)) c.view = w.view;
    w.state[shard].apply(delivered);
  }

  std::uint64_t current_first_vid(MemberId id, std::uint32_t inc) const {
    const auto& list = incs_[id];
    return inc < list.size() ? list[inc]->first_vid : 0;
  }

  // ---- versioned stores (runs with a store subgroup) -----------------------------------------------
  //
  // Every member is in the store subgroup (in its shards when sharded). Members put, remove,
  // read in order and by time at random steps; the simulator keeps every outcome and checks the
  // members' stores against each other and against the outcomes. The store's content belongs to
  // one history (an epoch) of its shard: a shard's history goes on while some member of the view
  // carries it from the view before (as for the application state, invariant 8); where nobody
  // does, the shard starts a new one (afresh, or from a restart source's log).

  struct StoreOp {
    enum Kind { put, remove, query, at_time, by_time } kind = put;
    Incarnation* inc = nullptr;
    std::uint32_t key = 0;
    std::uint32_t size = 0;       // put: value bytes
    std::uint64_t after = 0;      // put, remove: the caller's latest time
    std::uint64_t t = 0;          // at_time, by_time
    std::optional<std::uint64_t> expect;  // a re-asked time: the version answered before
    std::size_t step = 0;
    std::uint32_t removals = 0;   // the issuer's removals when it issued it
    bool before_view = false;     // issued before its member installed any view
    enum Status { pending, ok, failed, refused } status = pending;
    int fired = 0;
    store::ErrorCode code{};
    std::string error;
    bool never_applied = false;   // failed saying the group did not apply it
    std::uint64_t version = 0;    // put, remove: its version; at_time: the answer; query, by_time: at_version
    std::uint64_t hlc = 0;
    store::ReadResult read;
    std::int64_t epoch = -1;      // the issuer's content when it completed (-2: a newcomer before its state came)
    std::optional<std::uint64_t> applied;  // put: the version reads found it at
  };
  // One history of a shard: from the view where it started (afresh, or from a restart source's
  // log) to the view where none of its members carries it on.
  struct Epoch {
    std::uint32_t shard = 0;
    std::uint64_t from_view = 0;
    std::map<std::uint64_t, std::uint64_t> stamp;   // version -> hlc, as completions and reads tell
    std::map<std::uint64_t, std::uint64_t> op_at;   // version -> the put or remove (op id) there
    std::map<std::uint64_t, std::pair<std::uint64_t, std::string>> state;  // version -> (state fingerprint, who held what)
    std::map<std::uint64_t, std::pair<std::uint64_t, std::string>> at_time;  // t -> (version answered, by whom)
    std::vector<std::map<std::uint64_t, std::uint64_t>> key_writes;  // per key: version -> op id
  };

  std::size_t spick(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(srng_() % n); }
  std::size_t opick(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(orng_() % n); }
  bool schance(std::size_t percent) { return spick(100) < percent; }

  void add_store(const std::vector<MemberId>& ids) {
    const std::size_t n = ids.size();
    SubgroupConfig sg;
    sg.name = "store";
    sg.members = ids;
    sg.senders = ids;
    if (options_.features.shards && schance(40)) {
      ShardingConfig sh;
      sh.shards = static_cast<std::uint32_t>(1 + spick(std::min<std::size_t>(3, n)));
      sh.min_per_shard = static_cast<std::uint32_t>(1 + spick(2));
      sh.max_per_shard = sh.min_per_shard + static_cast<std::uint32_t>(spick(3));
      if (schance(30)) {
        // A member is reserved in one shard of the whole group at most.
        std::set<MemberId> taken;
        for (const auto& other : config_.subgroups) {
          if (!other.sharding) continue;
          for (const auto& list : other.sharding->reserved) taken.insert(list.begin(), list.end());
        }
        const MemberId id = ids[spick(n)];
        if (!taken.contains(id)) {
          sh.reserved.resize(sh.shards);
          sh.reserved[spick(sh.shards)].push_back(id);
        }
      }
      sg.sharding = sh;
      sharded_ = true;
    }
    sg.ring_bytes = 512u << spick(3);
    sg.max_message_bytes = (sg.ring_bytes - 64) / 4;
    StoreConfig st;
    st.storage = StorageKind::volatile_memory;
    st.window = 16 + spick(49);  // small: versions fold into the base during the run
    st.max_key_bytes = 8;
    st.max_value_bytes = std::min<std::uint32_t>(64, sg.max_message_bytes - 32 - st.max_key_bytes);
    sg.store = st;
    store_g_ = static_cast<std::uint32_t>(config_.subgroups.size());
    config_.subgroups.push_back(sg);
    for (std::size_t k = 0; k < 6; ++k) store_keys_.push_back("k" + std::to_string(k));
    skew_ns_.assign(n, 0);
    if (schance(50)) {
      for (auto& skew : skew_ns_) skew = (static_cast<std::int64_t>(spick(4001)) - 2000) * 1000;  // +-2 ms
    }
  }

  std::string time_text(std::uint64_t t) const {
    return t >= static_cast<std::uint64_t>(kEpochNs) ? "T+" + std::to_string(t - static_cast<std::uint64_t>(kEpochNs)) + "ns"
                                                     : std::to_string(t);
  }

  std::string epoch_text(std::int64_t e) const {
    const Epoch& E = epochs_[static_cast<std::size_t>(e)];
    return "history #" + std::to_string(e) + " (store shard " + std::to_string(E.shard) + " from view " +
           std::to_string(E.from_view) + ")";
  }

  std::string describe_op(std::uint64_t id) const {
    static const char* const kinds[] = {"put", "remove", "orderedGet", "versionAtTime", "getByTime"};
    const StoreOp& op = sops_[id];
    std::string s = std::string(kinds[op.kind]) + " #" + std::to_string(id);
    if (op.kind != StoreOp::at_time) s += " of " + store_keys_[op.key];
    if (op.kind == StoreOp::at_time || op.kind == StoreOp::by_time) s += " at " + time_text(op.t);
    return s + " by " + op.inc->name() + " (step " + std::to_string(op.step) + ")";
  }

  // A put's value names it: 8 bytes (tag, op id), then bytes derived from the id.
  static constexpr std::uint64_t kValueTag = 0x5354ull << 48;
  static std::vector<std::byte> store_value(std::uint64_t id, std::size_t size) {
    std::vector<std::byte> v(size);
    const std::uint64_t head = kValueTag | id;
    std::memcpy(v.data(), &head, sizeof head);
    for (std::size_t i = sizeof head; i < size; ++i) v[i] = static_cast<std::byte>(mix(id * 131 + i) & 0xff);
    return v;
  }
  // The put whose value this is, if any.
  std::optional<std::uint64_t> value_op(const std::vector<std::byte>& value) const {
    if (value.size() < sizeof(std::uint64_t)) return std::nullopt;
    std::uint64_t head;
    std::memcpy(&head, value.data(), sizeof head);
    if ((head & (0xffffull << 48)) != kValueTag) return std::nullopt;
    const std::uint64_t id = head & ((std::uint64_t{1} << 48) - 1);
    if (id >= sops_.size() || sops_[id].kind != StoreOp::put || sops_[id].size != value.size() ||
        store_value(id, value.size()) != value) {
      return std::nullopt;
    }
    return id;
  }

  // Inside the pass that installs `view`, where `inc` is in store shard `shard`: which history its
  // store holds from now on. A member that stays in the shard keeps its own; a newcomer gets the
  // shard's by state transfer (unknown until it announces the view); with nobody carrying the shard on,
  // the group starts a new history.
  template <typename Stays>
  void enter_store_shard(Incarnation& inc, const View& view, const Decision* prev, const std::vector<MemberId>& group,
                         std::uint32_t shard, const Stays& stays) {
    // A founding view is told apart by the incarnation of member 0 that founded it (after a
    // restart it may found view 1 again): the founder itself, or the one its decision names.
    std::uint64_t founder = 0;
    if (view.vid == 1) {
      const auto d1 = decided_.find(1);
      founder = inc.id == 0 ? inc.boot : d1 != decided_.end() ? d1->second.boots[0] : current(0) ? current(0)->boot : 0;
    }
    const auto key = std::tuple{view.vid, shard, founder};
    auto it = view_epoch_.find(key);
    if (it == view_epoch_.end()) {
      std::int64_t e = -1;
      for (MemberId m : group) {
        if (!stays(m)) continue;
        for (const auto& c : incs_[m]) {
          if (c->boot == prev->boots[m] && c->store_epoch >= 0) {
            if (e >= 0 && c->store_epoch != e) {
              anomalies_.push_back("simulator model: store shard " + std::to_string(shard) + " in view " +
                                   std::to_string(view.vid) + " has members that carry different histories (" +
                                   epoch_text(e) + ", " + epoch_text(c->store_epoch) + ")");
            }
            e = c->store_epoch;
          }
        }
      }
      if (e < 0) {
        e = static_cast<std::int64_t>(epochs_.size());
        Epoch& E = epochs_.emplace_back();
        E.shard = shard;
        E.from_view = view.vid;
        E.key_writes.resize(store_keys_.size());
        note("store shard " + std::to_string(shard) + " starts " + epoch_text(e) + ": nobody carries it into view " +
             std::to_string(view.vid));
      }
      it = view_epoch_.emplace(key, e).first;
    }
    const bool carrier = stays(inc.id);
    if (carrier && inc.store_epoch != it->second) {
      anomalies_.push_back("simulator model: " + inc.name() + " carries store shard " + std::to_string(shard) +
                           " into view " + std::to_string(view.vid) + " holding " +
                           (inc.store_epoch < 0 ? std::string("no known history") : epoch_text(inc.store_epoch)) +
                           ", not the shard's " + epoch_text(it->second));
    }
    inc.store_epoch = it->second;
    inc.store_pending = !carrier;
    if (!carrier) inc.store_scanned = 0;
  }

  // Whether the simulator knows which history `inc`'s store holds (a newcomer: once it has
  // announced its view, which it does after restoring every state transfer of it).
  bool store_readable(Incarnation& inc) {
    if (!inc.alive || !inc.member || inc.store_epoch < 0) return false;
    if (inc.store_pending) {
      // It announced the view in its own row: every state it was to receive has been restored.
      if (!inc.cb_in_view || own_word(inc.id, layout_.membership.vid()) != inc.cb_vid) return false;
      inc.store_pending = false;
      inc.store_scanned = 0;
    }
    return true;
  }

  void note_stamp(std::uint64_t h) {
    max_stamp_ = std::max(max_stamp_, h);
    if (stamps_seen_.size() < 4096) {
      stamps_seen_.push_back(h);
    } else {
      stamps_seen_[spick(stamps_seen_.size())] = h;
    }
  }

  // One member of the shard's store tells: version v of history e is stamped h.
  void record_stamp(std::int64_t e, std::uint64_t v, std::uint64_t h, const std::string& where) {
    Epoch& E = epochs_[static_cast<std::size_t>(e)];
    const auto [it, fresh] = E.stamp.emplace(v, h);
    if (!fresh) {
      if (it->second != h) {
        fail("store (a): in " + epoch_text(e) + " version " + std::to_string(v) + " was stamped " + time_text(it->second) +
             " but " + where + " says " + time_text(h));
      }
      return;
    }
    note_stamp(h);
    if (it != E.stamp.begin() && std::prev(it)->second >= h) {
      fail("store (b): in " + epoch_text(e) + " version " + std::to_string(std::prev(it)->first) + " is stamped " +
           time_text(std::prev(it)->second) + " but version " + std::to_string(v) + " (" + where + ") " + time_text(h) +
           ": stamps must increase with the version");
    }
    if (std::next(it) != E.stamp.end() && std::next(it)->second <= h) {
      fail("store (b): in " + epoch_text(e) + " version " + std::to_string(v) + " (" + where + ") is stamped " +
           time_text(h) + " but version " + std::to_string(std::next(it)->first) + " " +
           time_text(std::next(it)->second) + ": stamps must increase with the version");
    }
    for (const auto& [t, answer] : E.at_time) {
      if ((v <= answer.first) != (h <= t)) {
        fail("store (d): in " + epoch_text(e) + " versionAtTime(" + time_text(t) + ") was answered " +
             std::to_string(answer.first) + " (" + answer.second + ") but version " + std::to_string(v) + " is stamped " +
             time_text(h) + " (" + where + ")");
      }
    }
  }

  // Version v of history e holds the put or remove `id` (a completion or a read says so).
  void record_write(std::int64_t e, std::uint64_t v, std::uint64_t id, std::uint64_t h, const std::string& where) {
    Epoch& E = epochs_[static_cast<std::size_t>(e)];
    const auto [it, fresh] = E.op_at.emplace(v, id);
    if (!fresh && it->second != id) {
      fail("store (a): in " + epoch_text(e) + " version " + std::to_string(v) + " holds " + describe_op(it->second) +
           " and, as " + where + " says, " + describe_op(id));
    }
    if (fresh) E.key_writes[sops_[id].key][v] = id;
    record_stamp(e, v, h, where);
  }

  // versionAtTime(t) in history e is v.
  void record_time(std::int64_t e, std::uint64_t t, std::uint64_t v, const std::string& who) {
    ++scounts_.time_answers;
    Epoch& E = epochs_[static_cast<std::size_t>(e)];
    const auto [it, fresh] = E.at_time.emplace(t, std::pair{v, who});
    if (!fresh) {
      if (it->second.first != v) {
        fail("store (d): in " + epoch_text(e) + " versionAtTime(" + time_text(t) + ") was answered " +
             std::to_string(it->second.first) + " by " + it->second.second + ", and now " + std::to_string(v) + " by " + who);
      }
      return;
    }
    if (it != E.at_time.begin() && std::prev(it)->second.first > v) {
      fail("store (d): in " + epoch_text(e) + " versionAtTime(" + time_text(std::prev(it)->first) + ") is " +
           std::to_string(std::prev(it)->second.first) + " (" + std::prev(it)->second.second + ") but at the later " +
           time_text(t) + " " + std::to_string(v) + " (" + who + ")");
    }
    if (std::next(it) != E.at_time.end() && std::next(it)->second.first < v) {
      fail("store (d): in " + epoch_text(e) + " versionAtTime(" + time_text(t) + ") is " + std::to_string(v) + " (" + who +
           ") but at the later " + time_text(std::next(it)->first) + " " + std::to_string(std::next(it)->second.first) +
           " (" + std::next(it)->second.second + ")");
    }
    const auto after = E.stamp.upper_bound(v);
    if (after != E.stamp.end() && after->second <= t) {
      fail("store (d): in " + epoch_text(e) + " " + who + " answered versionAtTime(" + time_text(t) + ") with " +
           std::to_string(v) + " but version " + std::to_string(after->first) + " is stamped " + time_text(after->second));
    }
    if (after != E.stamp.begin() && std::prev(after)->second > t) {
      fail("store (d): in " + epoch_text(e) + " " + who + " answered versionAtTime(" + time_text(t) + ") with " +
           std::to_string(v) + " but version " + std::to_string(std::prev(after)->first) + " is stamped " +
           time_text(std::prev(after)->second) + ", after t");
    }
  }

  // A read of `key` at version `at` (e: the history the reader holds; -1: unknown).
  void check_read(std::int64_t e, const std::string& who, std::uint32_t key, std::uint64_t at, const store::ReadResult& r,
                  const std::string& what) {
    const std::string where = who + "'s " + what + " of " + store_keys_[key] + " at version " + std::to_string(at);
    if (r.at_version != at) fail("store: " + where + " ran at version " + std::to_string(r.at_version));
    if (!r.found) return;
    const auto id = value_op(r.value);
    if (!id) fail("store: " + where + " found a value nobody put (" + std::to_string(r.value.size()) + " B)");
    StoreOp& op = sops_[*id];
    const std::uint64_t w = r.written.version;
    if (op.key != key) fail("store: " + where + " found the value of " + describe_op(*id) + ", a put of another key");
    if (w == 0 || w > at) fail("store: " + where + " found " + describe_op(*id) + " written at version " + std::to_string(w));
    if (op.never_applied) {
      fail("store (e): " + where + " found " + describe_op(*id) + " (at version " + std::to_string(w) +
           "), which failed with: " + op.error);
    }
    if (op.status == StoreOp::ok && (op.version != w || op.hlc != r.written.hlc)) {
      fail("store (c): " + where + " found " + describe_op(*id) + " written at version " + std::to_string(w) + " stamped " +
           time_text(r.written.hlc) + ", but it completed at version " + std::to_string(op.version) + " stamped " +
           time_text(op.hlc));
    }
    if (op.applied && *op.applied != w) {
      fail("store: " + where + " found " + describe_op(*id) + " at version " + std::to_string(w) +
           ", an earlier read found it at version " + std::to_string(*op.applied) + " (applied twice?)");
    }
    op.applied = w;
    if (e < 0) return;
    record_write(e, w, *id, r.written.hlc, where);
    const auto& writes = epochs_[static_cast<std::size_t>(e)].key_writes[key];
    const auto later = writes.upper_bound(w);
    if (later != writes.end() && later->first <= at) {
      fail("store (a): " + where + " found " + describe_op(*id) + " (version " + std::to_string(w) + ") but in " +
           epoch_text(e) + " " + describe_op(later->second) + " wrote the key at version " + std::to_string(later->first));
    }
  }

  // ---- issuing operations ----

  void store_step() {
    if (!store_g_ || !schance(14)) return;
    std::vector<Incarnation*> can;
    for (MemberId id = 0; id < incs_.size(); ++id) {
      Incarnation* inc = running(id);
      if (inc && inc->frozen_until <= step_ && (options_.features.store_early || inc->first_vid)) can.push_back(inc);
    }
    if (can.empty()) return;
    Incarnation& inc = *can[spick(can.size())];
    store::VersionedStore& st = inc.member->store(*store_g_);
    const std::size_t roll = spick(100);
    if (roll < 40) return issue_write(inc, st, StoreOp::put);
    if (roll < 50) return issue_write(inc, st, StoreOp::remove);
    if (roll < 58) return issue_query(inc, st);
    if (roll < 84) return issue_time_read(inc, st, roll < 68 ? 0 : roll < 78 ? 1 : 2);
    if (roll < 96) return read_at_version(inc, st);
    if (roll < 98) return truncate(inc, st);
    return invalid_call(inc, st);
  }

  std::uint64_t new_op(Incarnation& inc, StoreOp::Kind kind) {
    const std::uint64_t id = sops_.size();
    StoreOp& op = sops_.emplace_back();
    op.kind = kind;
    op.inc = &inc;
    op.key = static_cast<std::uint32_t>(spick(store_keys_.size()));
    op.step = step_;
    op.removals = inc.removals;
    op.before_view = inc.first_vid == 0;
    ++scounts_.ops;
    pending_ops_.insert(id);
    return id;
  }

  // A completion: true when it is the operation's first (a second is an anomaly).
  bool completed(std::uint64_t id, const store::StoreError* e) {
    if (tearing_down_) return false;
    StoreOp& op = sops_[id];
    if (++op.fired > 1 || op.status != StoreOp::pending) {
      anomalies_.push_back("store (e): " + describe_op(id) + " completed" +
                           (e ? std::string(" with ") + store::error_name(e->code()) : std::string()) + " after it " +
                           (op.status == StoreOp::refused ? "was refused (the call threw)" : "had completed already"));
      return false;
    }
    op.status = e ? StoreOp::failed : StoreOp::ok;
    if (e) {
      op.code = e->code();
      op.error = e->what();
      // The store says the group did not apply it (not: its fate is unknown, as at a crash).
      op.never_applied = e->code() == store::ErrorCode::stopped &&
                         (op.error.find("never applied") != std::string::npos ||
                          op.error.find("not applied") != std::string::npos) &&
                         op.error.find("unknown") == std::string::npos;
    }
    // A read by time at a newcomer before its state came ran on content the simulator cannot place.
    const bool by_time = op.kind == StoreOp::at_time || op.kind == StoreOp::by_time;
    op.epoch = by_time && op.inc->store_pending ? -2 : op.inc->store_epoch;
    pending_ops_.erase(id);
    sops_done_.push_back(id);
    return true;
  }

  store::Done<store::Stamp> stamp_done(std::uint64_t id) {
    return [this, id](const store::StoreError* e, const store::Stamp& s) {
      if (!completed(id, e)) return;
      sops_[id].version = s.version;
      sops_[id].hlc = s.hlc;
    };
  }
  store::Done<std::uint64_t> version_done(std::uint64_t id) {
    return [this, id](const store::StoreError* e, const std::uint64_t& v) {
      if (!completed(id, e)) return;
      sops_[id].version = v;
    };
  }
  store::Done<store::ReadResult> read_done(std::uint64_t id) {
    return [this, id](const store::StoreError* e, const store::ReadResult& r) {
      if (!completed(id, e)) return;
      sops_[id].read = r;
      sops_[id].version = r.at_version;
    };
  }

  // The call threw: allowed only for `allowed` codes (and `stopped` at a member on its way out).
  void refused(std::uint64_t id, const store::StoreError& e, std::initializer_list<store::ErrorCode> allowed) {
    StoreOp& op = sops_[id];
    ++scounts_.refused;
    pending_ops_.erase(id);
    if (op.status != StoreOp::pending) fail("store (e): " + describe_op(id) + " completed and then its call threw: " + e.what());
    op.status = StoreOp::refused;
    op.code = e.code();
    op.error = e.what();
    note(describe_op(id) + " refused: " + store::error_name(e.code()) + ": " + e.what());
    const bool ok = std::find(allowed.begin(), allowed.end(), e.code()) != allowed.end() ||
                    (e.code() == store::ErrorCode::stopped && op.inc->leaving);
    if (!ok) fail("store: " + describe_op(id) + " was refused unexpectedly: " + store::error_name(e.code()) + ": " + e.what());
  }

  void issue_write(Incarnation& inc, store::VersionedStore& st, StoreOp::Kind kind) {
    const std::uint64_t id = new_op(inc, kind);
    StoreOp& op = sops_[id];
    const auto max_value = config_.subgroups[*store_g_].store->max_value_bytes;
    op.size = kind == StoreOp::put ? static_cast<std::uint32_t>(8 + spick(max_value - 7)) : 0;
    op.after = schance(30) ? max_stamp_ : 0;
    try {
      if (kind == StoreOp::put) {
        st.put(store_keys_[op.key], store_value(id, op.size), op.after, stamp_done(id));
      } else {
        st.remove(store_keys_[op.key], op.after, stamp_done(id));
      }
      note(inc.name() + " issues " + describe_op(id) + (kind == StoreOp::put ? " (" + std::to_string(op.size) + " B)" : "") +
           (op.after ? " after " + time_text(op.after) : ""));
    } catch (const store::StoreError& e) {
      refused(id, e, {store::ErrorCode::busy});
    }
  }

  void issue_query(Incarnation& inc, store::VersionedStore& st) {
    const std::uint64_t id = new_op(inc, StoreOp::query);
    try {
      st.ordered_get(store_keys_[sops_[id].key], read_done(id));
      note(inc.name() + " issues " + describe_op(id));
    } catch (const store::StoreError& e) {
      refused(id, e, {store::ErrorCode::busy});
    }
  }

  // mode 0: versionAtTime at a new time, 1: the same at a time answered before, 2: getByTime.
  void issue_time_read(Incarnation& inc, store::VersionedStore& st, int mode) {
    const bool placed = store_readable(inc);
    std::uint64_t t = 0;
    std::optional<std::uint64_t> expect;
    if (mode == 1 && placed && !epochs_[static_cast<std::size_t>(inc.store_epoch)].at_time.empty()) {
      const auto& answers = epochs_[static_cast<std::size_t>(inc.store_epoch)].at_time;
      auto it = answers.begin();
      std::advance(it, static_cast<std::ptrdiff_t>(spick(answers.size())));
      t = it->first;
      expect = it->second.first;
    } else {
      const std::size_t roll = spick(100);
      const auto* stamps = placed ? &epochs_[static_cast<std::size_t>(inc.store_epoch)].stamp : nullptr;
      if (roll < 50 && stamps && !stamps->empty()) {
        auto it = stamps->begin();
        std::advance(it, static_cast<std::ptrdiff_t>(spick(stamps->size())));
        t = it->second - 1 + spick(3);
      } else if (roll < 75 && !stamps_seen_.empty()) {
        t = stamps_seen_[spick(stamps_seen_.size())] - 1 + spick(3);
      } else {
        t = static_cast<std::uint64_t>(kEpochNs + std::chrono::duration_cast<std::chrono::nanoseconds>(now_.time_since_epoch()).count() +
                                       skew_ns_[inc.id]) -
            spick(3'000'000);
      }
    }
    const std::uint64_t id = new_op(inc, mode == 2 ? StoreOp::by_time : StoreOp::at_time);
    sops_[id].t = t;
    sops_[id].expect = expect;
    try {
      note(inc.name() + " issues " + describe_op(id) + (expect ? " (answered " + std::to_string(*expect) + " before)" : ""));
      if (mode == 2) {
        st.get_by_time(store_keys_[sops_[id].key], t, read_done(id));
      } else {
        st.version_at_time(t, version_done(id));
      }
    } catch (const store::StoreError& e) {
      refused(id, e, {store::ErrorCode::future_time, store::ErrorCode::not_retained, store::ErrorCode::busy});
    }
  }

  void read_at_version(Incarnation& inc, store::VersionedStore& st) {
    if (!store_readable(inc)) return;
    const std::int64_t e = inc.store_epoch;
    const auto f = st.frontier();
    std::uint64_t v = f.first_retained + spick(f.delivered - f.first_retained + 1);
    auto key = static_cast<std::uint32_t>(spick(store_keys_.size()));
    const auto& writes = epochs_[static_cast<std::size_t>(e)].op_at;
    if (schance(50)) {
      // At or just after a known write of the history, of its key.
      const auto it = writes.lower_bound(v);
      if (it != writes.end() && it->first <= f.delivered) {
        v = std::min(f.delivered, it->first + spick(2));
        key = sops_[it->second].key;
      }
    }
    store::ReadResult r;
    try {
      r = st.get(store_keys_[key], v);
    } catch (const store::StoreError& err) {
      if (err.code() == store::ErrorCode::busy) return;  // moved to another shard, taking its state
      fail("store: " + inc.name() + "'s get(" + store_keys_[key] + ", " + std::to_string(v) + ") threw " +
           store::error_name(err.code()) + " (" + err.what() + ") though it retains versions " +
           std::to_string(f.first_retained) + ".." + std::to_string(f.delivered));
    }
    ++scounts_.reads;
    check_read(e, inc.name(), key, v, r, "get");
  }

  void truncate(Incarnation& inc, store::VersionedStore& st) {
    if (!store_readable(inc)) return;
    const auto f = st.frontier();
    if (f.persisted <= f.first_retained) return;
    const std::uint64_t v = f.first_retained + 1 + spick(f.persisted - f.first_retained);
    try {
      st.truncate_below(v);
    } catch (const store::StoreError& err) {
      fail("store: " + inc.name() + "'s truncateBelow(" + std::to_string(v) + ") threw " + err.what() + " with versions " +
           std::to_string(f.first_retained) + ".." + std::to_string(f.persisted) + " durable");
    }
    const auto g = st.frontier();
    note(inc.name() + " truncates its store below version " + std::to_string(v));
    if (g.first_retained != v) {
      fail("store: " + inc.name() + " truncated below version " + std::to_string(v) + " but now retains from " +
           std::to_string(g.first_retained));
    }
  }

  // Calls that must throw (and send nothing).
  void invalid_call(Incarnation& inc, store::VersionedStore& st) {
    const auto max_value = config_.subgroups[*store_g_].store->max_value_bytes;
    const std::size_t which = spick(4);
    const char* what = which == 0 ? "a put with an empty key" : which == 1 ? "a put with a 9-byte key"
                                                            : which == 2 ? "a put with a value over maxValueBytes"
                                                                         : "a read beyond the latest version";
    const std::uint64_t id = new_op(inc, StoreOp::put);
    const store::ErrorCode expected = which == 3 ? store::ErrorCode::unknown_version : store::ErrorCode::invalid_argument;
    try {
      if (which == 3) {
        (void)st.get(store_keys_[0], st.frontier().delivered + 1);
      } else {
        const std::string key = which == 0 ? std::string() : which == 1 ? std::string("k23456789") : store_keys_[0];
        sops_[id].size = which == 2 ? max_value + 1 : 8;
        st.put(key, store_value(id, sops_[id].size), 0, stamp_done(id));
      }
    } catch (const store::StoreError& e) {
      if (e.code() != expected && !(which == 3 && e.code() == store::ErrorCode::busy)) {
        fail("store: " + inc.name() + "'s " + what + " threw " + store::error_name(e.code()) + ", expected " +
             store::error_name(expected) + ": " + e.what());
      }
      refused(id, e, {expected, store::ErrorCode::busy});
      return;
    }
    fail("store: " + inc.name() + " accepted " + what);
  }

  // ---- checking --------------------------------------------------------------------------------------

  void check_store() {
    for (std::size_t i = 0; i < sops_done_.size(); ++i) finish_op(sops_done_[i]);
    sops_done_.clear();
    for (const auto& [id, number] : store_touched_) {
      Incarnation& inc = *incs_[id][number];
      scan_store(inc);
    }
    store_touched_.clear();
  }

  void finish_op(std::uint64_t id) {
    StoreOp& op = sops_[id];
    const std::string who = op.inc->name();
    if (op.status == StoreOp::failed) {
      ++scounts_.failed;
      if (op.never_applied) ++scounts_.never_applied;
      note(describe_op(id) + " failed: " + store::error_name(op.code) + ": " + op.error);
      if (op.never_applied && op.applied) {
        fail("store (e): " + describe_op(id) + " failed (" + op.error + ") but a read had found it at version " +
             std::to_string(*op.applied));
      }
      const bool by_time = op.kind == StoreOp::at_time || op.kind == StoreOp::by_time;
      if (op.code != store::ErrorCode::stopped && !(by_time && op.code == store::ErrorCode::not_retained)) {
        fail("store: " + describe_op(id) + " failed unexpectedly: " + store::error_name(op.code) + ": " + op.error);
      }
      return;
    }
    ++scounts_.completed;
    switch (op.kind) {
      case StoreOp::put:
      case StoreOp::remove: {
        note(describe_op(id) + " completed at version " + std::to_string(op.version) + " stamped " + time_text(op.hlc));
        if (op.version == 0) fail("store: " + describe_op(id) + " completed at version 0");
        if (op.hlc <= op.after) {
          fail("store: " + describe_op(id) + " was stamped " + time_text(op.hlc) + ", not after the time it was given (" +
               time_text(op.after) + ")");
        }
        if (op.applied && *op.applied != op.version) {
          fail("store (c): " + describe_op(id) + " completed at version " + std::to_string(op.version) +
               " but a read had found it at version " + std::to_string(*op.applied));
        }
        if (op.epoch < 0) fail("store: " + describe_op(id) + " completed at a member holding no history of a shard");
        record_write(op.epoch, op.version, id, op.hlc, who + "'s completion");
        // (c): every member holding that version of the history holds the write there.
        for (auto& per_id : incs_) {
          for (auto& inc : per_id) {
            if (inc->store_epoch != op.epoch || !store_readable(*inc)) continue;
            auto& st = inc->member->store(*store_g_);
            const auto f = st.frontier();
            if (op.version < f.first_retained || op.version > f.delivered) continue;
            store::ReadResult r;
            try {
              r = st.get(store_keys_[op.key], op.version);
            } catch (const store::StoreError& err) {
              if (err.code() == store::ErrorCode::busy) continue;
              throw;
            }
            const bool there = op.kind == StoreOp::put
                                   ? r.found && r.written.version == op.version && value_op(r.value) == std::optional{id}
                                   : !r.found;
            if (!there) {
              fail("store (c): " + describe_op(id) + " completed at version " + std::to_string(op.version) + " of " +
                   epoch_text(op.epoch) + ", but " + inc->name() + " holds " +
                   (r.found ? "the value of " +
                                  (value_op(r.value) ? describe_op(*value_op(r.value)) : std::string("nobody's put")) +
                                  " written at version " + std::to_string(r.written.version)
                            : std::string("no value")) +
                   " there");
            }
          }
        }
        return;
      }
      case StoreOp::query:
        ++scounts_.reads;
        check_read(op.epoch, who, op.key, op.version, op.read, "orderedGet");
        return;
      case StoreOp::at_time:
      case StoreOp::by_time:
        if (op.epoch < 0) return;  // a newcomer's before its state came: not placed in a history
        record_time(op.epoch, op.t, op.version, who);
        if (op.kind == StoreOp::by_time) {
          ++scounts_.reads;
          check_read(op.epoch, who, op.key, op.version, op.read, "getByTime(" + time_text(op.t) + ")");
        }
        return;
    }
  }

  // Compares the versions `inc`'s store delivered since the last look with its history's.
  void scan_store(Incarnation& inc) {
    if (!store_readable(inc)) return;
    auto& st = inc.member->store(*store_g_);
    const auto f = st.frontier();
    const std::int64_t e = inc.store_epoch;
    const std::string who = inc.name();
    if (f.first_retained > f.delivered) {
      fail("store: " + who + " retains from version " + std::to_string(f.first_retained) + " but delivered only up to " +
           std::to_string(f.delivered));
    }
    if (inc.store_scanned > f.delivered) {
      fail("store: " + who + "'s store went back from version " + std::to_string(inc.store_scanned) + " to " +
           std::to_string(f.delivered) + " while holding " + epoch_text(e));
    }
    if (f.global_persisted > f.delivered) {
      fail("store: " + who + " says version " + std::to_string(f.global_persisted) +
           " is durable at every member of its shard, but it delivered only up to " + std::to_string(f.delivered));
    }
    if (f.global_persisted > 0 && f.global_persisted >= f.first_retained) {
      const auto& stamps = epochs_[static_cast<std::size_t>(e)].stamp;
      const auto s = stamps.find(f.global_persisted);
      if (s != stamps.end() && s->second != f.stable_hlc) {
        fail("store (d): " + who + "'s stableHlc is " + time_text(f.stable_hlc) + " but its globalPersisted version " +
             std::to_string(f.global_persisted) + " is stamped " + time_text(s->second) + " in " + epoch_text(e));
      }
    }
    try {
      for (std::uint64_t v = std::max({inc.store_scanned + 1, f.first_retained, std::uint64_t{1}}); v <= f.delivered; ++v) {
        compare_state(inc, st, e, v);
      }
    } catch (const store::StoreError& err) {
      if (err.code() != store::ErrorCode::busy) {
        fail("store: " + who + "'s reads of versions it retains (" + std::to_string(f.first_retained) + ".." +
             std::to_string(f.delivered) + ") threw " + store::error_name(err.code()) + ": " + err.what());
      }
      return;  // it is taking another shard's state: looked at again later
    }
    inc.store_scanned = std::max(inc.store_scanned, f.delivered);
  }

  // (a): the state at version v (every key) is the same at every member holding history e.
  void compare_state(Incarnation& inc, store::VersionedStore& st, std::int64_t e, std::uint64_t v) {
    ++scounts_.versions;
    const std::string who = inc.name();
    std::vector<store::ReadResult> reads;
    std::uint64_t fp = mix(v);
    for (std::uint32_t k = 0; k < store_keys_.size(); ++k) {
      reads.push_back(st.get(store_keys_[k], v));
      const auto& r = reads.back();
      check_read(e, who, k, v, r, "state");
      fp = mix(fp ^ mix((std::uint64_t{k} << 56) ^ (r.found ? (r.written.version << 1) | 1 : 0)) ^
               (r.found ? r.written.hlc + value_op(r.value).value_or(0) : 0));
    }
    const auto state_text = [&] {
      std::string text = "{";
      for (std::uint32_t k = 0; k < reads.size(); ++k) {
        if (!reads[k].found) continue;
        text += (text.size() > 1 ? " " : "") + store_keys_[k] + "=#" + std::to_string(value_op(reads[k].value).value_or(0)) +
                "@" + std::to_string(reads[k].written.version);
      }
      return text + "}";
    };
    std::vector<std::string> present;
    for (std::uint32_t k = 0; k < reads.size(); ++k) {
      if (reads[k].found) present.push_back(store_keys_[k]);
    }
    if (st.list_keys(v) != present) {
      fail("store: " + who + "'s listKeys(" + std::to_string(v) + ") differs from its reads there " + state_text());
    }
    Epoch& E = epochs_[static_cast<std::size_t>(e)];
    if (const auto o = E.op_at.find(v); o != E.op_at.end()) {
      const StoreOp& op = sops_[o->second];
      const auto& r = reads[op.key];
      const bool there = op.kind == StoreOp::put ? r.found && r.written.version == v && value_op(r.value) == std::optional{o->second}
                                                 : !r.found;
      if (!there) {
        fail("store (c): in " + epoch_text(e) + " version " + std::to_string(v) + " is " + describe_op(o->second) +
             ", but " + who + " holds " + state_text() + " there");
      }
    }
    const auto [it, fresh] = E.state.emplace(v, std::pair{fp, std::string()});
    if (fresh) {
      it->second.second = who + " holds " + state_text();
    } else if (it->second.first != fp) {
      fail("store (a): members disagree on version " + std::to_string(v) + " of " + epoch_text(e) + ": " +
           it->second.second + ", " + who + " holds " + state_text());
    }
  }

  // Liveness: at the end, every operation of a live member placed in a shard has completed.
  bool store_waiting(const Decision& d, std::string& why) {
    const auto groups = groups_of(d, *store_g_);
    why.clear();
    bool waiting_more = false;
    for (std::uint64_t id : pending_ops_) {
      const StoreOp& op = sops_[id];
      Incarnation* inc = op.inc;
      if (!inc->alive || !inc->member || current(inc->id) != inc) continue;
      if (group_of(groups, inc->id) < 0) continue;  // a spare's, or in an inadequate view: it waits
      const std::string removed = std::string(op.before_view ? ", issued before its member was in a view" : "") +
                                  (inc->removals > op.removals ? ", its member was removed from a view since" : "");
      if (why.empty()) {
        why = "store: " + describe_op(id) + " has not completed" +
              (op.applied ? " (the shard applied it at version " + std::to_string(*op.applied) + removed + ")"
                          : removed.empty() ? std::string() : " (" + removed.substr(2) + ")");
      } else {
        waiting_more = true;
        why += "; " + describe_op(id) +
               (op.applied ? " (applied at " + std::to_string(*op.applied) + removed + ")"
                           : removed.empty() ? std::string() : " (" + removed.substr(2) + ")");
      }
    }
    return waiting_more || !why.empty();
  }

  // At the end: every member's store compared once more, and every time answered re-asked at
  // every member that holds its history and still retains it.
  void final_store_check() {
    if (!store_g_) return;
    check_store();
    for (MemberId id = 0; id < incs_.size(); ++id) {
      Incarnation* inc = running(id);
      if (!inc || !store_readable(*inc)) continue;
      scan_store(*inc);
      auto& st = inc->member->store(*store_g_);
      const auto f = st.frontier();
      const std::int64_t e = inc->store_epoch;
      const auto answers = epochs_[static_cast<std::size_t>(e)].at_time;
      for (const auto& [t, answer] : answers) {
        if (t > f.stable_hlc) continue;  // would wait
        std::optional<std::uint64_t> got;
        bool not_retained = false;
        try {
          st.version_at_time(t, [&](const store::StoreError* err, const std::uint64_t& v) {
            if (err) {
              not_retained = err->code() == store::ErrorCode::not_retained;
              if (!not_retained) fail("store: " + inc->name() + "'s versionAtTime(" + time_text(t) + ") failed: " + err->what());
            } else {
              got = v;
            }
          });
        } catch (const store::StoreError& err) {
          if (err.code() == store::ErrorCode::busy) break;
          if (err.code() != store::ErrorCode::not_retained) {
            fail("store: " + inc->name() + "'s versionAtTime(" + time_text(t) + ") threw at the end: " + err.what());
          }
          not_retained = true;
        }
        if (not_retained) continue;
        if (!got) fail("store: " + inc->name() + "'s versionAtTime(" + time_text(t) + ") did not answer at once though t is stable");
        record_time(e, t, *got, inc->name() + " at the end");
      }
    }
  }

  // ---- the end: everything heals, the group must converge -----------------------------------------

  void settle() {
    for (auto& per_id : incs_) {
      for (auto& inc : per_id) {
        inc->frozen_until = 0;
        inc->ready = true;
      }
    }
    // Planned restarts of members that left still happen; nothing else planned does.
    for (auto it = planned_.begin(); it != planned_.end();) it = it->second.act == Act::restart ? std::next(it) : planned_.erase(it);
    settling_ = true;
    broken_.clear();
    partition_ = false;
    sync_all_links(false);
    note("everything heals: links back, partition over, members thawed, consumers ready");
    const std::size_t limit = static_cast<std::size_t>(config_.suspect_after.count()) * 40;
    std::string why;
    for (std::size_t round = 0; round < limit; ++round) {
      now_ += 1ms;
      apply_planned();
      net_->deliver_all();
      for (MemberId id = 0; id < incs_.size(); ++id) {
        if (Incarnation* inc = running(id)) pass(*inc, false);
      }
      check();
      ++step_;
      if (converged(why)) {
        converged_ = true;
        note("converged in view " + std::to_string(decided_.rbegin()->first));
        return;
      }
    }
    if (lost_at_) {
      note("no convergence expected: no majority of view " + std::to_string(*lost_at_) + " is alive");
      return;
    }
    // A group that no live member ever got into can only be founded with every initial member
    // (docs/membership.md, bootstrap); with one of them gone for good it never starts.
    bool anyone_in_a_view = false;
    bool initial_member_gone = false;
    const std::size_t initial = config_.initial_members ? config_.initial_members : incs_.size();
    for (MemberId id = 0; id < incs_.size(); ++id) {
      Incarnation* inc = running(id);
      anyone_in_a_view = anyone_in_a_view || (inc && inc->view);
      if (id < initial && !inc) initial_member_gone = true;
    }
    if (!anyone_in_a_view && initial_member_gone) {
      note("no convergence expected: no live member is in a view and an initial member is gone, so no group can be founded");
      return;
    }
    if (!options_.liveness) return;
    fail("liveness: the group did not converge within " + std::to_string(limit) + " ms after everything healed: " + why +
         "\nown SST rows of the running members now:\n" + describe_rows());
  }

  // What each running member says in its own row: the membership and state-transfer columns.
  std::string describe_rows() const {
    const auto& c = layout_.membership;
    const std::size_t st = layout_.state_first_column;
    std::string text;
    for (MemberId id = 0; id < incs_.size(); ++id) {
      if (status_[id] != Status::running) continue;
      const auto w = [&](std::size_t col) { return own_word(id, col); };
      const auto ref = [&](std::size_t col) {
        return std::to_string(membership::ref_vid(w(col))) + "/" + std::to_string(membership::ref_ballot(w(col)));
      };
      text += "  " + incs_[id].back()->name() + ": vid " + std::to_string(w(c.vid())) + " mask " + bits_text(w(c.view_mask())) +
              " wedged " + std::to_string(w(c.wedged())) + " suspected " +
              bits_text(membership::value_of(w(c.suspected()))) + "@" + std::to_string(membership::tag_of(w(c.suspected()))) +
              " promise " + ref(c.promise()) + " prepare " + ref(c.prepare()) + " proposed " + ref(c.proposed()) +
              " commit " + ref(c.commit()) + " join " + std::to_string(w(c.join()) % 100000) + " boot " +
              std::to_string(w(c.boot()) % 100000) + " state out " + std::to_string(w(st)) + "/" +
              std::to_string(w(st + 1) >> 33) + " ack " + std::to_string(w(st + 2)) + "/" + std::to_string(w(st + 3)) +
              " beat " + std::to_string(w(0)) + "\n";
    }
    return text;
  }

  bool converged(std::string& why) {
    if (decided_.empty()) {
      why = "no view was ever decided";
      return false;
    }
    const std::uint64_t last = decided_.rbegin()->first;
    const Decision& d = decided_.at(last);
    std::uint64_t live = 0;
    for (MemberId id = 0; id < incs_.size(); ++id) {
      Incarnation* inc = running(id);
      if (!inc) continue;
      live |= std::uint64_t{1} << id;
      if (!inc->view || inc->view->vid != last) {
        why = inc->name() + " is " + (inc->view ? "in view " + std::to_string(inc->view->vid) : std::string("in no view")) +
              ", the last decided is " + std::to_string(last) + " " + bits_text(d.members);
        return false;
      }
    }
    if (live != d.members) {
      why = "live members " + bits_text(live) + " but view " + std::to_string(last) + " is " + bits_text(d.members);
      return false;
    }
    for (MemberId id = 0; id < incs_.size(); ++id) {
      Incarnation* inc = running(id);
      if (inc && inc->leaving) {
        why = inc->name() + " asked to leave and has not left";
        return false;
      }
    }
    for (std::uint32_t g = 0; g < config_.subgroups.size(); ++g) {
      const auto groups = groups_of(d, g);
      for (std::uint32_t i = 0; i < groups.size(); ++i) {
        const ViewGroup& vg = vgs_[{last, g, i}];
        for (MemberId id : groups[i]) {
          const auto& logs = current(id)->logs;
          const auto it = logs.find({last, g, i});
          const std::size_t got = it == logs.end() ? 0 : it->second.size();
          if (got != vg.canon.size()) {
            why = current(id)->name() + " delivered " + std::to_string(got) + " of " + std::to_string(vg.canon.size()) +
                  " messages of " + key_text({last, g, i});
            return false;
          }
        }
      }
      for (MemberId s : config_.subgroups[g].senders) {
        Incarnation* inc = running(s);
        const auto sent = sent_.find({g, s});
        if (!inc || sent == sent_.end() || sent->second.empty() || sent->second.back().inc != inc->number) continue;
        // A sharded subgroup's messages wait while the view is inadequate or the sender a spare.
        if (config_.subgroups[g].sharding && group_of(groups, s) < 0) continue;
        const auto horizon = drop_horizon_.find({g, s});
        if (horizon != drop_horizon_.end() && horizon->second >= sent->second.size()) continue;  // all may be dropped
        const Chain& c = chains_[{g, s}];
        if (c.inc != static_cast<std::int64_t>(inc->number) || c.next != sent->second.size()) {
          why = "subgroup " + std::to_string(g) + ": " + inc->name() + " sent " + std::to_string(sent->second.size()) +
                " messages (numbers), the group delivered up to " +
                (c.inc < 0 ? std::string("none") : std::to_string(c.next) + " (incarnation " + std::to_string(c.inc) + ")");
          return false;
        }
      }
    }
    if (store_g_ && store_waiting(d, why)) return false;
    // Last, as it may sleep for the timer slack when the answer is no.
    for (MemberId id = 0; id < incs_.size(); ++id) {
      Incarnation* inc = running(id);
      if (inc && !inc->member->wait_for_members(0, 0ms)) {
        why = inc->name() + " has not opened view " + std::to_string(last);
        return false;
      }
    }
    return true;
  }

  // ---- state ------------------------------------------------------------------------------------------

  Options options_;
  std::mt19937_64 rng_;
  GroupConfig config_;
  std::unique_ptr<LayoutPlan> plan_;
  std::set<MemberId> pinned_;   // reserved in some shard
  bool sharded_ = false;
  bool late_snapshots_ = false;  // some snapshot requests are answered late, or never
  bool big_state_ = false;       // snapshots carry padding: transfers of several chunks
  bool settling_ = false;
  struct LateAnswer {
    Incarnation* inc;
    std::uint32_t g;
    std::uint64_t vid;
    std::size_t due;
  };
  std::vector<LateAnswer> late_answers_;
  std::vector<Restored> held_;
  RegionLayout layout_;
  std::size_t row_bytes_ = 0;
  std::chrono::steady_clock::time_point now_{};
  std::size_t step_ = 0;
  std::unique_ptr<transport::MemoryNetwork> net_;
  std::vector<std::vector<std::unique_ptr<Incarnation>>> incs_;
  std::vector<Status> status_;
  std::set<MemberId> late_;
  std::set<MemberId> silent_;
  std::multimap<std::size_t, Planned> planned_;
  std::set<std::pair<MemberId, MemberId>> broken_;
  bool partition_ = false;
  std::uint64_t partition_side_ = 0;
  std::size_t partition_start_ = 0;

  std::vector<Event> events_;
  std::vector<std::string> anomalies_;
  std::vector<Restored> restored_;
  std::vector<Restored> waiting_restores_;
  std::map<std::uint64_t, Decision> decided_;
  std::map<Key, ViewGroup> vgs_;
  std::vector<Walker> walkers_;
  std::map<Key, AppState> state_at_start_;
  std::map<std::pair<std::uint32_t, MemberId>, Chain> chains_;
  struct Sent {
    std::uint32_t size;
    std::uint32_t inc;
  };
  std::map<std::pair<std::uint32_t, MemberId>, std::vector<Sent>> sent_;
  std::map<std::tuple<std::uint32_t, MemberId, std::uint32_t>, std::uint32_t> first_number_;
  std::map<std::pair<std::uint32_t, MemberId>, std::uint64_t> lost_by_removal_;
  std::map<std::pair<std::uint32_t, MemberId>, std::size_t> drop_horizon_;  // messages below may be dropped
  // Per subgroup and sender: (the last view decided when it dropped, messages sent by then).
  std::map<std::pair<std::uint32_t, MemberId>, std::vector<std::pair<std::uint64_t, std::size_t>>> drops_;
  std::optional<std::uint64_t> lost_at_;
  bool majority_lost_ = false;
  std::uint64_t transitions_ = 0;
  std::uint64_t restores_checked_ = 0;
  bool converged_ = false;

  struct {
    std::uint64_t link_breaks = 0, partitions = 0, crashes = 0, restarts = 0, late_joins = 0, freezes = 0, clock_jumps = 0;
    std::uint64_t leaves = 0, left = 0, snapshots_late = 0, snapshots_unanswered = 0, packed_sends = 0, empty_messages = 0, objects = 0,
                  inadequate_views = 0, shard_restores = 0;
  } counts_;
  std::string scenario_;
  std::deque<std::string> trace_;

  // ---- versioned store runs -------------------------------------------------------------------------
  static constexpr std::int64_t kEpochNs = 1'700'000'000'000'000'000;  // the stores' clocks start in 2023
  std::mt19937_64 srng_;                // every store decision: runs without a store draw from rng_ as before
  std::mt19937_64 orng_;                // every large-object decision, likewise
  std::size_t app_subgroups_ = 0;       // subgroups the simulator multicasts in (the store is after them)
  std::optional<std::uint32_t> store_g_;
  std::vector<std::int64_t> skew_ns_;   // per member: its store clock's offset from the simulated clock
  std::vector<std::string> store_keys_;
  std::deque<StoreOp> sops_;
  std::vector<std::uint64_t> sops_done_;  // completed since the last check
  std::vector<Epoch> epochs_;
  std::map<std::tuple<std::uint64_t, std::uint32_t, std::uint64_t>, std::int64_t> view_epoch_;
  std::set<std::pair<MemberId, std::uint32_t>> store_touched_;  // (member, incarnation) that ran since the last check
  std::set<std::uint64_t> pending_ops_;
  std::vector<std::uint64_t> stamps_seen_;  // every stamp a completion or read told, for times to ask about
  std::uint64_t max_stamp_ = 0;
  bool tearing_down_ = false;
  struct {
    std::uint64_t ops = 0, completed = 0, failed = 0, never_applied = 0, refused = 0, versions = 0, reads = 0,
                  time_answers = 0;
  } scounts_;
};

bool Sink::ready() { return sim_.ready_of(inc_); }

void Sink::deliver(std::span<const multicast::Delivery> batch) {
  for (const auto& d : batch) sim_.on_delivery(inc_, d);
}

void Simulation::on_delivery(Incarnation& inc, const multicast::Delivery& d) {
  Entry e;
  e.index = d.index;
  e.sender_seq = d.sender_seq;
  e.sender = d.sender;
  e.size = static_cast<std::uint32_t>(d.payload.size());
  e.digest = digest_of(d.payload);
  if (d.payload.size() >= kHeaderBytes) {
    std::uint32_t header[2];
    std::memcpy(header, d.payload.data(), kHeaderBytes);
    e.number = header[0];
    e.header_ids = header[1];
    e.inc = header[1] >> 16;
  }
  const bool current_view = inc.cb_in_view && inc.cb_vid == d.vid;
  if (!current_view) {
    anomalies_.push_back(inc.name() + " delivered " + describe(e) + " tagged view " + std::to_string(d.vid) + " while in " +
                         (inc.cb_in_view ? "view " + std::to_string(inc.cb_vid) : std::string("no view")));
  }
  if (inc.must_restore.contains({d.vid, d.subgroup})) {
    anomalies_.push_back("state transfer: " + inc.name() + " delivered " + describe(e) + " in view " + std::to_string(d.vid) +
                         " before its state for subgroup " + std::to_string(d.subgroup) + " arrived");
  }
  if (!in_subgroup(d.subgroup, inc.id)) anomalies_.push_back(inc.name() + " delivered in a subgroup it is not in");
  const int shard = current_view && d.subgroup < inc.cb_shard.size() ? inc.cb_shard[d.subgroup] : -1;
  if (current_view && shard < 0) {
    anomalies_.push_back("shards: " + inc.name() + " delivered " + describe(e) + " in subgroup " +
                         std::to_string(d.subgroup) + " view " + std::to_string(d.vid) +
                         ", where it is in no shard (a spare, or the view is inadequate)");
  }
  const Key key{d.vid, d.subgroup, static_cast<std::uint32_t>(std::max(shard, 0))};
  inc.logs[key].push_back(e);
  inc.touched.insert(key);
  inc.app[d.subgroup].apply(e);
}

}  // namespace

Outcome run(const Options& options) { return Simulation(options).run(); }

}  // namespace derecho::sim
