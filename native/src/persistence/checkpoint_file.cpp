#include "persistence/checkpoint_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "persistence/checksum.hpp"
#include "persistence/posix_file.hpp"

namespace derecho::persistence {
namespace {

constexpr std::array<char, 8> kCheckpointMagic{'D', 'R', 'E', 'C', 'C', 'K', 'P', '\0'};
constexpr std::uint32_t kCheckpointFormatVersion = 1;
constexpr std::size_t kCrcStart = 16;  // the crc covers everything after its own field

struct CheckpointHeader {
  std::array<char, 8> magic;
  std::uint32_t format_version;
  std::uint32_t crc;  // zlib crc32 over bytes [16, end of file)
  std::uint64_t version;
  std::uint64_t payload_bytes;
};
static_assert(sizeof(CheckpointHeader) == 32);

std::uint32_t checkpoint_crc(std::span<const std::byte> header, std::span<const std::byte> payload) {
  return crc32_of({header.subspan(kCrcStart), payload});
}

}  // namespace

void save_checkpoint(const std::filesystem::path& file, std::uint64_t version, std::span<const std::byte> bytes) {
  CheckpointHeader h{};
  h.magic = kCheckpointMagic;
  h.format_version = kCheckpointFormatVersion;
  h.version = version;
  h.payload_bytes = bytes.size();
  std::array<std::byte, sizeof h> raw{};
  std::memcpy(raw.data(), &h, sizeof h);
  h.crc = checkpoint_crc(raw, bytes);
  std::memcpy(raw.data(), &h, sizeof h);

  auto tmp = file;
  tmp += ".tmp";
  {
    const UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) throw errno_error("checkpoint " + tmp.string() + ": creating");
    write_all(fd.get(), raw, tmp);
    write_all(fd.get(), bytes, tmp);
    if (::fsync(fd.get()) != 0) throw errno_error("checkpoint " + tmp.string() + ": fsync");
  }
  std::filesystem::rename(tmp, file);
  sync_directory(file.has_parent_path() ? file.parent_path() : std::filesystem::path("."));
}

std::optional<Checkpoint> load_checkpoint(const std::filesystem::path& file) {
  const UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw errno_error("checkpoint " + file.string() + ": opening");
  }
  const std::vector<std::byte> data = read_all(fd.get(), file);
  const std::string name = "checkpoint " + file.string() + ": ";
  CheckpointHeader h{};
  if (data.size() < sizeof h) {
    throw std::runtime_error(name + "file has " + std::to_string(data.size()) + " bytes, fewer than the " +
                             std::to_string(sizeof h) + "-byte header");
  }
  std::memcpy(&h, data.data(), sizeof h);
  if (h.magic != kCheckpointMagic) throw std::runtime_error(name + "bad magic: not a checkpoint file");
  if (h.format_version != kCheckpointFormatVersion) {
    throw std::runtime_error(name + "format version " + std::to_string(h.format_version) +
                             " is not supported (this build reads version " +
                             std::to_string(kCheckpointFormatVersion) + ")");
  }
  const std::span<const std::byte> all(data);
  const auto payload = all.subspan(sizeof h);
  if (h.payload_bytes != payload.size()) {
    throw std::runtime_error(name + "header says " + std::to_string(h.payload_bytes) + " payload bytes, the file holds " +
                             std::to_string(payload.size()));
  }
  if (checkpoint_crc(all.first(sizeof h), payload) != h.crc) throw std::runtime_error(name + "checksum mismatch");
  return Checkpoint{h.version, {payload.begin(), payload.end()}};
}

}  // namespace derecho::persistence
