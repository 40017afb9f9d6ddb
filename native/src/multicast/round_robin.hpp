#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>

namespace derecho::multicast {

// The total order of one subgroup: sender k's i-th message (nulls included) has global index
// i * senders + k, and messages are delivered in index order. Pure arithmetic, no state.
class RoundRobin {
 public:
  explicit RoundRobin(std::size_t senders) : n_(senders) {}

  std::size_t senders() const { return n_; }
  std::uint64_t index_of(std::size_t sender, std::uint64_t seq) const { return seq * n_ + sender; }
  std::size_t sender_of(std::uint64_t index) const { return static_cast<std::size_t>(index % n_); }

  // How many of sender k's messages have a global index below `frontier`.
  std::uint64_t messages_below(std::uint64_t frontier, std::size_t k) const {
    return frontier > k ? (frontier - k + n_ - 1) / n_ : 0;
  }

  // The first global index that is not yet stable, given for every sender how many of its
  // messages every member has received. Everything below it can be delivered.
  std::uint64_t stable_frontier(std::span<const std::uint64_t> received_by_all) const {
    std::uint64_t frontier = std::numeric_limits<std::uint64_t>::max();
    for (std::size_t k = 0; k < n_; ++k) frontier = std::min(frontier, index_of(k, received_by_all[k]));
    return frontier;
  }

  // How many messages sender k must have sent so that every message it has received from the
  // others can be delivered: its own count must pass the highest index it has seen. This is
  // what an idle sender fills with null messages; it never exceeds the highest index seen, so
  // nulls do not trigger more nulls.
  std::uint64_t needed_to_unblock(std::size_t k, std::span<const std::uint64_t> received_by_me) const {
    std::uint64_t needed = 0;
    for (std::size_t j = 0; j < n_; ++j) {
      if (j == k || received_by_me[j] == 0) continue;
      const std::uint64_t latest = index_of(j, received_by_me[j] - 1);
      if (latest > k) needed = std::max(needed, (latest - k) / n_ + 1);
    }
    return needed;
  }

 private:
  std::size_t n_;
};

}  // namespace derecho::multicast
