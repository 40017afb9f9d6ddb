// What a replicated persistent store costs over the least a program can do on the same file
// system (docs/store.md). Forks member processes that run the C++ engine with one store
// subgroup; every member puts as fast as it can with a bounded number of puts in flight. Over
// the steady part of the run it measures the versions delivered per second at each member
// (every put of the group), how fast the globally persisted frontier advances, and the latency
// of put -> own delivery and put -> durable at every member. The same workload runs on a
// volatile store, so the cost of persistence shows. In the same run, a single process appends
// records of the store's log record size to one pmem_map_file'd file in the same directory and
// flushes each batch (pmem_persist on DAX, pmem_msync elsewhere), at batch 1 and at the batch
// the store achieved. Prints one JSON object on stdout.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/log.hpp"
#include "member/member.hpp"
#include "member_processes.hpp"
#include "shared_results.hpp"
#include "persistence/pmem_mapping.hpp"
#include "raw_append.hpp"
#include "store/store_ops.hpp"

namespace {

namespace fs = std::filesystem;
namespace dp = derecho::persistence;
namespace ds = derecho::store;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t kMaxMembers = 16;
constexpr std::size_t kBaselineFileBytes = 64u << 20;
constexpr std::size_t kLogRecordHeaderBytes = 32;  // docs/log-format.md, "Record"

struct Options {
  std::string transport = "shm";
  std::size_t members = 3;
  std::size_t size = 100;  // value bytes
  double seconds = 3.0;    // the measured window; the run adds a fifth of it as warm-up
  fs::path dir = "/tmp";   // a fresh directory is made under it and removed after
  std::size_t in_flight = 256;
  std::size_t keys = 1000;            // per member
  std::size_t persist_sample = 16;    // versions divisible by this are timed to global persistence
  double baseline_seconds = 1.0;
  std::string flush = "auto";  // auto | persist | msync, for the store and the baseline alike
  bool volatile_run = true;
  std::uint64_t window = derecho::StoreConfig{}.window;  // the volatile store's
  std::uint16_t base_port = 0;
};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count();
}

dp::FlushMode flush_mode(const std::string& name) {
  if (name == "auto") return dp::FlushMode::automatic;
  if (name == "persist") return dp::FlushMode::persist;
  if (name == "msync") return dp::FlushMode::msync;
  throw std::invalid_argument("--flush must be auto, persist or msync, found '" + name + "'");
}


// Per-member results, written by the child into memory shared with the parent.
struct MemberResult {
  std::atomic<std::uint64_t> puts;  // issued by this member over the whole run
  std::uint64_t window_delivered;
  std::uint64_t window_global;
  std::uint64_t window_batches;
  double window_seconds;
  double deliver_p50, deliver_p99, persist_p50, persist_p99;  // microseconds
  std::uint64_t deliver_samples, persist_samples;
  std::uint64_t final_delivered;
  std::uint64_t state_digest;
  std::uint64_t sleeps;
  std::uint64_t delivery_batches;  // over the whole run
  std::atomic<int> ok;
};

struct Shared {
  std::atomic<std::uint32_t> abort;  // a member failed: the others stop waiting for it
  std::atomic<std::uint32_t> ready;
  std::atomic<std::uint32_t> done_putting;
  std::atomic<std::uint32_t> checked;
  MemberResult members[kMaxMembers];
};

// Waits, sleeping, until `counter` reaches `target` (the processes share no condition
// variable); throws when a member failed or after a minute.
void barrier(const Shared* shared, const std::atomic<std::uint32_t>& counter, std::uint32_t target) {
  const auto deadline = clock_type::now() + 60s;
  while (counter.load() < target) {
    if (shared->abort.load()) throw std::runtime_error("another member failed");
    if (clock_type::now() > deadline) throw std::runtime_error("the other members did not arrive within a minute");
    std::this_thread::sleep_for(1ms);
  }
}

std::uint64_t mix(std::uint64_t h, std::uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h * 0xff51afd7ed558ccdull;
}

std::string key_name(derecho::MemberId member, std::size_t k) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "m%u-%06zu", static_cast<unsigned>(member), k);
  return buf;
}

// The store subgroup is the only one; nothing else is delivered here.
class NoSink final : public derecho::multicast::DeliverySink {
 public:
  bool ready() override { return true; }
  void deliver(std::span<const derecho::multicast::Delivery>) override {
    throw std::logic_error("a delivery outside the store subgroup");
  }
};

derecho::GroupConfig make_config(const Options& o, derecho::StorageKind storage, const std::string& name,
                                 std::uint16_t base_port) {
  derecho::GroupConfig c;
  c.group_name = name;
  c.transport = o.transport == "tcp" ? derecho::TransportKind::tcp : derecho::TransportKind::shm;
  derecho::SubgroupConfig sg;
  sg.name = "kv";
  for (std::size_t i = 0; i < o.members; ++i) {
    const auto id = static_cast<derecho::MemberId>(i);
    c.members.push_back({id, "127.0.0.1", static_cast<std::uint16_t>(base_port + i)});
    sg.members.push_back(id);
    sg.senders.push_back(id);
  }
  derecho::StoreConfig store;
  store.storage = storage;
  store.window = o.window;
  store.max_key_bytes = 32;
  store.max_value_bytes = static_cast<std::uint32_t>(o.size);
  // A put is the operation header, the key and the value (docs/store.md, "Operations").
  sg.max_message_bytes = static_cast<std::uint32_t>(
      std::max<std::size_t>(ds::kOpHeaderBytes + store.max_key_bytes + store.max_value_bytes, 1024));
  sg.ring_bytes = 4u << 20;
  sg.store = store;
  c.subgroups.push_back(sg);
  return c;
}

std::pair<double, double> p50_p99(std::vector<float>& micros) {
  if (micros.empty()) return {0, 0};
  std::sort(micros.begin(), micros.end());
  return {micros[micros.size() / 2], micros[std::min(micros.size() - 1, micros.size() * 99 / 100)]};
}

// One member's putting thread and the completions the engine thread runs for it. The putter
// keeps at most `bound` puts in flight; at the bound it sleeps on the condition variable until
// completions bring the count down to half of it.
class Putter {
 public:
  Putter(ds::VersionedStore& store, std::size_t bound, std::size_t persist_sample)
      : store_(store), bound_(bound), low_water_(bound / 2), persist_sample_(persist_sample) {}

  void set_window(std::int64_t begin_ns, std::int64_t end_ns) {
    window_begin_ns_ = begin_ns;
    window_end_ns_ = end_ns;
  }
  bool below_bound() const { return in_flight_.load(std::memory_order_acquire) < bound_; }

  // False when the store refused the put for now (busy): the caller waits and tries again.
  bool put(std::string_view key, std::span<const std::byte> value) {
    in_flight_.fetch_add(1, std::memory_order_acq_rel);
    try {
      const std::int64_t t0 = now_ns();
      store_.put(key, value, 0, [this, t0](const ds::StoreError* error, const ds::Stamp& stamp) {
        delivered(error, stamp, t0);
      });
      return true;
    } catch (const ds::StoreError& e) {
      completed();
      if (e.code() == ds::ErrorCode::busy) return false;
      throw;
    }
  }

  // Sleeps until the puts in flight fell to the low-water mark, or until `deadline`.
  void wait_for_room(clock_type::time_point deadline) {
    std::unique_lock lock(mutex_);
    waiting_ = true;
    room_.wait_until(lock, deadline, [&] { return in_flight_.load(std::memory_order_acquire) <= low_water_; });
    waiting_ = false;
  }

  bool drained() const { return in_flight_.load() == 0 && persist_waits_.load() == 0; }

  // After drained(): the latency percentiles of puts issued in the window.
  void results(MemberResult& r) {
    std::lock_guard lock(samples_mutex_);
    std::tie(r.deliver_p50, r.deliver_p99) = p50_p99(deliver_micros_);
    std::tie(r.persist_p50, r.persist_p99) = p50_p99(persist_micros_);
    r.deliver_samples = deliver_micros_.size();
    r.persist_samples = persist_micros_.size();
  }

 private:
  // Engine thread.
  void delivered(const ds::StoreError* error, const ds::Stamp& stamp, std::int64_t t0) {
    if (error == nullptr && t0 >= window_begin_ns_ && t0 < window_end_ns_) {
      const std::int64_t now = now_ns();
      {
        std::lock_guard lock(samples_mutex_);
        deliver_micros_.push_back(static_cast<float>(now - t0) / 1e3f);
      }
      if (stamp.version % persist_sample_ == 0) {
        persist_waits_.fetch_add(1);
        try {
          store_.wait_global_persisted(stamp.version, [this, t0](const ds::StoreError* e, std::uint64_t) {
            if (e == nullptr) {
              const std::int64_t at = now_ns();
              std::lock_guard lock(samples_mutex_);
              persist_micros_.push_back(static_cast<float>(at - t0) / 1e3f);
            }
            persist_waits_.fetch_sub(1);
          });
        } catch (const ds::StoreError&) {
          persist_waits_.fetch_sub(1);
        }
      }
    }
    completed();
  }

  void completed() {
    if (in_flight_.fetch_sub(1, std::memory_order_acq_rel) - 1 > low_water_) return;
    std::lock_guard lock(mutex_);
    if (waiting_) room_.notify_one();
  }

  ds::VersionedStore& store_;
  const std::size_t bound_;
  const std::size_t low_water_;
  const std::size_t persist_sample_;
  std::int64_t window_begin_ns_ = 0;
  std::int64_t window_end_ns_ = 0;
  std::atomic<std::size_t> in_flight_{0};
  std::atomic<std::size_t> persist_waits_{0};
  std::mutex mutex_;
  std::condition_variable room_;
  bool waiting_ = false;
  std::mutex samples_mutex_;
  std::vector<float> deliver_micros_;
  std::vector<float> persist_micros_;
};

struct Sample {
  std::uint64_t delivered;
  std::uint64_t global;
  std::uint64_t batches;
  clock_type::time_point at;
};

Sample sample(derecho::Member& member, ds::VersionedStore& store, bool persistent) {
  // A persistent store flushes on its own thread, as often as the flushes take; a volatile
  // one has nothing to flush, and its delivery batches stand in.
  const auto f = store.frontier();
  return {f.delivered, f.global_persisted, persistent ? f.flushes : member.stats().delivery_batches, clock_type::now()};
}

void run_member(const Options& o, const derecho::GroupConfig& config, const fs::path& data_dir, derecho::MemberId self,
                Shared* shared) {
  MemberResult& r = shared->members[self];
  NoSink sink;
  derecho::Member::Options mo;
  mo.data_dir = data_dir / ("member-" + std::to_string(self));
  mo.flush = flush_mode(o.flush);
  std::unique_ptr<Putter> putter;  // outlives the member: stop() fails pending puts into it
  derecho::Member member(config, self, sink, mo);
  if (!member.start(10s)) throw std::runtime_error("peers not reachable");
  ds::VersionedStore& store = member.store(0);
  const bool persistent = config.subgroups[0].store->storage == derecho::StorageKind::persistent;
  putter = std::make_unique<Putter>(store, o.in_flight, o.persist_sample);
  shared->ready.fetch_add(1);
  barrier(shared, shared->ready, static_cast<std::uint32_t>(o.members));

  std::vector<std::string> keys;
  for (std::size_t k = 0; k < o.keys; ++k) keys.push_back(key_name(self, k));
  std::vector<std::byte> value(o.size, std::byte{0x5a});
  const auto start = clock_type::now();
  const auto warmup_end = start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o.seconds * 0.2));
  const auto end = warmup_end + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o.seconds));
  putter->set_window(std::chrono::duration_cast<std::chrono::nanoseconds>(warmup_end.time_since_epoch()).count(),
                     std::chrono::duration_cast<std::chrono::nanoseconds>(end.time_since_epoch()).count());
  std::uint64_t puts = 0;
  Sample first{};
  bool in_window = false;
  while (true) {
    const auto now = clock_type::now();
    if (!in_window && now >= warmup_end) {
      first = sample(member, store, persistent);
      in_window = true;
    }
    if (now >= end) break;
    // A burst, then the clock again: the window's edges are taken within a burst's time.
    for (int burst = 0; burst < 64 && putter->below_bound(); ++burst) {
      std::memcpy(value.data(), &puts, std::min<std::size_t>(8, value.size()));
      if (!putter->put(keys[puts % keys.size()], value)) break;
      ++puts;
    }
    if (!putter->below_bound()) putter->wait_for_room(in_window ? end : warmup_end);
  }
  const Sample last = sample(member, store, persistent);
  r.window_delivered = last.delivered - first.delivered;
  r.window_global = last.global - first.global;
  r.window_batches = last.batches - first.batches;
  r.window_seconds = std::chrono::duration<double>(last.at - first.at).count();

  // Drain: every put of ours delivered and timed, then every put of the group durable everywhere.
  const auto deadline = clock_type::now() + 30s;
  const auto engine_alive = [&] {
    if (member.stats().failed) throw std::runtime_error("the engine thread stopped (logged above)");
    if (shared->abort.load()) throw std::runtime_error("another member failed");
  };
  while (!putter->drained() && clock_type::now() < deadline) {
    engine_alive();
    putter->wait_for_room(clock_type::now() + 1ms);
  }
  r.puts = puts;
  shared->done_putting.fetch_add(1);
  barrier(shared, shared->done_putting, static_cast<std::uint32_t>(o.members));
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < o.members; ++i) total += shared->members[i].puts.load();
  while (clock_type::now() < deadline) {
    const auto f = store.frontier();
    if (f.delivered >= total && f.global_persisted >= total && putter->drained()) break;
    engine_alive();
    std::this_thread::sleep_for(1ms);
  }
  putter->results(r);
  // The state every member ended with: the latest value and version of every key.
  std::uint64_t digest = 0;
  for (std::size_t m = 0; m < o.members; ++m) {
    for (std::size_t k = 0; k < o.keys; ++k) {
      const auto read = store.get(key_name(static_cast<derecho::MemberId>(m), k));
      std::uint64_t head = 0;
      std::memcpy(&head, read.value.data(), std::min<std::size_t>(8, read.value.size()));
      digest = mix(mix(mix(digest, read.found), read.written.version), head ^ (read.value.size() << 40));
    }
  }
  const auto f = store.frontier();
  r.final_delivered = f.delivered;
  r.state_digest = digest;
  r.sleeps = member.stats().sleeps;
  r.delivery_batches = member.stats().delivery_batches;
  r.ok = f.delivered == total && f.global_persisted == total && putter->drained() ? 1 : 0;
  // Keep serving peers until everyone checked, then leave together.
  shared->checked.fetch_add(1);
  barrier(shared, shared->checked, static_cast<std::uint32_t>(o.members));
  member.stop();
}

struct GroupRun {
  std::string json;
  double puts_per_sec;
  double global_per_sec;
  double versions_per_flush;
  bool ok;
};

std::uint16_t pick_base_port() { return static_cast<std::uint16_t>(20000 + (getpid() * 7919) % 30000); }

std::string fmt(const char* format, auto... args) {
  char buf[4096];
  std::snprintf(buf, sizeof buf, format, args...);
  return buf;
}

GroupRun run_group(const Options& o, derecho::StorageKind storage, const fs::path& data_dir, std::uint16_t base_port) {
  Shared* shared = derecho::bench::shared_anonymous<Shared>();
  const bool persistent = storage == derecho::StorageKind::persistent;
  const std::string name = std::string("storebench-") + (persistent ? "p-" : "v-") + std::to_string(getpid());
  const auto config = make_config(o, storage, name, base_port);
  const bool children_ok = derecho::bench::run_in_member_processes(o.members, [&](derecho::MemberId id) {
    run_member(o, config, data_dir, id, shared);
  }, [&] { shared->abort.store(1); });
  double sum_rate = 0, min_rate = 1e300, sum_global = 0, sum_p50 = 0, max_p99 = 0, sum_pp50 = 0, max_pp99 = 0;
  std::uint64_t delivered = 0, batches = 0;
  bool same_state = true;
  std::string per_member;
  for (std::size_t i = 0; i < o.members; ++i) {
    const MemberResult& r = shared->members[i];
    const double rate = r.window_seconds > 0 ? r.window_delivered / r.window_seconds : 0;
    const double global = r.window_seconds > 0 ? r.window_global / r.window_seconds : 0;
    sum_rate += rate;
    min_rate = std::min(min_rate, rate);
    sum_global += global;
    sum_p50 += r.deliver_p50;
    max_p99 = std::max(max_p99, r.deliver_p99);
    sum_pp50 += r.persist_p50;
    max_pp99 = std::max(max_pp99, r.persist_p99);
    delivered += r.window_delivered;
    batches += r.window_batches;
    if (!r.ok.load() || r.state_digest != shared->members[0].state_digest ||
        r.final_delivered != shared->members[0].final_delivered) {
      same_state = false;
    }
    per_member += fmt(
        "%s{\"member\":%zu,\"puts\":%llu,\"versionsPerSec\":%.0f,\"globalPersistedPerSec\":%.0f,"
        "\"versionsPerFlush\":%.2f,\"putToDeliveryMicros\":{\"p50\":%.1f,\"p99\":%.1f,\"samples\":%llu},"
        "\"putToGlobalPersistedMicros\":{\"p50\":%.1f,\"p99\":%.1f,\"samples\":%llu},\"sleeps\":%llu,"
        "\"versionsInRun\":%llu,\"deliveryBatchesInRun\":%llu}",
        i ? "," : "", i, static_cast<unsigned long long>(r.puts.load()), rate, global,
        r.window_batches ? static_cast<double>(r.window_delivered) / r.window_batches : 0.0, r.deliver_p50,
        r.deliver_p99, static_cast<unsigned long long>(r.deliver_samples), r.persist_p50, r.persist_p99,
        static_cast<unsigned long long>(r.persist_samples), static_cast<unsigned long long>(r.sleeps),
        static_cast<unsigned long long>(r.final_delivered), static_cast<unsigned long long>(r.delivery_batches));
  }
  const double n = static_cast<double>(o.members);
  GroupRun run;
  run.puts_per_sec = sum_rate / n;
  run.global_per_sec = sum_global / n;
  run.versions_per_flush = batches ? static_cast<double>(delivered) / batches : 0;
  run.ok = children_ok && same_state;
  run.json = fmt(
                 "{\"storage\":\"%s\",\"putsPerSec\":%.0f,\"minPutsPerSecAtAMember\":%.0f,"
                 "\"globalPersistedPerSec\":%.0f,\"versionsPerFlush\":%.2f,"
                 "\"putToDeliveryMicros\":{\"p50\":%.1f,\"p99\":%.1f},"
                 "\"putToGlobalPersistedMicros\":{\"p50\":%.1f,\"p99\":%.1f},\"sameStateEverywhere\":%s,\"perMember\":[",
                 persistent ? "persistent" : "volatile", run.puts_per_sec, min_rate, sum_global / n,
                 run.versions_per_flush, sum_p50 / n, max_p99, sum_pp50 / n, max_pp99, run.ok ? "true" : "false") +
             per_member + "]}";
  munmap(shared, sizeof(Shared));
  return run;
}

struct BaselineRun {
  double records_per_sec;
  bool is_pmem;
};

// One process appending: copy `batch` records of `record_bytes` into a pmem_map_file'd file and
// flush them, again and again; a full file is replaced by a new one (created whole, as the log
// creates its segments), so every flush covers freshly allocated space, as the log's do.
BaselineRun run_baseline(const Options& o, const fs::path& dir, std::size_t record_bytes, std::size_t batch,
                         const std::string& tag = "") {
  const auto r = derecho::bench::raw_append(dir, "baseline-" + std::to_string(batch) + tag, kBaselineFileBytes,
                                            record_bytes, batch, o.baseline_seconds, flush_mode(o.flush));
  return {r.records_per_sec, r.is_pmem};
}

// The same baseline in `processes` processes at once, each with its own file: what the members
// of a group on one machine share (one file system, one disk, one journal).
double run_concurrent_baseline(const Options& o, const fs::path& dir, std::size_t record_bytes, std::size_t batch,
                               std::size_t processes) {
  struct Rates {
    std::atomic<std::uint32_t> abort;
    std::atomic<std::uint32_t> ready;
    double records_per_sec[kMaxMembers];
  };
  auto* rates = derecho::bench::shared_anonymous<Rates>();
  std::vector<pid_t> children;
  for (std::size_t i = 0; i < processes; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      try {
        rates->ready.fetch_add(1);
        while (rates->ready.load() < processes) std::this_thread::sleep_for(1ms);
        rates->records_per_sec[i] = run_baseline(o, dir, record_bytes, batch, "-p" + std::to_string(i)).records_per_sec;
        _exit(0);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "baseline process %zu failed: %s\n", i, e.what());
        _exit(1);
      }
    }
    children.push_back(pid);
  }
  bool ok = true;
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ok = false;
  }
  double sum = 0;
  for (std::size_t i = 0; i < processes; ++i) sum += rates->records_per_sec[i];
  munmap(rates, sizeof *rates);
  if (!ok) throw std::runtime_error("a concurrent baseline process failed");
  return sum / static_cast<double>(processes);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--transport") o.transport = next();
    else if (a == "--members") o.members = std::stoul(next());
    else if (a == "--size") o.size = std::stoul(next());
    else if (a == "--seconds") o.seconds = std::stod(next());
    else if (a == "--dir") o.dir = next();
    else if (a == "--in-flight") o.in_flight = std::stoul(next());
    else if (a == "--keys") o.keys = std::stoul(next());
    else if (a == "--persist-sample") o.persist_sample = std::stoul(next());
    else if (a == "--baseline-seconds") o.baseline_seconds = std::stod(next());
    else if (a == "--flush") o.flush = next();
    else if (a == "--no-volatile") o.volatile_run = false;
    else if (a == "--window") o.window = std::stoull(next());
    else if (a == "--base-port") o.base_port = static_cast<std::uint16_t>(std::stoul(next()));
    else {
      throw std::invalid_argument("unknown option " + a +
                                  " (options: --transport shm|tcp --members --size --seconds --dir --in-flight --keys"
                                  " --persist-sample --baseline-seconds --flush auto|persist|msync --no-volatile"
                                  " --window --base-port)");
    }
  }
  if (o.transport != "shm" && o.transport != "tcp") throw std::invalid_argument("--transport must be shm or tcp, found '" + o.transport + "'");
  if (o.members < 1 || o.members > kMaxMembers) throw std::invalid_argument("--members must be 1.." + std::to_string(kMaxMembers));
  if (o.in_flight < 2) throw std::invalid_argument("--in-flight must be at least 2");
  if (o.keys < 1 || o.keys > 999'999) throw std::invalid_argument("--keys must be 1..999999");
  if (o.window < 1) throw std::invalid_argument("--window must be at least 1");
  if (o.persist_sample < 1) throw std::invalid_argument("--persist-sample must be at least 1");
  if (o.seconds <= 0 || o.baseline_seconds <= 0) throw std::invalid_argument("--seconds and --baseline-seconds must be positive");
  flush_mode(o.flush);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    derecho::set_log_level(derecho::LogLevel::warn);
    const Options o = parse(argc, argv);
    const derecho::bench::ScratchDir scratch(o.dir, "derecho-store-bench");
    const std::uint16_t base_port = o.base_port ? o.base_port : pick_base_port();
    // A log record: its header, then the body (the change's header, key, value), padded to 8
    // (docs/log-format.md, docs/store.md).
    const std::size_t key_bytes = key_name(0, 0).size();
    const std::size_t record_bytes =
        (kLogRecordHeaderBytes + ds::kRecordBodyHeaderBytes + key_bytes + o.size + 7) / 8 * 8;

    const GroupRun persistent = run_group(o, derecho::StorageKind::persistent, scratch.path() / "persistent", base_port);
    std::fprintf(stderr, "persistent store: %.0f puts/s, %.2f versions per flush\n", persistent.puts_per_sec,
                 persistent.versions_per_flush);
    // A failed run still reports what it measured, with "ok": false, and the exit status says so.
    bool ok = persistent.ok;
    if (!persistent.ok) std::fprintf(stderr, "derecho_store_bench: the persistent run failed or ended with different states\n");
    // The baseline batches as the store did: its average versions per flush, rounded.
    const std::size_t store_batch =
        std::max<std::size_t>(1, static_cast<std::size_t>(std::lround(persistent.versions_per_flush)));
    const BaselineRun at_one = run_baseline(o, scratch.path(), record_bytes, 1);
    const BaselineRun at_store = store_batch == 1 ? at_one : run_baseline(o, scratch.path(), record_bytes, store_batch);
    const double concurrent = run_concurrent_baseline(o, scratch.path(), record_bytes, store_batch, o.members);
    std::fprintf(stderr, "baseline: %.0f records/s at batch 1, %.0f at batch %zu, %.0f per process with %zu at once\n",
                 at_one.records_per_sec, at_store.records_per_sec, store_batch, concurrent, o.members);
    std::string volatile_json = "null";
    double volatile_rate = 0;
    if (o.volatile_run) {
      const GroupRun v = run_group(o, derecho::StorageKind::volatile_memory, scratch.path() / "volatile",
                                   static_cast<std::uint16_t>(base_port + kMaxMembers));
      volatile_json = v.json;
      volatile_rate = v.puts_per_sec;
      std::fprintf(stderr, "volatile store: %.0f puts/s\n", v.puts_per_sec);
      if (!v.ok) {
        std::fprintf(stderr, "derecho_store_bench: the volatile run failed or ended with different states\n");
        ok = false;
      }
    }

    const char* flush_call = at_one.is_pmem || o.flush == "persist" ? "pmem_persist" : "pmem_msync";

    std::string out = fmt(
        "{\"bench\":\"store\",\"ok\":%s,\"machine\":{\"cpus\":%u},\"dir\":\"%s\",\"fsType\":\"%s\",\"isPmem\":%s,"
        "\"flush\":\"%s\",\"flushCall\":\"%s\",\"members\":%zu,\"transport\":\"%s\",\"valueBytes\":%zu,"
        "\"keyBytes\":%zu,\"logRecordBytes\":%zu,\"inFlightPerMember\":%zu,\"keysPerMember\":%zu,"
        "\"volatileWindow\":%llu,\"seconds\":%.1f,\"warmupSeconds\":%.1f,\"baselineSeconds\":%.1f,",
        ok ? "true" : "false", std::thread::hardware_concurrency(), o.dir.c_str(), derecho::bench::fs_type(scratch.path()).c_str(),
        at_one.is_pmem ? "true" : "false", o.flush.c_str(), flush_call, o.members, o.transport.c_str(), o.size,
        key_bytes, record_bytes, o.in_flight, o.keys, static_cast<unsigned long long>(o.window), o.seconds,
        o.seconds * 0.2, o.baseline_seconds);
    out += "\"persistent\":" + persistent.json + ",\"volatile\":" + volatile_json;
    out += fmt(
        ",\"baseline\":{\"what\":\"memcpy of logRecordBytes records into one pmem_map_file'd file in the same "
        "directory, then %s per batch\",\"batchSource\":\"measured: the persistent store's versionsPerFlush "
        "(delivered versions / the store's flushes over the window: its persistence thread flushes everything "
        "appended since its last flush), rounded\",\"batch1\":{\"batch\":1,\"processes\":1,"
        "\"recordsPerSec\":%.0f},\"storeBatch\":{\"batch\":%zu,\"processes\":1,\"recordsPerSec\":%.0f},"
        "\"storeBatchConcurrent\":{\"batch\":%zu,\"processes\":%zu,\"recordsPerSecPerProcess\":%.0f}},",
        flush_call, at_one.records_per_sec, store_batch, at_store.records_per_sec, store_batch, o.members, concurrent);
    out += fmt(
        "\"ratios\":{\"storeToBaselineAtStoreBatch\":%.3f,\"storeToConcurrentBaselineAtStoreBatch\":%.3f,"
        "\"storeToBaselineAtBatch1\":%.3f,\"globalPersistedToBaselineAtStoreBatch\":%.3f,"
        "\"persistentToVolatile\":%s}}",
        persistent.puts_per_sec / at_store.records_per_sec, persistent.puts_per_sec / concurrent,
        persistent.puts_per_sec / at_one.records_per_sec, persistent.global_per_sec / at_store.records_per_sec,
        volatile_rate > 0 ? fmt("%.3f", persistent.puts_per_sec / volatile_rate).c_str() : "null");
    std::printf("%s\n", out.c_str());
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "derecho_store_bench: %s\n", e.what());
    return 1;
  }
}
