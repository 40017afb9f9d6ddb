#pragma once
// Member processes for tests that need real processes (kill -9, real transports): each member
// is forked, builds its Member after the fork, and ends with _exit(), never returning into
// gtest.
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include "common/types.hpp"

namespace derecho::testing {

// What member processes report to the test: a T in an anonymous shared mapping made before
// forking. Default-initialised: zeroed atomics; large arrays already zero keep their pages
// unallocated until used.
template <typename T>
class SharedRegion {
 public:
  SharedRegion() {
    void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap of the shared reports");
    shared_ = new (p) T;
  }
  ~SharedRegion() { ::munmap(shared_, sizeof(T)); }
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;
  T& get() { return *shared_; }

 private:
  T* shared_;
};

// Forked member processes, each SIGKILLed and reaped when the test ends however it ends.
class MemberProcesses {
 public:
  MemberProcesses() = default;
  MemberProcesses(const MemberProcesses&) = delete;
  MemberProcesses& operator=(const MemberProcesses&) = delete;
  ~MemberProcesses() { kill_all(); }

  // Runs `body` as member `id` in a new process, which exits 0 when it returns and 1 when it
  // throws (after telling `on_error` why, in the child).
  void start(MemberId id, const std::function<void(const std::string&)>& on_error, const std::function<void()>& body) {
    if (pids_.count(id)) throw std::logic_error("member " + std::to_string(id) + " is already running");
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
    if (pid == 0) {
      // Never outlive the test process, whatever it dies of.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(3);
      int code = 0;
      try {
        body();
      } catch (const std::exception& e) {
        on_error("member " + std::to_string(id) + " (pid " + std::to_string(::getpid()) + "): " + e.what());
        code = 1;
      } catch (...) {
        on_error("member " + std::to_string(id) + ": unknown exception");
        code = 1;
      }
      ::_exit(code);
    }
    pids_[id] = pid;
  }

  bool running(MemberId id) const { return pids_.count(id) != 0; }

  // SIGKILL, then reap.
  void kill(MemberId id) {
    const auto it = pids_.find(id);
    if (it == pids_.end()) return;
    ::kill(it->second, SIGKILL);
    ::waitpid(it->second, nullptr, 0);
    pids_.erase(it);
  }

  // SIGKILL to every one first, so they die together, then reap them.
  void kill_all() {
    for (const auto& [id, pid] : pids_) ::kill(pid, SIGKILL);
    for (const auto& [id, pid] : pids_) ::waitpid(pid, nullptr, 0);
    pids_.clear();
  }

  // A member process that ended while it should have been running, described; "" if none.
  std::string ended() {
    for (auto it = pids_.begin(); it != pids_.end(); ++it) {
      int status = 0;
      if (::waitpid(it->second, &status, WNOHANG) == it->second) {
        const std::string what = "member " + std::to_string(it->first) + " (pid " + std::to_string(it->second) +
                                 ") ended early: " + describe_status(status);
        pids_.erase(it);
        return what;
      }
    }
    return {};
  }

  // Waits up to `limit` for every process to exit by itself (the rest are killed); returns
  // "" when all exited 0, else what each did.
  std::string reap_all(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    std::string problems;
    while (!pids_.empty()) {
      for (auto it = pids_.begin(); it != pids_.end();) {
        int status = 0;
        if (::waitpid(it->second, &status, WNOHANG) == it->second) {
          if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            problems += "member " + std::to_string(it->first) + ": " + describe_status(status) + "; ";
          }
          it = pids_.erase(it);
        } else {
          ++it;
        }
      }
      if (pids_.empty()) break;
      if (std::chrono::steady_clock::now() > deadline) {
        for (const auto& [id, pid] : pids_) problems += "member " + std::to_string(id) + ": did not exit; ";
        kill_all();
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return problems;
  }

 private:
  static std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by signal ") + ::strsignal(WTERMSIG(status));
    return "status " + std::to_string(status);
  }

  std::map<MemberId, pid_t> pids_;
};

}  // namespace derecho::testing
