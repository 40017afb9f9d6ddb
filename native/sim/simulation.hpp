#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace derecho::sim {

// One seeded run of real members (the engine's Member, SST, predicates and multicast) over an
// in-memory network: the seed decides the group, the subgroups, every send, every write that
// lands, links that break and come back, and consumers that stall. Invariants are checked after
// every step; the same seed replays the same run exactly.
struct Options {
  std::uint64_t seed = 1;
  std::size_t steps = 3000;
};

struct Outcome {
  bool ok = true;
  std::string failure;             // the invariant that broke, with the facts
  std::vector<std::string> trace;  // the last steps before the end, oldest first
  std::size_t members = 0;
  std::size_t subgroups = 0;
  std::uint64_t delivered = 0;     // messages delivered, summed over members
  std::uint64_t link_breaks = 0;
};

Outcome run(const Options& options);

}  // namespace derecho::sim
