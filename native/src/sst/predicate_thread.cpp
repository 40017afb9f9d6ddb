#include "sst/predicate_thread.hpp"

#include "common/log.hpp"

#include <stdexcept>
#include <string>
#include <thread>

namespace derecho::sst {

PredicateThread::PredicateThread(transport::Transport& transport, Sst& sst, Options options)
    : transport_(transport), sst_(sst), options_(options) {}

PredicateThread::~PredicateThread() { stop(); }

void PredicateThread::add(std::string name, Predicate predicate, Trigger trigger) {
  if (thread_.joinable()) throw std::logic_error("predicates must be registered before start()");
  entries_.push_back({std::move(name), std::move(predicate), std::move(trigger)});
}

void PredicateThread::on_link_event(LinkHandler handler) { link_handler_ = std::move(handler); }

void PredicateThread::start() {
  thread_ = std::jthread([this](std::stop_token st) { loop(st); });
}

void PredicateThread::stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  wake();
  thread_.join();
}

bool PredicateThread::run_once() {
  bool fired = false;
  for (auto& event : transport_.take_link_events()) {
    if (link_handler_) link_handler_(event);
    fired = true;
  }
  for (auto& e : entries_) {
    if (e.predicate()) {
      e.trigger();
      firings_.fetch_add(1, std::memory_order_relaxed);
      fired = true;
    }
  }
  sst_.push();
  transport_.flush();
  passes_.fetch_add(1, std::memory_order_relaxed);
  return fired;
}

void PredicateThread::loop(const std::stop_token& stop) {
  using clock = std::chrono::steady_clock;
  auto idle_since = clock::now();
  std::uint32_t idle_passes = 0;
  while (!stop.stop_requested()) {
    const std::uint32_t seen = transport_.doorbell().snapshot();
    bool fired = false;
    try {
      fired = run_once();
    } catch (const std::exception& e) {
      // A broken invariant (e.g. a corrupted ring) must not take the whole process down with
      // std::terminate; this member stops delivering and says why.
      log(LogLevel::error, "predicates", std::string("engine thread stopped: ") + e.what());
      failed_.store(true);
      return;
    }
    if (fired) {
      idle_passes = 0;
      continue;
    }
    if (options_.spin.count() > 0) {
      if (idle_passes++ == 0) idle_since = clock::now();
      // Spin by yielding, not by pausing: with more member threads than cores (three members on
      // two cores) a pausing spinner holds a core the member it waits for needs, which made
      // round trips 3x slower than sleeping at once; a yielding one made them 10x faster
      // (derecho_bench --mode latency). Reading the clock every pass would cost more than the pass.
      if ((idle_passes & 63) != 0 || clock::now() - idle_since < options_.spin) {
        std::this_thread::yield();
        continue;
      }
    }
    sleeps_.fetch_add(1, std::memory_order_relaxed);
    transport_.doorbell().wait(seen, options_.idle_wait);
    idle_passes = 0;
  }
}

PredicateThread::Stats PredicateThread::stats() const {
  return {passes_.load(), firings_.load(), sleeps_.load(), failed_.load()};
}

}  // namespace derecho::sst
