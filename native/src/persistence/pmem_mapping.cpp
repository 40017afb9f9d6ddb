#include "persistence/pmem_mapping.hpp"

#include <libpmem.h>

#include <cerrno>
#include <utility>

#include "persistence/posix_file.hpp"

namespace derecho::persistence {

PmemMapping::PmemMapping(std::byte* data, std::size_t size, bool is_pmem, std::filesystem::path path)
    : data_(data), size_(size), is_pmem_(is_pmem), path_(std::move(path)) {}

PmemMapping PmemMapping::create(const std::filesystem::path& path, std::size_t bytes) {
  std::size_t mapped = 0;
  int is_pmem = 0;
  void* addr = pmem_map_file(path.c_str(), bytes, PMEM_FILE_CREATE | PMEM_FILE_EXCL, 0644, &mapped, &is_pmem);
  if (addr == nullptr) throw errno_error("pmem_map_file creating " + path.string());
  return PmemMapping(static_cast<std::byte*>(addr), mapped, is_pmem != 0, path);
}

PmemMapping PmemMapping::open(const std::filesystem::path& path) {
  std::size_t mapped = 0;
  int is_pmem = 0;
  void* addr = pmem_map_file(path.c_str(), 0, 0, 0, &mapped, &is_pmem);
  if (addr == nullptr) throw errno_error("pmem_map_file opening " + path.string());
  return PmemMapping(static_cast<std::byte*>(addr), mapped, is_pmem != 0, path);
}

PmemMapping::PmemMapping(PmemMapping&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      is_pmem_(other.is_pmem_),
      path_(std::move(other.path_)) {}

PmemMapping& PmemMapping::operator=(PmemMapping&& other) noexcept {
  if (this != &other) {
    unmap();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    is_pmem_ = other.is_pmem_;
    path_ = std::move(other.path_);
  }
  return *this;
}

PmemMapping::~PmemMapping() { unmap(); }

void PmemMapping::unmap() noexcept {
  if (data_ != nullptr) pmem_unmap(data_, size_);
  data_ = nullptr;
}

void PmemMapping::flush(std::size_t offset, std::size_t bytes, FlushMode mode) const {
  if (bytes == 0) return;
  const bool use_persist = mode == FlushMode::persist || (mode == FlushMode::automatic && is_pmem_);
  if (use_persist) {
    pmem_persist(data_ + offset, bytes);
  } else if (pmem_msync(data_ + offset, bytes) != 0) {
    throw errno_error("msync of " + path_.string());
  }
}

}  // namespace derecho::persistence
