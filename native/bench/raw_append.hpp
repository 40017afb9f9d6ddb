#pragma once
// What the persistence benches share: a scratch directory on the measured file system, its
// type, and the baseline they compare against: records memcpy'd into a pmem_map_file'd file and
// flushed per batch (pmem_persist on DAX, pmem_msync elsewhere), as a log would, minus the log.
#include <stdlib.h>
#include <sys/vfs.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "persistence/pmem_mapping.hpp"

namespace derecho::bench {

// A directory under `parent`, removed with everything in it.
class ScratchDir {
 public:
  ScratchDir(const std::filesystem::path& parent, const std::string& prefix) {
    std::string pattern = (parent / (prefix + "-XXXXXX")).string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("cannot create a directory under " + parent.string());
    path_ = pattern;
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::string fs_type(const std::filesystem::path& dir) {
  struct statfs st {};
  if (statfs(dir.c_str(), &st) != 0) return "unknown";
  switch (static_cast<unsigned long>(st.f_type)) {
    case 0xEF53: return "ext4";
    case 0x58465342: return "xfs";
    case 0x01021994: return "tmpfs";
    case 0x9123683E: return "btrfs";
    case 0x794C7630: return "overlay";
    case 0x2FC12FC1: return "zfs";
    default: {
      char hex[32];
      std::snprintf(hex, sizeof hex, "0x%lx", static_cast<unsigned long>(st.f_type));
      return hex;
    }
  }
}

struct RawAppendRate {
  double records_per_sec = 0;
  bool is_pmem = false;
};

// Appends `record_bytes` records in batches of `batch` for `seconds` into files of `file_bytes`
// in `dir` (a full file is replaced by a fresh one, as a log moves to a new segment).
inline RawAppendRate raw_append(const std::filesystem::path& dir, const std::string& name, std::size_t file_bytes,
                                std::size_t record_bytes, std::size_t batch, double seconds,
                                persistence::FlushMode mode) {
  using clock_type = std::chrono::steady_clock;
  const std::size_t batch_bytes = batch * record_bytes;
  if (batch_bytes > file_bytes) throw std::invalid_argument("a batch does not fit the baseline file");
  const std::vector<std::byte> record(record_bytes, std::byte{0x5a});
  std::size_t files = 0;
  const auto next_file = [&] { return dir / (name + "-" + std::to_string(files++)); };
  std::filesystem::path file = next_file();
  auto mapping = std::make_unique<persistence::PmemMapping>(persistence::PmemMapping::create(file, file_bytes));
  const bool is_pmem = mapping->is_pmem();
  std::size_t offset = 0;
  std::uint64_t records = 0;
  const auto start = clock_type::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  while (clock_type::now() < end) {
    if (offset + batch_bytes > mapping->size()) {
      mapping.reset();
      std::filesystem::remove(file);
      file = next_file();
      mapping = std::make_unique<persistence::PmemMapping>(persistence::PmemMapping::create(file, file_bytes));
      offset = 0;
    }
    const std::size_t first = offset;
    for (std::size_t i = 0; i < batch; ++i, offset += record_bytes) {
      std::memcpy(mapping->data() + offset, record.data(), record_bytes);
    }
    mapping->flush(first, batch_bytes, mode);
    records += batch;
  }
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  mapping.reset();
  std::filesystem::remove(file);
  return {static_cast<double>(records) / elapsed, is_pmem};
}

}  // namespace derecho::bench
