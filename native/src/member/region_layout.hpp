#pragma once
#include <cstddef>
#include <vector>

#include "common/group_config.hpp"
#include "membership/membership_columns.hpp"
#include "multicast/subgroup_multicast.hpp"

namespace derecho {

// Where everything sits in a member's region (docs/region-layout.md). Every member computes the
// same layout from the same config, which is what makes one-sided writes at "the same offset"
// meaningful.
struct RegionLayout {
  static constexpr std::size_t kHeartbeatColumn = 0;

  std::size_t sst_offset = 0;
  std::size_t sst_columns = 0;
  std::vector<multicast::SubgroupPlacement> subgroups;
  // Where each subgroup's sender slots start in a ragged edge (membership::MembershipColumns).
  std::vector<std::size_t> edge_base;
  // Versioned stores: three SST columns per configured subgroup (persisted version, history
  // digest, lineage), before the membership block, so a row seen with its membership columns
  // (a joiner, a restarted member) is seen with them too.
  static constexpr std::size_t kStoreColumns = 3;
  std::size_t store_first_column = 0;
  std::size_t store_persisted_column(std::size_t subgroup) const { return store_first_column + kStoreColumns * subgroup; }
  std::size_t store_digest_column(std::size_t subgroup) const { return store_persisted_column(subgroup) + 1; }
  std::size_t store_lineage_column(std::size_t subgroup) const { return store_persisted_column(subgroup) + 2; }
  membership::MembershipColumns membership;
  // State transfer: four SST columns after the membership block, and after the rings one area
  // per configured member (in member order) of a chunk header and state_buffer_bytes of data.
  std::size_t state_first_column = 0;
  std::size_t state_buffer_offset = 0;
  std::size_t state_buffer_bytes = 0;
  std::size_t state_area_bytes = 0;
  std::size_t region_bytes = 0;

  static RegionLayout compute(const GroupConfig& config);
  // The decision carries, after the shard layout, one word per shard of each subgroup (one for
  // a subgroup that is not sharded): the store restart source of that group.
  static std::size_t store_restart_words(const GroupConfig& config);
};

}  // namespace derecho
