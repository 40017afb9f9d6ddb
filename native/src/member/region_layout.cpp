#include "member/region_layout.hpp"

#include "member/layout_plan.hpp"
#include "member/state_transfer.hpp"
#include "sst/sst.hpp"

namespace derecho {

RegionLayout RegionLayout::compute(const GroupConfig& config) {
  RegionLayout layout;
  layout.sst_offset = kRegionHeaderBytes;
  std::size_t column = kHeartbeatColumn + 1;
  std::size_t edge = 0;
  for (const auto& sg : config.subgroups) {
    layout.subgroups.push_back({column, 0, sg.ring_bytes});
    column += multicast::SubgroupPlacement::columns_for(sg.senders.size(), sg.large_objects.has_value());
    layout.edge_base.push_back(edge);
    edge += sg.senders.size();
  }
  layout.store_first_column = column;
  column += kStoreColumns * config.subgroups.size();
  // The decided layout words: the shard layout, then per subgroup the store restart sources.
  layout.membership = {config.members.size(), edge, column, LayoutPlan::words_for(config) + store_restart_words(config)};
  layout.state_first_column = layout.membership.end();
  layout.sst_columns = layout.state_first_column + 4;
  std::size_t offset =
      align_up(layout.sst_offset + sst::Sst::bytes_needed(config.members.size(), layout.sst_columns), 4096);
  for (std::size_t s = 0; s < config.subgroups.size(); ++s) {
    layout.subgroups[s].ring_offset = offset;
    offset += config.subgroups[s].senders.size() * std::size_t{config.subgroups[s].ring_bytes};
    offset = align_up(offset, 4096);
  }
  // One state-transfer area per member, where its outgoing chunks sit and land: a member that
  // sends one state while it receives another never shares bytes between them.
  layout.state_buffer_offset = offset;
  layout.state_buffer_bytes = config.state_chunk_bytes;
  layout.state_area_bytes = align_up(config.state_chunk_bytes + StateTransfer::kChunkHeaderBytes, kCacheLine);
  offset = align_up(offset + config.members.size() * layout.state_area_bytes, 4096);
  // Last, the large-object areas: one per configured sender of each subgroup that takes them.
  // Only the pages an object touches are ever backed by memory.
  for (std::size_t s = 0; s < config.subgroups.size(); ++s) {
    const auto& large = config.subgroups[s].large_objects;
    if (!large) continue;
    layout.subgroups[s].object_area_offset = offset;
    layout.subgroups[s].object_area_bytes = align_up(large->max_object_bytes, 4096);
    offset += config.subgroups[s].senders.size() * layout.subgroups[s].object_area_bytes;
  }
  layout.region_bytes = offset;
  return layout;
}

std::size_t RegionLayout::store_restart_words(const GroupConfig& config) {
  std::size_t words = 0;
  for (const auto& sg : config.subgroups) words += sg.sharding ? sg.sharding->shards : 1;
  return words;
}

}  // namespace derecho
