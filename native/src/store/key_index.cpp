#include "store/key_index.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace derecho::store {
namespace {

template <typename T>
void append(std::vector<std::byte>& out, T value) {
  const auto at = out.size();
  out.resize(at + sizeof value);
  std::memcpy(out.data() + at, &value, sizeof value);
}

template <typename T>
T take(std::span<const std::byte>& in) {
  if (in.size() < sizeof(T)) throw std::runtime_error("store checkpoint ends in the middle of a key");
  T value;
  std::memcpy(&value, in.data(), sizeof value);
  in = in.subspan(sizeof value);
  return value;
}

}  // namespace

void KeyIndex::apply(std::string_view key, const Write& write, std::span<const std::byte> value) {
  auto it = keys_.find(key);
  if (it == keys_.end()) it = keys_.emplace(std::string(key), KeyState{}).first;
  it->second.history.push_back(write);
  if (write.removed) {
    it->second.latest_value.clear();
  } else {
    it->second.latest_value.assign(value.begin(), value.end());
  }
}

std::optional<KeyIndex::Found> KeyIndex::at(std::string_view key, std::uint64_t version) const {
  const auto it = keys_.find(key);
  if (it == keys_.end()) return std::nullopt;
  const KeyState& k = it->second;
  const auto after = std::upper_bound(k.history.begin(), k.history.end(), version,
                                      [](std::uint64_t v, const Write& w) { return v < w.version; });
  if (after != k.history.begin()) {
    const Write& w = *(after - 1);
    return Found{w, after == k.history.end() ? &k.latest_value : nullptr};
  }
  if (k.base && k.base->version <= version) return Found{*k.base, &k.base_value};
  return std::nullopt;
}

std::vector<std::string> KeyIndex::keys_at(std::uint64_t version) const {
  std::vector<std::string> out;
  for (const auto& [key, state] : keys_) {
    const auto found = at(key, version);
    if (found && !found->write.removed) out.push_back(key);
  }
  return out;
}

void KeyIndex::fold(std::string_view key, const Write& write, std::span<const std::byte> value) {
  const auto it = keys_.find(key);
  if (it == keys_.end() || it->second.history.empty() || it->second.history.front().version != write.version) {
    throw std::logic_error("store index: folding a write that is not the oldest of its key");
  }
  KeyState& k = it->second;
  k.history.erase(k.history.begin());
  if (write.removed) {
    k.base.reset();
    k.base_value.clear();
  } else {
    k.base = write;
    k.base_value.assign(value.begin(), value.end());
  }
  if (k.history.empty()) {
    k.latest_value.clear();
    if (!k.base) keys_.erase(it);
  }
}

void KeyIndex::drop_history() {
  for (auto it = keys_.begin(); it != keys_.end();) {
    it->second.history.clear();
    it->second.latest_value.clear();
    it = it->second.base ? std::next(it) : keys_.erase(it);
  }
}

std::vector<std::byte> KeyIndex::encode_base() const {
  std::vector<std::byte> out;
  std::uint64_t count = 0;
  append<std::uint64_t>(out, 0);
  for (const auto& [key, state] : keys_) {
    if (!state.base) continue;
    ++count;
    append<std::uint16_t>(out, static_cast<std::uint16_t>(key.size()));
    append<std::uint16_t>(out, 0);
    append<std::uint32_t>(out, static_cast<std::uint32_t>(state.base_value.size()));
    append<std::uint64_t>(out, state.base->version);
    append<std::uint64_t>(out, state.base->hlc);
    const auto at = out.size();
    out.resize(at + key.size() + state.base_value.size());
    std::memcpy(out.data() + at, key.data(), key.size());
    if (!state.base_value.empty()) std::memcpy(out.data() + at + key.size(), state.base_value.data(), state.base_value.size());
  }
  std::memcpy(out.data(), &count, sizeof count);
  return out;
}

void KeyIndex::load_base(std::span<const std::byte> bytes) {
  keys_.clear();
  auto count = take<std::uint64_t>(bytes);
  while (count-- > 0) {
    const std::size_t key_bytes = take<std::uint16_t>(bytes);
    take<std::uint16_t>(bytes);
    const std::size_t value_bytes = take<std::uint32_t>(bytes);
    Write w;
    w.version = take<std::uint64_t>(bytes);
    w.hlc = take<std::uint64_t>(bytes);
    if (bytes.size() < key_bytes + value_bytes) throw std::runtime_error("store checkpoint ends in the middle of a key");
    std::string key(reinterpret_cast<const char*>(bytes.data()), key_bytes);
    KeyState state;
    state.base = w;
    state.base_value.assign(bytes.begin() + static_cast<std::ptrdiff_t>(key_bytes),
                            bytes.begin() + static_cast<std::ptrdiff_t>(key_bytes + value_bytes));
    bytes = bytes.subspan(key_bytes + value_bytes);
    keys_.emplace(std::move(key), std::move(state));
  }
  if (!bytes.empty()) throw std::runtime_error("store checkpoint has bytes after its last key");
}

}  // namespace derecho::store
