// How long a group stays without a view after a member dies, and what it delivers before and
// after: forks member processes that run the C++ engine directly, all sending 100 B messages,
// SIGKILLs the last one, and measures from the kill until every survivor installed the next
// view (the clock is CLOCK_MONOTONIC, shared by the processes), and each survivor's delivered
// messages/s in a window before the kill and in one after the new view. Prints JSON.
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/log.hpp"
#include "member/member.hpp"
#include "writable_wait.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Options {
  std::string transport = "tcp";
  std::size_t members = 3;
  double window_seconds = 1.0;
  std::uint32_t suspect_after_ms = 1000;
  std::uint16_t base_port = 0;
};

// Phases the parent announces; each child samples its delivered count when it sees one.
enum Phase : std::uint32_t { kWarmup, kBeforeStart, kBeforeEnd, kKilled, kAfterStart, kAfterEnd, kStop };

struct Child {
  std::atomic<std::uint64_t> delivered_at[kStop + 1];
  std::atomic<std::int64_t> sampled_ns[kStop + 1];
  std::atomic<std::int64_t> new_view_ns;
  std::atomic<std::uint64_t> new_view_size;
  std::atomic<std::uint64_t> resent;
};

struct Shared {
  std::atomic<std::uint32_t> ready;
  std::atomic<std::uint32_t> phase;
  Child children[64];
};

std::int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count(); }

class CountingSink final : public derecho::multicast::DeliverySink {
 public:
  bool ready() override { return true; }
  void deliver(std::span<const derecho::multicast::Delivery> batch) override {
    delivered.fetch_add(batch.size(), std::memory_order_relaxed);
  }
  std::atomic<std::uint64_t> delivered{0};
};

derecho::GroupConfig make_config(const Options& o, std::uint16_t base_port) {
  derecho::GroupConfig c;
  c.group_name = "viewchange-" + std::to_string(getpid());
  c.transport = o.transport == "tcp" ? derecho::TransportKind::tcp : derecho::TransportKind::shm;
  derecho::SubgroupConfig sg;
  sg.name = "all";
  for (std::size_t i = 0; i < o.members; ++i) {
    const auto id = static_cast<derecho::MemberId>(i);
    c.members.push_back({id, "127.0.0.1", static_cast<std::uint16_t>(base_port + i)});
    sg.members.push_back(id);
    sg.senders.push_back(id);
  }
  sg.ring_bytes = 1u << 20;
  sg.max_message_bytes = 1024;
  c.subgroups.push_back(sg);
  c.suspect_after = std::chrono::milliseconds(o.suspect_after_ms);
  return c;
}

void run_child(const derecho::GroupConfig& config, derecho::MemberId self, Shared* shared) {
  Child& me = shared->children[self];
  CountingSink sink;
  derecho::Member member(config, self, sink);
  WritableWait writable(member);
  member.on_view([&](const derecho::membership::View& v) {
    if (v.vid > 1 && me.new_view_ns.load() == 0) {
      me.new_view_ns = now_ns();
      me.new_view_size = v.members.size();
    }
  });
  if (!member.start(20s)) throw std::runtime_error("the group did not form");
  shared->ready.fetch_add(1);
  std::vector<std::byte> payload(100);
  std::uint64_t sent = 0;
  std::uint32_t seen = kWarmup;
  while (true) {
    const std::uint32_t phase = shared->phase.load();
    while (seen < phase) {
      ++seen;
      me.delivered_at[seen] = sink.delivered.load();
      me.sampled_ns[seen] = now_ns();
    }
    if (phase == kStop) break;
    for (int burst = 0; burst < 256; ++burst) {
      std::memcpy(payload.data(), &sent, sizeof sent);
      if (!member.send(0, payload)) {
        writable.wait();
        break;
      }
      ++sent;
    }
  }
  me.resent = member.stats().resent;
  member.stop();
}

std::string run(const Options& o) {
  void* mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw std::runtime_error("mmap failed");
  auto* shared = new (mem) Shared{};
  const std::uint16_t base_port =
      o.base_port ? o.base_port : static_cast<std::uint16_t>(20000 + (getpid() * 7919) % 30000);
  const auto config = make_config(o, base_port);
  std::vector<pid_t> pids;
  for (std::size_t i = 0; i < o.members; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      try {
        run_child(config, static_cast<derecho::MemberId>(i), shared);
        _exit(0);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "member %zu failed: %s\n", i, e.what());
        _exit(1);
      }
    }
    pids.push_back(pid);
  }
  const auto wait_until = [&](auto done, std::chrono::seconds limit, const char* what) {
    const auto deadline = clock_type::now() + limit;
    while (!done()) {
      if (clock_type::now() > deadline) throw std::runtime_error(what);
      std::this_thread::sleep_for(1ms);
    }
  };
  const std::size_t survivors = o.members - 1;
  const auto window = std::chrono::duration<double>(o.window_seconds);
  wait_until([&] { return shared->ready.load() == o.members; }, 30s, "the group did not form");
  std::this_thread::sleep_for(window * 0.3);
  shared->phase = kBeforeStart;
  std::this_thread::sleep_for(window);
  shared->phase = kBeforeEnd;
  const std::int64_t killed_ns = now_ns();
  kill(pids.back(), SIGKILL);
  shared->phase = kKilled;
  wait_until(
      [&] {
        for (std::size_t i = 0; i < survivors; ++i) {
          if (shared->children[i].new_view_ns.load() == 0) return false;
        }
        return true;
      },
      30s, "the survivors did not install a new view");
  std::this_thread::sleep_for(window * 0.3);
  shared->phase = kAfterStart;
  std::this_thread::sleep_for(window);
  shared->phase = kAfterEnd;
  shared->phase = kStop;
  bool ok = true;
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (pid != pids.back() && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) ok = false;
  }
  const auto rate = [&](const Child& c, Phase from, Phase to) {
    const double seconds = (c.sampled_ns[to].load() - c.sampled_ns[from].load()) / 1e9;
    return (c.delivered_at[to].load() - c.delivered_at[from].load()) / seconds;
  };
  double worst_ms = 0, before = 0, after = 0;
  std::uint64_t resent = 0;
  std::string per = "[";
  for (std::size_t i = 0; i < survivors; ++i) {
    const Child& c = shared->children[i];
    const double ms = (c.new_view_ns.load() - killed_ns) / 1e6;
    worst_ms = std::max(worst_ms, ms);
    const double b = rate(c, kBeforeStart, kBeforeEnd), a = rate(c, kAfterStart, kAfterEnd);
    before += b / survivors;
    after += a / survivors;
    resent += c.resent.load();
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s{\"member\":%zu,\"killToViewMs\":%.1f,\"viewSize\":%llu,\"msgsPerSecBefore\":%.0f,\"msgsPerSecAfter\":%.0f}",
                  i ? "," : "", i, ms, static_cast<unsigned long long>(c.new_view_size.load()), b, a);
    per += buf;
  }
  per += "]";
  char head[512];
  std::snprintf(head, sizeof head,
                "{\"transport\":\"%s\",\"members\":%zu,\"messageBytes\":100,\"suspectAfterMillis\":%u,"
                "\"killToViewMs\":%.1f,\"msgsPerSecPerMemberBefore\":%.0f,\"msgsPerSecPerMemberAfter\":%.0f,"
                "\"afterToBeforeRatio\":%.3f,\"resent\":%llu,\"survivorsExitedCleanly\":%s,\"perSurvivor\":",
                o.transport.c_str(), o.members, o.suspect_after_ms, worst_ms, before, after, after / before,
                static_cast<unsigned long long>(resent), ok ? "true" : "false");
  munmap(mem, sizeof(Shared));
  return std::string(head) + per + "}";
}

}  // namespace

int main(int argc, char** argv) {
  try {
    derecho::set_log_level(derecho::LogLevel::warn);
    Options o;
    std::vector<std::string> transports{"tcp", "shm"};
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      const auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return argv[++i];
      };
      if (a == "--transport") transports = {next()};
      else if (a == "--members") o.members = std::stoul(next());
      else if (a == "--seconds") o.window_seconds = std::stod(next());
      else if (a == "--suspect-after-ms") o.suspect_after_ms = static_cast<std::uint32_t>(std::stoul(next()));
      else if (a == "--base-port") o.base_port = static_cast<std::uint16_t>(std::stoul(next()));
      else throw std::invalid_argument("unknown option " + a);
    }
    if (o.members < 3 || o.members > 40) throw std::invalid_argument("--members must be 3..40 (a majority must survive)");
    std::string out = "{\"viewChange\":[";
    for (std::size_t t = 0; t < transports.size(); ++t) {
      o.transport = transports[t];
      const std::string r = run(o);
      out += (t ? "," : "") + r;
      std::fprintf(stderr, "%s\n", r.c_str());
    }
    std::printf("%s]}\n", out.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "derecho_view_change_bench: %s\n", e.what());
    return 2;
  }
}
