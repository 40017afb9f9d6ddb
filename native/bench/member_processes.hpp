#pragma once
// Benches run each member in a process of its own, as a deployment would.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <vector>

#include "common/types.hpp"

namespace derecho::bench {

// Runs `member(id)` in one forked process per member and waits for all; true when all exited 0.
// The first member to fail (an exception, a signal) calls `on_failure`, e.g. to release the
// others from their waits.
template <typename MemberMain, typename OnFailure>
bool run_in_member_processes(std::size_t members, MemberMain member, OnFailure on_failure) {
  std::vector<pid_t> children;
  for (std::size_t i = 0; i < members; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      try {
        member(static_cast<MemberId>(i));
        _exit(0);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "member %zu failed: %s\n", i, e.what());
        _exit(1);
      }
    }
    children.push_back(pid);
  }
  bool ok = true;
  for (std::size_t left = children.size(); left > 0; --left) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) break;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      if (WIFSIGNALED(status)) {
        const auto at = std::find(children.begin(), children.end(), pid) - children.begin();
        std::fprintf(stderr, "member %td died of signal %d (%s)\n", at, WTERMSIG(status), strsignal(WTERMSIG(status)));
      }
      ok = false;
      on_failure();
    }
  }
  return ok;
}

template <typename MemberMain>
bool run_in_member_processes(std::size_t members, MemberMain member) {
  return run_in_member_processes(members, member, [] {});
}

}  // namespace derecho::bench
