#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace derecho::store {

// What a store member multicasts (docs/store.md, "Operations"): format 2, a 32-byte header
// (u8 format, u8 kind, u16 key length, u32 value length, u64 request, u64 hlc, u64 lineage) and
// the key and value bytes.
enum class OpKind : std::uint8_t { put = 1, remove = 2, tick = 3, query = 4 };

inline constexpr std::uint8_t kOpFormat = 2;
inline constexpr std::size_t kOpHeaderBytes = 32;

struct Op {
  OpKind kind = OpKind::put;
  std::uint64_t request = 0;  // unique per sender and incarnation, so the sender finds its own
  std::uint64_t hlc = 0;      // the sender's clock when it sent
  // The shard history it was meant for: a member the layout moved sends what it had queued
  // into its new shard, where everyone skips it alike.
  std::uint64_t lineage = 0;
  std::string_view key;
  std::span<const std::byte> value;
};

std::vector<std::byte> encode_op(const Op& op);
// nullopt, with `why` set, for bytes that are not a well-formed operation.
std::optional<Op> decode_op(std::span<const std::byte> bytes, std::string& why);

// Stamps above this are refused as malformed: no clock reaches them, and the stamp rule
// (previous + 1) never wraps.
inline constexpr std::uint64_t kMaxHlc = std::uint64_t{1} << 62;

// What a version holds in the log (format 1): u8 kind, u8 zero, u16 key length, u32 value
// length, u32 sender, u32 zero, u64 request, key, value. The version and its hlc are the log
// record's own; the sender and request let a member that missed the delivery of its own
// operation (it was removed) find it in the state it gets back.
inline constexpr std::size_t kRecordBodyHeaderBytes = 24;

struct Change {
  OpKind kind = OpKind::put;  // put, remove or tick
  std::uint32_t sender = 0;
  std::uint64_t request = 0;
  std::string_view key;
  std::span<const std::byte> value;
};

std::vector<std::byte> encode_change(const Change& change);
// Throws std::runtime_error for a body that is not a change (a damaged log).
Change decode_change(std::span<const std::byte> body);

}  // namespace derecho::store
