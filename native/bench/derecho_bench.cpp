// Self-contained engine benchmark: forks member processes that run the C++ engine directly
// (no Node), measures delivered messages/s per member, and measures in the same run a raw
// one-way loopback TCP baseline with the same message sizes and batching. Prints JSON.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/log.hpp"
#include "loopback_tcp.hpp"
#include "member/member.hpp"
#include "member_processes.hpp"
#include "shared_results.hpp"
#include "writable_wait.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Options {
  std::string mode = "suite";  // suite | group | latency | tcp-baseline
  std::string transport = "shm";
  std::size_t members = 3;
  std::size_t size = 100;
  double seconds = 3.0;
  std::uint32_t spin_us = 50;
  // Failure detection's timeout; groups of many processes on few cores may want it longer.
  std::uint32_t suspect_after_ms = 1000;
  std::uint16_t base_port = 0;
  std::vector<std::size_t> sizes{100, 1024, 10240};
  std::vector<std::string> transports{"shm", "tcp"};
  std::size_t round_trips = 2000;
};

// Per-member results, written by the child into memory shared with the parent.
struct MemberResult {
  std::atomic<std::uint64_t> sent;
  std::atomic<std::uint64_t> delivered;
  std::atomic<std::uint64_t> window_delivered;
  std::atomic<std::uint64_t> window_bytes;
  std::atomic<std::uint64_t> digest;
  std::atomic<std::uint64_t> sleeps;
  std::atomic<std::uint64_t> nulls;
  std::atomic<std::uint64_t> window_cpu_ns;  // CPU time the member process used in the window
  std::atomic<int> ok;
};

struct Shared {
  std::atomic<std::uint32_t> ready;
  std::atomic<std::uint32_t> done_sending;
  MemberResult members[64];
  double latency_micros[2];  // p50, p99 of member 0's send-to-own-delivery time
};

std::uint64_t mix(std::uint64_t h, std::uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h * 0xff51afd7ed558ccdull;
}

// Digests the order (index, sender, seq, length) and the payload's first bytes: enough to catch
// any divergence in order without making the benchmark a hashing benchmark.
class DigestSink final : public derecho::multicast::DeliverySink {
 public:
  bool ready() override { return true; }
  void deliver(std::span<const derecho::multicast::Delivery> batch) override {
    std::uint64_t h = digest_.load(std::memory_order_relaxed);
    std::uint64_t bytes = 0;
    for (const auto& d : batch) {
      std::uint64_t head = 0;
      if (!d.payload.empty()) std::memcpy(&head, d.payload.data(), std::min<std::size_t>(8, d.payload.size()));
      h = mix(mix(mix(h, d.index), (d.sender_seq << 16) ^ d.sender), head ^ (d.payload.size() << 40));
      bytes += d.payload.size();
    }
    digest_.store(h, std::memory_order_relaxed);
    delivered_.fetch_add(batch.size(), std::memory_order_release);
    delivered_.notify_all();
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  std::atomic<std::uint64_t> digest_{0};
  std::atomic<std::uint64_t> delivered_{0};
  std::atomic<std::uint64_t> bytes_{0};
};

std::uint64_t process_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint16_t pick_base_port() {
  return static_cast<std::uint16_t>(20000 + (getpid() * 7919) % 30000);
}

derecho::GroupConfig make_config(const Options& o, const std::string& name, std::uint16_t base_port) {
  derecho::GroupConfig c;
  c.group_name = name;
  c.transport = o.transport == "tcp" ? derecho::TransportKind::tcp : derecho::TransportKind::shm;
  derecho::SubgroupConfig sg;
  sg.name = "all";
  for (std::size_t i = 0; i < o.members; ++i) {
    c.members.push_back({static_cast<derecho::MemberId>(i), "127.0.0.1", static_cast<std::uint16_t>(base_port + i)});
    sg.members.push_back(static_cast<derecho::MemberId>(i));
    if (o.mode != "latency" || i == 0) sg.senders.push_back(static_cast<derecho::MemberId>(i));
  }
  sg.max_message_bytes = static_cast<std::uint32_t>(std::max<std::size_t>(o.size, 1024));
  sg.ring_bytes = 4u << 20;
  c.subgroups.push_back(sg);
  c.spin = std::chrono::microseconds(o.spin_us);
  c.suspect_after = std::chrono::milliseconds(o.suspect_after_ms);
  return c;
}

void run_member(const Options& o, const derecho::GroupConfig& config, derecho::MemberId self, Shared* shared) {
  MemberResult& r = shared->members[self];
  DigestSink sink;
  derecho::Member member(config, self, sink);
  WritableWait writable(member);
  if (!member.start(10s)) throw std::runtime_error("peers not reachable");
  shared->ready.fetch_add(1);
  while (shared->ready.load() < o.members) std::this_thread::sleep_for(1ms);

  std::vector<std::byte> payload(o.size);
  const auto start = clock_type::now();
  const auto warmup_end = start + std::chrono::duration<double>(o.seconds * 0.2);
  const auto end = start + std::chrono::duration<double>(o.seconds * 1.2);
  std::uint64_t sent = 0, window_start_delivered = 0, window_start_bytes = 0, window_start_cpu = 0;
  bool in_window = false;
  while (true) {
    const auto now = clock_type::now();
    if (!in_window && now >= warmup_end) {
      in_window = true;
      window_start_delivered = sink.delivered_.load();
      window_start_bytes = sink.bytes_.load();
      window_start_cpu = process_cpu_ns();
    }
    if (now >= end) break;
    for (int burst = 0; burst < 256; ++burst) {
      std::memcpy(payload.data(), &sent, std::min<std::size_t>(8, payload.size()));
      if (!member.send(0, payload)) {
        writable.wait();
        break;
      }
      ++sent;
    }
  }
  r.window_delivered = sink.delivered_.load() - window_start_delivered;
  r.window_bytes = sink.bytes_.load() - window_start_bytes;
  r.window_cpu_ns = process_cpu_ns() - window_start_cpu;
  r.sent = sent;
  shared->done_sending.fetch_add(1);
  while (shared->done_sending.load() < o.members) std::this_thread::sleep_for(1ms);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < o.members; ++i) total += shared->members[i].sent.load();
  const auto drain_deadline = clock_type::now() + 30s;
  while (sink.delivered_.load() < total && clock_type::now() < drain_deadline) std::this_thread::sleep_for(1ms);
  const auto stats = member.stats();
  r.delivered = sink.delivered_.load();
  r.digest = sink.digest_.load();
  r.sleeps = stats.sleeps;
  r.nulls = stats.nulls_sent;
  // Keep serving peers until everyone drained, then leave together.
  shared->ready.fetch_add(1);
  while (shared->ready.load() < 2 * o.members) std::this_thread::sleep_for(1ms);
  member.stop();
  r.ok = r.delivered.load() == total ? 1 : 0;
}

std::string run_group(const Options& o) {
  Shared* shared = derecho::bench::shared_anonymous<Shared>();
  const std::string name = "bench-" + std::to_string(getpid()) + "-" + std::to_string(clock_type::now().time_since_epoch().count() % 100000);
  const std::uint16_t base_port = o.base_port ? o.base_port : pick_base_port();
  const auto config = make_config(o, name, base_port);
  const bool children_ok = derecho::bench::run_in_member_processes(o.members, [&](derecho::MemberId id) {
    run_member(o, config, id, shared);
  });
  const double window = o.seconds;
  std::string per_member = "[";
  bool same_digest = true;
  double min_rate = 1e300, sum_rate = 0, sum_mb = 0;
  double cpu_ns = 0, deliveries = 0;
  for (std::size_t i = 0; i < o.members; ++i) {
    const MemberResult& r = shared->members[i];
    const double rate = r.window_delivered.load() / window;
    const double mbs = r.window_bytes.load() / window / 1e6;
    min_rate = std::min(min_rate, rate);
    sum_rate += rate;
    sum_mb += mbs;
    cpu_ns += static_cast<double>(r.window_cpu_ns.load());
    deliveries += static_cast<double>(r.window_delivered.load());
    if (r.digest.load() != shared->members[0].digest.load() || !r.ok.load()) same_digest = false;
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s{\"member\":%zu,\"msgsPerSec\":%.0f,\"MBPerSec\":%.2f,\"sent\":%llu,\"nulls\":%llu,\"sleeps\":%llu}",
                  i ? "," : "", i, rate, mbs, static_cast<unsigned long long>(r.sent.load()),
                  static_cast<unsigned long long>(r.nulls.load()), static_cast<unsigned long long>(r.sleeps.load()));
    per_member += buf;
  }
  per_member += "]";
  char head[640];
  // CPU per delivered message (every member's CPU over every member's deliveries): what a
  // delivery costs as the group grows, whether or not the machine has a core per member.
  std::snprintf(head, sizeof head,
                "{\"transport\":\"%s\",\"members\":%zu,\"messageBytes\":%zu,\"seconds\":%.1f,\"spinMicros\":%u,"
                "\"suspectAfterMillis\":%u,\"msgsPerSecPerMember\":%.0f,\"minMsgsPerSecPerMember\":%.0f,\"MBPerSecPerMember\":%.2f,"
                "\"deliveriesPerSecAllMembers\":%.0f,\"cpuNsPerDelivery\":%.1f,"
                "\"sameOrderEverywhere\":%s,\"perMember\":",
                o.transport.c_str(), o.members, o.size, o.seconds, o.spin_us, o.suspect_after_ms, sum_rate / o.members,
                min_rate, sum_mb / o.members, sum_rate, deliveries > 0 ? cpu_ns / deliveries : 0.0,
                same_digest && children_ok ? "true" : "false");
  munmap(shared, sizeof(Shared));
  return std::string(head) + per_member + "}";
}

// One message at a time from member 0, timed from send() until member 0 delivers it, which
// needs every member to have received it: a full stability round. This is where an idle
// member's wake-up cost shows, so it is where spinning before sleeping has to pay.
void run_latency_member(const Options& o, const derecho::GroupConfig& config, derecho::MemberId self,
                        Shared* shared) {
  DigestSink sink;
  derecho::Member member(config, self, sink);
  if (!member.start(10s)) throw std::runtime_error("peers not reachable");
  shared->ready.fetch_add(1);
  while (shared->ready.load() < o.members) std::this_thread::sleep_for(1ms);
  if (self == 0) {
    std::vector<double> micros;
    const std::vector<std::byte> payload(o.size);
    for (std::size_t i = 0; i < o.round_trips; ++i) {
      const auto t0 = clock_type::now();
      while (!member.send(0, payload)) std::this_thread::yield();
      // Block, as an application thread would; a spinning one would take a core from the members.
      for (auto d = sink.delivered_.load(); d <= i; d = sink.delivered_.load()) sink.delivered_.wait(d);
      micros.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
    }
    std::sort(micros.begin(), micros.end());
    shared->latency_micros[0] = micros[micros.size() / 2];
    shared->latency_micros[1] = micros[micros.size() * 99 / 100];
    shared->done_sending.store(1);
  }
  while (shared->done_sending.load() == 0) std::this_thread::sleep_for(1ms);
  member.stop();
}

std::string run_latency(const Options& o) {
  Shared* shared = derecho::bench::shared_anonymous<Shared>();
  const std::string name = "lat-" + std::to_string(getpid()) + "-" + std::to_string(clock_type::now().time_since_epoch().count() % 100000);
  const auto config = make_config(o, name, o.base_port ? o.base_port : pick_base_port());
  if (!derecho::bench::run_in_member_processes(o.members, [&](derecho::MemberId id) { run_latency_member(o, config, id, shared); })) {
    throw std::runtime_error("a latency member failed");
  }
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "{\"transport\":\"%s\",\"members\":%zu,\"messageBytes\":%zu,\"spinMicros\":%u,\"roundTrips\":%zu,"
                "\"p50Micros\":%.1f,\"p99Micros\":%.1f}",
                o.transport.c_str(), o.members, o.size, o.spin_us, o.round_trips, shared->latency_micros[0],
                shared->latency_micros[1]);
  munmap(shared, sizeof(Shared));
  return buf;
}

// Raw one-way loopback TCP: one process writes [u32 length][payload] records in the same
// 64 KiB batches the engine coalesces into, the other reads and walks every record.
std::string run_tcp_baseline(const Options& o) {
  auto* result = derecho::bench::shared_anonymous<std::atomic<std::uint64_t>>();
  derecho::bench::LoopbackTcp link([&](int s) {
    std::vector<char> buf(1 << 20);
    std::size_t have = 0;
    std::uint64_t count = 0;
    while (true) {
      const ssize_t n = read(s, buf.data() + have, buf.size() - have);
      if (n <= 0) break;
      have += static_cast<std::size_t>(n);
      std::size_t at = 0;
      while (have - at >= 4) {
        std::uint32_t l;
        std::memcpy(&l, buf.data() + at, 4);
        if (have - at - 4 < l) break;
        at += 4 + l;
        ++count;
      }
      std::memmove(buf.data(), buf.data() + at, have - at);
      have -= at;
    }
    result->store(count);
  });
  const int one = 1;
  setsockopt(link.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::vector<char> batch;
  const std::size_t per_batch = std::max<std::size_t>(1, (64u << 10) / (o.size + 4));
  for (std::size_t i = 0; i < per_batch; ++i) {
    const auto l = static_cast<std::uint32_t>(o.size);
    batch.insert(batch.end(), reinterpret_cast<const char*>(&l), reinterpret_cast<const char*>(&l) + 4);
    batch.insert(batch.end(), o.size, 'x');
  }
  const auto start = clock_type::now();
  const auto end = start + std::chrono::duration<double>(o.seconds);
  while (clock_type::now() < end) derecho::bench::write_all(link.fd(), batch.data(), batch.size());
  link.finish();
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  const double rate = result->load() / elapsed;
  munmap(result, sizeof *result);
  char buf[256];
  std::snprintf(buf, sizeof buf, "{\"messageBytes\":%zu,\"msgsPerSec\":%.0f,\"MBPerSec\":%.2f}", o.size, rate,
                rate * o.size / 1e6);
  return buf;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--mode") o.mode = next();
    else if (a == "--transport") o.transport = next();
    else if (a == "--members") o.members = std::stoul(next());
    else if (a == "--size") o.size = std::stoul(next());
    else if (a == "--seconds") o.seconds = std::stod(next());
    else if (a == "--spin-us") o.spin_us = static_cast<std::uint32_t>(std::stoul(next()));
    else if (a == "--base-port") o.base_port = static_cast<std::uint16_t>(std::stoul(next()));
    else if (a == "--suspect-after-ms") o.suspect_after_ms = static_cast<std::uint32_t>(std::stoul(next()));
    else throw std::invalid_argument("unknown option " + a);
  }
  if (o.members < 1 || o.members > 64) throw std::invalid_argument("--members must be 1..64");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    derecho::set_log_level(derecho::LogLevel::warn);
    Options o = parse(argc, argv);
    if (o.mode == "group") {
      std::printf("%s\n", run_group(o).c_str());
      return 0;
    }
    if (o.mode == "latency") {
      std::printf("%s\n", run_latency(o).c_str());
      return 0;
    }
    if (o.mode == "tcp-baseline") {
      std::printf("%s\n", run_tcp_baseline(o).c_str());
      return 0;
    }
    std::string out = "{\"machine\":{\"cpus\":" + std::to_string(std::thread::hardware_concurrency()) + "},\"runs\":[";
    bool first = true;
    for (std::size_t size : o.sizes) {
      Options b = o;
      b.size = size;
      const std::string baseline = run_tcp_baseline(b);
      const double base_rate = derecho::bench::field(baseline, "msgsPerSec");
      for (const auto& t : o.transports) {
        b.transport = t;
        const std::string group = run_group(b);
        char ratio[128];
        std::snprintf(ratio, sizeof ratio, ",\"ratioToTcpBaseline\":%.3f}", derecho::bench::field(group, "msgsPerSecPerMember") / base_rate);
        out += (first ? "" : ",") + std::string("{\"group\":") + group + ",\"tcpBaseline\":" + baseline + ratio;
        first = false;
        std::fprintf(stderr, "%s %zu B: %.0f msgs/s per member (baseline %.0f)\n", t.c_str(), size,
                     derecho::bench::field(group, "msgsPerSecPerMember"), base_rate);
      }
    }
    out += "],\"spinThenSleep\":[";
    // Does spinning briefly before sleeping pay? The same 100 B run with spin 0 (sleep at once).
    first = true;
    for (const auto& t : o.transports) {
      Options b = o;
      b.size = 100;
      b.transport = t;
      const double with_spin = derecho::bench::field(run_group(b), "msgsPerSecPerMember");
      Options l = b;
      l.mode = "latency";
      const std::string latency_spin = run_latency(l);
      b.spin_us = 0;
      l.spin_us = 0;
      const double without = derecho::bench::field(run_group(b), "msgsPerSecPerMember");
      const std::string latency_sleep = run_latency(l);
      char buf[512];
      std::snprintf(buf, sizeof buf,
                    "%s{\"transport\":\"%s\",\"messageBytes\":100,\"spinMicros\":%u,\"msgsPerSecWithSpin\":%.0f,"
                    "\"msgsPerSecSleepAtOnce\":%.0f,\"throughputRatio\":%.3f,\"latencyWithSpin\":%s,"
                    "\"latencySleepAtOnce\":%s,\"p50LatencyRatio\":%.3f}",
                    first ? "" : ",", t.c_str(), o.spin_us, with_spin, without, with_spin / without,
                    latency_spin.c_str(), latency_sleep.c_str(),
                    derecho::bench::field(latency_spin, "p50Micros") / derecho::bench::field(latency_sleep, "p50Micros"));
      out += buf;
      first = false;
      std::fprintf(stderr, "%s 100 B: spin %u us %.0f msgs/s, p50 %.1f us; sleep at once %.0f msgs/s, p50 %.1f us\n",
                   t.c_str(), o.spin_us, with_spin, derecho::bench::field(latency_spin, "p50Micros"), without,
                   derecho::bench::field(latency_sleep, "p50Micros"));
    }
    out += "]}";
    std::printf("%s\n", out.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "derecho_bench: %s\n", e.what());
    return 2;
  }
}
