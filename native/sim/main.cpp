// derecho_sim: explores seeds of the deterministic simulation (simulation.hpp) and prints the
// first failing seed with its trace; `derecho_sim --first SEED --seeds 1` replays it exactly.
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
  std::size_t steps = 3000;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--first") a.first = std::stoull(value);
    else if (flag == "--seeds") a.seeds = std::stoull(value);
    else if (flag == "--steps") a.steps = std::stoul(value);
    else throw std::invalid_argument("unknown option " + flag + " (use --first, --seeds, --steps)");
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args args = parse(argc, argv);
    derecho::set_log_level(derecho::LogLevel::error);
    std::uint64_t passed = 0, delivered = 0, breaks = 0;
    for (std::uint64_t seed = args.first; seed < args.first + args.seeds; ++seed) {
      const auto out = derecho::sim::run({seed, args.steps});
      delivered += out.delivered;
      breaks += out.link_breaks;
      if (!out.ok) {
        std::printf("seed %llu FAILED (%zu members, %zu subgroups): %s\ntrace (last steps):\n",
                    static_cast<unsigned long long>(seed), out.members, out.subgroups, out.failure.c_str());
        for (const auto& line : out.trace) std::printf("  %s\n", line.c_str());
        std::printf("replay: derecho_sim --first %llu --seeds 1 --steps %zu\n", static_cast<unsigned long long>(seed),
                    args.steps);
        std::printf("sim: %llu passed, 1 failed\n", static_cast<unsigned long long>(passed));
        return 1;
      }
      ++passed;
    }
    std::printf("explored seeds %llu..%llu, %zu steps each: %llu deliveries checked, %llu link breaks\n",
                static_cast<unsigned long long>(args.first),
                static_cast<unsigned long long>(args.first + args.seeds - 1), args.steps,
                static_cast<unsigned long long>(delivered), static_cast<unsigned long long>(breaks));
    std::printf("sim: %llu passed, 0 failed\n", static_cast<unsigned long long>(passed));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "derecho_sim: %s\n", e.what());
    return 2;
  }
}
