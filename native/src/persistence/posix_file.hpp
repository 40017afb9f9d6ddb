#pragma once
#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace derecho::persistence {

// The system_error for the errno a failed call just left, with a message naming what failed.
std::system_error errno_error(const std::string& what);

// Owns a file descriptor. close() errors are ignored: every writer fsyncs before it lets go,
// and fsync is where the kernel reports write-back errors.
class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return fd_; }

 private:
  int fd_;
};

// Makes the creations, renames and removals of entries in `dir` durable.
void sync_directory(const std::filesystem::path& dir);

void write_all(int fd, std::span<const std::byte> bytes, const std::filesystem::path& file);
std::vector<std::byte> read_all(int fd, const std::filesystem::path& file);

}  // namespace derecho::persistence
