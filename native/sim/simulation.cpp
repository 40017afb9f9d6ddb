#include "simulation.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>

#include "member/member.hpp"
#include "member/region_layout.hpp"
#include "transport/memory_network.hpp"

namespace derecho::sim {
namespace {

constexpr std::size_t kTraceSteps = 80;
constexpr std::size_t kSettleRounds = 100000;

struct Entry {
  std::uint64_t index;
  std::uint64_t sender_seq;
  MemberId sender;
  std::uint64_t digest;
  bool operator==(const Entry&) const = default;
};

std::uint64_t digest_of(std::span<const std::byte> bytes) {
  std::uint64_t h = 1469598103934665603ull;
  for (std::byte b : bytes) h = (h ^ static_cast<std::uint8_t>(b)) * 1099511628211ull;
  return h;
}

std::vector<std::byte> payload(std::uint32_t subgroup, MemberId sender, std::uint64_t seq, std::size_t size) {
  std::vector<std::byte> p(size);
  for (std::size_t i = 0; i < size; ++i) p[i] = static_cast<std::byte>((subgroup * 59 + sender * 31 + seq * 7 + i) & 0xff);
  return p;
}

class RecordingSink final : public multicast::DeliverySink {
 public:
  explicit RecordingSink(std::size_t subgroups) : logs(subgroups) {}
  bool ready() override { return ready_now; }
  void deliver(std::span<const multicast::Delivery> batch) override {
    for (const auto& d : batch) logs[d.subgroup].push_back({d.index, d.sender_seq, d.sender, digest_of(d.payload)});
  }
  bool ready_now = true;
  std::vector<std::vector<Entry>> logs;
};

class Simulation {
 public:
  explicit Simulation(const Options& options) : options_(options), rng_(options.seed) {
    make_config();
    std::vector<MemberId> ids;
    for (const auto& m : config_.members) ids.push_back(m.id);
    net_ = std::make_unique<transport::MemoryNetwork>(ids, RegionLayout::compute(config_).region_bytes,
                                                     rng_());
    for (MemberId id : ids) {
      auto node = std::make_unique<Node>(config_.subgroups.size());
      Member::Options member_options;
      member_options.max_queued_bytes = 1u << 16;
      member_options.make_transport = [this, id](const transport::TransportOptions&) { return net_->endpoint(id); };
      member_options.clock = [this] { return now_; };
      node->member = std::make_unique<Member>(config_, id, node->sink, member_options);
      node->checked.assign(config_.subgroups.size(), 0);
      nodes_.push_back(std::move(node));
    }
    canonical_.resize(config_.subgroups.size());
  }

  Outcome run() {
    Outcome out;
    out.members = nodes_.size();
    out.subgroups = config_.subgroups.size();
    try {
      for (std::size_t step = 0; step < options_.steps; ++step) {
        random_step();
        check_all();
      }
      heal_and_settle();
      check_all();
      check_everything_delivered();
    } catch (const std::exception& e) {
      out.ok = false;
      out.failure = e.what();
    }
    out.trace.assign(trace_.begin(), trace_.end());
    for (const auto& n : nodes_) {
      for (const auto& log : n->sink.logs) out.delivered += log.size();
    }
    out.link_breaks = link_breaks_;
    return out;
  }

 private:
  struct Node {
    explicit Node(std::size_t subgroups) : sink(subgroups) {}
    RecordingSink sink;
    std::unique_ptr<Member> member;
    std::vector<std::size_t> checked;  // per subgroup: log entries already checked
    std::map<std::pair<std::uint32_t, MemberId>, std::uint64_t> next_seq;
  };

  std::size_t pick(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }

  void make_config() {
    config_.group_name = "sim-" + std::to_string(options_.seed);
    config_.transport = TransportKind::shm;
    const std::size_t n = 2 + pick(5);
    std::vector<MemberId> ids;
    for (std::size_t i = 0; i < n; ++i) {
      ids.push_back(static_cast<MemberId>(i));
      config_.members.push_back({static_cast<MemberId>(i), "sim", 1});
    }
    const std::size_t subgroups = 1 + pick(2);
    for (std::size_t s = 0; s < subgroups; ++s) {
      SubgroupConfig sg;
      sg.name = "sg" + std::to_string(s);
      for (MemberId id : ids) {
        if (s == 0 || pick(3) != 0) sg.members.push_back(id);
      }
      if (sg.members.empty()) sg.members.push_back(ids[pick(ids.size())]);
      for (MemberId id : sg.members) {
        if (pick(3) != 0) sg.senders.push_back(id);
      }
      if (sg.senders.empty()) sg.senders.push_back(sg.members[pick(sg.members.size())]);
      sg.ring_bytes = 256u << pick(5);
      sg.max_message_bytes = (sg.ring_bytes - 64) / 4;
      config_.subgroups.push_back(sg);
    }
    validate(config_);
  }

  void note(std::string line) {
    trace_.push_back(std::move(line));
    if (trace_.size() > kTraceSteps) trace_.pop_front();
  }

  void random_step() {
    const std::size_t roll = pick(100);
    if (roll < 30) {
      const std::size_t m = pick(nodes_.size());
      const bool fired = nodes_[m]->member->run_once();
      note("pass at " + std::to_string(m) + (fired ? "" : " (idle)"));
    } else if (roll < 65) {
      if (net_->deliver_one()) note("a write landed");
    } else if (roll < 85) {
      send_one();
    } else if (roll < 90) {
      const MemberId from = static_cast<MemberId>(pick(nodes_.size()));
      const MemberId to = static_cast<MemberId>(pick(nodes_.size()));
      if (from != to && net_->link_up_between(from, to)) {
        net_->break_link(from, to);
        broken_.push_back({from, to});
        ++link_breaks_;
        note("link " + std::to_string(from) + "->" + std::to_string(to) + " breaks");
      }
    } else if (roll < 95) {
      if (!broken_.empty()) {
        const std::size_t i = pick(broken_.size());
        const auto [from, to] = broken_[i];
        broken_.erase(broken_.begin() + static_cast<std::ptrdiff_t>(i));
        if (pick(2) == 0) {
          net_->restore_link(from, to);
          note("link " + std::to_string(from) + "->" + std::to_string(to) + " comes back");
        } else {
          net_->restore_link_mid_pass(from, to);
          note("link " + std::to_string(from) + "->" + std::to_string(to) + " comes back during 's next pass");
        }
      }
    } else {
      auto& sink = nodes_[pick(nodes_.size())]->sink;
      sink.ready_now = !sink.ready_now;
      note(std::string("a consumer turns ") + (sink.ready_now ? "ready" : "busy"));
    }
  }

  void send_one() {
    const auto g = static_cast<std::uint32_t>(pick(config_.subgroups.size()));
    const auto& sg = config_.subgroups[g];
    const MemberId sender = sg.senders[pick(sg.senders.size())];
    auto& sizes = sent_sizes_[{g, sender}];
    const std::size_t size = pick(sg.max_message_bytes + 1);
    if (nodes_[sender]->member->send(g, payload(g, sender, sizes.size(), size))) {
      note("member " + std::to_string(sender) + " sends " + std::to_string(size) + " B in " + sg.name);
      sizes.push_back(size);
    }
  }

  [[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

  // Every member delivers a prefix of one sequence per subgroup, each message once, in its
  // sender's order, with the bytes its sender sent, in its round-robin slot.
  void check_all() {
    for (std::size_t m = 0; m < nodes_.size(); ++m) {
      Node& node = *nodes_[m];
      for (std::uint32_t g = 0; g < config_.subgroups.size(); ++g) {
        const auto& log = node.sink.logs[g];
        auto& canon = canonical_[g];
        const auto& senders = config_.subgroups[g].senders;
        for (std::size_t p = node.checked[g]; p < log.size(); ++p) {
          const Entry& e = log[p];
          const std::string where = "member " + std::to_string(m) + " subgroup " + std::to_string(g) +
                                    " delivery #" + std::to_string(p);
          if (p < canon.size()) {
            if (!(canon[p] == e)) {
              fail(where + ": index " + std::to_string(e.index) + " from " + std::to_string(e.sender) +
                   " where another member delivered index " + std::to_string(canon[p].index) + " from " +
                   std::to_string(canon[p].sender));
            }
          } else {
            canon.push_back(e);
          }
          if (p > 0 && e.index <= log[p - 1].index) fail(where + ": index did not increase");
          const auto rank = static_cast<std::size_t>(
              std::find(senders.begin(), senders.end(), e.sender) - senders.begin());
          if (rank == senders.size() || e.index % senders.size() != rank) {
            fail(where + ": index " + std::to_string(e.index) + " is not a slot of sender " + std::to_string(e.sender));
          }
          auto& next = node.next_seq[{g, e.sender}];
          if (e.sender_seq != next) {
            fail(where + ": sender " + std::to_string(e.sender) + " seq " + std::to_string(e.sender_seq) +
                 ", expected " + std::to_string(next));
          }
          ++next;
          const auto& sizes = sent_sizes_[{g, e.sender}];
          if (e.sender_seq >= sizes.size() ||
              e.digest != digest_of(payload(g, e.sender, e.sender_seq, sizes[e.sender_seq]))) {
            fail(where + ": payload of sender " + std::to_string(e.sender) + " seq " + std::to_string(e.sender_seq) +
                 " differs from what was sent");
          }
        }
        node.checked[g] = log.size();
      }
    }
  }

  // Liveness: once links are back and consumers ready, everything sent is delivered everywhere.
  void heal_and_settle() {
    net_->restore_all_links();
    broken_.clear();
    for (auto& n : nodes_) n->sink.ready_now = true;
    note("all links back, all consumers ready");
    for (std::size_t round = 0; round < kSettleRounds; ++round) {
      bool moved = net_->pending() > 0;
      net_->deliver_all();
      for (auto& n : nodes_) moved |= n->member->run_once();
      if (!moved) return;
    }
    fail("the group did not settle after the faults healed");
  }

  void check_everything_delivered() {
    for (std::uint32_t g = 0; g < config_.subgroups.size(); ++g) {
      std::uint64_t sent = 0;
      for (MemberId s : config_.subgroups[g].senders) sent += sent_sizes_[{g, s}].size();
      for (MemberId m : config_.subgroups[g].members) {
        const auto got = nodes_[m]->sink.logs[g].size();
        if (got != sent) {
          fail("member " + std::to_string(m) + " delivered " + std::to_string(got) + " of " + std::to_string(sent) +
               " messages in subgroup " + std::to_string(g) + " after the faults healed");
        }
      }
    }
  }

  Options options_;
  std::mt19937_64 rng_;
  GroupConfig config_;
  std::chrono::steady_clock::time_point now_{};
  std::unique_ptr<transport::MemoryNetwork> net_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<std::vector<Entry>> canonical_;
  std::map<std::pair<std::uint32_t, MemberId>, std::vector<std::size_t>> sent_sizes_;
  std::vector<std::pair<MemberId, MemberId>> broken_;
  std::deque<std::string> trace_;
  std::uint64_t link_breaks_ = 0;
};

}  // namespace

Outcome run(const Options& options) { return Simulation(options).run(); }

}  // namespace derecho::sim
