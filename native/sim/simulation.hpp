#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace derecho::sim {

// One seeded run of real members (the engine's Member: SST, predicates, membership, ordered
// multicast, state transfer) over an in-memory network, with a simulated clock: the seed decides
// the group, the subgroups, every send, every write that lands, every pass, the clock, and the
// faults (broken links, partitions, crashes, restarts, late joins, frozen members, stalled
// consumers). Invariants (docs/simulator.md) are checked after every step; at the end every fault
// heals and the group must converge when a majority of its last view is alive. The same seed
// replays the same run exactly.
struct Options {
  std::uint64_t seed = 1;
  std::size_t steps = 1500;
  std::size_t trace_lines = 80;  // how many of the last steps a failure shows
  bool liveness = true;          // false: only safety invariants (a diagnostic, to look past a liveness bug)
  std::size_t dump_every = 0;    // a diagnostic: every so many steps, the members' own SST rows go into the trace
  // What the scenarios may contain (all by default; switching one off changes what a seed draws).
  struct Features {
    bool shards = true;          // sharded subgroups
    bool leave = true;           // graceful leaves (request_leave)
    bool late_snapshots = true;  // snapshot requests answered late or never
    bool big_states = true;      // snapshots of several state-transfer chunks
    bool packed = true;          // send_packed
    bool empty = true;           // zero-length messages
    bool spares = true;          // initial_members below the configured members
    bool stores = true;          // a versioned store subgroup in a third of the runs
    bool store_early = true;     // store calls at members not yet in any view
    bool objects = true;         // large objects through the block relay in some subgroups
  } features;
};

struct Outcome {
  bool ok = true;
  std::string failure;             // the invariant that broke, with the facts
  std::vector<std::string> trace;  // the last steps before the end, oldest first
  std::string scenario;            // the group and the fault plan, one line
  std::size_t members = 0;
  std::size_t subgroups = 0;
  std::uint64_t delivered = 0;     // messages delivered, summed over incarnations
  std::uint64_t sent = 0;          // messages accepted by send()
  std::uint64_t views = 0;         // the highest view id decided
  std::uint64_t transitions = 0;   // members that went from a view to the next, deliveries compared
  std::uint64_t restores = 0;      // state transfers whose state was checked
  std::uint64_t link_breaks = 0;
  std::uint64_t partitions = 0;
  std::uint64_t crashes = 0;
  std::uint64_t restarts = 0;
  std::uint64_t late_joins = 0;
  std::uint64_t freezes = 0;
  std::uint64_t clock_jumps = 0;
  std::uint64_t leaves = 0;                // members that asked to leave
  std::uint64_t left = 0;                  // ... and reported MembershipEvent::left
  std::uint64_t snapshots_late = 0;        // snapshot requests answered some steps later
  std::uint64_t snapshots_unanswered = 0;  // snapshot requests never answered
  std::uint64_t packed_sends = 0;          // send_packed calls that queued something
  std::uint64_t empty_messages = 0;        // zero-length messages accepted
  std::uint64_t objects = 0;               // large objects accepted (sent through the block relay)
  std::uint64_t inadequate_views = 0;      // views decided inadequate (sharded subgroups wait)
  std::uint64_t shard_restores = 0;        // state transfers into a shard, checked
  bool sharded = false;                    // the group has a sharded subgroup
  std::uint64_t lost_by_removal = 0;  // messages of live senders cut off when they were removed
  bool majority_lost = false;         // a majority of some view crashed: no progress expected
  bool converged = false;             // the liveness phase ended in one common view
  // Versioned store runs (docs/simulator.md, "Stores").
  bool store = false;                      // the group has a store subgroup
  bool store_sharded = false;              // ... and it is sharded
  std::uint64_t store_ops = 0;             // puts, removes, ordered gets and reads by time issued
  std::uint64_t store_completed = 0;       // ... that completed without error
  std::uint64_t store_failed = 0;          // ... that completed with an error (stopped, not_retained)
  std::uint64_t store_never_applied = 0;   // puts and removes failed with "the group never applied it"
  std::uint64_t store_refused = 0;         // calls that threw (busy, stopped, invalid_argument as meant)
  std::uint64_t store_versions = 0;        // versions whose state was compared across members
  std::uint64_t store_reads = 0;           // reads (by version, ordered, by time) checked against the history
  std::uint64_t store_time_answers = 0;    // versionAtTime answers checked (first asks and re-asks)
  std::uint64_t store_epochs = 0;          // histories started (one per shard, and one per restart afresh)
};

Outcome run(const Options& options);

}  // namespace derecho::sim
