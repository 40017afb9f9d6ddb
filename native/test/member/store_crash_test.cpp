// Persistent versioned stores in real member processes over TCP on loopback, killed with SIGKILL
// in the middle of their writes (docs/store.md): every put a member saw globally persisted
// survives the crash of one member, its rejoin, and the crash of all of them followed by a total
// restart; and a member whose log tail was torn cuts it, says so in repairs(), and gets the lost
// version back from the others.
//
// Each member runs in a forked process that builds its Member after the fork and ends with
// _exit(), never returning into gtest. Children block on condition variables and futures; the
// test process polls what they report in a shared anonymous mapping.
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "../support/free_ports.hpp"
#include "../support/member_processes.hpp"
#include "member/member.hpp"
#include "persistence/record_format.hpp"
#include "persistence/segment_file.hpp"

namespace derecho::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr std::size_t kMembers = 3;
constexpr std::size_t kInFlight = 64;        // puts a member keeps going at once
constexpr std::uint64_t kKeysPerMember = 64;
constexpr std::size_t kValueBytes = 100;
constexpr std::size_t kMaxRecorded = 1u << 19;  // per member, across its incarnations
constexpr char kSubgroup[] = "kv";

// ---- What the member processes report (a MAP_SHARED anonymous mapping made before forking) ----

struct PersistedPut {
  std::uint64_t version;
  std::uint64_t n;  // the member's put number: names the key and the value
};

// One member id's reports, over every process (incarnation) that ran as it.
struct Report {
  std::atomic<std::uint64_t> next_n;        // the next put number, carried across incarnations
  std::atomic<std::uint64_t> recorded;      // entries of Shared::puts[id] written, each complete
  std::atomic<std::uint64_t> incarnations;  // processes that got into an open view of every member
  std::atomic<std::uint64_t> vid;           // of the latest view installed
  std::atomic<std::uint64_t> view_size;
  std::atomic<std::uint64_t> refused;       // puts refused at once (busy) or failed later
  std::atomic<int> done_writing;            // a writer with a limit made and recorded all its puts
  // A process started on the logs after a crash, once it checked them:
  std::atomic<std::uint64_t> delivered;
  std::atomic<std::uint64_t> global_persisted;
  std::atomic<std::uint64_t> keys;
  std::atomic<std::uint64_t> fingerprint;
  std::atomic<std::uint64_t> checked;
  std::atomic<std::uint64_t> mismatches;
  std::atomic<std::uint64_t> repairs;
  std::atomic<int> verified;  // 1 once the fields above are written
  std::atomic<int> has_error;
  char first_mismatch[512];
  char repair[1024];  // the first repair: "file offset bytes_dropped: reason"
  char error[512];
};

struct Shared {
  Report members[kMembers];
  PersistedPut puts[kMembers][kMaxRecorded];
};

void copy_text(char* to, std::size_t size, const std::string& text) { std::snprintf(to, size, "%s", text.c_str()); }

void note_error(Report& r, const std::string& what) {
  int expected = 0;
  if (r.has_error.compare_exchange_strong(expected, 1)) copy_text(r.error, sizeof r.error, what);
  std::fprintf(stderr, "store crash test member: %s\n", what.c_str());
}


// ---- Member processes ----

// Holds processes started after it until the test releases them: each child closes its copy of
// the write end at once and later blocks until every copy is closed (the test's last).
class ReleasePipe {
 public:
  ReleasePipe() {
    if (::pipe(fds_) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
  }
  ~ReleasePipe() {
    for (int& fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
  }
  ReleasePipe(const ReleasePipe&) = delete;
  ReleasePipe& operator=(const ReleasePipe&) = delete;

  void release() {
    if (fds_[1] >= 0) ::close(fds_[1]);
    fds_[1] = -1;
  }
  // In a child, first thing.
  void keep_only_read_end() { release(); }
  // In a child: blocks until released, or for 30 s at most.
  void wait() const {
    pollfd pfd{fds_[0], POLLIN, 0};
    ::poll(&pfd, 1, 30'000);
  }

 private:
  int fds_[2] = {-1, -1};
};

struct TempDirs {
  TempDirs() {
    std::random_device rd;
    root = fs::temp_directory_path() / ("derecho-store-crash-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(root);
  }
  ~TempDirs() {
    std::error_code ignored;
    fs::remove_all(root, ignored);
  }
  TempDirs(const TempDirs&) = delete;
  TempDirs& operator=(const TempDirs&) = delete;
  fs::path of(MemberId id) const { return root / ("member-" + std::to_string(id)); }
  fs::path root;
};

GroupConfig crash_config(const std::string& tag) {
  static int runs = 0;
  GroupConfig c;
  c.group_name = "store-crash-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(runs++);
  c.transport = TransportKind::tcp;
  SubgroupConfig sg;
  sg.name = kSubgroup;
  const auto ports = free_ports(kMembers);
  for (std::size_t i = 0; i < kMembers; ++i) {
    const auto id = static_cast<MemberId>(i);
    c.members.push_back({id, "127.0.0.1", ports[i]});
    sg.members.push_back(id);
    sg.senders.push_back(id);
  }
  StoreConfig store;
  store.storage = StorageKind::persistent;
  store.segment_bytes = 1u << 20;  // small, so the logs roll over to new segments
  store.max_key_bytes = 32;
  store.max_value_bytes = 256;
  sg.store = store;
  c.subgroups.push_back(sg);
  c.heartbeat_interval = 20ms;
  c.suspect_after = 300ms;
  return c;
}

std::string key_of(MemberId id, std::uint64_t n) { return "m" + std::to_string(id) + "-" + std::to_string(n % kKeysPerMember); }

std::string value_of(MemberId id, std::uint64_t n) {
  std::string v = "v" + std::to_string(id) + "-" + std::to_string(n) + "-";
  v.resize(kValueBytes, static_cast<char>('a' + (id * 7 + n) % 26));
  return v;
}

std::span<const std::byte> bytes(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }
std::string text(const std::vector<std::byte>& v) { return {reinterpret_cast<const char*>(v.data()), v.size()}; }

class NoDeliveries final : public multicast::DeliverySink {
 public:
  bool ready() override { return true; }
  void deliver(std::span<const multicast::Delivery>) override {}
};

// A Member over `dir` that reports its views, started into a view of every member.
struct RunningMember {
  RunningMember(const GroupConfig& config, MemberId self, const fs::path& dir, Report& report) {
    Member::Options options;
    options.data_dir = dir;
    member = std::make_unique<Member>(config, self, sink, options);
    member->on_view([&report](const membership::View& v) {
      report.view_size = v.members.size();
      report.vid = v.vid;
    });
    if (!member->start(10s)) throw std::runtime_error("not in an open view of every member after 10 s");
  }
  NoDeliveries sink;
  std::unique_ptr<Member> member;
};

// Member process: puts continuously (at most kInFlight at once) and records every put once it
// is durable at every member of the shard. With a `limit`, stops after that many puts, waits
// for all of them and says so; either way, it runs until it is killed.
void write_until_killed(const GroupConfig& config, MemberId self, const fs::path& dir, Shared& shared,
                        std::uint64_t limit) {
  Report& r = shared.members[self];
  RunningMember running(config, self, dir, r);
  r.incarnations.fetch_add(1);
  store::VersionedStore& st = running.member->store(0);

  std::mutex mutex;
  std::condition_variable changed;
  std::size_t in_flight = 0;
  const auto finished = [&] {
    std::lock_guard lock(mutex);
    --in_flight;
    changed.notify_all();
  };
  const auto record = [&](std::uint64_t version, std::uint64_t n) {
    std::lock_guard lock(mutex);
    const std::uint64_t slot = r.recorded.load(std::memory_order_relaxed);
    if (slot >= kMaxRecorded) return;
    shared.puts[self][slot] = {version, n};
    r.recorded.store(slot + 1, std::memory_order_release);
  };
  for (std::uint64_t made = 0; limit == 0 || made < limit;) {
    {
      std::unique_lock lock(mutex);
      changed.wait(lock, [&] { return in_flight < kInFlight; });
      ++in_flight;
    }
    const std::uint64_t n = r.next_n.load();
    const std::string key = key_of(self, n);
    const std::string value = value_of(self, n);
    try {
      st.put(key, bytes(value), 0, [&, n](const store::StoreError* error, const store::Stamp& stamp) {
        if (error) {
          r.refused.fetch_add(1);
          return finished();
        }
        try {
          st.wait_global_persisted(stamp.version, [&, n](const store::StoreError* e, std::uint64_t version) {
            if (e) {
              r.refused.fetch_add(1);
            } else {
              record(version, n);
            }
            finished();
          });
        } catch (const std::exception& e) {
          note_error(r, std::string("wait_global_persisted threw: ") + e.what());
          finished();
        }
      });
      r.next_n.store(n + 1);
      ++made;
    } catch (const store::StoreError& e) {
      // Busy (the send queue is full): wait for a completion, then try the same put again.
      r.refused.fetch_add(1);
      std::unique_lock lock(mutex);
      --in_flight;
      changed.wait_for(lock, 10ms);
    }
  }
  {
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return in_flight == 0; });
  }
  r.done_writing = 1;
  for (;;) ::pause();
}

std::uint64_t fnv(std::uint64_t h, std::string_view bytes) {
  for (char c : bytes) h = (h ^ static_cast<std::uint8_t>(c)) * 1099511628211ull;
  return h;
}

// Member process, started on the logs after a crash: once in a view of every member and all
// of them hold the latest version, checks that every recorded put reads back at its version,
// reports its frontier, a fingerprint of its latest state and its log repairs, then waits for
// the test to release it.
void verify_after_restart(const GroupConfig& config, MemberId self, const fs::path& dir, Shared& shared,
                          ReleasePipe& release) {
  release.keep_only_read_end();
  Report& r = shared.members[self];
  RunningMember running(config, self, dir, r);
  r.incarnations.fetch_add(1);
  store::VersionedStore& st = running.member->store(0);

  // Every member holds every version once the latest is durable at all of them.
  const std::uint64_t latest = st.frontier().delivered;
  if (latest > 0) {
    auto everywhere = std::make_shared<std::promise<std::string>>();
    auto result = everywhere->get_future();
    st.wait_global_persisted(latest, [everywhere](const store::StoreError* e, std::uint64_t) {
      everywhere->set_value(e ? e->what() : "");
    });
    if (result.wait_for(5s) != std::future_status::ready) {
      throw std::runtime_error("version " + std::to_string(latest) + " not globally persisted after 5 s (global " +
                               std::to_string(st.frontier().global_persisted) + ")");
    }
    if (const std::string e = result.get(); !e.empty()) throw std::runtime_error("wait_global_persisted: " + e);
  }
  const store::Frontier frontier = st.frontier();

  std::uint64_t checked = 0, mismatches = 0;
  for (MemberId m = 0; m < kMembers; ++m) {
    const std::uint64_t count = shared.members[m].recorded.load(std::memory_order_acquire);
    for (std::uint64_t i = 0; i < count; ++i) {
      const PersistedPut p = shared.puts[m][i];
      const std::string key = key_of(m, p.n);
      const std::string want = value_of(m, p.n);
      std::string problem;
      try {
        const store::ReadResult got = st.get(key, p.version);
        if (!got.found) {
          problem = "not found";
        } else if (got.written.version != p.version) {
          problem = "written at version " + std::to_string(got.written.version);
        } else if (text(got.value) != want) {
          problem = "value '" + text(got.value) + "'";
        }
      } catch (const std::exception& e) {
        problem = e.what();
      }
      ++checked;
      if (!problem.empty() && mismatches++ == 0) {
        copy_text(r.first_mismatch, sizeof r.first_mismatch,
                  key + " at version " + std::to_string(p.version) + " (put " + std::to_string(p.n) + " of member " +
                      std::to_string(m) + "): " + problem);
      }
    }
  }

  std::uint64_t fingerprint = 1469598103934665603ull;
  const auto keys = st.list_keys(frontier.delivered);
  for (const auto& key : keys) {
    const store::ReadResult got = st.get(key, frontier.delivered);
    fingerprint = fnv(fnv(fnv(fingerprint, key), text(got.value)), std::to_string(got.written.version));
  }
  const auto repairs = st.repairs();
  if (!repairs.empty()) {
    const auto& first = repairs.front();
    copy_text(r.repair, sizeof r.repair,
              first.file.filename().string() + " offset " + std::to_string(first.offset) + ", " +
                  std::to_string(first.bytes_dropped) + " bytes dropped: " + first.reason);
  }
  r.delivered = frontier.delivered;
  r.global_persisted = frontier.global_persisted;
  r.keys = keys.size();
  r.fingerprint = fingerprint;
  r.checked = checked;
  r.mismatches = mismatches;
  r.repairs = repairs.size();
  r.verified.store(1, std::memory_order_release);
  release.wait();
}

// ---- The test side ----

std::string describe(const Shared& shared) {
  std::ostringstream out;
  for (std::size_t i = 0; i < kMembers; ++i) {
    const Report& r = shared.members[i];
    out << "\n  member " << i << ": incarnations " << r.incarnations << ", view " << r.vid << " of " << r.view_size
        << ", puts made " << r.next_n << ", recorded " << r.recorded << ", refused " << r.refused << ", done writing "
        << r.done_writing << ", verified " << r.verified << " (delivered " << r.delivered << ", global "
        << r.global_persisted << ", keys " << r.keys << ", fingerprint " << std::hex << r.fingerprint << std::dec
        << ", checked " << r.checked << ", mismatches " << r.mismatches << ", repairs " << r.repairs << ")";
    if (r.mismatches) out << "\n    first mismatch: " << r.first_mismatch;
    if (r.repairs) out << "\n    repair: " << r.repair;
    if (r.has_error) out << "\n    error: " << r.error;
  }
  return out.str();
}

// Polls `condition` until it holds (true), `limit` passes or a member process ends (false,
// with why in `failure`).
bool wait_until(MemberProcesses& processes, const std::function<bool()>& condition, std::chrono::milliseconds limit,
                std::string& failure) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (condition()) return true;
    if (auto ended = processes.ended(); !ended.empty()) {
      failure = ended;
      return false;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      failure = "not within " + std::to_string(limit.count()) + " ms";
      return false;
    }
    std::this_thread::sleep_for(10ms);
  }
}

std::uint64_t total_recorded(const Shared& shared) {
  std::uint64_t total = 0;
  for (const auto& r : shared.members) total += r.recorded.load();
  return total;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Starts a verifying process per member on the logs and waits until each reported.
void restart_and_verify(MemberProcesses& processes, const GroupConfig& config, const TempDirs& dirs, Shared& shared) {
  ReleasePipe release;
  for (MemberId id = 0; id < kMembers; ++id) {
    processes.start(id, [&shared, id](const std::string& why) { note_error(shared.members[id], why); },
                    [&, id] { verify_after_restart(config, id, dirs.of(id), shared, release); });
  }
  std::string why;
  const bool verified = wait_until(
      processes,
      [&] {
        for (const auto& r : shared.members) {
          if (r.verified.load(std::memory_order_acquire) != 1) return false;
        }
        return true;
      },
      20s, why);
  EXPECT_TRUE(verified) << "every restarted member checks its state: " << why << describe(shared);
  release.release();
  const std::string exits = processes.reap_all(5s);
  EXPECT_TRUE(exits.empty()) << exits << describe(shared);
}

// Every member reports the same latest version and state, and found every recorded put (the
// tests print every member's report at their end).
void expect_same_state_everywhere(const Shared& shared) {
  const Report& first = shared.members[0];
  for (std::size_t i = 0; i < kMembers; ++i) {
    const Report& r = shared.members[i];
    EXPECT_EQ(r.verified.load(), 1) << "member " << i;
    EXPECT_EQ(r.delivered.load(), first.delivered.load()) << "member " << i;
    EXPECT_EQ(r.global_persisted.load(), r.delivered.load()) << "member " << i;
    EXPECT_EQ(r.fingerprint.load(), first.fingerprint.load()) << "member " << i;
    EXPECT_EQ(r.keys.load(), first.keys.load()) << "member " << i;
    EXPECT_EQ(r.checked.load(), total_recorded(shared)) << "member " << i << " checks every recorded put";
    EXPECT_EQ(r.mismatches.load(), 0u) << "member " << i << ": " << r.first_mismatch;
    EXPECT_FALSE(r.has_error.load()) << "member " << i << ": " << r.error;
  }
}

TEST(StoreCrash, KilledMidWritesKeepsEveryGloballyPersistedPut) {
  const auto started = std::chrono::steady_clock::now();
  TempDirs dirs;
  SharedRegion<Shared> region;
  Shared& shared = region.get();
  const GroupConfig config = crash_config("kill");
  MemberProcesses processes;
  const auto start_writer = [&](MemberId id) {
    processes.start(id, [&shared, id](const std::string& why) { note_error(shared.members[id], why); }, [&, id] { write_until_killed(config, id, dirs.of(id), shared, 0); });
  };
  const auto recorded = [&](MemberId id) { return shared.members[id].recorded.load(); };
  std::string why;

  for (MemberId id = 0; id < kMembers; ++id) start_writer(id);
  ASSERT_TRUE(wait_until(
      processes,
      [&] {
        for (MemberId id = 0; id < kMembers; ++id) {
          if (recorded(id) == 0) return false;
        }
        return true;
      },
      10s, why))
      << "every member gets puts globally persisted: " << why << describe(shared);
  std::this_thread::sleep_for(1s);

  // The leader dies mid-writes; the other two go on in a view of their own.
  const MemberId victim = 0;
  const std::vector<MemberId> survivors{1, 2};
  const std::uint64_t vid_before = shared.members[1].vid.load();
  processes.kill(victim);
  ASSERT_TRUE(wait_until(
      processes,
      [&] {
        for (MemberId id : survivors) {
          if (shared.members[id].view_size.load() != 2 || shared.members[id].vid.load() <= vid_before) return false;
        }
        return true;
      },
      5s, why))
      << "the survivors install a view of two: " << why << describe(shared);
  std::vector<std::uint64_t> before;
  for (MemberId id : survivors) before.push_back(recorded(id));
  std::this_thread::sleep_for(1s);
  for (std::size_t i = 0; i < survivors.size(); ++i) {
    EXPECT_GT(recorded(survivors[i]), before[i] + 100) << "member " << survivors[i] << " keeps writing" << describe(shared);
  }

  // It comes back on its log, catches up, and writes again.
  const std::uint64_t victim_before = recorded(victim);
  start_writer(victim);
  ASSERT_TRUE(wait_until(processes, [&] { return shared.members[victim].incarnations.load() == 2; }, 10s, why))
      << "the killed member rejoins: " << why << describe(shared);
  ASSERT_TRUE(wait_until(processes, [&] { return recorded(victim) > victim_before + 100; }, 5s, why))
      << "the rejoined member's puts get globally persisted: " << why << describe(shared);
  std::this_thread::sleep_for(500ms);

  // Everyone dies at once, mid-writes, and the group restarts on the logs alone.
  processes.kill_all();
  const double writing = seconds_since(started);
  restart_and_verify(processes, config, dirs, shared);

  const std::uint64_t total = total_recorded(shared);
  EXPECT_GT(total, 100u) << describe(shared);
  std::uint64_t highest = 0;
  for (MemberId id = 0; id < kMembers; ++id) {
    for (std::uint64_t i = 0; i < recorded(id); ++i) highest = std::max(highest, shared.puts[id][i].version);
  }
  EXPECT_GE(shared.members[0].delivered.load(), highest) << describe(shared);
  expect_same_state_everywhere(shared);
  for (MemberId id = 0; id < kMembers; ++id) {
    EXPECT_LT(recorded(id), kMaxRecorded) << "the report of member " << id << " filled up; raise kMaxRecorded";
  }
  std::fprintf(stderr, "store crash: %llu globally persisted puts recorded (highest version %llu) in %.1f s of writing; "
               "total %.1f s%s\n",
               static_cast<unsigned long long>(total), static_cast<unsigned long long>(highest), writing,
               seconds_since(started), describe(shared).c_str());
}

// Where the newest segment's last record lies and which version it holds.
struct TornRecord {
  fs::path file;
  std::uint64_t offset;
  std::uint64_t version;
};

// Flips a byte in the body of the last record of the newest segment in `log_dir`, so its
// checksum fails, and writes the start of a record that never finished after it.
TornRecord tear_last_record(const fs::path& log_dir) {
  fs::path newest;
  std::uint64_t newest_first = 0;
  for (const auto& entry : fs::directory_iterator(log_dir)) {
    const auto first = persistence::parse_segment_file_name(entry.path().filename().string());
    if (first && (newest.empty() || *first > newest_first)) {
      newest = entry.path();
      newest_first = *first;
    }
  }
  if (newest.empty()) throw std::runtime_error("no segment in " + log_dir.string());
  std::fstream file(newest, std::ios::in | std::ios::out | std::ios::binary);
  std::vector<char> data((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::size_t at = persistence::kSegmentHeaderBytes;
  std::optional<TornRecord> last;
  std::size_t end = at;
  while (at + persistence::kRecordHeaderBytes <= data.size()) {
    const auto h = persistence::read_record_header(reinterpret_cast<const std::byte*>(data.data() + at));
    if (h.magic != persistence::kRecordMagic) break;
    last = TornRecord{newest, at, h.version};
    end = at + persistence::record_bytes(h.body_bytes);
    at = end;
  }
  if (!last) throw std::runtime_error("no record in " + newest.string());
  const auto body_bytes = persistence::read_record_header(reinterpret_cast<const std::byte*>(data.data() + last->offset)).body_bytes;
  if (body_bytes == 0) throw std::runtime_error("the last record of " + newest.string() + " has no body");
  const std::size_t flip = last->offset + persistence::kRecordHeaderBytes + body_bytes / 2;
  data[flip] = static_cast<char>(data[flip] ^ 0x5a);
  const char torn[] = "REC1 a record that never finished";
  std::memcpy(data.data() + end, torn, sizeof torn - 1);
  file.clear();
  file.seekp(0);
  file.write(data.data(), static_cast<std::streamsize>(data.size()));
  file.flush();
  if (!file) throw std::runtime_error("could not rewrite " + newest.string());
  return *last;
}

TEST(StoreCrash, TornLogTailIsRepairedAndReported) {
  const auto started = std::chrono::steady_clock::now();
  TempDirs dirs;
  SharedRegion<Shared> region;
  Shared& shared = region.get();
  const GroupConfig config = crash_config("torn");
  MemberProcesses processes;
  // Enough to roll every log over to a second segment.
  constexpr std::uint64_t kPuts = 3000;
  std::string why;

  for (MemberId id = 0; id < kMembers; ++id) {
    processes.start(id, [&shared, id](const std::string& why) { note_error(shared.members[id], why); }, [&, id] { write_until_killed(config, id, dirs.of(id), shared, kPuts); });
  }
  ASSERT_TRUE(wait_until(
      processes,
      [&] {
        for (const auto& r : shared.members) {
          if (!r.done_writing.load()) return false;
        }
        return true;
      },
      10s, why))
      << "every member makes its puts: " << why << describe(shared);
  std::uint64_t highest = 0;
  for (MemberId id = 0; id < kMembers; ++id) {
    ASSERT_EQ(shared.members[id].recorded.load(), kPuts) << describe(shared);
    for (std::uint64_t i = 0; i < kPuts; ++i) highest = std::max(highest, shared.puts[id][i].version);
  }
  ASSERT_EQ(highest, kMembers * kPuts);
  processes.kill_all();

  // The member that would lead the restart loses its last version to a torn write.
  const MemberId damaged = 0;
  const TornRecord torn = tear_last_record(dirs.of(damaged) / kSubgroup);
  EXPECT_NE(torn.file.filename().string(), persistence::segment_file_name(1)) << "the logs should have rolled over";
  EXPECT_EQ(torn.version, highest) << "every version was durable everywhere before the crash";

  restart_and_verify(processes, config, dirs, shared);
  const Report& d = shared.members[damaged];
  EXPECT_EQ(d.repairs.load(), 1u) << describe(shared);
  const std::string repair = d.repair;
  EXPECT_NE(repair.find(torn.file.filename().string() + " offset " + std::to_string(torn.offset)), std::string::npos)
      << repair;
  EXPECT_NE(repair.find("checksum mismatch at version " + std::to_string(torn.version)), std::string::npos) << repair;
  for (MemberId id = 0; id < kMembers; ++id) {
    if (id != damaged) {
      EXPECT_EQ(shared.members[id].repairs.load(), 0u) << "member " << id << describe(shared);
    }
  }
  // The damaged member got the lost version back from the others.
  EXPECT_EQ(d.delivered.load(), highest) << describe(shared);
  expect_same_state_everywhere(shared);
  std::fprintf(stderr, "torn tail: %.1f s%s\n", seconds_since(started), describe(shared).c_str());
}

}  // namespace
}  // namespace derecho::testing
