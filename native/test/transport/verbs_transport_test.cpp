// Tests of the RDMA verbs transport.
//
//   VerbsDevice.*        the real transport on an RDMA device; skipped (with the reason) when
//                        ibv_get_device_list finds none, which is the case on the dev machines.
//   VerbsTransport.*     runs everywhere: creating the transport without a device fails clearly.
//   VerbsFakeFabric.*    the same scenarios through the transport's real connection, posting and
//                        completion logic, over an in-process fake fabric (an emulated HCA that
//                        executes work requests in order on its own thread, with bounded send
//                        queues, receive credits, a CQ with notification and error injection).
//   VerbsWire.*          the side-channel frame format.
#include <gtest/gtest.h>

#ifdef DERECHO_HAVE_VERBS

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include "transport/transport.hpp"
#include "transport/verbs_fabric.hpp"
#include "transport/verbs_transport.hpp"
#include "transport/verbs_wire.hpp"

#include "../support/eventually.hpp"
#include "../support/free_ports.hpp"
#include "../support/link_events.hpp"

namespace derecho::transport {
namespace {

using namespace std::chrono_literals;
using derecho::testing::eventually;
using derecho::testing::take_up_events;
using verbs::Completion;
using verbs::WriteRequest;

#define REQUIRE_RDMA_DEVICE()                                                     \
  do {                                                                            \
    if (verbs::rdma_device_count() == 0) {                                        \
      GTEST_SKIP() << "no RDMA device: ibv_get_device_list returned 0 devices";   \
    }                                                                             \
  } while (0)

// ---- fake fabric ---------------------------------------------------------------------------

class FakeQp;
class FakeFabric;

// The "network": every fake QP by number, and one lock for all fake state and region copies.
struct FakeNetwork {
  std::mutex mu;
  std::unordered_map<std::uint32_t, FakeQp*> qps;
  std::uint32_t next_qpn = 100;
  static FakeNetwork& get() {
    static FakeNetwork n;
    return n;
  }
};

struct FakeCqe {
  Completion c;
  std::uint32_t qpn = 0;
  std::uint32_t retire = 0;  // send slots freed when this CQE is polled
};

struct FakeCounters {
  std::atomic<std::uint64_t> sq_overflows{0};  // post_writes beyond the send queue depth
  std::atomic<std::uint64_t> cq_overflows{0};
  std::atomic<std::uint64_t> rnr_stalls{0};    // write-with-imm found no posted receive
  std::atomic<std::uint64_t> writes{0};
};

class FakeQp final : public verbs::QueuePair {
 public:
  FakeQp(FakeFabric* fabric, std::uint32_t qpn) : fabric_(fabric), qpn_(qpn) {}
  ~FakeQp() override;
  std::uint32_t qp_num() const override { return qpn_; }
  void connect(const verbs::RemoteQp& remote, std::uint32_t) override;
  int post_writes(std::span<const WriteRequest> writes) override;
  int post_recvs(std::uint64_t wr_id, std::size_t count) override;

  // All below guarded by FakeNetwork::mu.
  FakeFabric* fabric_;
  std::uint32_t qpn_;
  std::uint32_t remote_qpn = 0;
  bool rts = false;
  bool error = false;
  std::deque<WriteRequest> sq;
  std::uint32_t sq_used = 0;
  std::uint32_t since_signal = 0;
  std::deque<std::uint64_t> recvs;
};

class FakeFabric final : public verbs::Fabric {
 public:
  FakeFabric(std::size_t region_bytes, std::size_t staging_bytes, std::uint32_t send_depth,
             std::uint32_t recv_depth, std::shared_ptr<FakeCounters> counters)
      : counters_(std::move(counters)), bytes_(region_bytes), staging_bytes_(staging_bytes),
        send_depth_(send_depth), recv_depth_(recv_depth) {
    void* mem = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) throw std::runtime_error("mmap failed");
    region_ = static_cast<std::byte*>(mem);
    staging_.resize(staging_bytes_);
    rkey_ = std::random_device{}() | 1;
    event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    cq_capacity_ = 64 * (send_depth_ + recv_depth_);
    hca_ = std::thread([this] { run_hca(); });
  }
  ~FakeFabric() override {
    {
      std::lock_guard lk(FakeNetwork::get().mu);
      stop_ = true;
    }
    cv_.notify_all();
    hca_.join();
    EXPECT_TRUE(qps_.empty()) << "queue pairs outlived their fabric";
    ::close(event_fd_);
    ::munmap(region_, bytes_);
  }

  std::string describe() const override { return "fake fabric"; }
  std::span<std::byte> region() override { return {region_, bytes_}; }
  std::span<std::byte> staging() override { return staging_; }
  std::uint32_t rkey() const override { return rkey_; }
  verbs::PortAddress port_address() const override {
    verbs::PortAddress a;
    a.lid = 7;
    a.mtu = IBV_MTU_4096;
    return a;
  }
  std::uint32_t send_depth() const override { return send_depth_; }
  std::uint32_t recv_depth() const override { return recv_depth_; }
  std::unique_ptr<verbs::QueuePair> create_qp() override {
    auto& net = FakeNetwork::get();
    std::lock_guard lk(net.mu);
    auto qp = std::make_unique<FakeQp>(this, net.next_qpn++);
    net.qps[qp->qp_num()] = qp.get();
    qps_.insert(qp.get());
    return qp;
  }
  int completion_fd() const override { return event_fd_; }
  bool take_completion_event() override {
    std::uint64_t v = 0;
    return ::read(event_fd_, &v, sizeof v) == static_cast<ssize_t>(sizeof v);
  }
  int request_notify() override {
    std::lock_guard lk(FakeNetwork::get().mu);
    armed_ = true;
    return 0;
  }
  int poll(std::span<Completion> out) override {
    auto& net = FakeNetwork::get();
    std::lock_guard lk(net.mu);
    std::size_t n = 0;
    while (n < out.size() && !cq_.empty()) {
      FakeCqe e = cq_.front();
      cq_.pop_front();
      if (e.retire > 0) {
        if (auto it = net.qps.find(e.qpn); it != net.qps.end()) {
          it->second->sq_used -= std::min(it->second->sq_used, e.retire);
        }
      }
      out[n++] = e.c;
    }
    return static_cast<int>(n);
  }

  // The next write executed by this fabric's HCA fails with `status`.
  void inject_error(ibv_wc_status status) {
    std::lock_guard lk(FakeNetwork::get().mu);
    inject_ = status;
  }

  // Under FakeNetwork::mu.
  void push_cqe_locked(const FakeCqe& e) {
    if (cq_.size() >= cq_capacity_) {
      counters_->cq_overflows++;
      return;
    }
    cq_.push_back(e);
    if (armed_) {
      armed_ = false;
      const std::uint64_t one = 1;
      [[maybe_unused]] auto rc = ::write(event_fd_, &one, sizeof one);
    }
  }
  void work_locked() { cv_.notify_all(); }
  void forget_locked(FakeQp* qp) { qps_.erase(qp); }

  std::shared_ptr<FakeCounters> counters_;

 private:
  // The emulated HCA: executes each QP's send queue in order.
  void run_hca() {
    auto& net = FakeNetwork::get();
    std::unique_lock lk(net.mu);
    while (!stop_) {
      bool progress = false;
      bool stalled = false;
      for (FakeQp* qp : qps_) {
        while (!qp->sq.empty()) {
          const WriteRequest w = qp->sq.front();
          if (qp->error) {
            qp->sq.pop_front();
            push_cqe_locked({Completion{w.wr_id, IBV_WC_WR_FLUSH_ERR, 0}, qp->qpn_, 0});
            progress = true;
            continue;
          }
          ibv_wc_status status = IBV_WC_SUCCESS;
          FakeQp* remote = nullptr;
          if (auto it = net.qps.find(qp->remote_qpn); it != net.qps.end()) remote = it->second;
          if (inject_) {
            status = *inject_;
            inject_.reset();
          } else if (remote == nullptr || !remote->rts || remote->remote_qpn != qp->qpn_ ||
                     remote->error) {
            status = IBV_WC_RETRY_EXC_ERR;
          } else {
            FakeFabric* rf = remote->fabric_;
            const auto base = reinterpret_cast<std::uint64_t>(rf->region_);
            if (w.rkey != rf->rkey_ || w.remote_addr < base ||
                w.remote_addr + w.length > base + rf->bytes_) {
              status = IBV_WC_REM_ACCESS_ERR;
            } else if (w.with_imm && remote->recvs.empty()) {
              counters_->rnr_stalls++;
              stalled = true;  // receiver not ready: retry later (rnr_retry = infinite)
              break;
            } else {
              EXPECT_LE(w.local_offset + w.length, w.from_staging ? staging_bytes_ : bytes_);
              copy_into_region(rf->region_ + (w.remote_addr - base),
                               (w.from_staging ? staging_.data() : region_) + w.local_offset,
                               w.length);
              counters_->writes++;
              if (w.with_imm) {
                const std::uint64_t rid = remote->recvs.front();
                remote->recvs.pop_front();
                rf->push_cqe_locked({Completion{rid, IBV_WC_SUCCESS, 0}, remote->qpn_, 0});
              }
            }
          }
          qp->sq.pop_front();
          progress = true;
          if (status != IBV_WC_SUCCESS) {
            qp->error = true;
            qp->sq_used = 0;
            push_cqe_locked({Completion{w.wr_id, status, 0}, qp->qpn_, 0});
            continue;
          }
          ++qp->since_signal;
          if (w.signaled) {
            push_cqe_locked({Completion{w.wr_id, IBV_WC_SUCCESS, 0}, qp->qpn_, qp->since_signal});
            qp->since_signal = 0;
          }
        }
      }
      if (!progress) {
        if (stalled) {
          cv_.wait_for(lk, 200us);
        } else {
          cv_.wait(lk);
        }
      }
    }
  }

  std::byte* region_ = nullptr;
  std::size_t bytes_;
  std::size_t staging_bytes_;
  std::vector<std::byte> staging_;
  std::uint32_t send_depth_;
  std::uint32_t recv_depth_;
  std::uint32_t rkey_ = 0;
  int event_fd_ = -1;
  std::size_t cq_capacity_ = 0;
  // Guarded by FakeNetwork::mu.
  std::deque<FakeCqe> cq_;
  bool armed_ = false;
  bool stop_ = false;
  std::set<FakeQp*> qps_;
  std::optional<ibv_wc_status> inject_;
  std::condition_variable cv_;
  std::thread hca_;
};

FakeQp::~FakeQp() {
  auto& net = FakeNetwork::get();
  std::lock_guard lk(net.mu);
  net.qps.erase(qpn_);
  fabric_->forget_locked(this);
}

void FakeQp::connect(const verbs::RemoteQp& remote, std::uint32_t) {
  std::lock_guard lk(FakeNetwork::get().mu);
  remote_qpn = remote.qpn;
  rts = true;
}

int FakeQp::post_writes(std::span<const WriteRequest> writes) {
  std::lock_guard lk(FakeNetwork::get().mu);
  if (!rts && !error) return EINVAL;
  if (sq_used + writes.size() > fabric_->send_depth()) {
    fabric_->counters_->sq_overflows++;
    return ENOMEM;
  }
  sq_used += static_cast<std::uint32_t>(writes.size());
  sq.insert(sq.end(), writes.begin(), writes.end());
  fabric_->work_locked();
  return 0;
}

int FakeQp::post_recvs(std::uint64_t wr_id, std::size_t count) {
  std::lock_guard lk(FakeNetwork::get().mu);
  if (recvs.size() + count > fabric_->recv_depth()) return ENOMEM;
  recvs.insert(recvs.end(), count, wr_id);
  fabric_->work_locked();
  return 0;
}

// ---- harness -------------------------------------------------------------------------------

using Factory = std::function<std::unique_ptr<Transport>(const TransportOptions&)>;

constexpr std::size_t kRegion = 1 << 20;

GroupConfig make_group(std::size_t n, const std::string& name = "verbs-test") {
  GroupConfig g;
  g.group_name = name;
  g.transport = TransportKind::verbs;
  // All at once: ports probed one by one can repeat (the kernel may hand a closed one out again).
  const auto ports = derecho::testing::free_ports(n);
  for (std::size_t i = 0; i < n; ++i) {
    g.members.push_back(MemberAddress{static_cast<MemberId>(i + 1), "127.0.0.1", ports[i]});
  }
  return g;
}

TransportOptions options_for(const GroupConfig& g, MemberId self) {
  TransportOptions o;
  o.group = g;
  o.self = self;
  o.region_bytes = kRegion;
  return o;
}

Factory device_factory() {
  return [](const TransportOptions& o) { return make_verbs_transport(o); };
}

struct FakeFactory {
  std::shared_ptr<FakeCounters> counters = std::make_shared<FakeCounters>();
  std::uint32_t send_depth = 8;
  std::uint32_t recv_depth = 4;
  verbs::VerbsTuning tuning;
  std::unordered_map<MemberId, FakeFabric*> fabrics;  // latest fabric per member

  Factory factory() {
    return [this](const TransportOptions& o) {
      auto f = std::make_unique<FakeFabric>(o.region_bytes, verbs::staging_bytes_for(o), send_depth,
                                            recv_depth, counters);
      fabrics[o.self] = f.get();
      return verbs::make_verbs_transport(o, std::move(f), tuning);
    };
  }
};

bool all_up(const std::vector<std::unique_ptr<Transport>>& ts) {
  for (const auto& a : ts) {
    for (const auto& b : ts) {
      if (a.get() != b.get() && !a->link_up(b->self())) return false;
    }
  }
  return true;
}

// Starts the group, waits until every link is up, and takes every member's up event for each
// of its peers, so writes between any two of them are accepted.
std::vector<std::unique_ptr<Transport>> start_group(const GroupConfig& g, const Factory& make) {
  std::vector<std::unique_ptr<Transport>> ts;
  for (const auto& m : g.members) ts.push_back(make(options_for(g, m.id)));
  for (auto& t : ts) t->start(0ms);
  EXPECT_TRUE(eventually([&] { return all_up(ts); })) << "links did not come up";
  for (auto& t : ts) {
    std::vector<MemberId> peers;
    for (const auto& other : ts) {
      if (other != t) peers.push_back(other->self());
    }
    EXPECT_TRUE(take_up_events(*t, peers)) << "member " << t->self() << " got no up events";
  }
  return ts;
}

std::uint64_t load_u64(std::span<std::byte> region, std::size_t off) {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(region.data() + off))
      .load(std::memory_order_acquire);
}

void store_u64(std::span<std::byte> region, std::size_t off, std::uint64_t v) {
  std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(region.data() + off))
      .store(v, std::memory_order_release);
}

// Every sender owns a row in every region: [counter u64][pad to 64][slot 1][slot 2]... Each slot
// is 64 bytes of a pattern of (sender, i); the counter is written after the slot.
constexpr std::size_t kRowBytes = 256 << 10;
constexpr std::size_t kSlotBytes = 64;
std::size_t row_of(std::size_t sender_rank) { return kRegionHeaderBytes + sender_rank * kRowBytes; }
std::size_t slot_of(std::size_t sender_rank, std::uint64_t i) {
  return row_of(sender_rank) + 64 + (i - 1) * kSlotBytes;
}
std::uint64_t pattern(std::size_t sender_rank, std::uint64_t i, std::size_t word) {
  return (sender_rank + 1) * 1'000'000'000ull + i * 16 + word;
}

// Each member writes `iterations` (slot, counter) pairs to every other member, flushing after
// a varying number of iterations; every member checks, whenever its doorbell rings, that each
// counter it sees is preceded by all the slots it covers. Then completed() must catch up.
void run_ordered_writes(std::size_t members, const Factory& make, std::uint64_t iterations) {
  ASSERT_LE(slot_of(members - 1, iterations) + kSlotBytes, kRegion);
  const GroupConfig g = make_group(members);
  auto ts = start_group(g, make);
  if (::testing::Test::HasFatalFailure()) return;

  std::atomic<int> failures{0};
  std::atomic<int> missed_wakeups{0};
  std::vector<std::thread> threads;
  for (std::size_t me = 0; me < members; ++me) {
    // Reader: sleeps on the doorbell, checks the order invariant for every sender.
    threads.emplace_back([&, me] {
      Transport& t = *ts[me];
      std::vector<std::uint64_t> seen(members, 0);
      auto done = [&] {
        for (std::size_t s = 0; s < members; ++s) {
          if (s != me && seen[s] < iterations) return false;
        }
        return true;
      };
      const auto deadline = std::chrono::steady_clock::now() + 60s;
      while (!done() && std::chrono::steady_clock::now() < deadline) {
        const std::uint32_t bell = t.doorbell().snapshot();
        bool progress = false;
        for (std::size_t s = 0; s < members; ++s) {
          if (s == me) continue;
          const std::uint64_t c = load_u64(t.region(), row_of(s));
          for (std::uint64_t i = seen[s] + 1; i <= c; ++i) {
            for (std::size_t w = 0; w < kSlotBytes / 8; ++w) {
              if (load_u64(t.region(), slot_of(s, i) + w * 8) != pattern(s, i, w)) {
                if (failures.fetch_add(1) < 5) {
                  ADD_FAILURE() << "member " << me << " saw counter " << c << " from sender " << s
                                << " before slot " << i;
                }
                break;
              }
            }
          }
          if (c > seen[s]) progress = true;
          seen[s] = std::max(seen[s], c);
        }
        if (!progress && !done()) {
          const auto before = std::chrono::steady_clock::now();
          t.doorbell().wait(bell, 2s);
          if (std::chrono::steady_clock::now() - before >= 1900ms) missed_wakeups++;
        }
      }
      if (!done()) {
        failures++;
        ADD_FAILURE() << "member " << me << " did not see every write";
      }
    });
  }
  // Writers: the test thread drives every member's post_write/flush in turn (post_write and
  // flush of one transport are only ever called from one thread at a time).
  std::mt19937 rng(42);
  std::vector<std::uint64_t> posted(members, 0);
  for (std::uint64_t i = 1; i <= iterations; ++i) {
    for (std::size_t me = 0; me < members; ++me) {
      Transport& t = *ts[me];
      for (std::size_t w = 0; w < kSlotBytes / 8; ++w) {
        store_u64(t.region(), slot_of(me, i) + w * 8, pattern(me, i, w));
      }
      store_u64(t.region(), row_of(me), i);
      for (std::size_t peer = 0; peer < members; ++peer) {
        if (peer == me) continue;
        t.post_write(ts[peer]->self(), slot_of(me, i), kSlotBytes);
        t.post_write(ts[peer]->self(), row_of(me), 8);
        posted[peer] += 2;
      }
      if (rng() % 5 == 0 || i == iterations) t.flush();
    }
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(missed_wakeups.load(), 0) << "a flush landed without waking the receiver";
  for (std::size_t me = 0; me < members; ++me) {
    for (std::size_t peer = 0; peer < members; ++peer) {
      if (peer == me) continue;
      const MemberId pid = ts[peer]->self();
      const std::uint64_t want = iterations * 2;
      EXPECT_TRUE(eventually([&] { return ts[me]->completed(pid) == want; }))
          << "completed(" << pid << ") at member " << ts[me]->self() << " is "
          << ts[me]->completed(pid) << ", want " << want;
    }
    for (const auto& e : ts[me]->take_link_events()) {
      ADD_FAILURE() << "unexpected link event at member " << ts[me]->self() << ": peer " << e.peer
                    << (e.up ? " up: " : " down: ") << e.reason;
    }
  }
}

// Many writes in one flush (several times the send-queue depth): completed() catches up and
// every byte lands.
void run_completed_catches_up(const Factory& make, std::size_t writes) {
  const GroupConfig g = make_group(2);
  auto ts = start_group(g, make);
  if (::testing::Test::HasFatalFailure()) return;
  Transport& a = *ts[0];
  Transport& b = *ts[1];
  const std::size_t base = kRegionHeaderBytes;
  for (std::size_t i = 0; i < writes; ++i) store_u64(a.region(), base + i * 8, 0xabc000 + i);
  for (std::size_t i = 0; i < writes; ++i) a.post_write(b.self(), base + i * 8, 8);
  a.post_write(b.self(), base, 0);  // a zero-length write is legal and counts
  EXPECT_EQ(a.completed(b.self()), 0u);
  a.flush();
  EXPECT_TRUE(eventually([&] { return a.completed(b.self()) == writes + 1; }))
      << "completed " << a.completed(b.self()) << " of " << writes + 1;
  for (std::size_t i = 0; i < writes; ++i) {
    ASSERT_EQ(load_u64(b.region(), base + i * 8), 0xabc000 + i) << "word " << i;
  }
  // And again with one flush per write.
  for (std::size_t i = 0; i < 50; ++i) {
    store_u64(a.region(), base, 7000 + i);
    a.post_write(b.self(), base, 8);
    a.flush();
  }
  EXPECT_TRUE(eventually([&] { return a.completed(b.self()) == writes + 51; }));
  EXPECT_EQ(load_u64(b.region(), base), 7049u);
}

bool wait_event(Transport& t, MemberId peer, bool up, std::string* reason = nullptr,
                std::chrono::milliseconds timeout = 15s) {
  std::vector<LinkEvent> got;
  const bool ok = eventually(
      [&] {
        for (auto& e : t.take_link_events()) got.push_back(e);
        for (const auto& e : got) {
          if (e.peer == peer && e.up == up) {
            if (reason) *reason = e.reason;
            return true;
          }
        }
        return false;
      },
      timeout);
  return ok;
}

// The member at `victim` (0: the lower id, which connects; 1: the higher id, which accepts) is
// destroyed and created again on the same address: the survivor sees the link go down and up,
// and writes flow again.
void run_peer_recreated(const Factory& make, std::size_t victim) {
  const GroupConfig g = make_group(2);
  auto ts = start_group(g, make);
  if (::testing::Test::HasFatalFailure()) return;
  const std::size_t survivor = 1 - victim;
  const MemberId victim_id = g.members[victim].id;
  Transport& s = *ts[survivor];
  const std::size_t off = kRegionHeaderBytes + 128;

  ts[victim].reset();
  std::string reason;
  ASSERT_TRUE(wait_event(s, victim_id, false, &reason)) << "no link-down event";
  EXPECT_FALSE(s.link_up(victim_id));
  EXPECT_FALSE(reason.empty());

  // Writes while the link is down are dropped without error, and completed() does not count them.
  const std::uint64_t before = s.completed(victim_id);
  store_u64(s.region(), off, 1);
  s.post_write(victim_id, off, 8);
  s.flush();
  EXPECT_EQ(s.completed(victim_id), before);

  ts[victim] = make(options_for(g, victim_id));
  ts[victim]->start(0ms);
  ASSERT_TRUE(wait_event(s, victim_id, true, &reason)) << "no link-up event";
  EXPECT_TRUE(s.link_up(victim_id));
  ASSERT_TRUE(eventually([&] { return ts[victim]->link_up(s.self()); }));
  // The new member posts too, so it takes its up event first, as its engine would.
  ASSERT_TRUE(take_up_events(*ts[victim], {s.self()})) << "no link-up event at the new member";

  store_u64(s.region(), off, 42);
  s.post_write(victim_id, off, 8);
  s.flush();
  EXPECT_TRUE(eventually([&] { return load_u64(ts[victim]->region(), off) == 42; }));
  EXPECT_TRUE(eventually([&] { return s.completed(victim_id) == before + 1; }))
      << s.completed(victim_id) << " vs " << before;
  store_u64(ts[victim]->region(), off + 8, 43);
  ts[victim]->post_write(s.self(), off + 8, 8);
  ts[victim]->flush();
  EXPECT_TRUE(eventually([&] { return load_u64(s.region(), off + 8) == 43; }));
}

// A link that is up accepts writes only once its up event has been taken: one posted before is
// dropped (never lands, never counted), one posted after lands.
void run_writes_wait_for_up_event(const Factory& make) {
  const GroupConfig g = make_group(2);
  auto a = make(options_for(g, 1));
  auto b = make(options_for(g, 2));
  a->start(0ms);
  b->start(0ms);
  ASSERT_TRUE(eventually([&] { return a->link_up(2); })) << "link did not come up";
  const std::size_t off = kRegionHeaderBytes + 256;

  store_u64(a->region(), off, 111);
  a->post_write(2, off, 8);
  a->flush();
  EXPECT_EQ(a->completed(2), 0u);

  std::vector<LinkEvent> seen;
  ASSERT_TRUE(take_up_events(*a, {2}, &seen));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_TRUE(seen[0].up);
  EXPECT_NE(seen[0].session, 0u);

  // Writes to one peer land in order, so had the first one been sent it would be visible once
  // this one is.
  store_u64(a->region(), off + 8, 222);
  a->post_write(2, off + 8, 8);
  a->flush();
  ASSERT_TRUE(eventually([&] { return load_u64(b->region(), off + 8) == 222; }));
  EXPECT_TRUE(eventually([&] { return a->completed(2) == 1; })) << a->completed(2);
  EXPECT_EQ(load_u64(b->region(), off), 0u) << "a write posted before the up event was taken arrived";
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(a->completed(2), 1u);
  EXPECT_EQ(load_u64(b->region(), off), 0u);
}

// After the peer is recreated, writes are dropped until the survivor has taken the up event of
// the new session, even though the link is already up.
void run_reconnect_writes_wait_for_new_up_event(const Factory& make) {
  const GroupConfig g = make_group(2);
  auto a = make(options_for(g, 1));
  auto b = make(options_for(g, 2));
  a->start(0ms);
  b->start(0ms);
  std::vector<LinkEvent> first;
  ASSERT_TRUE(take_up_events(*a, {2}, &first));
  ASSERT_EQ(first.size(), 1u);
  const std::size_t off = kRegionHeaderBytes + 512;
  store_u64(a->region(), off, 1);
  a->post_write(2, off, 8);
  a->flush();
  ASSERT_TRUE(eventually([&] { return load_u64(b->region(), off) == 1; }));
  ASSERT_TRUE(eventually([&] { return a->completed(2) == 1; })) << a->completed(2);

  b.reset();
  ASSERT_TRUE(wait_event(*a, 2, false)) << "no link-down event";
  b = make(options_for(g, 2));
  b->start(0ms);
  ASSERT_TRUE(eventually([&] { return a->link_up(2); })) << "link did not come back";

  store_u64(a->region(), off + 8, 333);
  a->post_write(2, off + 8, 8);
  a->flush();
  EXPECT_EQ(a->completed(2), 1u);

  std::vector<LinkEvent> second;
  ASSERT_TRUE(take_up_events(*a, {2}, &second));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_NE(second[0].session, first[0].session) << "a new link session reuses the old number";

  store_u64(a->region(), off + 16, 444);
  a->post_write(2, off + 16, 8);
  a->flush();
  ASSERT_TRUE(eventually([&] { return load_u64(b->region(), off + 16) == 444; }));
  EXPECT_TRUE(eventually([&] { return a->completed(2) == 2; })) << a->completed(2);
  EXPECT_EQ(load_u64(b->region(), off + 8), 0u)
      << "a write posted before the new up event was taken arrived";
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(a->completed(2), 2u);
  EXPECT_EQ(load_u64(b->region(), off + 8), 0u);
}

// ---- device tests --------------------------------------------------------------------------

TEST(VerbsTransport, NoDeviceGivesClearError) {
  if (verbs::rdma_device_count() > 0) {
    GTEST_SKIP() << "an RDMA device exists here; this test covers machines without one";
  }
  const GroupConfig g = make_group(2);
  try {
    auto t = make_verbs_transport(options_for(g, 1));
    FAIL() << "make_verbs_transport succeeded without an RDMA device";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "no RDMA device found (ibv_get_device_list returned 0 devices)");
  }
}

TEST(VerbsTransport, RejectsBadOptions) {
  GroupConfig g = make_group(2);
  auto o = options_for(g, 9);
  EXPECT_THROW(make_verbs_transport(o), std::invalid_argument);
  o = options_for(g, 1);
  o.region_bytes = 5000;
  EXPECT_THROW(make_verbs_transport(o), std::invalid_argument);
  o = options_for(g, 1);
  o.group.members[1].port = 0;
  EXPECT_THROW(make_verbs_transport(o), std::invalid_argument);
}

TEST(VerbsDevice, TwoMembersDataThenCounterInOrder) {
  REQUIRE_RDMA_DEVICE();
  run_ordered_writes(2, device_factory(), 5000);
}

TEST(VerbsDevice, ThreeMembersDataThenCounterInOrder) {
  REQUIRE_RDMA_DEVICE();
  run_ordered_writes(3, device_factory(), 3000);
}

TEST(VerbsDevice, CompletedCatchesUp) {
  REQUIRE_RDMA_DEVICE();
  run_completed_catches_up(device_factory(), 2000);
}

TEST(VerbsDevice, LinkDownUpWhenConnectingPeerRecreated) {
  REQUIRE_RDMA_DEVICE();
  run_peer_recreated(device_factory(), 0);
}

TEST(VerbsDevice, LinkDownUpWhenAcceptingPeerRecreated) {
  REQUIRE_RDMA_DEVICE();
  run_peer_recreated(device_factory(), 1);
}

TEST(VerbsDevice, WritesWaitUntilTheUpEventIsTaken) {
  REQUIRE_RDMA_DEVICE();
  run_writes_wait_for_up_event(device_factory());
}

TEST(VerbsDevice, AfterAReconnectWritesWaitForTheNewUpEvent) {
  REQUIRE_RDMA_DEVICE();
  run_reconnect_writes_wait_for_new_up_event(device_factory());
}

// ---- fake fabric tests ---------------------------------------------------------------------

class VerbsFakeFabric : public ::testing::Test {
 protected:
  void TearDown() override {
    EXPECT_EQ(fake.counters->sq_overflows.load(), 0u) << "posted beyond the send queue depth";
    EXPECT_EQ(fake.counters->cq_overflows.load(), 0u);
  }
  FakeFactory fake;
};

TEST_F(VerbsFakeFabric, TwoMembersDataThenCounterInOrder) {
  run_ordered_writes(2, fake.factory(), 3000);
}

TEST_F(VerbsFakeFabric, ThreeMembersDataThenCounterInOrder) {
  run_ordered_writes(3, fake.factory(), 2000);
}

TEST_F(VerbsFakeFabric, CompletedCatchesUpBeyondSendQueueDepth) {
  run_completed_catches_up(fake.factory(), 1000);  // 125 times the fake's depth of 8
}

TEST_F(VerbsFakeFabric, LinkDownUpWhenConnectingPeerRecreated) {
  run_peer_recreated(fake.factory(), 0);
}

TEST_F(VerbsFakeFabric, LinkDownUpWhenAcceptingPeerRecreated) {
  run_peer_recreated(fake.factory(), 1);
}

TEST_F(VerbsFakeFabric, WritesWaitUntilTheUpEventIsTaken) {
  run_writes_wait_for_up_event(fake.factory());
}

TEST_F(VerbsFakeFabric, AfterAReconnectWritesWaitForTheNewUpEvent) {
  run_reconnect_writes_wait_for_new_up_event(fake.factory());
}

TEST_F(VerbsFakeFabric, CompletionErrorMarksLinkDownThenReconnects) {
  const GroupConfig g = make_group(2);
  auto ts = start_group(g, fake.factory());
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  Transport& a = *ts[0];
  Transport& b = *ts[1];
  fake.fabrics.at(a.self())->inject_error(IBV_WC_RETRY_EXC_ERR);
  a.post_write(b.self(), kRegionHeaderBytes, 8);
  a.flush();
  std::string reason;
  ASSERT_TRUE(wait_event(a, b.self(), false, &reason));
  EXPECT_NE(reason.find("transport retry counter exceeded"), std::string::npos) << reason;
  // The side channel is cut too, so the peer notices; then both re-establish the QP.
  EXPECT_TRUE(wait_event(b, a.self(), false));
  EXPECT_TRUE(wait_event(a, b.self(), true));
  EXPECT_TRUE(wait_event(b, a.self(), true));
  store_u64(a.region(), kRegionHeaderBytes, 99);
  a.post_write(b.self(), kRegionHeaderBytes, 8);
  a.flush();
  EXPECT_TRUE(eventually([&] { return load_u64(b.region(), kRegionHeaderBytes) == 99; }));
  // The failed write never landed, so only the second one counts.
  EXPECT_TRUE(eventually([&] { return a.completed(b.self()) == 1; })) << a.completed(b.self());
}

TEST_F(VerbsFakeFabric, StartWaitsForLinks) {
  const GroupConfig g = make_group(2);
  auto a = fake.factory()(options_for(g, 1));
  auto b = fake.factory()(options_for(g, 2));
  std::thread tb([&] { b->start(10s); });
  a->start(10s);
  EXPECT_TRUE(a->link_up(2));
  tb.join();
  EXPECT_TRUE(b->link_up(1));
  EXPECT_TRUE(a->link_up(1));  // self
  EXPECT_FALSE(a->link_up(77));
  auto events = a->take_link_events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].up);
  EXPECT_EQ(events[0].peer, 2u);
}

TEST_F(VerbsFakeFabric, StartTimesOutWhenPeerAbsent) {
  const GroupConfig g = make_group(2);
  auto a = fake.factory()(options_for(g, 1));
  const auto t0 = std::chrono::steady_clock::now();
  a->start(200ms);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 190ms);
  EXPECT_FALSE(a->link_up(2));
  a->stop();
  a->stop();  // idempotent
}

TEST_F(VerbsFakeFabric, PostWriteChecksBounds) {
  const GroupConfig g = make_group(2);
  auto a = fake.factory()(options_for(g, 1));
  EXPECT_THROW(a->post_write(2, 0, 8), std::out_of_range);  // transport header
  EXPECT_THROW(a->post_write(2, kRegion - 4, 8), std::out_of_range);
  EXPECT_THROW(a->post_write(2, kRegion + 8, 0), std::out_of_range);
  EXPECT_THROW(a->post_write(1, kRegionHeaderBytes, 8), std::invalid_argument);  // self
  EXPECT_THROW(a->post_write(5, kRegionHeaderBytes, 8), std::invalid_argument);
  EXPECT_NO_THROW(a->post_write(2, kRegion - 8, 8));  // link down: dropped
  EXPECT_NO_THROW(a->flush());
}

// RDMA reads the source when the NIC runs the WR; post_write must still send the bytes as they
// were when it was called (the engine rewrites counters before flushing).
TEST_F(VerbsFakeFabric, PostWriteSnapshotsTheBytes) {
  const GroupConfig g = make_group(2);
  auto ts = start_group(g, fake.factory());
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  Transport& a = *ts[0];
  Transport& b = *ts[1];
  const std::size_t off = kRegionHeaderBytes + 64;
  store_u64(a.region(), off, 1);
  a.post_write(b.self(), off, 8);
  store_u64(a.region(), off + 8, 2);
  a.post_write(b.self(), off + 8, 8);
  store_u64(a.region(), off, 3);  // changed after post_write, never posted
  a.flush();
  ASSERT_TRUE(eventually([&] { return a.completed(b.self()) == 2; }));
  EXPECT_EQ(load_u64(b.region(), off), 1u);
  EXPECT_EQ(load_u64(b.region(), off + 8), 2u);
}

// Writes bigger than the staging ring are sent in pieces; many writes cycle the ring.
TEST_F(VerbsFakeFabric, WritesLargerThanTheStagingRing) {
  ::setenv("DERECHO_RDMA_STAGING_BYTES", "65536", 1);
  const GroupConfig g = make_group(2);
  auto ts = start_group(g, fake.factory());
  ::unsetenv("DERECHO_RDMA_STAGING_BYTES");
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  Transport& a = *ts[0];
  Transport& b = *ts[1];
  const std::size_t off = kRegionHeaderBytes;
  const std::size_t len = 600 << 10;  // ~10 rings
  for (int round = 1; round <= 3; ++round) {
    for (std::size_t w = 0; w < len / 8; ++w) store_u64(a.region(), off + w * 8, round * 1'000'000 + w);
    a.post_write(b.self(), off, len);
    a.flush();
    ASSERT_TRUE(eventually([&] { return a.completed(b.self()) == static_cast<std::uint64_t>(round); }));
    for (std::size_t w = 0; w < len / 8; ++w) {
      ASSERT_EQ(load_u64(b.region(), off + w * 8), round * 1'000'000 + w) << "word " << w;
    }
  }
  // Thousands of small writes between two flushes wrap the ring many times.
  for (std::uint64_t i = 0; i < 5000; ++i) {
    store_u64(a.region(), off + (i % 512) * 8, i);
    a.post_write(b.self(), off + (i % 512) * 8, 8);
  }
  a.flush();
  EXPECT_TRUE(eventually([&] { return a.completed(b.self()) == 5003; }));
  EXPECT_EQ(load_u64(b.region(), off + (4999 % 512) * 8), 4999u);
}

TEST_F(VerbsFakeFabric, ZeroCopyWritesSkipTheStagingRing) {
  fake.tuning.zero_copy_min_bytes = 4096;
  const GroupConfig g = make_group(2);
  auto ts = start_group(g, fake.factory());
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  Transport& a = *ts[0];
  Transport& b = *ts[1];
  const std::size_t off = kRegionHeaderBytes;
  for (std::size_t w = 0; w < 1025; ++w) store_u64(a.region(), off + w * 8, 77 + w);
  a.post_write(b.self(), off, 8192);   // zero copy
  a.post_write(b.self(), off + 8192, 8);  // staged
  a.flush();
  ASSERT_TRUE(eventually([&] { return a.completed(b.self()) == 2; }));
  for (std::size_t w = 0; w < 1025; ++w) ASSERT_EQ(load_u64(b.region(), off + w * 8), 77 + w);
}

int connect_to(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Reads frames until EOF; returns the reject reason, if any.
std::string read_reject(int fd) {
  std::vector<std::uint8_t> buf;
  std::uint8_t tmp[512];
  for (;;) {
    const ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) break;
    buf.insert(buf.end(), tmp, tmp + n);
  }
  try {
    while (auto f = verbs::wire::take_frame(buf)) {
      if (f->type == verbs::wire::FrameType::reject) return verbs::wire::decode_reject(f->body);
    }
  } catch (const verbs::wire::FrameError&) {
  }
  return {};
}

TEST_F(VerbsFakeFabric, MalformedSideChannelFramesAreRefused) {
  const GroupConfig g = make_group(2);
  auto b = fake.factory()(options_for(g, 2));
  b->start(0ms);
  const std::uint16_t port = g.members[1].port;

  int fd = connect_to(port);
  const char junk[] = "GET / HTTP/1.0\r\n\r\n";
  ASSERT_GT(::send(fd, junk, sizeof junk - 1, MSG_NOSIGNAL), 0);
  EXPECT_NE(read_reject(fd).find("bad magic"), std::string::npos);
  ::close(fd);
  EXPECT_TRUE(eventually([&] { return b->bad_frames() == 1; }));

  verbs::wire::Hello h;
  h.from = 1;
  h.to = 2;
  h.qpn = 5;
  h.mtu = IBV_MTU_1024;
  h.region_bytes = kRegion;
  h.group = "some-other-group";
  fd = connect_to(port);
  auto bytes = verbs::wire::encode_hello(h);
  ASSERT_GT(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), 0);
  EXPECT_NE(read_reject(fd).find("group name"), std::string::npos);
  ::close(fd);
  EXPECT_TRUE(eventually([&] { return b->bad_frames() == 2; }));

  h.group = "verbs-test";
  h.region_bytes = kRegion * 2;
  fd = connect_to(port);
  bytes = verbs::wire::encode_hello(h);
  ASSERT_GT(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), 0);
  EXPECT_NE(read_reject(fd).find("region size"), std::string::npos);
  ::close(fd);

  // A frame from a newer wire version is refused with a clear reason.
  bytes = verbs::wire::encode_ready();
  bytes[5] = 2;  // version
  fd = connect_to(port);
  ASSERT_GT(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), 0);
  EXPECT_NE(read_reject(fd).find("unsupported wire version 2"), std::string::npos);
  ::close(fd);
  EXPECT_TRUE(eventually([&] { return b->bad_frames() == 4; }));
  EXPECT_FALSE(b->link_up(1));
}

// ---- wire format ---------------------------------------------------------------------------

verbs::wire::Hello sample_hello() {
  verbs::wire::Hello h;
  h.from = 3;
  h.to = 9;
  h.qpn = 0x123456;
  h.psn = 0xabcdef;
  h.lid = 0x1234;
  h.mtu = IBV_MTU_4096;
  h.flags = verbs::wire::kHelloFlagEthernet;
  for (std::size_t i = 0; i < h.gid.size(); ++i) h.gid[i] = static_cast<std::uint8_t>(0xf0 + i);
  h.rkey = 0xdeadbeef;
  h.region_addr = 0x00007f0012345000ull;
  h.region_bytes = 1ull << 30;
  h.group = "sensors";
  return h;
}

TEST(VerbsWire, HelloRoundTripsAndHasTheDocumentedLayout) {
  const auto h = sample_hello();
  auto bytes = verbs::wire::encode_hello(h);
  ASSERT_EQ(bytes.size(), verbs::wire::kHeaderBytes + verbs::wire::kHelloFixedBytes + 7);
  EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 4), "DRVB");
  EXPECT_EQ(bytes[4], 0);
  EXPECT_EQ(bytes[5], 1);  // wire version, big-endian
  EXPECT_EQ(bytes[7], 1);  // type hello
  EXPECT_EQ(bytes[11], verbs::wire::kHelloFixedBytes + 7);
  EXPECT_EQ(bytes[12 + 3], 3);     // from
  EXPECT_EQ(bytes[12 + 8 + 1], 0x12);  // qpn
  EXPECT_EQ(bytes[12 + 36], 0xde);  // rkey
  auto f = verbs::wire::take_frame(bytes);
  ASSERT_TRUE(f.has_value());
  EXPECT_TRUE(bytes.empty());
  EXPECT_EQ(f->type, verbs::wire::FrameType::hello);
  EXPECT_EQ(verbs::wire::decode_hello(f->body), h);
}

TEST(VerbsWire, PartialFramesWaitForMoreBytes) {
  auto all = verbs::wire::encode_hello(sample_hello());
  const auto ready = verbs::wire::encode_ready();
  all.insert(all.end(), ready.begin(), ready.end());
  std::vector<std::uint8_t> buf;
  std::vector<verbs::wire::FrameType> got;
  for (std::uint8_t b : all) {
    buf.push_back(b);
    while (auto f = verbs::wire::take_frame(buf)) got.push_back(f->type);
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], verbs::wire::FrameType::hello);
  EXPECT_EQ(got[1], verbs::wire::FrameType::ready);
}

TEST(VerbsWire, RejectsMalformedFrames) {
  using verbs::wire::FrameError;
  std::vector<std::uint8_t> bad = {'X'};
  EXPECT_THROW(verbs::wire::take_frame(bad), FrameError);  // bad magic seen at the first byte
  auto v2 = verbs::wire::encode_ready();
  v2[5] = 2;
  EXPECT_THROW(verbs::wire::take_frame(v2), FrameError);
  auto type9 = verbs::wire::encode_ready();
  type9[7] = 9;
  EXPECT_THROW(verbs::wire::take_frame(type9), FrameError);
  auto huge = verbs::wire::encode_ready();
  huge[9] = 0x10;  // length 1 MiB
  EXPECT_THROW(verbs::wire::take_frame(huge), FrameError);

  auto h = verbs::wire::encode_hello(sample_hello());
  auto f = verbs::wire::take_frame(h);
  ASSERT_TRUE(f);
  auto body = f->body;
  body.push_back(0);
  EXPECT_THROW(verbs::wire::decode_hello(body), FrameError);  // trailing byte
  body = f->body;
  body.resize(20);
  EXPECT_THROW(verbs::wire::decode_hello(body), FrameError);  // truncated
  body = f->body;
  body[18] = 9;  // mtu code
  EXPECT_THROW(verbs::wire::decode_hello(body), FrameError);
  body = f->body;
  body[8] = 0x01;  // qpn beyond 24 bits
  EXPECT_THROW(verbs::wire::decode_hello(body), FrameError);
}

TEST(VerbsWire, RejectRoundTrips) {
  auto bytes = verbs::wire::encode_reject("no thanks");
  auto f = verbs::wire::take_frame(bytes);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->type, verbs::wire::FrameType::reject);
  EXPECT_EQ(verbs::wire::decode_reject(f->body), "no thanks");
}

}  // namespace
}  // namespace derecho::transport

#else  // !DERECHO_HAVE_VERBS

TEST(VerbsTransport, NotBuilt) {
  GTEST_SKIP() << "verbs transport not built: rdma-core (libibverbs) not found or -DDERECHO_VERBS=OFF";
}

#endif
