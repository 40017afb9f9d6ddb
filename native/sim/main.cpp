// derecho_sim: explores seeds of the deterministic simulation (simulation.hpp) and prints the
// first failing seed with its trace; `derecho_sim --first SEED --seeds 1` replays it exactly.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>

#include "common/log.hpp"
#include "simulation.hpp"

namespace {

struct Args {
  std::uint64_t first = 1;
  std::uint64_t seeds = 200;
  std::size_t steps = derecho::sim::Options{}.steps;
  std::size_t trace = derecho::sim::Options{}.trace_lines;
  bool keep_going = false;  // explore every seed, report all failures
  bool liveness = true;
  bool verbose = false;     // print the scenario and trace of passing seeds too
  std::size_t dump_every = 0;
  derecho::sim::Options::Features features;
  std::string without;  // as given, for the replay line
};

// --without shards,leave,...: scenarios without those features (to tell which one a failure needs).
void without(const std::string& list, derecho::sim::Options::Features& f) {
  std::size_t at = 0;
  while (at <= list.size()) {
    const std::size_t end = std::min(list.find(',', at), list.size());
    const std::string name = list.substr(at, end - at);
    if (name == "shards") f.shards = false;
    else if (name == "leave") f.leave = false;
    else if (name == "late-snapshots") f.late_snapshots = false;
    else if (name == "big-states") f.big_states = false;
    else if (name == "packed") f.packed = false;
    else if (name == "empty") f.empty = false;
    else if (name == "spares") f.spares = false;
    else if (name == "stores") f.stores = false;
    else if (name == "store-early") f.store_early = false;
    else if (name == "objects") f.objects = false;
    else throw std::invalid_argument("--without: unknown feature '" + name +
                                     "' (shards, leave, late-snapshots, big-states, packed, empty, spares, stores, "
                                     "store-early, objects)");
    at = end + 1;
  }
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--keep-going") {
      a.keep_going = true;
      continue;
    }
    if (flag == "--verbose") {
      a.verbose = true;
      continue;
    }
    if (flag == "--no-liveness") {
      a.liveness = false;
      continue;
    }
    if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--first") a.first = std::stoull(value);
    else if (flag == "--seeds") a.seeds = std::stoull(value);
    else if (flag == "--steps") a.steps = std::stoul(value);
    else if (flag == "--trace") a.trace = std::stoul(value);
    else if (flag == "--dump-every") a.dump_every = std::stoul(value);
    else if (flag == "--without") without(value, a.features), a.without = value;
    else throw std::invalid_argument("unknown option " + flag + " (use --first, --seeds, --steps, --trace, --keep-going, --no-liveness, --verbose, --dump-every, --without)");
  }
  return a;
}

using ull = unsigned long long;

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args args = parse(argc, argv);
    derecho::set_log_level(derecho::LogLevel::error);
    const auto started = std::chrono::steady_clock::now();
    ull passed = 0, failed = 0, delivered = 0, sent = 0, views = 0, breaks = 0, partitions = 0, crashes = 0,
        restarts = 0, joins = 0, freezes = 0, jumps = 0, lost = 0, majority_lost = 0, converged = 0,
        transitions = 0, restores = 0, leaves = 0, left = 0, late = 0, unanswered = 0, packed = 0, empty = 0, objects = 0,
        inadequate = 0, shard_restores = 0, sharded = 0, stores = 0, stores_sharded = 0, store_ops = 0, store_completed = 0,
        store_failed = 0, store_never = 0, store_refused = 0, store_versions = 0, store_reads = 0, store_times = 0,
        store_epochs = 0;
    for (std::uint64_t seed = args.first; seed < args.first + args.seeds; ++seed) {
      const auto out = derecho::sim::run({seed, args.steps, args.trace, args.liveness, args.dump_every, args.features});
      delivered += out.delivered;
      sent += out.sent;
      views += out.views;
      transitions += out.transitions;
      restores += out.restores;
      breaks += out.link_breaks;
      partitions += out.partitions;
      crashes += out.crashes;
      restarts += out.restarts;
      joins += out.late_joins;
      freezes += out.freezes;
      jumps += out.clock_jumps;
      lost += out.lost_by_removal;
      majority_lost += out.majority_lost;
      converged += out.converged;
      leaves += out.leaves;
      left += out.left;
      late += out.snapshots_late;
      unanswered += out.snapshots_unanswered;
      packed += out.packed_sends;
      empty += out.empty_messages;
      objects += out.objects;
      inadequate += out.inadequate_views;
      shard_restores += out.shard_restores;
      sharded += out.sharded;
      stores += out.store;
      stores_sharded += out.store_sharded;
      store_ops += out.store_ops;
      store_completed += out.store_completed;
      store_failed += out.store_failed;
      store_never += out.store_never_applied;
      store_refused += out.store_refused;
      store_versions += out.store_versions;
      store_reads += out.store_reads;
      store_times += out.store_time_answers;
      store_epochs += out.store_epochs;
      if (!out.ok) {
        ++failed;
        std::printf("seed %llu FAILED: %s\nscenario: %s\ntrace (last steps, [step t=simulated time]):\n",
                    static_cast<ull>(seed), out.failure.c_str(), out.scenario.c_str());
        for (const auto& line : out.trace) std::printf("  %s\n", line.c_str());
        std::printf("replay: derecho_sim --first %llu --seeds 1 --steps %zu --trace 400%s\n", static_cast<ull>(seed),
                    args.steps, args.without.empty() ? "" : (" --without " + args.without).c_str());
        if (!args.keep_going) break;
        continue;
      }
      ++passed;
      if (args.verbose) {
        std::printf("seed %llu passed\nscenario: %s\ntrace:\n", static_cast<ull>(seed), out.scenario.c_str());
        for (const auto& line : out.trace) std::printf("  %s\n", line.c_str());
      }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("explored seeds from %llu, %zu steps each, in %.1f s: %llu messages sent, %llu deliveries checked, "
                "%llu views decided, %llu view transitions and %llu state transfers compared; faults: %llu link breaks, %llu partitions, %llu crashes (%llu runs lost their "
                "majority), %llu restarts, %llu late joins, %llu freezes, %llu clock jumps; %llu runs converged; "
                "%llu messages lost with their sender's removal\n",
                static_cast<ull>(args.first), args.steps, secs, sent, delivered, views, transitions, restores, breaks, partitions, crashes,
                majority_lost, restarts, joins, freezes, jumps, converged, lost);
    std::printf("%llu runs sharded (%llu inadequate views, %llu state transfers into shards); %llu leaves asked, %llu "
                "left; snapshots: %llu answered late, %llu never; %llu packed sends, %llu empty messages, %llu large "
                "objects\n",
                sharded, inadequate, shard_restores, leaves, left, late, unanswered, packed, empty, objects);
    std::printf("%llu runs with a store (%llu sharded, %llu histories): %llu store operations, %llu completed, %llu failed "
                "(%llu never applied), %llu refused; %llu versions compared across members, %llu reads and %llu "
                "versionAtTime answers checked\n",
                stores, stores_sharded, store_epochs, store_ops, store_completed, store_failed, store_never, store_refused,
                store_versions, store_reads, store_times);
    std::printf("sim: %llu passed, %llu failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "derecho_sim: %s\n", e.what());
    return 2;
  }
}
