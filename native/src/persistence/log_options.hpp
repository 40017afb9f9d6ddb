#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "persistence/pmem_mapping.hpp"

namespace derecho::persistence {

struct LogOptions {
  std::filesystem::path dir;              // created if missing
  std::size_t segment_bytes = 64u << 20;  // a multiple of 4096, each segment preallocated whole
  FlushMode flush = FlushMode::automatic;
  std::uint64_t max_bytes = 0;  // 0: no quota; else the segment bytes allowed, past which append() returns full
};

// Something open() found damaged and cut (docs/log-format.md, "Repair").
struct Repair {
  std::filesystem::path file;
  std::uint64_t offset;         // where in `file` the cut starts
  std::uint64_t bytes_dropped;  // zeroed in `file`, or the whole file when it was renamed *.damaged
  std::string reason;
};

}  // namespace derecho::persistence
