#include "multicast/relay_schedule.hpp"

#include <algorithm>
#include <bit>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>

namespace derecho::multicast {
namespace {

// The blocks one rank holds.
class BlockSet {
 public:
  explicit BlockSet(std::size_t blocks) : words_((blocks + 63) / 64, 0) {}

  void add(std::size_t block) { words_[block / 64] |= std::uint64_t{1} << (block % 64); }
  bool has(std::size_t block) const { return (words_[block / 64] >> (block % 64)) & 1; }
  void fill(std::size_t blocks) {
    for (std::size_t b = 0; b < blocks; ++b) add(b);
  }

  // The highest block in this set that `other` lacks.
  std::optional<std::size_t> highest_missing_from(const BlockSet& other) const {
    for (std::size_t w = words_.size(); w-- > 0;) {
      const std::uint64_t bits = words_[w] & ~other.words_[w];
      if (bits != 0) return w * 64 + 63 - static_cast<std::size_t>(std::countl_zero(bits));
    }
    return std::nullopt;
  }

 private:
  std::vector<std::uint64_t> words_;
};

}  // namespace

std::uint32_t RelaySchedule::lower_bound(std::size_t members, std::size_t blocks) {
  if (members < 2 || blocks == 0) return 0;
  const auto depth = static_cast<std::uint32_t>(std::bit_width(members - 1));  // ceil(log2 members)
  return static_cast<std::uint32_t>(blocks) + depth - 1;
}

RelaySchedule RelaySchedule::compute(std::size_t members, std::size_t blocks) {
  if (members == 0) throw std::invalid_argument("a relay schedule needs at least the sender");
  if (blocks == 0) throw std::invalid_argument("a relay schedule needs at least one block");
  if (blocks > (std::size_t{1} << 31)) {
    throw std::invalid_argument("a relay schedule of " + std::to_string(blocks) + " blocks is too long");
  }
  RelaySchedule s;
  s.blocks_ = blocks;
  s.sends_.resize(members);
  s.receives_.resize(members);
  std::vector<BlockSet> have(members, BlockSet(blocks));
  std::vector<std::size_t> held(members, 0);
  have[0].fill(blocks);
  held[0] = blocks;
  const auto dimensions = std::max<std::size_t>(1, static_cast<std::size_t>(std::bit_width(members - 1)));
  std::size_t next_new = 0;  // the sender's first block nobody else has yet
  std::size_t complete = 1;
  std::vector<bool> sending(members), receiving(members);
  std::vector<std::size_t> idle;
  struct Move {
    std::size_t from, to, block;
  };
  std::vector<Move> moves;
  // What `from` gives `to`: the sender a new block while any is left, a relay the newest it has.
  const auto offer = [&](std::size_t from, std::size_t to) -> std::optional<std::size_t> {
    if (from == 0 && next_new < blocks) return next_new;
    return have[from].highest_missing_from(have[to]);
  };
  const auto move = [&](std::size_t from, std::size_t to, std::size_t block) {
    if (from == 0 && block == next_new) ++next_new;
    moves.push_back({from, to, block});
    sending[from] = receiving[to] = true;
  };
  for (std::uint32_t step = 0; complete < members; ++step) {
    std::fill(sending.begin(), sending.end(), false);
    std::fill(receiving.begin(), receiving.end(), false);
    moves.clear();
    // The hypercube exchange of the binomial pipeline: along one dimension per step, every pair
    // trades blocks. With a power-of-two member count this alone takes the fewest steps.
    const std::size_t bit = std::size_t{1} << (step % dimensions);
    for (std::size_t u = 0; u < members; ++u) {
      const std::size_t v = u ^ bit;
      if (v >= members || v == 0) continue;
      if (const auto block = offer(u, v)) move(u, v, *block);
    }
    // Ranks whose partner does not exist (or had nothing for them) are matched among those
    // still free to send: the poorest first, each with the sender's new block or else the
    // newest block a free relay holds.
    idle.clear();
    for (std::size_t r = 1; r < members; ++r) {
      if (!receiving[r] && held[r] < blocks) idle.push_back(r);
    }
    std::stable_sort(idle.begin(), idle.end(), [&](std::size_t a, std::size_t b) { return held[a] < held[b]; });
    for (std::size_t r : idle) {
      std::optional<std::size_t> from;
      std::size_t best = 0;
      bool best_is_new = false;
      for (std::size_t candidate = 0; candidate < members; ++candidate) {
        if (candidate == r || sending[candidate]) continue;
        const auto block = offer(candidate, r);
        if (!block) continue;
        const bool is_new = candidate == 0 && next_new < blocks;
        if (!from || (is_new && !best_is_new) || (is_new == best_is_new && *block > best)) {
          from = candidate;
          best = *block;
          best_is_new = is_new;
        }
      }
      if (from) move(*from, r, best);
    }
    for (const Move& m : moves) {
      s.sends_[m.from].push_back({step, static_cast<std::uint32_t>(m.to), static_cast<std::uint32_t>(m.block)});
      s.receives_[m.to].push_back({step, static_cast<std::uint32_t>(m.from), static_cast<std::uint32_t>(m.block)});
      have[m.to].add(m.block);
      if (++held[m.to] == blocks) ++complete;
    }
    s.steps_ = step + 1;
  }
  return s;
}

}  // namespace derecho::multicast
