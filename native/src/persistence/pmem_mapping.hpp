#pragma once
#include <cstddef>
#include <filesystem>

namespace derecho::persistence {

// How written bytes are made durable. automatic follows what pmem_map_file found: CPU cache
// flushes (pmem_persist) when the file is DAX-mapped persistent memory, msync otherwise. The
// forced modes let tests drive both paths on any machine; a forced `persist` on a file that is
// not DAX survives a process crash but not a power cut.
enum class FlushMode { automatic, persist, msync };

// One file mapped whole with libpmem, unmapped on destruction.
class PmemMapping {
 public:
  // Creates `path`, which must not exist, with all `bytes` allocated up front (pmem_map_file
  // calls posix_fallocate), so a full filesystem fails here with ENOSPC rather than with SIGBUS
  // on a later store into the mapping. On failure the file is gone again and the thrown
  // std::system_error carries the errno.
  static PmemMapping create(const std::filesystem::path& path, std::size_t bytes);
  static PmemMapping open(const std::filesystem::path& path);

  PmemMapping(PmemMapping&& other) noexcept;
  PmemMapping& operator=(PmemMapping&& other) noexcept;
  PmemMapping(const PmemMapping&) = delete;
  PmemMapping& operator=(const PmemMapping&) = delete;
  ~PmemMapping();

  std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  bool is_pmem() const { return is_pmem_; }

  // Makes [offset, offset + bytes) durable; throws std::system_error naming the file.
  void flush(std::size_t offset, std::size_t bytes, FlushMode mode) const;

 private:
  PmemMapping(std::byte* data, std::size_t size, bool is_pmem, std::filesystem::path path);
  void unmap() noexcept;

  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  bool is_pmem_ = false;
  std::filesystem::path path_;
};

}  // namespace derecho::persistence
