// Group sizes from 2 to 16 member processes on one host, over TCP and shared memory: every
// member sends, every member delivers every message in the same order, and the group keeps
// its first view throughout (no member is suspected just because there are many of them).
#include <sys/mman.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <chrono>
#include <cstring>
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

constexpr std::size_t kMaxMembers = 16;
constexpr std::uint64_t kPerMember = 400;

struct MemberReport {
  std::atomic<std::uint64_t> delivered;
  std::atomic<std::uint64_t> order_digest;  // over (sender, its seq) of every delivery, in order
  std::atomic<std::uint64_t> out_of_order;  // a sender's message not the next one expected
  std::atomic<std::uint64_t> last_vid;
  std::atomic<int> ready;
  std::atomic<int> has_error;
  char error[512];
};

struct Shared {
  std::atomic<int> go;
  std::atomic<int> stop;
  MemberReport members[kMaxMembers];
};

class OrderSink final : public multicast::DeliverySink {
 public:
  explicit OrderSink(MemberReport& r) : r_(r), next_(kMaxMembers, 0) {}
  bool ready() override { return true; }
  void deliver(std::span<const multicast::Delivery> batch) override {
    std::uint64_t h = r_.order_digest.load(std::memory_order_relaxed);
    for (const auto& d : batch) {
      std::uint64_t seq = 0;
      std::memcpy(&seq, d.payload.data(), 8);
      if (d.sender >= kMaxMembers || seq != next_[d.sender]++) r_.out_of_order.fetch_add(1);
      h = (h ^ ((std::uint64_t{d.sender} << 48) | seq)) * 0x100000001b3ull;
      r_.last_vid.store(d.vid, std::memory_order_relaxed);
    }
    r_.order_digest.store(h, std::memory_order_relaxed);
    r_.delivered.fetch_add(batch.size(), std::memory_order_release);
  }

 private:
  MemberReport& r_;
  std::vector<std::uint64_t> next_;
};

void run_member(const GroupConfig& config, std::size_t members, MemberId self, Shared& shared) {
  MemberReport& report = shared.members[self];
  OrderSink sink(report);
  Member member(config, self, sink);
  if (!member.start(30s)) throw std::runtime_error("peers not reachable");
  while (!member.view() || member.view()->members.size() != members) std::this_thread::sleep_for(1ms);
  report.ready.store(1);
  while (!shared.go.load()) std::this_thread::sleep_for(1ms);
  std::vector<std::byte> payload(100);
  // Paced, so that sixteen processes on a small machine measure the protocol, not overload.
  for (std::uint64_t seq = 0; seq < kPerMember && !shared.stop.load();) {
    std::memcpy(payload.data(), &seq, 8);
    if (member.send(0, payload)) {
      ++seq;
      if (seq % 20 == 0) std::this_thread::sleep_for(2ms);
    } else {
      std::this_thread::sleep_for(1ms);
    }
  }
  while (!shared.stop.load()) std::this_thread::sleep_for(2ms);
  member.stop();
}

void note_error(MemberReport& r, const std::string& what) {
  int expected = 0;
  if (r.has_error.compare_exchange_strong(expected, 1)) std::snprintf(r.error, sizeof r.error, "%s", what.c_str());
}

void run_group(TransportKind transport, std::size_t members) {
  SCOPED_TRACE(std::to_string(members) + " members over " + (transport == TransportKind::tcp ? "tcp" : "shm"));
  SharedRegion<Shared> region;
  Shared& shared = region.get();
  GroupConfig config;
  config.group_name = "sizes-" + std::to_string(::getpid()) + "-" + std::to_string(members) +
                      (transport == TransportKind::tcp ? "-tcp" : "-shm");
  config.transport = transport;
  const auto ports = free_ports(members);
  SubgroupConfig sg;
  sg.name = "all";
  for (std::size_t i = 0; i < members; ++i) {
    config.members.push_back({static_cast<MemberId>(i), "127.0.0.1", ports[i]});
    sg.members.push_back(static_cast<MemberId>(i));
    sg.senders.push_back(static_cast<MemberId>(i));
  }
  sg.ring_bytes = 1u << 16;
  sg.max_message_bytes = 1024;
  config.subgroups.push_back(sg);
  {
    MemberProcesses processes;
    for (std::size_t i = 0; i < members; ++i) {
      const auto id = static_cast<MemberId>(i);
      processes.start(id, [&shared, id](const std::string& why) { note_error(shared.members[id], why); },
                      [&, id] { run_member(config, members, id, shared); });
    }
    const auto all = [&](const std::function<bool(const MemberReport&)>& f) {
      for (std::size_t i = 0; i < members; ++i) {
        if (!f(shared.members[i])) return false;
      }
      return true;
    };
    const auto deadline = Clock::now() + 90s;
    while (!all([](const MemberReport& r) { return r.ready.load() == 1; }) && Clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    shared.go.store(1);
    const std::uint64_t total = kPerMember * members;
    while (!all([&](const MemberReport& r) { return r.delivered.load() >= total; }) && Clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    shared.stop.store(1);
    const std::string exits = processes.reap_all(30s);
    for (std::size_t i = 0; i < members; ++i) {
      const MemberReport& r = shared.members[i];
      EXPECT_EQ(r.has_error.load(), 0) << "member " << i << ": " << r.error;
      EXPECT_EQ(r.delivered.load(), total) << "member " << i;
      EXPECT_EQ(r.out_of_order.load(), 0u) << "member " << i;
      EXPECT_EQ(r.order_digest.load(), shared.members[0].order_digest.load()) << "member " << i;
      EXPECT_EQ(r.last_vid.load(), 1u) << "member " << i << " saw a view change";
    }
    EXPECT_EQ(exits, "");
  }
}

}  // namespace

TEST(GroupSize, TwoToSixteenMemberProcessesDeliverOneOrderOverTcpAndShm) {
  for (TransportKind t : {TransportKind::shm, TransportKind::tcp}) {
    for (std::size_t members : {2u, 4u, 8u, 16u}) run_group(t, members);
  }
}

}  // namespace derecho::testing
