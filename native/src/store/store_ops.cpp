#include "store/store_ops.hpp"

#include <cstring>
#include <stdexcept>

namespace derecho::store {
namespace {

template <typename T>
void put_at(std::vector<std::byte>& out, std::size_t offset, T value) {
  std::memcpy(out.data() + offset, &value, sizeof value);
}

template <typename T>
T get_at(std::span<const std::byte> in, std::size_t offset) {
  T value;
  std::memcpy(&value, in.data() + offset, sizeof value);
  return value;
}

bool valid_kind(std::uint8_t kind) { return kind >= 1 && kind <= 4; }

}  // namespace

std::vector<std::byte> encode_op(const Op& op) {
  std::vector<std::byte> out(kOpHeaderBytes + op.key.size() + op.value.size());
  put_at<std::uint8_t>(out, 0, kOpFormat);
  put_at<std::uint8_t>(out, 1, static_cast<std::uint8_t>(op.kind));
  put_at<std::uint16_t>(out, 2, static_cast<std::uint16_t>(op.key.size()));
  put_at<std::uint32_t>(out, 4, static_cast<std::uint32_t>(op.value.size()));
  put_at<std::uint64_t>(out, 8, op.request);
  put_at<std::uint64_t>(out, 16, op.hlc);
  put_at<std::uint64_t>(out, 24, op.lineage);
  if (!op.key.empty()) std::memcpy(out.data() + kOpHeaderBytes, op.key.data(), op.key.size());
  if (!op.value.empty()) std::memcpy(out.data() + kOpHeaderBytes + op.key.size(), op.value.data(), op.value.size());
  return out;
}

std::optional<Op> decode_op(std::span<const std::byte> bytes, std::string& why) {
  if (bytes.size() < kOpHeaderBytes) {
    why = "store operation of " + std::to_string(bytes.size()) + " bytes is shorter than its 32-byte header";
    return std::nullopt;
  }
  const auto format = get_at<std::uint8_t>(bytes, 0);
  if (format != kOpFormat) {
    why = "store operation format " + std::to_string(format) + " (this member reads format 2)";
    return std::nullopt;
  }
  const auto kind = get_at<std::uint8_t>(bytes, 1);
  if (!valid_kind(kind)) {
    why = "unknown store operation kind " + std::to_string(kind);
    return std::nullopt;
  }
  const std::size_t key_bytes = get_at<std::uint16_t>(bytes, 2);
  const std::size_t value_bytes = get_at<std::uint32_t>(bytes, 4);
  if (kOpHeaderBytes + key_bytes + value_bytes != bytes.size()) {
    why = "store operation lengths (key " + std::to_string(key_bytes) + ", value " + std::to_string(value_bytes) +
          ") do not match its " + std::to_string(bytes.size()) + " bytes";
    return std::nullopt;
  }
  Op op;
  op.kind = static_cast<OpKind>(kind);
  op.request = get_at<std::uint64_t>(bytes, 8);
  op.hlc = get_at<std::uint64_t>(bytes, 16);
  op.lineage = get_at<std::uint64_t>(bytes, 24);
  if (op.hlc > kMaxHlc) {
    why = "store operation stamped " + std::to_string(op.hlc) + ", beyond any clock";
    return std::nullopt;
  }
  op.key = {reinterpret_cast<const char*>(bytes.data() + kOpHeaderBytes), key_bytes};
  op.value = bytes.subspan(kOpHeaderBytes + key_bytes, value_bytes);
  return op;
}

std::vector<std::byte> encode_change(const Change& change) {
  std::vector<std::byte> out(kRecordBodyHeaderBytes + change.key.size() + change.value.size());
  put_at<std::uint8_t>(out, 0, static_cast<std::uint8_t>(change.kind));
  put_at<std::uint8_t>(out, 1, 0);
  put_at<std::uint16_t>(out, 2, static_cast<std::uint16_t>(change.key.size()));
  put_at<std::uint32_t>(out, 4, static_cast<std::uint32_t>(change.value.size()));
  put_at<std::uint32_t>(out, 8, change.sender);
  put_at<std::uint32_t>(out, 12, 0);
  put_at<std::uint64_t>(out, 16, change.request);
  if (!change.key.empty()) std::memcpy(out.data() + kRecordBodyHeaderBytes, change.key.data(), change.key.size());
  if (!change.value.empty()) {
    std::memcpy(out.data() + kRecordBodyHeaderBytes + change.key.size(), change.value.data(), change.value.size());
  }
  return out;
}

Change decode_change(std::span<const std::byte> body) {
  if (body.size() < kRecordBodyHeaderBytes) throw std::runtime_error("store record shorter than its header");
  const auto kind = get_at<std::uint8_t>(body, 0);
  const std::size_t key_bytes = get_at<std::uint16_t>(body, 2);
  const std::size_t value_bytes = get_at<std::uint32_t>(body, 4);
  if (kind < 1 || kind > 3 || kRecordBodyHeaderBytes + key_bytes + value_bytes != body.size()) {
    throw std::runtime_error("store record is not a put, remove or tick of its length");
  }
  Change change;
  change.kind = static_cast<OpKind>(kind);
  change.sender = get_at<std::uint32_t>(body, 8);
  change.request = get_at<std::uint64_t>(body, 16);
  change.key = {reinterpret_cast<const char*>(body.data() + kRecordBodyHeaderBytes), key_bytes};
  change.value = body.subspan(kRecordBodyHeaderBytes + key_bytes, value_bytes);
  return change;
}

}  // namespace derecho::store
