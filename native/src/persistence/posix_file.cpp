#include "persistence/posix_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace derecho::persistence {

std::system_error errno_error(const std::string& what) {
  return std::system_error(errno, std::generic_category(), what);
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

void sync_directory(const std::filesystem::path& dir) {
  const UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) throw errno_error("opening directory " + dir.string() + " to sync it");
  if (::fsync(fd.get()) != 0) throw errno_error("fsync of directory " + dir.string());
}

void write_all(int fd, std::span<const std::byte> bytes, const std::filesystem::path& file) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw errno_error("writing " + file.string());
    }
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
}

std::vector<std::byte> read_all(int fd, const std::filesystem::path& file) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw errno_error("stat of " + file.string());
  std::vector<std::byte> out(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw errno_error("reading " + file.string());
    }
    if (n == 0) break;  // the file shrank since fstat; the caller validates the length it got
    done += static_cast<std::size_t>(n);
  }
  out.resize(done);
  return out;
}

}  // namespace derecho::persistence
