#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <vector>

namespace derecho::persistence {

// A store's state as of one version, kept so the log below that version can be truncated.
struct Checkpoint {
  std::uint64_t version;
  std::vector<std::byte> bytes;
};

// Replaces the checkpoint at `file` atomically and durably: writes `file`.tmp, fsyncs it,
// renames it over `file` and fsyncs the directory. Throws std::system_error naming the file.
void save_checkpoint(const std::filesystem::path& file, std::uint64_t version, std::span<const std::byte> bytes);

// nullopt when there is no checkpoint at `file`; std::runtime_error naming the file and what is
// wrong when there is one that fails its checks.
std::optional<Checkpoint> load_checkpoint(const std::filesystem::path& file);

}  // namespace derecho::persistence
