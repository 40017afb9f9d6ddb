#pragma once
// A group of real Members over the in-process network, driven one pass at a time on the test
// thread with a clock the test moves: crashes are members that stop running, partitions are
// broken links, restarts are new incarnations with zeroed regions. The application state is
// each member's delivery log, handed to joiners by state transfer.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "member/member.hpp"
#include "member/region_layout.hpp"
#include "transport/memory_network.hpp"

namespace derecho::testing {

using namespace std::chrono_literals;

struct Delivered {
  std::uint64_t vid;
  MemberId sender;
  std::uint64_t seq;
  std::uint32_t subgroup;
  std::uint64_t bytes;
  std::uint64_t digest;  // FNV-1a over the whole payload
  bool operator==(const Delivered&) const = default;
};

inline std::uint64_t fnv1a(std::span<const std::byte> bytes) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::byte b : bytes) h = (h ^ static_cast<std::uint64_t>(b)) * 0x100000001b3ull;
  return h;
}

class RecordingSink final : public multicast::DeliverySink {
 public:
  bool ready() override { return true; }
  void deliver(std::span<const multicast::Delivery> batch) override {
    for (const auto& d : batch) {
      std::uint64_t seq;
      std::memcpy(&seq, d.payload.data(), sizeof seq);
      log.push_back({d.vid, d.sender, seq, d.subgroup, d.payload.size(), fnv1a(d.payload)});
    }
  }
  std::vector<Delivered> log;
};

inline std::vector<std::byte> payload(std::uint64_t seq) {
  std::vector<std::byte> p(24 + seq % 40);
  std::memcpy(p.data(), &seq, sizeof seq);
  return p;
}

class Group {
 public:
  // `setup` adjusts every subgroup's config before the regions are sized (e.g. large objects).
  explicit Group(std::size_t configured, std::uint64_t seed = 1, std::size_t subgroups = 1,
        std::optional<ShardingConfig> sharding = {}, const std::function<void(SubgroupConfig&)>& setup = {}) {
    for (std::size_t i = 0; i < configured; ++i) ids_.push_back(static_cast<MemberId>(i));
    config_.group_name = "faults";
    config_.transport = TransportKind::shm;
    for (MemberId id : ids_) config_.members.push_back({id, "", 0});
    for (std::size_t s = 0; s < subgroups; ++s) {
      SubgroupConfig sg;
      sg.name = "sg" + std::to_string(s);
      sg.members = ids_;
      sg.senders = ids_;
      sg.ring_bytes = 4096;
      sg.max_message_bytes = 256;
      sg.sharding = sharding;
      if (setup) setup(sg);
      config_.subgroups.push_back(sg);
    }
    config_.state_chunk_bytes = 4096;
    net_ = std::make_unique<transport::MemoryNetwork>(ids_, RegionLayout::compute(config_).region_bytes, seed);
    nodes_.resize(configured);
    // A member that is not running has no links, as with a real transport.
    for (MemberId id : ids_) net_->reset_member(id);
  }

  // Before the first start: how many of the first configured members found the group.
  void initial(std::uint32_t members) { config_.initial_members = members; }
  // Before the first start: every subgroup is a versioned store; members keep persistent logs
  // in root/<id>/, which outlive the Group so a new one can restart from them.
  void use_store(const StoreConfig& store, const std::filesystem::path& root) {
    for (auto& sg : config_.subgroups) sg.store = store;
    data_root_ = root;
  }
  // The send queue of members created from now on (small: a store's own outbox fills).
  void max_queued(std::size_t bytes) { max_queued_ = bytes; }
  // Skews a member's physical clock (before it is created).
  void skew(MemberId id, std::int64_t ns) { skew_[id] = ns; }

  // Starts `id` and links it with every member started so far.
  void start(MemberId id) {
    create(id);
    for (MemberId p : ids_) {
      if (p == id || !nodes_[p]) continue;
      net_->restore_link(id, p);
      net_->restore_link(p, id);
    }
  }

  void create(MemberId id) {
    auto node = std::make_unique<Node>();
    Member::Options options;
    options.make_transport = [this, id](const transport::TransportOptions&) { return net_->endpoint(id); };
    options.clock = [this] { return now_; };
    options.boot = 1000 + id + 100 * (++incarnations_[id]);
    if (!data_root_.empty()) options.data_dir = data_root_ / std::to_string(id);
    options.background_persist = false;  // the test drives every pass, flushes included
    options.max_queued_bytes = max_queued_;
    if (const auto it = skew_.find(id); it != skew_.end()) {
      options.physical_clock = [ns = it->second] {
        return static_cast<std::uint64_t>(static_cast<std::int64_t>(persistence::HybridClock::wall_ns()) + ns);
      };
    }
    node->member = std::make_unique<Member>(config_, id, node->sink, options);
    Node* n = node.get();
    node->member->on_view([n](const membership::View& v) { n->views.push_back(v); });
    node->member->on_event([n](membership::MembershipEvent e, const std::string&) { n->events.push_back(e); });
    node->member->on_snapshot([n](std::uint32_t subgroup, std::uint64_t vid) {
      std::vector<Delivered> mine;
      for (const auto& d : n->sink.log) {
        if (d.subgroup == subgroup) mine.push_back(d);
      }
      std::vector<std::byte> state(mine.size() * sizeof(Delivered));
      if (!state.empty()) std::memcpy(state.data(), mine.data(), state.size());
      n->member->provide_snapshot(subgroup, vid, std::move(state));
    });
    node->member->on_restore([n](std::uint32_t subgroup, std::uint64_t, std::span<const std::byte> state) {
      std::vector<Delivered> keep;
      for (const auto& d : n->sink.log) {
        if (d.subgroup != subgroup) keep.push_back(d);
      }
      const std::size_t at = keep.size();
      keep.resize(at + state.size() / sizeof(Delivered));
      if (!state.empty()) std::memcpy(keep.data() + at, state.data(), state.size());
      n->sink.log = keep;
      ++n->restores;
      if (n->after_restore) n->after_restore();
    });
    nodes_[id] = std::move(node);
  }

  // A new incarnation of `id` (fresh process, empty state), with links only to `peers`.
  void restart(MemberId id, const std::vector<MemberId>& peers) {
    nodes_[id].reset();
    net_->reset_member(id);
    create(id);
    for (MemberId p : peers) {
      net_->restore_link(id, p);
      net_->restore_link(p, id);
    }
  }

  bool pass(MemberId id) { return running(id) && nodes_[id]->member->run_once(); }

  void settle() {
    for (int round = 0; round < 20000; ++round) {
      bool moved = net_->pending() > 0;
      net_->deliver_all();
      for (MemberId id : ids_) moved |= pass(id);
      if (!moved) return;
    }
    FAIL() << "group did not settle";
  }
  void advance(std::chrono::milliseconds total) {
    for (auto done = 0ms; done < total; done += 20ms) {
      now_ += 20ms;
      settle();
    }
  }
  void crash(MemberId id) { nodes_[id]->crashed = true; }
  void cut(MemberId a, MemberId b) {
    net_->break_link(a, b);
    net_->break_link(b, a);
  }
  void heal() { net_->restore_all_links(); }
  bool running(MemberId id) const { return nodes_[id] && !nodes_[id]->crashed; }
  Member& member(MemberId id) { return *nodes_[id]->member; }
  const std::vector<Delivered>& log(MemberId id) const { return nodes_[id]->sink.log; }
  std::vector<Delivered> log_of(MemberId id, std::uint32_t sg) const {
    std::vector<Delivered> out;
    for (const auto& d : log(id)) {
      if (d.subgroup == sg) out.push_back(d);
    }
    return out;
  }
  std::vector<MemberId> view_members(MemberId id) const {
    const auto v = nodes_[id]->member->view();
    return v ? v->members : std::vector<MemberId>{};
  }
  std::uint64_t vid(MemberId id) const {
    const auto v = nodes_[id]->member->view();
    return v ? v->vid : 0;
  }
  std::size_t restores(MemberId id) const { return nodes_[id]->restores; }
  void set_after_restore(MemberId id, std::function<void()> f) { nodes_[id]->after_restore = std::move(f); }
  // One message with this payload; the member's answer (false: its queue or object area is busy).
  bool send_bytes(MemberId id, std::uint32_t sg, std::span<const std::byte> bytes) {
    return nodes_[id]->member->send(sg, bytes);
  }
  void send(MemberId id, std::uint32_t sg, std::uint64_t count) {
    for (std::uint64_t i = 0; i < count; ++i) ASSERT_TRUE(nodes_[id]->member->send(sg, payload(nodes_[id]->next_seq[sg]++)));
  }
  void send_from_all(std::uint64_t count, std::uint32_t sg = 0) {
    for (MemberId id : ids_) {
      if (running(id)) send(id, sg, count);
    }
  }
  std::uint64_t sent_by(MemberId id, std::uint32_t sg = 0) { return nodes_[id]->next_seq[sg]; }
  void scramble(int steps) {
    auto& rng = net_->random();
    for (int i = 0; i < steps; ++i) {
      if (net_->pending() > 0 && rng() % 2 == 0) {
        net_->deliver_one();
      } else {
        const MemberId id = ids_[rng() % ids_.size()];
        pass(id);
      }
    }
  }
  transport::MemoryNetwork& net() { return *net_; }
  bool saw(MemberId id, membership::MembershipEvent e) const {
    for (auto x : nodes_[id]->events) {
      if (x == e) return true;
    }
    return false;
  }
  const std::vector<membership::View>& views(MemberId id) const { return nodes_[id]->views; }

 private:
  struct Node {
    RecordingSink sink;
    std::unique_ptr<Member> member;
    std::vector<membership::View> views;
    std::vector<membership::MembershipEvent> events;
    std::map<std::uint32_t, std::uint64_t> next_seq;
    std::size_t restores = 0;
    bool crashed = false;
    std::function<void()> after_restore;
  };
  std::vector<MemberId> ids_;
  GroupConfig config_;
  std::chrono::steady_clock::time_point now_{};
  std::unique_ptr<transport::MemoryNetwork> net_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::map<MemberId, int> incarnations_;
  std::filesystem::path data_root_;
  std::map<MemberId, std::int64_t> skew_;
  std::size_t max_queued_ = Member::Options{}.max_queued_bytes;
};

inline ShardingConfig shards(std::uint32_t count, std::uint32_t min, std::uint32_t max) {
  ShardingConfig c;
  c.shards = count;
  c.min_per_shard = min;
  c.max_per_shard = max;
  return c;
}

// Every message of `sender` delivered once, in send order, and all `sent` of them.
inline void expect_all_once(const std::vector<Delivered>& log, MemberId sender, std::uint64_t sent) {
  std::uint64_t next = 0;
  for (const auto& d : log) {
    if (d.sender == sender) {
      EXPECT_EQ(d.seq, next++) << "sender " << sender;
    }
  }
  EXPECT_EQ(next, sent) << "sender " << sender;
}


// The deliveries of one view at one member.
inline std::vector<Delivered> in_view(const std::vector<Delivered>& log, std::uint64_t vid) {
  std::vector<Delivered> out;
  for (const auto& d : log) {
    if (d.vid == vid) out.push_back(d);
  }
  return out;
}

// Starts members 0..n-1 together; they form one view of all of them.
inline void form(Group& g, std::size_t n) {
  for (MemberId id = 0; id < n; ++id) g.start(id);
  g.settle();
  for (MemberId id = 0; id < n; ++id) ASSERT_EQ(g.view_members(id).size(), n) << "member " << id;
}

// The shard of `id` in subgroup 0 of its installed view.
inline std::vector<MemberId> shard_of(Group& g, MemberId id) {
  const auto v = g.member(id).view();
  for (const auto& shard : v->shards.at(0)) {
    if (std::find(shard.begin(), shard.end(), id) != shard.end()) return shard;
  }
  return {};
}

}  // namespace derecho::testing
