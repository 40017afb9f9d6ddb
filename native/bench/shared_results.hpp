#pragma once
// What the benches' member processes and their parent share: a zeroed object in an anonymous
// shared mapping made before forking, and the one JSON field a bench reads back from a run.
#include <sys/mman.h>

#include <new>
#include <stdexcept>
#include <string>

namespace derecho::bench {

template <typename T>
T* shared_anonymous() {
  void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
  return new (p) T{};
}

// The number after "name": in a bench's own JSON output; 0 when absent.
inline double field(const std::string& json, const std::string& name) {
  const auto at = json.find("\"" + name + "\":");
  return at == std::string::npos ? 0 : std::stod(json.substr(at + name.size() + 3));
}

}  // namespace derecho::bench
