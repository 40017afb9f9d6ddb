#pragma once
#include <cstddef>
#include <cstdint>

namespace derecho::membership {

// The membership block of an SST row (docs/membership.md). Order matters: a row is pushed as
// one ascending copy, so a reader that sees a later column has also seen the earlier columns
// written in the same or an earlier push. Proposals (slots) come before the columns that
// announce them (promise, proposed, commit).
//
// A slot holds one proposed next view, every word tagged with the ballot that wrote it so a
// copy torn by a concurrent rewrite is recognised: next_vid, members (bit per configured member
// rank), previous (the members of the view it follows, so a joiner can tell who joined), boot[rank] (the incarnation each member had when it was admitted), edge[e] (the
// ragged edge: per subgroup and configured sender slot, how many of its messages survive),
// layout[l] (the shard map of the next view, decided with it so joiners get it too).
// Two slots, by parity of next_vid, so the decision for view v+1 stays readable while view v+2
// is being decided.
struct MembershipColumns {
  std::size_t universe = 0;    // configured members
  std::size_t edge_words = 0;  // configured sender slots over all subgroups
  std::size_t first = 0;
  std::size_t layout_words = 0;  // the shard layout the next view runs with (the member layer's encoding)

  std::size_t slot_words() const { return 3 + universe + edge_words + layout_words; }
  std::size_t slot(std::uint64_t next_vid) const { return first + (next_vid & 1) * slot_words(); }
  static constexpr std::size_t kNextVid = 0, kMembers = 1, kPrevious = 2, kBoots = 3;
  std::size_t edge_offset() const { return kBoots + universe; }
  std::size_t layout_offset() const { return edge_offset() + edge_words; }

  std::size_t promise() const { return first + 2 * slot_words(); }
  std::size_t prepare() const { return promise() + 1; }
  std::size_t proposed() const { return promise() + 2; }
  std::size_t commit() const { return promise() + 3; }
  std::size_t boot() const { return promise() + 4; }
  std::size_t join() const { return promise() + 5; }
  std::size_t view_mask() const { return promise() + 6; }
  std::size_t vid() const { return promise() + 7; }
  std::size_t suspected() const { return promise() + 8; }
  std::size_t wedged() const { return promise() + 9; }
  std::size_t reach() const { return promise() + 10; }  // members this one has a working link to
  std::size_t end() const { return promise() + 11; }
};

// Ballots: (round << 6) | (leader rank + 1), unique per leader, below 2^20. A slot word's tag
// is the ballot and the low 4 bits of next_vid, so a slot copied while being rewritten for a
// later transition, by the same ballot, is not taken for a whole one.
inline constexpr unsigned kValueBits = 40;
inline constexpr std::uint64_t kValueMask = (std::uint64_t{1} << kValueBits) - 1;
inline constexpr std::uint64_t kMaxUniverse = kValueBits;

inline constexpr std::uint64_t kMaxBallot = (std::uint64_t{1} << 20) - 1;
constexpr std::uint64_t slot_tag(std::uint64_t next_vid, std::uint64_t ballot) { return ((next_vid & 0xf) << 20) | (ballot & kMaxBallot); }
constexpr std::uint64_t tagged(std::uint64_t tag, std::uint64_t value) { return (tag << kValueBits) | (value & kValueMask); }
constexpr std::uint64_t tag_of(std::uint64_t word) { return word >> kValueBits; }
constexpr std::uint64_t value_of(std::uint64_t word) { return word & kValueMask; }

// promise, prepare, proposed, commit: which transition (next view id) and which ballot.
constexpr std::uint64_t ballot_ref(std::uint64_t next_vid, std::uint64_t ballot) { return (next_vid << 32) | ballot; }
constexpr std::uint64_t ref_vid(std::uint64_t ref) { return ref >> 32; }
constexpr std::uint64_t ref_ballot(std::uint64_t ref) { return ref & 0xffffffffu; }

}  // namespace derecho::membership
