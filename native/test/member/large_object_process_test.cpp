// Large objects between real member processes over TCP on loopback and over shared memory
// (docs/protocol-rdmc.md): 1 MiB, 16 MiB and 256 MiB objects to groups of 3 and 5, mixed with
// small messages from every member, every object's bytes checked by digest at every member and
// every member's delivery sequence the same; and a relay killed with SIGKILL in the middle of a
// transfer, after which every survivor delivers every object exactly once.
#include <sys/mman.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "../support/free_ports.hpp"
#include "../support/member_processes.hpp"
#include "member/member.hpp"

namespace derecho::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMiB = 1u << 20;
constexpr std::size_t kMaxMembers = 5;
constexpr std::size_t kMaxRecords = 4096;

// One delivery as a member saw it.
struct Record {
  std::uint32_t sender;
  std::uint64_t seq;
  std::uint64_t bytes;
  std::uint64_t digest;
  std::uint64_t vid;
};

struct MemberReport {
  std::atomic<std::uint64_t> delivered;  // records written
  std::atomic<std::uint64_t> blocks_received;
  std::atomic<std::uint64_t> vid;
  std::atomic<int> in_full_view;
  std::atomic<int> done;
  std::atomic<int> has_error;
  char error[512];
  Record records[kMaxRecords];
};

struct Shared {
  std::atomic<int> go;
  std::atomic<int> stop;
  MemberReport members[kMaxMembers];
};


std::uint64_t splitmix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Message `seq` of `sender`: its seq in the first 8 bytes, then bytes anyone can regenerate.
void generate(std::span<std::byte> out, MemberId sender, std::uint64_t seq) {
  std::uint64_t state = (std::uint64_t{sender} << 40) ^ (seq * 0x100000001b3ull);
  for (std::size_t at = 0; at < out.size(); at += 8) {
    const std::uint64_t word = splitmix(state);
    std::memcpy(out.data() + at, &word, std::min<std::size_t>(8, out.size() - at));
  }
  std::memcpy(out.data(), &seq, std::min<std::size_t>(8, out.size()));
}

// A word-at-a-time digest over every byte: fast enough for 256 MiB at every member.
std::uint64_t digest(std::span<const std::byte> bytes) {
  std::uint64_t h = 0x9e3779b97f4a7c15ull ^ bytes.size();
  std::size_t at = 0;
  for (; at + 8 <= bytes.size(); at += 8) {
    std::uint64_t w;
    std::memcpy(&w, bytes.data() + at, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 29;
  }
  for (; at < bytes.size(); ++at) h = (h ^ std::to_integer<std::uint64_t>(bytes[at])) * 0x100000001b3ull;
  return h;
}

class RecordingSink final : public multicast::DeliverySink {
 public:
  explicit RecordingSink(MemberReport& r) : r_(r) {}
  bool ready() override { return true; }
  void deliver(std::span<const multicast::Delivery> batch) override {
    for (const auto& d : batch) {
      std::uint64_t seq = 0;
      std::memcpy(&seq, d.payload.data(), std::min<std::size_t>(8, d.payload.size()));
      const std::uint64_t n = r_.delivered.load(std::memory_order_relaxed);
      if (n < kMaxRecords) r_.records[n] = {d.sender, seq, d.payload.size(), digest(d.payload), d.vid};
      r_.delivered.store(n + 1, std::memory_order_release);
    }
  }

 private:
  MemberReport& r_;
};

// What one run sends: `objects` objects of `object_bytes` from each object sender, and
// `small` messages of 100 bytes from every member.
struct Workload {
  std::size_t members;
  std::vector<MemberId> object_senders;
  std::size_t objects;
  std::size_t object_bytes;
  std::size_t small;
  std::vector<MemberId> small_senders;
};

GroupConfig make_config(TransportKind transport, const Workload& w, const std::string& name) {
  GroupConfig c;
  c.group_name = name;
  c.transport = transport;
  const auto ports = free_ports(w.members);
  SubgroupConfig sg;
  sg.name = "objects";
  for (std::size_t i = 0; i < w.members; ++i) {
    c.members.push_back({static_cast<MemberId>(i), "127.0.0.1", ports[i]});
    sg.members.push_back(static_cast<MemberId>(i));
    sg.senders.push_back(static_cast<MemberId>(i));
  }
  sg.max_message_bytes = 1024;
  sg.ring_bytes = 1u << 16;
  sg.large_objects = LargeObjectConfig{1024, w.object_bytes, 1u << 20};
  c.subgroups.push_back(sg);
  return c;
}

void note_error(MemberReport& r, const std::string& what) {
  int expected = 0;
  if (r.has_error.compare_exchange_strong(expected, 1)) std::snprintf(r.error, sizeof r.error, "%s", what.c_str());
}

std::uint64_t expected_deliveries(const Workload& w) {
  return w.object_senders.size() * w.objects + w.small_senders.size() * w.small;
}

// One member process: waits for a view of everybody, sends its share (objects and small
// messages alternating), reports its relay progress, and stays until told to stop.
void run_member(const GroupConfig& config, const Workload& w, MemberId self, Shared& shared) {
  MemberReport& report = shared.members[self];
  RecordingSink sink(report);
  Member member(config, self, sink);
  std::mutex mutex;
  std::condition_variable writable;
  member.on_writable([&](std::uint32_t) { writable.notify_all(); });
  if (!member.start(20s)) throw std::runtime_error("peers not reachable");
  while (!member.view() || member.view()->members.size() != w.members) std::this_thread::sleep_for(1ms);
  report.in_full_view.store(1);
  while (!shared.go.load()) std::this_thread::sleep_for(1ms);
  const bool objects = std::find(w.object_senders.begin(), w.object_senders.end(), self) != w.object_senders.end();
  const bool smalls = std::find(w.small_senders.begin(), w.small_senders.end(), self) != w.small_senders.end();
  std::vector<std::byte> object(objects ? w.object_bytes : 0);
  std::vector<std::byte> small(100);
  std::uint64_t seq = 0;
  std::size_t objects_left = objects ? w.objects : 0, small_left = smalls ? w.small : 0;
  const auto send = [&](std::span<std::byte> bytes) {
    generate(bytes, self, seq);
    while (!member.send(0, bytes)) {
      std::unique_lock lock(mutex);
      writable.wait_for(lock, 5ms);
      if (shared.stop.load()) return;
    }
    ++seq;
  };
  while ((objects_left > 0 || small_left > 0) && !shared.stop.load()) {
    if (objects_left > 0) {
      send(object);
      --objects_left;
    }
    for (std::size_t i = 0; i < 4 && small_left > 0; ++i, --small_left) send(small);
  }
  while (!shared.stop.load()) {
    const auto stats = member.subgroup_stats(0);
    report.blocks_received.store(stats.object_blocks_received);
    if (const auto v = member.view()) report.vid.store(v->vid);
    std::this_thread::sleep_for(1ms);
  }
  member.stop();
  report.done.store(1);
}

std::string errors(Shared& shared, std::size_t members) {
  std::string out;
  for (std::size_t i = 0; i < members; ++i) {
    if (shared.members[i].has_error.load()) out += std::string(shared.members[i].error) + "; ";
  }
  return out;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (!condition()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

struct GroupRun {
  std::unique_ptr<SharedRegion<Shared>> region = std::make_unique<SharedRegion<Shared>>();
  MemberProcesses processes;
  Shared& shared() { return region->get(); }
};

void start_group(GroupRun& run, const GroupConfig& config, const Workload& w) {
  for (std::size_t i = 0; i < w.members; ++i) {
    const auto id = static_cast<MemberId>(i);
    run.processes.start(id, [&run, id](const std::string& why) { note_error(run.shared().members[id], why); },
                        [&run, &config, &w, id] { run_member(config, w, id, run.shared()); });
  }
  ASSERT_TRUE(wait_until(
      [&] {
        for (std::size_t i = 0; i < w.members; ++i) {
          if (!run.shared().members[i].in_full_view.load()) return false;
        }
        return true;
      },
      30s))
      << "no view of all " << w.members << " members; " << errors(run.shared(), w.members);
  run.shared().go.store(1);
}

// Every member delivered the same sequence, each sender's messages in order, and each message
// with the bytes its sender generated.
void expect_same_and_intact(Shared& shared, const std::vector<MemberId>& members, const Workload& w,
                            const std::string& what) {
  const MemberReport& first = shared.members[members.front()];
  const std::uint64_t n = first.delivered.load();
  ASSERT_EQ(n, expected_deliveries(w)) << what;
  std::vector<std::byte> buffer;
  std::map<MemberId, std::uint64_t> next_seq;
  for (std::uint64_t i = 0; i < n; ++i) {
    const Record& r = first.records[i];
    ASSERT_EQ(r.seq, next_seq[r.sender]++) << what << ": sender " << r.sender << " out of order";
    buffer.resize(r.bytes);
    generate(buffer, r.sender, r.seq);
    ASSERT_EQ(r.digest, digest(buffer)) << what << ": message " << r.seq << " of member " << r.sender << " ("
                                        << r.bytes << " bytes) arrived with other bytes";
  }
  for (MemberId m : members) {
    const MemberReport& other = shared.members[m];
    ASSERT_EQ(other.delivered.load(), n) << what << ": member " << m;
    for (std::uint64_t i = 0; i < n; ++i) {
      const Record& a = first.records[i];
      const Record& b = other.records[i];
      ASSERT_TRUE(a.sender == b.sender && a.seq == b.seq && a.bytes == b.bytes && a.digest == b.digest)
          << what << ": member " << m << " differs from member " << members.front() << " at delivery " << i;
    }
  }
}

void run_workload(TransportKind transport, const Workload& w) {
  const std::string what = std::string(transport == TransportKind::tcp ? "tcp" : "shm") + ", " +
                           std::to_string(w.members) + " members, " + std::to_string(w.objects) + " objects of " +
                           std::to_string(w.object_bytes / kMiB) + " MiB";
  SCOPED_TRACE(what);
  const auto config = make_config(transport, w, "objects-" + std::to_string(::getpid()) + "-" + std::to_string(w.members) +
                                                    "-" + std::to_string(w.object_bytes / kMiB));
  GroupRun run;
  start_group(run, config, w);
  if (::testing::Test::HasFatalFailure()) return;
  std::vector<MemberId> all;
  for (std::size_t i = 0; i < w.members; ++i) all.push_back(static_cast<MemberId>(i));
  const bool complete = wait_until(
      [&] {
        for (MemberId m : all) {
          if (run.shared().members[m].delivered.load() < expected_deliveries(w)) return false;
        }
        return true;
      },
      120s);
  run.shared().stop.store(1);
  const std::string exits = run.processes.reap_all(30s);
  ASSERT_TRUE(complete) << "not every member delivered everything; " << errors(run.shared(), w.members);
  EXPECT_EQ(exits, "") << errors(run.shared(), w.members);
  expect_same_and_intact(run.shared(), all, w, what);
}

Workload mixed(std::size_t members, std::size_t objects, std::size_t object_bytes) {
  Workload w{members, {0, 1}, objects, object_bytes, 12, {}};
  for (std::size_t i = 0; i < members; ++i) w.small_senders.push_back(static_cast<MemberId>(i));
  return w;
}

}  // namespace

TEST(LargeObjectProcesses, OneMiBObjectsWithSmallMessagesTo3And5MembersOverTcpAndShm) {
  for (TransportKind t : {TransportKind::tcp, TransportKind::shm}) {
    for (std::size_t members : {3u, 5u}) run_workload(t, mixed(members, 8, kMiB));
  }
}

TEST(LargeObjectProcesses, SixteenMiBObjectsWithSmallMessagesTo3And5MembersOverTcpAndShm) {
  for (TransportKind t : {TransportKind::tcp, TransportKind::shm}) {
    for (std::size_t members : {3u, 5u}) run_workload(t, mixed(members, 3, 16 * kMiB));
  }
}

TEST(LargeObjectProcesses, TwoHundredFiftySixMiBObjectsTo3And5MembersOverTcpAndShm) {
  for (TransportKind t : {TransportKind::tcp, TransportKind::shm}) {
    for (std::size_t members : {3u, 5u}) {
      Workload w{members, {0}, 1, 256 * kMiB, 4, {}};
      for (std::size_t i = 0; i < members; ++i) w.small_senders.push_back(static_cast<MemberId>(i));
      run_workload(t, w);
    }
  }
}

// Member 0 sends 16 MiB objects back to back to 5 members; member 2, a relay, is killed while
// a transfer is under way (some of that object's blocks have reached it, not all). The
// survivors install a view without it and every one of them delivers every object exactly once
// and intact: the one cut off is sent again in the new view.
TEST(LargeObjectProcesses, ARelayKilledMidTransferLeavesEverySurvivorWithEveryObjectOnce) {
  for (TransportKind t : {TransportKind::tcp, TransportKind::shm}) {
    SCOPED_TRACE(t == TransportKind::tcp ? "tcp" : "shm");
    const Workload w{5, {0}, 12, 16 * kMiB, 0, {}};
    const std::uint64_t blocks_per_object = 16;
    const auto config = make_config(t, w, "relay-kill-" + std::to_string(::getpid()) + (t == TransportKind::tcp ? "-tcp" : "-shm"));
    GroupRun run;
    start_group(run, config, w);
    if (::testing::Test::HasFatalFailure()) return;
    MemberReport& relay = run.shared().members[2];
    // Mid-transfer: the relay has part of an object (and the run is not over yet).
    const bool caught = wait_until(
        [&] {
          const std::uint64_t b = relay.blocks_received.load();
          return b % blocks_per_object != 0 && b < (w.objects - 2) * blocks_per_object;
        },
        60s);
    ASSERT_TRUE(caught) << "never saw the relay part-way through an object; " << errors(run.shared(), w.members);
    run.processes.kill(2);
    const std::uint64_t blocks_at_kill = relay.blocks_received.load();
    const std::vector<MemberId> survivors{0, 1, 3, 4};
    const bool complete = wait_until(
        [&] {
          for (MemberId m : survivors) {
            if (run.shared().members[m].delivered.load() < expected_deliveries(w)) return false;
          }
          return true;
        },
        120s);
    run.shared().stop.store(1);
    const std::string exits = run.processes.reap_all(30s);
    ASSERT_TRUE(complete) << "survivors did not deliver every object; " << errors(run.shared(), w.members);
    EXPECT_EQ(exits, "") << errors(run.shared(), w.members);
    expect_same_and_intact(run.shared(), survivors, w, "survivors");
    // The view changed while objects were in flight, and the killed relay had delivered a prefix.
    const MemberReport& s0 = run.shared().members[0];
    EXPECT_GT(s0.records[s0.delivered.load() - 1].vid, 1u) << "the last objects should come in a later view";
    const std::uint64_t relay_delivered = relay.delivered.load();
    EXPECT_LT(relay_delivered, expected_deliveries(w)) << "killed at block " << blocks_at_kill;
    for (std::uint64_t i = 0; i < relay_delivered; ++i) {
      EXPECT_EQ(relay.records[i].digest, s0.records[i].digest) << "delivery " << i;
    }
  }
}

}  // namespace derecho::testing
