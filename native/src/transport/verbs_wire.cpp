#include "transport/verbs_wire.hpp"

#include <algorithm>

namespace derecho::transport::verbs::wire {
namespace {

// All integers are big-endian (network order).
class Writer {
 public:
  void u8(std::uint8_t v) { out_.push_back(v); }
  void u16(std::uint16_t v) {
    u8(static_cast<std::uint8_t>(v >> 8));
    u8(static_cast<std::uint8_t>(v));
  }
  void u32(std::uint32_t v) {
    u16(static_cast<std::uint16_t>(v >> 16));
    u16(static_cast<std::uint16_t>(v));
  }
  void u64(std::uint64_t v) {
    u32(static_cast<std::uint32_t>(v >> 32));
    u32(static_cast<std::uint32_t>(v));
  }
  void bytes(std::span<const std::uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  std::vector<std::uint8_t> take() { return std::move(out_); }

 private:
  std::vector<std::uint8_t> out_;
};

class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> in) : in_(in) {}
  std::uint8_t u8() {
    need(1);
    return in_[pos_++];
  }
  std::uint16_t u16() {
    const std::uint16_t hi = u8();
    return static_cast<std::uint16_t>((hi << 8) | u8());
  }
  std::uint32_t u32() {
    const std::uint32_t hi = u16();
    return (hi << 16) | u16();
  }
  std::uint64_t u64() {
    const std::uint64_t hi = u32();
    return (hi << 32) | u32();
  }
  std::span<const std::uint8_t> bytes(std::size_t n) {
    need(n);
    auto s = in_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  std::size_t left() const { return in_.size() - pos_; }

 private:
  void need(std::size_t n) const {
    if (in_.size() - pos_ < n) throw FrameError("frame body too short");
  }
  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
};

std::vector<std::uint8_t> frame(FrameType type, std::span<const std::uint8_t> body) {
  Writer w;
  w.bytes(kMagic);
  w.u16(kWireVersion);
  w.u16(static_cast<std::uint16_t>(type));
  w.u32(static_cast<std::uint32_t>(body.size()));
  w.bytes(body);
  return w.take();
}

}  // namespace

std::vector<std::uint8_t> encode_hello(const Hello& h) {
  if (h.group.size() > kMaxGroupNameBytes) {
    throw std::invalid_argument("group name longer than 255 bytes cannot be sent in a verbs hello");
  }
  Writer w;
  w.u32(h.from);
  w.u32(h.to);
  w.u32(h.qpn);
  w.u32(h.psn);
  w.u16(h.lid);
  w.u8(h.mtu);
  w.u8(h.flags);
  w.bytes(h.gid);
  w.u32(h.rkey);
  w.u64(h.region_addr);
  w.u64(h.region_bytes);
  w.u16(static_cast<std::uint16_t>(h.group.size()));
  w.bytes(std::span(reinterpret_cast<const std::uint8_t*>(h.group.data()), h.group.size()));
  auto body = w.take();
  return frame(FrameType::hello, body);
}

std::vector<std::uint8_t> encode_ready() { return frame(FrameType::ready, {}); }

std::vector<std::uint8_t> encode_reject(std::string_view reason) {
  reason = reason.substr(0, kMaxRejectBytes);
  Writer w;
  w.u16(static_cast<std::uint16_t>(reason.size()));
  w.bytes(std::span(reinterpret_cast<const std::uint8_t*>(reason.data()), reason.size()));
  auto body = w.take();
  return frame(FrameType::reject, body);
}

std::optional<Frame> take_frame(std::vector<std::uint8_t>& buffer) {
  // Check what is there of the magic even before the whole header arrived.
  const std::size_t magic_have = std::min(buffer.size(), kMagic.size());
  if (!std::equal(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(magic_have),
                  kMagic.begin())) {
    throw FrameError("bad magic (not a derecho verbs side channel)");
  }
  if (buffer.size() < kHeaderBytes) return std::nullopt;
  Reader r{std::span<const std::uint8_t>(buffer).subspan(kMagic.size(), kHeaderBytes - kMagic.size())};
  const std::uint16_t version = r.u16();
  const std::uint16_t type = r.u16();
  const std::uint32_t length = r.u32();
  if (version != kWireVersion) {
    throw FrameError("unsupported wire version " + std::to_string(version) + " (this build speaks " +
                     std::to_string(kWireVersion) + ")");
  }
  if (type < static_cast<std::uint16_t>(FrameType::hello) ||
      type > static_cast<std::uint16_t>(FrameType::reject)) {
    throw FrameError("unknown frame type " + std::to_string(type));
  }
  if (length > kMaxBodyBytes) {
    throw FrameError("frame body of " + std::to_string(length) + " bytes exceeds the limit of " +
                     std::to_string(kMaxBodyBytes));
  }
  if (buffer.size() < kHeaderBytes + length) return std::nullopt;
  Frame f;
  f.type = static_cast<FrameType>(type);
  f.body.assign(buffer.begin() + kHeaderBytes,
                buffer.begin() + static_cast<std::ptrdiff_t>(kHeaderBytes + length));
  buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(kHeaderBytes + length));
  return f;
}

Hello decode_hello(std::span<const std::uint8_t> body) {
  Reader r(body);
  Hello h;
  h.from = r.u32();
  h.to = r.u32();
  h.qpn = r.u32();
  h.psn = r.u32();
  h.lid = r.u16();
  h.mtu = r.u8();
  h.flags = r.u8();
  auto gid = r.bytes(h.gid.size());
  std::copy(gid.begin(), gid.end(), h.gid.begin());
  h.rkey = r.u32();
  h.region_addr = r.u64();
  h.region_bytes = r.u64();
  const std::uint16_t name_len = r.u16();
  if (name_len > kMaxGroupNameBytes) throw FrameError("hello group name too long");
  auto name = r.bytes(name_len);
  h.group.assign(name.begin(), name.end());
  if (r.left() != 0) throw FrameError("hello has trailing bytes");
  if (h.qpn > 0xffffff || h.psn > 0xffffff) throw FrameError("hello qpn/psn exceed 24 bits");
  if (h.mtu < 1 || h.mtu > 5) throw FrameError("hello mtu code " + std::to_string(h.mtu) + " invalid");
  if ((h.flags & ~kHelloFlagEthernet) != 0) throw FrameError("hello has unknown flag bits");
  return h;
}

std::string decode_reject(std::span<const std::uint8_t> body) {
  Reader r(body);
  const std::uint16_t len = r.u16();
  if (len > kMaxRejectBytes) throw FrameError("reject reason too long");
  auto text = r.bytes(len);
  if (r.left() != 0) throw FrameError("reject has trailing bytes");
  return std::string(text.begin(), text.end());
}

}  // namespace derecho::transport::verbs::wire
