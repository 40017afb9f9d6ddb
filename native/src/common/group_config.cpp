#include "common/group_config.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <string>
#include <unordered_set>

namespace derecho {
namespace {

[[noreturn]] void fail(const std::string& field, const std::string& problem) {
  throw std::invalid_argument(field + ": " + problem);
}

bool is_power_of_two(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Bytes a store operation adds to its key and value on the wire (docs/store.md).
constexpr std::uint64_t kStoreOpHeaderBytes = 32;

void validate_store(const StoreConfig& store, const SubgroupConfig& sg, const std::string& field) {
  const std::string f = field + ".store";
  if (sg.senders != sg.members) {
    fail(field + ".senders", "a store's members all write to it: list the same ids as members");
  }
  if (store.max_key_bytes == 0 || store.max_key_bytes > 65535) fail(f + ".maxKeyBytes", "must be 1..65535");
  if (store.max_value_bytes == 0) fail(f + ".maxValueBytes", "must be at least 1");
  const std::uint64_t largest = kStoreOpHeaderBytes + store.max_key_bytes + std::uint64_t{store.max_value_bytes};
  if (largest > sg.max_message_bytes) {
    fail(f + ".maxValueBytes", "a put of maxKeyBytes + maxValueBytes + 32 (" + std::to_string(largest) +
                                   ") must fit maxMessageBytes (" + std::to_string(sg.max_message_bytes) + ")");
  }
  if (store.storage == StorageKind::volatile_memory && store.window == 0) fail(f + ".window", "must be at least 1");
  if (store.storage == StorageKind::persistent) {
    if (store.segment_bytes % 4096 != 0) fail(f + ".segmentBytes", "must be a multiple of 4096");
    if (store.segment_bytes < 2 * largest + 4096) {
      fail(f + ".segmentBytes", "must hold at least two of the largest puts plus 4096 (" +
                                    std::to_string(2 * largest + 4096) + ")");
    }
    if (store.max_log_bytes != 0 && store.max_log_bytes < store.segment_bytes) {
      fail(f + ".maxLogBytes", "must be 0 (no quota) or at least segmentBytes");
    }
  }
}

// Deliveries carry their length in 32 bits (docs/c-api.md). With blocks of at least 4096 bytes
// that is at most 2^20 blocks, which keeps a relay schedule (computed whole) to a few MiB.
constexpr std::uint64_t kMaxObjectBytes = (std::uint64_t{1} << 32) - 1;

void validate_large_objects(const LargeObjectConfig& lo, const SubgroupConfig& sg, const std::string& field) {
  const std::string f = field + ".largeObjects";
  if (sg.store) fail(f, "a store's operations are small: a store subgroup takes no large objects");
  if (lo.threshold_bytes > sg.max_message_bytes) {
    fail(f + ".thresholdBytes", "must be at most maxMessageBytes (" + std::to_string(sg.max_message_bytes) +
                                    "): messages up to it go through the ring");
  }
  if (lo.max_object_bytes <= lo.threshold_bytes) fail(f + ".maxObjectBytes", "must be larger than thresholdBytes");
  if (lo.max_object_bytes > kMaxObjectBytes) fail(f + ".maxObjectBytes", "must be below 4 GiB");
  if (lo.block_bytes < 4096 || lo.block_bytes % 64 != 0) fail(f + ".blockBytes", "must be a multiple of 64, at least 4096");
}

}  // namespace

void validate(const GroupConfig& config) {
  if (config.group_name.empty()) fail("group", "must not be empty");
  // The name becomes part of file names (/dev/shm/derecho-<group>-<id>) and handshakes.
  for (char c : config.group_name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
      fail("group", "may contain only letters, digits, '-' and '_', found '" + std::string(1, c) + "'");
    }
  }
  if (config.members.empty()) fail("members", "at least one member is required");
  // Membership masks hold one bit per configured member in a 40-bit field (docs/membership.md).
  if (config.members.size() > 40) fail("members", "at most 40 members, found " + std::to_string(config.members.size()));
  if (config.initial_members > config.members.size()) {
    fail("initialMembers", "must be at most the number of members (" + std::to_string(config.members.size()) + ")");
  }
  if (config.state_chunk_bytes < 4096 || config.state_chunk_bytes % 64 != 0) {
    fail("stateChunkBytes", "must be a multiple of 64, at least 4096");
  }
  if (config.heartbeat_interval.count() <= 0) fail("heartbeatMillis", "must be at least 1");
  if (config.suspect_after <= config.heartbeat_interval) {
    fail("suspectAfterMillis", "must be longer than heartbeatMillis (" +
                                   std::to_string(config.heartbeat_interval.count()) + ")");
  }
  std::unordered_set<MemberId> ids;
  for (std::size_t i = 0; i < config.members.size(); ++i) {
    const auto& m = config.members[i];
    const std::string field = "members[" + std::to_string(i) + "]";
    if (!ids.insert(m.id).second) fail(field + ".id", "duplicate member id " + std::to_string(m.id));
    if (config.transport != TransportKind::shm) {
      if (m.host.empty()) fail(field + ".host", "must not be empty");
      if (m.port == 0) fail(field + ".port", "must be 1..65535");
    }
  }
  if (config.subgroups.empty()) fail("subgroups", "at least one subgroup is required");
  for (std::size_t s = 0; s < config.subgroups.size(); ++s) {
    const auto& sg = config.subgroups[s];
    const std::string field = "subgroups[" + std::to_string(s) + "]";
    if (sg.members.empty()) fail(field + ".members", "at least one member is required");
    std::unordered_set<MemberId> in_subgroup;
    for (std::size_t i = 0; i < sg.members.size(); ++i) {
      const auto id = sg.members[i];
      const std::string f = field + ".members[" + std::to_string(i) + "]";
      if (!ids.contains(id)) fail(f, "member " + std::to_string(id) + " is not in members");
      if (!in_subgroup.insert(id).second) fail(f, "member " + std::to_string(id) + " listed twice");
    }
    if (sg.senders.empty()) fail(field + ".senders", "at least one sender is required");
    std::unordered_set<MemberId> senders;
    for (std::size_t i = 0; i < sg.senders.size(); ++i) {
      const auto id = sg.senders[i];
      const std::string f = field + ".senders[" + std::to_string(i) + "]";
      if (!in_subgroup.contains(id)) fail(f, "member " + std::to_string(id) + " is not a member of the subgroup");
      if (!senders.insert(id).second) fail(f, "sender " + std::to_string(id) + " listed twice");
    }
    if (sg.sharding && sg.senders != sg.members) {
      fail(field + ".senders", "a sharded subgroup's senders are the members of its shards: list the same ids as members");
    }
    if (sg.max_message_bytes == 0) fail(field + ".maxMessageBytes", "must be at least 1");
    if (!is_power_of_two(sg.ring_bytes)) fail(field + ".ringBytes", "must be a power of two");
    if (sg.ring_bytes < 4ull * sg.max_message_bytes + 64) {
      fail(field + ".ringBytes", "must be at least 4 * maxMessageBytes + 64 (" +
                                     std::to_string(4ull * sg.max_message_bytes + 64) + ")");
    }
    if (sg.store) validate_store(*sg.store, sg, field);
    if (sg.large_objects) validate_large_objects(*sg.large_objects, sg, field);
  }
}

std::size_t member_rank(const GroupConfig& config, MemberId id) {
  const auto it = std::find_if(config.members.begin(), config.members.end(),
                               [id](const MemberAddress& m) { return m.id == id; });
  if (it == config.members.end()) throw std::out_of_range("member " + std::to_string(id) + " is not in the group");
  return static_cast<std::size_t>(it - config.members.begin());
}

}  // namespace derecho
