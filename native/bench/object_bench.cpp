// Large objects through the block relay (docs/protocol-rdmc.md): member 0 of a group of forked
// member processes multicasts objects of one size back to back, and every other member reports
// the GB/s at which whole objects arrive, beside two baselines measured in the same run with the
// same size: memcpy of the object in one process, and the object sent one way over loopback TCP.
// Prints JSON. Needs no Node, so it can be carried to a bigger machine.
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
#include <cstdio>
#include <cstring>
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

constexpr std::size_t kMiB = 1u << 20;

struct Options {
  std::string mode = "suite";  // suite | object | baseline
  // in-place: the sender writes each object straight into its area (send_object), as an app
  // producing the data there does; copy: it passes a buffer that is copied in (send).
  std::string fill = "in-place";
  std::string transport = "shm";
  std::size_t members = 3;
  std::size_t object_bytes = 16 * kMiB;
  std::uint32_t block_bytes = 1u << 20;
  double seconds = 3.0;
  std::vector<std::size_t> sizes{1 * kMiB, 16 * kMiB, 100 * kMiB};
  std::vector<std::size_t> member_counts{2, 3, 5};
  std::vector<std::string> transports{"shm", "tcp"};
};

constexpr std::size_t kMaxDeliveries = 1u << 14;

// What one member process reports, in memory shared with the parent.
struct MemberResult {
  std::atomic<std::uint64_t> objects;
  std::atomic<std::uint64_t> bad;  // objects whose head or tail did not name the expected object
  std::atomic<std::int64_t> delivered_at_ns[kMaxDeliveries];  // steady clock, per delivery
};

struct Shared {
  std::atomic<std::uint32_t> ready;
  std::atomic<std::uint32_t> done;
  std::atomic<std::uint64_t> sent;
  MemberResult members[64];
};

std::int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count(); }

// Object n carries n at the start of every block and in its last 8 bytes: a receiver checks all
// of them, so a block that is missing, stale or out of place shows, without making this a
// hashing benchmark.
void stamp(std::span<std::byte> object, std::uint64_t n, std::size_t block_bytes) {
  for (std::size_t at = 0; at < object.size(); at += block_bytes) std::memcpy(object.data() + at, &n, 8);
  std::memcpy(object.data() + object.size() - 8, &n, 8);
}

bool stamped(std::span<const std::byte> object, std::uint64_t n, std::size_t block_bytes) {
  std::uint64_t v = 0;
  for (std::size_t at = 0; at < object.size(); at += block_bytes) {
    std::memcpy(&v, object.data() + at, 8);
    if (v != n) return false;
  }
  std::memcpy(&v, object.data() + object.size() - 8, 8);
  return v == n;
}

class ObjectSink final : public derecho::multicast::DeliverySink {
 public:
  ObjectSink(MemberResult& r, std::size_t block_bytes) : r_(r), block_bytes_(block_bytes) {}
  bool ready() override { return true; }
  void deliver(std::span<const derecho::multicast::Delivery> batch) override {
    for (const auto& d : batch) {
      const std::uint64_t n = r_.objects.load(std::memory_order_relaxed);
      if (!stamped(d.payload, n, block_bytes_)) r_.bad.fetch_add(1, std::memory_order_relaxed);
      if (n < kMaxDeliveries) r_.delivered_at_ns[n].store(now_ns(), std::memory_order_relaxed);
      r_.objects.store(n + 1, std::memory_order_release);
    }
  }

 private:
  MemberResult& r_;
  std::size_t block_bytes_;
};

derecho::GroupConfig make_config(const Options& o, const std::string& name, std::uint16_t base_port) {
  derecho::GroupConfig c;
  c.group_name = name;
  c.transport = o.transport == "tcp" ? derecho::TransportKind::tcp : derecho::TransportKind::shm;
  derecho::SubgroupConfig sg;
  sg.name = "objects";
  for (std::size_t i = 0; i < o.members; ++i) {
    c.members.push_back({static_cast<derecho::MemberId>(i), "127.0.0.1", static_cast<std::uint16_t>(base_port + i)});
    sg.members.push_back(static_cast<derecho::MemberId>(i));
  }
  sg.senders = {0};
  sg.max_message_bytes = 1024;
  sg.ring_bytes = 1u << 16;
  sg.large_objects = derecho::LargeObjectConfig{1024, o.object_bytes, o.block_bytes};
  c.subgroups.push_back(sg);
  return c;
}

void run_member(const Options& o, const derecho::GroupConfig& config, derecho::MemberId self, Shared* shared) {
  ObjectSink sink(shared->members[self], o.block_bytes);
  derecho::Member member(config, self, sink);
  WritableWait writable(member);
  if (!member.start(20s)) throw std::runtime_error("peers not reachable");
  shared->ready.fetch_add(1);
  while (shared->ready.load() < o.members) std::this_thread::sleep_for(1ms);
  if (self == 0) {
    std::vector<std::byte> object(o.object_bytes, std::byte{0x5a});
    const auto end = clock_type::now() + std::chrono::duration<double>(o.seconds * 1.25);
    std::uint64_t sent = 0;
    while (clock_type::now() < end && sent < kMaxDeliveries) {
      bool accepted = false;
      if (o.fill == "copy") {
        stamp(object, sent, o.block_bytes);
        accepted = member.send(0, object);
      } else {
        // In place only the stamps change from one object to the next; the area keeps the rest.
        accepted = member.send_object(0, o.object_bytes, [&](std::span<std::byte> area) { stamp(area, sent, o.block_bytes); });
      }
      if (accepted) {
        ++sent;
      } else {
        writable.wait();
      }
    }
    shared->sent.store(sent);
  }
  while (shared->sent.load() == 0) std::this_thread::sleep_for(1ms);
  const auto deadline = clock_type::now() + 60s;
  while (shared->members[self].objects.load() < shared->sent.load() && clock_type::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  // Serve the others until all have everything, then stop together.
  shared->done.fetch_add(1);
  while (shared->done.load() < o.members) std::this_thread::sleep_for(1ms);
  member.stop();
}

struct Throughput {
  double gb_per_sec = 0;
  std::uint64_t objects = 0;
};

// Whole objects per second at a receiver, from the deliveries after the first fifth of the run
// (warm-up: the first touch of every page of the area), between its first and last delivery.
Throughput receiver_rate(const MemberResult& r, std::size_t object_bytes, std::int64_t from_ns) {
  const std::uint64_t n = std::min<std::uint64_t>(r.objects.load(), kMaxDeliveries);
  std::uint64_t first = 0;
  while (first < n && r.delivered_at_ns[first].load() < from_ns) ++first;
  if (first > 0 && n - first < 3) first = n >= 3 ? n - 3 : 0;  // too few after warm-up: take the last ones
  if (n - first < 2) return {0, n};
  const double seconds = static_cast<double>(r.delivered_at_ns[n - 1].load() - r.delivered_at_ns[first].load()) / 1e9;
  return {static_cast<double>(n - 1 - first) * static_cast<double>(object_bytes) / seconds / 1e9, n};
}

std::string run_objects(const Options& o) {
  auto* shared = derecho::bench::shared_anonymous<Shared>();
  const std::string name = "objects-" + std::to_string(getpid()) + "-" + std::to_string(now_ns() % 100000);
  const auto base_port = static_cast<std::uint16_t>(20000 + (getpid() * 7919 + now_ns() / 1000) % 30000);
  const auto config = make_config(o, name, base_port);
  const std::int64_t start = now_ns();
  const bool children_ok =
      derecho::bench::run_in_member_processes(o.members, [&](derecho::MemberId id) { run_member(o, config, id, shared); });
  const std::int64_t warm = start + static_cast<std::int64_t>(o.seconds * 0.25e9);
  double sum = 0, min = 1e300;
  std::uint64_t bad = 0;
  bool complete = children_ok;
  std::string per = "[";
  for (std::size_t i = 1; i < o.members; ++i) {
    const MemberResult& r = shared->members[i];
    const Throughput t = receiver_rate(r, o.object_bytes, warm);
    sum += t.gb_per_sec;
    min = std::min(min, t.gb_per_sec);
    bad += r.bad.load();
    complete &= r.objects.load() == shared->sent.load();
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s{\"member\":%zu,\"GBPerSec\":%.3f,\"objects\":%llu}", i > 1 ? "," : "", i,
                  t.gb_per_sec, static_cast<unsigned long long>(t.objects));
    per += buf;
  }
  per += "]";
  const std::size_t receivers = o.members - 1;
  char head[512];
  std::snprintf(head, sizeof head,
                "{\"transport\":\"%s\",\"members\":%zu,\"objectBytes\":%zu,\"blockBytes\":%u,\"fill\":\"%s\",\"seconds\":%.1f,"
                "\"objectsSent\":%llu,\"GBPerSecPerReceiver\":%.3f,\"minGBPerSecPerReceiver\":%.3f,"
                "\"everyBlockInPlace\":%s,\"perReceiver\":",
                o.transport.c_str(), o.members, o.object_bytes, o.block_bytes, o.fill.c_str(), o.seconds,
                static_cast<unsigned long long>(shared->sent.load()), receivers ? sum / receivers : 0.0,
                receivers ? min : 0.0, complete && bad == 0 ? "true" : "false");
  munmap(shared, sizeof(Shared));
  return std::string(head) + per + "}";
}

// memcpy of one object into another buffer, both touched first, for at least a second.
double memcpy_gb_per_sec(std::size_t bytes) {
  std::vector<std::byte> from(bytes, std::byte{1}), to(bytes, std::byte{0});
  std::uint64_t copies = 0;
  const auto start = clock_type::now();
  do {
    std::memcpy(to.data(), from.data(), bytes);
    from[copies % bytes] = to[(copies * 7) % bytes];  // keep the copies from being optimised away
    ++copies;
  } while (clock_type::now() - start < 1s || copies < 3);
  const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  return static_cast<double>(copies) * static_cast<double>(bytes) / seconds / 1e9;
}

// One object after another, one way over loopback TCP, received into one object-sized buffer.
double tcp_gb_per_sec(std::size_t bytes, double seconds) {
  auto* rate = derecho::bench::shared_anonymous<std::atomic<double>>();
  derecho::bench::LoopbackTcp link([&](int s) {
    std::vector<char> object(bytes);
    std::uint64_t objects = 0;
    std::int64_t first_ns = 0, last_ns = 0;
    for (;;) {
      std::size_t have = 0;
      while (have < bytes) {
        const ssize_t n = read(s, object.data() + have, bytes - have);
        if (n <= 0) break;
        have += static_cast<std::size_t>(n);
      }
      if (have < bytes) break;
      last_ns = now_ns();
      if (objects++ == 0) first_ns = last_ns;
    }
    rate->store(objects > 1 ? static_cast<double>(objects - 1) * static_cast<double>(bytes) /
                                  (static_cast<double>(last_ns - first_ns) / 1e9) / 1e9
                            : 0.0);
  });
  std::vector<char> object(bytes, 'x');
  const auto end = clock_type::now() + std::chrono::duration<double>(seconds);
  std::uint64_t sent = 0;
  while (clock_type::now() < end || sent < 3) {
    derecho::bench::write_all(link.fd(), object.data(), bytes);
    ++sent;
  }
  link.finish();
  const double result = rate->load();
  munmap(rate, sizeof *rate);
  return result;
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
    else if (a == "--object-bytes") o.object_bytes = std::stoul(next());
    else if (a == "--block-bytes") o.block_bytes = static_cast<std::uint32_t>(std::stoul(next()));
    else if (a == "--seconds") o.seconds = std::stod(next());
    else if (a == "--fill") o.fill = next();
    else throw std::invalid_argument("unknown option " + a);
  }
  if (o.members < 2 || o.members > 64) throw std::invalid_argument("--members must be 2..64");
  if (o.object_bytes < 2048) throw std::invalid_argument("--object-bytes must be at least 2048");
  if (o.fill != "in-place" && o.fill != "copy") throw std::invalid_argument("--fill must be in-place or copy");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    derecho::set_log_level(derecho::LogLevel::warn);
    const Options o = parse(argc, argv);
    if (o.mode == "object") {
      std::printf("%s\n", run_objects(o).c_str());
      return 0;
    }
    if (o.mode == "baseline") {
      std::printf("{\"objectBytes\":%zu,\"memcpyGBPerSec\":%.3f,\"tcpGBPerSec\":%.3f}\n", o.object_bytes,
                  memcpy_gb_per_sec(o.object_bytes), tcp_gb_per_sec(o.object_bytes, o.seconds));
      return 0;
    }
    if (o.mode != "suite") throw std::invalid_argument("--mode must be suite, object or baseline");
    std::string out = "{\"machine\":{\"cpus\":" + std::to_string(std::thread::hardware_concurrency()) + "},\"runs\":[";
    bool first = true;
    for (std::size_t size : o.sizes) {
      const double memcpy_rate = memcpy_gb_per_sec(size);
      const double tcp_rate = tcp_gb_per_sec(size, 1.0);
      for (const auto& transport : o.transports) {
        for (std::size_t members : o.member_counts) {
          Options r = o;
          r.transport = transport;
          r.members = members;
          r.object_bytes = size;
          const std::string run = run_objects(r);
          const double rate = derecho::bench::field(run, "GBPerSecPerReceiver");
          char tail[256];
          std::snprintf(tail, sizeof tail,
                        ",\"memcpyGBPerSec\":%.3f,\"tcpGBPerSec\":%.3f,\"ratioToMemcpy\":%.3f,\"ratioToTcp\":%.3f}",
                        memcpy_rate, tcp_rate, rate / memcpy_rate, rate / tcp_rate);
          out += (first ? "{\"run\":" : ",{\"run\":") + run + tail;
          first = false;
          std::fprintf(stderr, "%s %zu members, %zu MiB objects: %.2f GB/s per receiver (memcpy %.2f, tcp %.2f)\n",
                       transport.c_str(), members, size / kMiB, rate, memcpy_rate, tcp_rate);
        }
      }
    }
    out += "]}";
    std::printf("%s\n", out.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "derecho_object_bench: %s\n", e.what());
    return 2;
  }
}
