#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/types.hpp"

namespace derecho {

enum class TransportKind { shm, tcp, verbs };

struct MemberAddress {
  MemberId id = 0;
  std::string host;     // IPv4 address or name for tcp/verbs side channel; unused by shm
  std::uint16_t port = 0;
};

// A subgroup split into shards by the layout (docs/layout.md) at every view, instead of one
// fixed member list.
struct ShardingConfig {
  std::uint32_t shards = 1;
  std::uint32_t min_per_shard = 1;
  std::uint32_t max_per_shard = 1;
  std::vector<std::vector<MemberId>> reserved;  // reserved[i]: ids pinned to shard i
};

// A subgroup that is a replicated, versioned key-value store (docs/store.md): every delivered
// put or remove becomes the shard's next version, kept in memory (a window of versions) or in
// a persistent log.
enum class StorageKind { volatile_memory, persistent };
struct StoreConfig {
  StorageKind storage = StorageKind::volatile_memory;
  std::uint64_t window = 100'000;          // volatile: versions kept for reads by version or time
  std::uint32_t max_key_bytes = 256;
  std::uint32_t max_value_bytes = 16u << 10;
  std::uint64_t segment_bytes = 64u << 20;  // persistent: log segment file size
  std::uint64_t max_log_bytes = 0;          // persistent: a quota on the log's segments; 0: the disk
};

// Messages longer than threshold_bytes are objects: instead of the sender's ring they travel
// block by block along a relay schedule (docs/protocol-rdmc.md), straight into an area of
// max_object_bytes that every sender has in every member's region, and are delivered in the
// same total order as the ring's messages.
struct LargeObjectConfig {
  std::uint64_t threshold_bytes = 64u << 10;
  std::uint64_t max_object_bytes = 0;
  std::uint32_t block_bytes = 1u << 20;
};

struct SubgroupConfig {
  std::string name;
  std::vector<MemberId> members;   // receivers, in rank order; for a sharded subgroup, the candidates
  std::vector<MemberId> senders;   // subset of members, in round-robin order; sharded: equal to members
  std::optional<ShardingConfig> sharding;
  std::uint32_t ring_bytes = 1u << 20;        // per-sender ring in every member's region
  std::uint32_t max_message_bytes = 64u << 10;
  std::optional<StoreConfig> store;
  std::optional<LargeObjectConfig> large_objects;
};

// A static group as read from the config file. Validated by validate() before the engine uses it.
struct GroupConfig {
  std::string group_name;          // names shm files and tags tcp handshakes
  TransportKind transport = TransportKind::tcp;
  std::vector<MemberAddress> members;  // member ids are unique; order = SST row order
  std::vector<SubgroupConfig> subgroups;
  // Busy-poll this long after the last progress before sleeping on the doorbell.
  std::chrono::microseconds spin{50};
  // Idle sleep bound: the predicate thread re-checks at least this often even with no wake-up.
  std::chrono::microseconds idle_wait{10'000};
  // Failure detection: every member bumps its heartbeat this often; a member whose heartbeat
  // has not moved for suspect_after is suspected (docs/membership.md).
  std::chrono::milliseconds heartbeat_interval{50};
  std::chrono::milliseconds suspect_after{1000};
  // A broken link is a failure (Derecho's rule). Off only where a test exercises the
  // transport's reconnection under a static membership.
  bool suspect_on_link_down = true;
  // How many of the configured members (the first ones) must be up, reachable and without a
  // view before the first member creates the group; 0: all of them (docs/membership.md).
  std::uint32_t initial_members = 0;
  // State transfer to joiners goes through a buffer of this size in every region, a chunk per
  // round trip.
  std::uint32_t state_chunk_bytes = 64u << 10;
};

// Throws std::invalid_argument naming the offending field.
void validate(const GroupConfig& config);

// Row index of a member in the SST (its position in config.members).
std::size_t member_rank(const GroupConfig& config, MemberId id);

}  // namespace derecho
