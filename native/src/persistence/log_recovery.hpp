#pragma once
#include <deque>
#include <vector>

#include "persistence/log_options.hpp"
#include "persistence/segment_file.hpp"

namespace derecho::persistence {

struct RecoveredLog {
  std::deque<SegmentFile> segments;  // each holds at least one record; versions contiguous across them
  std::vector<Repair> repairs;
};

// Rebuilds a log from its directory: checks every record of every segment in version order and
// cuts at the first one that fails (its segment is zeroed from there, later segments are renamed
// *.damaged, never deleted). Removes empty segments and files left by an interrupted creation.
RecoveredLog recover_log(const LogOptions& options);

}  // namespace derecho::persistence
