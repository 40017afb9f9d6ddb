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
};

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
    else throw std::invalid_argument("unknown option " + flag + " (use --first, --seeds, --steps, --trace, --keep-going, --no-liveness, --verbose, --dump-every)");
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
        transitions = 0, restores = 0;
    for (std::uint64_t seed = args.first; seed < args.first + args.seeds; ++seed) {
      const auto out = derecho::sim::run({seed, args.steps, args.trace, args.liveness, args.dump_every});
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
      if (!out.ok) {
        ++failed;
        std::printf("seed %llu FAILED: %s\nscenario: %s\ntrace (last steps, [step t=simulated time]):\n",
                    static_cast<ull>(seed), out.failure.c_str(), out.scenario.c_str());
        for (const auto& line : out.trace) std::printf("  %s\n", line.c_str());
        std::printf("replay: derecho_sim --first %llu --seeds 1 --steps %zu --trace 400\n", static_cast<ull>(seed),
                    args.steps);
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
    std::printf("sim: %llu passed, %llu failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "derecho_sim: %s\n", e.what());
    return 2;
  }
}
