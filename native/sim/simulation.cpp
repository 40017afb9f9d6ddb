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
  std::string name() const { return "m" + std::to_string(id) + "#" + std::to_string(number); }
};

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Simulation {
 public:
  explicit Simulation(const Options& options) : options_(options), rng_(options.seed) {}

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
        check();
        if (options_.dump_every && step_ % options_.dump_every == 0) note("own SST rows:\n" + describe_rows());
      }
      settle();
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
    out.inadequate_views = counts_.inadequate_views;
    out.shard_restores = counts_.shard_restores;
    out.sharded = sharded_;
    for (const auto& [key, n] : lost_by_removal_) out.lost_by_removal += n;
    out.majority_lost = majority_lost_;
    out.converged = converged_;
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
      config_.subgroups.push_back(sg);
    }
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
      if (sg.sharding) {
        scenario_ += " sharded " + std::to_string(sg.sharding->shards) + " x " + std::to_string(sg.sharding->min_per_shard) +
                     ".." + std::to_string(sg.sharding->max_per_shard);
        if (!sg.sharding->reserved.empty()) scenario_ += " reserved " + shards_text(sg.sharding->reserved);
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
      if (shard < 0) continue;
      inc.cb_shard[g] = shard;
      const auto stays = [&](MemberId m) {
        return prev && !contains(view.joined, m) && m < prev->track[g].size() && prev->track[g][m] == shard;
      };
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
  }

  // A random sender sends one message (now and then an empty one), or a batch of several,
  // some empty, with send_packed.
  void send_one() {
    const auto g = static_cast<std::uint32_t>(pick(config_.subgroups.size()));
    const auto& sg = config_.subgroups[g];
    const MemberId sender = sg.senders[pick(sg.senders.size())];
    Incarnation* inc = running(sender);
    if (!inc) return;
    auto& msgs = sent_[{g, sender}];
    const auto random_size = [&](std::size_t empty_percent) {
      return chance(empty_percent) && options_.features.empty ? std::size_t{0} : kHeaderBytes + pick(sg.max_message_bytes - kHeaderBytes + 1);
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
    std::uint64_t leaves = 0, left = 0, snapshots_late = 0, snapshots_unanswered = 0, packed_sends = 0, empty_messages = 0,
                  inadequate_views = 0, shard_restores = 0;
  } counts_;
  std::string scenario_;
  std::deque<std::string> trace_;
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
