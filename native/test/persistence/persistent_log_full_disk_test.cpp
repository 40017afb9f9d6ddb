// A real full filesystem: a small tmpfs mounted in a private mount namespace of a forked child.
// append() must report full (the segment's preallocation fails with ENOSPC) and never die of
// SIGBUS on a store into a mapping the filesystem cannot back.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "persistence/persistent_log.hpp"
#include "persistence/record_format.hpp"
#include "persistence/segment_file.hpp"
#include "test_files.hpp"

using namespace derecho::persistence;
using namespace derecho::persistence::testing;

namespace {

constexpr std::size_t kSegment = 192 << 10;  // five fit in the 1 MiB tmpfs, a sixth does not
constexpr std::size_t kBody = 1000;
constexpr std::uint64_t kPerSegment = (kSegment - kSegmentHeaderBytes) / record_bytes(kBody);

// Runs in the child; returns "" on success, "skip: ..." when the namespace cannot be had, or
// what went wrong.
std::string fill_small_tmpfs(const std::filesystem::path& dir) {
  if (unshare(CLONE_NEWNS) != 0) return std::string("skip: unshare(CLONE_NEWNS): ") + std::strerror(errno);
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return std::string("skip: making mounts private: ") + std::strerror(errno);
  }
  if (mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=1m") != 0) {
    return std::string("skip: mounting a 1 MiB tmpfs: ") + std::strerror(errno);
  }
  LogOptions o;
  o.dir = dir / "log";
  o.segment_bytes = kSegment;
  auto log = PersistentLog::open(o);
  const std::vector<std::byte> body(kBody, std::byte{0x42});
  AppendResult result;
  std::uint64_t version = 0;
  while (result.status == AppendResult::Status::ok) {
    result = log->append(version + 1, version + 1, body);
    if (result.status == AppendResult::Status::ok) ++version;
  }
  if (result.status != AppendResult::Status::full) return "append returned " + result.error + " instead of full";
  if (result.error.find("ENOSPC") == std::string::npos) return "full without naming ENOSPC: " + result.error;
  if (version < 4 * kPerSegment) return "full after only " + std::to_string(version) + " records";
  log->persist();
  for (std::uint64_t v = 1; v <= version; ++v) {
    const auto r = log->read(v);
    if (!r || r->body.size() != body.size() || r->body.back() != std::byte{0x42}) {
      return "record " + std::to_string(v) + " damaged after full";
    }
  }
  const auto first_before = log->first_version();
  log->truncate_below(log->first_version() + kPerSegment);  // frees the oldest segment
  if (log->first_version() == first_before) return "truncate_below freed no segment";
  if (log->append(version + 1, version + 1, body).status != AppendResult::Status::ok) {
    return "append still full after truncate_below freed a segment";
  }
  log->persist();
  log.reset();
  const auto reopened = PersistentLog::open(o);
  if (reopened->last_version() != version + 1 || !reopened->repairs().empty()) return "reopen after full was not clean";
  return "";
}

TEST(PersistentLogFullDisk, AppendReportsFullInsteadOfSigbus) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs in a private mount namespace";
  TempDir dir;
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(pipe_fds[0]);
    std::string outcome;
    try {
      outcome = fill_small_tmpfs(dir.path());
    } catch (const std::exception& e) {
      outcome = std::string("threw: ") + e.what();
    }
    (void)!write(pipe_fds[1], outcome.data(), outcome.size());
    _exit(0);  // the parent owns the test's state; run no destructors or atexit handlers here
  }
  close(pipe_fds[1]);
  std::string outcome;
  char buf[512];
  for (ssize_t n; (n = read(pipe_fds[0], buf, sizeof buf)) > 0;) outcome.append(buf, static_cast<std::size_t>(n));
  close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_FALSE(WIFSIGNALED(status)) << "child killed by signal " << WTERMSIG(status) << " (" << strsignal(WTERMSIG(status))
                                    << ")";
  if (outcome.starts_with("skip: ")) GTEST_SKIP() << outcome.substr(6);
  EXPECT_EQ(outcome, "");
}

}  // namespace
