#include "store/store_snapshot.hpp"

#include <cstring>
#include <stdexcept>
#include <string>

namespace derecho::store {
namespace {

constexpr std::uint32_t kSnapshotFormat = 2;

template <typename T>
void put(std::vector<std::byte>& out, T value) {
  const auto at = out.size();
  out.resize(at + sizeof value);
  std::memcpy(out.data() + at, &value, sizeof value);
}

void put_bytes(std::vector<std::byte>& out, std::span<const std::byte> bytes) { out.insert(out.end(), bytes.begin(), bytes.end()); }

class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) : in_(in) {}
  template <typename T>
  T take() {
    need(sizeof(T));
    T value;
    std::memcpy(&value, in_.data(), sizeof value);
    in_ = in_.subspan(sizeof value);
    return value;
  }
  std::vector<std::byte> take_bytes(std::uint64_t n) {
    need(n);
    std::vector<std::byte> out(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(n));
    in_ = in_.subspan(n);
    return out;
  }
  bool done() const { return in_.empty(); }

 private:
  void need(std::uint64_t n) const {
    if (in_.size() < n) throw std::runtime_error("store snapshot is cut short");
  }
  std::span<const std::byte> in_;
};

}  // namespace

std::vector<std::byte> encode_snapshot(const StoreSnapshot& snapshot) {
  std::vector<std::byte> out;
  put<std::uint32_t>(out, kSnapshotFormat);
  put<std::uint32_t>(out, snapshot.base ? 1 : 0);
  if (snapshot.base) {
    put<std::uint64_t>(out, snapshot.base->version);
    put<std::uint64_t>(out, snapshot.base->hlc);
    put<std::uint64_t>(out, snapshot.base->digest);
    put<std::uint64_t>(out, snapshot.base->keys.size());
    put_bytes(out, snapshot.base->keys);
  }
  put<std::uint64_t>(out, snapshot.records.size());
  for (const auto& r : snapshot.records) {
    put<std::uint64_t>(out, r.version);
    put<std::uint64_t>(out, r.hlc);
    put<std::uint64_t>(out, r.body.size());
    put_bytes(out, r.body);
  }
  put<std::uint64_t>(out, snapshot.last_requests.size());
  for (const auto& [sender, request] : snapshot.last_requests) {
    put<std::uint64_t>(out, sender);
    put<std::uint64_t>(out, request);
  }
  return out;
}

StoreSnapshot decode_snapshot(std::span<const std::byte> bytes) {
  Reader in(bytes);
  const auto format = in.take<std::uint32_t>();
  if (format != kSnapshotFormat) {
    throw std::runtime_error("store snapshot format " + std::to_string(format) + " (this member reads format 2)");
  }
  StoreSnapshot snapshot;
  if (in.take<std::uint32_t>() != 0) {
    StoreSnapshot::Base base;
    base.version = in.take<std::uint64_t>();
    base.hlc = in.take<std::uint64_t>();
    base.digest = in.take<std::uint64_t>();
    base.keys = in.take_bytes(in.take<std::uint64_t>());
    snapshot.base = std::move(base);
  }
  const auto count = in.take<std::uint64_t>();
  for (std::uint64_t i = 0; i < count; ++i) {
    StoreSnapshot::Record r;
    r.version = in.take<std::uint64_t>();
    r.hlc = in.take<std::uint64_t>();
    r.body = in.take_bytes(in.take<std::uint64_t>());
    if (!snapshot.records.empty() && r.version != snapshot.records.back().version + 1) {
      throw std::runtime_error("store snapshot versions are not contiguous at " + std::to_string(r.version));
    }
    snapshot.records.push_back(std::move(r));
  }
  const auto senders = in.take<std::uint64_t>();
  for (std::uint64_t i = 0; i < senders; ++i) {
    const auto sender = static_cast<std::uint32_t>(in.take<std::uint64_t>());
    snapshot.last_requests.emplace_back(sender, in.take<std::uint64_t>());
  }
  if (!in.done()) throw std::runtime_error("store snapshot has bytes after its last record");
  return snapshot;
}

}  // namespace derecho::store
