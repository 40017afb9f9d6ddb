#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "sst/sst.hpp"
#include "transport/transport.hpp"

namespace derecho::sst {

// Evaluates registered (predicate, trigger) pairs over the SST in a loop, one thread per
// member. A pass runs every trigger whose predicate holds, then pushes our row and flushes the
// transport once, so all writes of one pass travel as one batch. When no predicate fired the
// thread spins (yielding) for a short while, a cheap wake-up under load, and then sleeps on the
// transport's doorbell, which peers ring when their writes land: an idle member never spins.
class PredicateThread {
 public:
  using Predicate = std::function<bool()>;
  using Trigger = std::function<void()>;
  using LinkHandler = std::function<void(const transport::LinkEvent&)>;

  struct Options {
    std::chrono::microseconds spin{50};
    std::chrono::microseconds idle_wait{10'000};
  };

  struct Stats {
    std::uint64_t passes = 0;
    std::uint64_t firings = 0;
    std::uint64_t sleeps = 0;
    bool failed = false;  // a trigger threw: logged, and the thread stopped
  };

  PredicateThread(transport::Transport& transport, Sst& sst, Options options);
  ~PredicateThread();
  PredicateThread(const PredicateThread&) = delete;
  PredicateThread& operator=(const PredicateThread&) = delete;

  // Registration happens before start(); the thread owns the list afterwards.
  void add(std::string name, Predicate predicate, Trigger trigger);
  void on_link_event(LinkHandler handler);

  void start();
  void stop();
  // Wakes the thread from its sleep, e.g. after the application queued a message.
  void wake() { transport_.doorbell().ring(); }

  // One pass on the calling thread; true when some predicate fired.
  bool run_once();

  Stats stats() const;

 private:
  struct Entry {
    std::string name;
    Predicate predicate;
    Trigger trigger;
  };

  void loop(const std::stop_token& stop);

  transport::Transport& transport_;
  Sst& sst_;
  Options options_;
  std::vector<Entry> entries_;
  LinkHandler link_handler_;
  std::atomic<std::uint64_t> passes_{0};
  std::atomic<std::uint64_t> firings_{0};
  std::atomic<std::uint64_t> sleeps_{0};
  std::atomic<bool> failed_{false};
  std::jthread thread_;
};

}  // namespace derecho::sst
