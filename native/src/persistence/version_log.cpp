#include "persistence/version_log.hpp"

#include <stdexcept>

namespace derecho::persistence {

void require_next(std::string_view log, bool empty, std::uint64_t last_version, std::uint64_t last_hlc,
                  std::uint64_t version, std::uint64_t hlc) {
  if (version == 0) throw std::invalid_argument(std::string(log) + ": version 0 cannot be appended; versions start at 1");
  if (empty) return;
  if (version != last_version + 1) {
    throw std::invalid_argument(std::string(log) + ": append of version " + std::to_string(version) + ", expected " +
                                std::to_string(last_version + 1) + " (versions are contiguous)");
  }
  // last_at_or_before() binary-searches the hlcs, which only works while they never decrease.
  if (hlc < last_hlc) {
    throw std::invalid_argument(std::string(log) + ": hlc " + std::to_string(hlc) + " of version " + std::to_string(version) +
                                " is below the previous record's hlc " + std::to_string(last_hlc));
  }
}

}  // namespace derecho::persistence
