#include "transport/tcp_frame.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace derecho::transport::tcp {
namespace {

void store_le(std::byte* out, std::uint64_t v, std::size_t bytes) {
  for (std::size_t i = 0; i < bytes; ++i) out[i] = static_cast<std::byte>(v >> (8 * i));
}

std::uint64_t load_le(const std::byte* in, std::size_t bytes) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < bytes; ++i) v |= std::to_integer<std::uint64_t>(in[i]) << (8 * i);
  return v;
}

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Payloads up to this share of the buffer are handed out whole; longer writes are streamed.
std::size_t whole_frame_limit(std::size_t capacity) { return capacity / 4; }

}  // namespace

void encode_header(const FrameHeader& h, std::byte* out) {
  store_le(out, h.magic, 4);
  store_le(out + 4, h.version, 2);
  store_le(out + 6, h.kind, 2);
  store_le(out + 8, h.length, 4);
  store_le(out + 12, h.count, 4);
  store_le(out + 16, h.value, 8);
}

FrameHeader decode_header(const std::byte* in) {
  FrameHeader h;
  h.magic = static_cast<std::uint32_t>(load_le(in, 4));
  h.version = static_cast<std::uint16_t>(load_le(in + 4, 2));
  h.kind = static_cast<std::uint16_t>(load_le(in + 6, 2));
  h.length = static_cast<std::uint32_t>(load_le(in + 8, 4));
  h.count = static_cast<std::uint32_t>(load_le(in + 12, 4));
  h.value = load_le(in + 16, 8);
  return h;
}

FrameError validate_header(const FrameHeader& h, std::uint64_t region_bytes) {
  if (h.magic != kMagic) return FrameError::bad_magic;
  if (h.version != kWireVersion) return FrameError::bad_version;
  switch (static_cast<FrameKind>(h.kind)) {
    case FrameKind::hello:
      if (h.length < kHelloFixedBytes || h.length > kMaxHelloPayload) {
        return FrameError::hello_length;
      }
      if (h.count != 0) return FrameError::nonzero_count;
      return FrameError::none;
    case FrameKind::ack:
      if (h.length != 0) return FrameError::ack_payload;
      if (h.count != 0) return FrameError::nonzero_count;
      return FrameError::none;
    case FrameKind::write:
    case FrameKind::bulk: {
      // A bulk frame's payload is its epoch, then the bytes for the region.
      const bool bulk = static_cast<FrameKind>(h.kind) == FrameKind::bulk;
      if (bulk && h.length < kBulkEpochBytes) return FrameError::bulk_without_epoch;
      const std::uint64_t bytes = bulk ? h.length - kBulkEpochBytes : h.length;
      if (bytes > kMaxWritePayload) return FrameError::write_too_long;
      if (h.value < kRegionHeaderBytes) return FrameError::offset_below_header;
      if (h.value > region_bytes || bytes > region_bytes - h.value) {
        return FrameError::past_region_end;
      }
      return FrameError::none;
    }
  }
  return FrameError::unknown_kind;
}

std::string describe(FrameError error, const FrameHeader& h, std::uint64_t region_bytes) {
  switch (error) {
    case FrameError::none: return "no error";
    case FrameError::bad_magic:
      return "magic " + hex(h.magic) + " is not DRTC (" + hex(kMagic) + ")";
    case FrameError::bad_version:
      return "wire version " + std::to_string(h.version) + ", this member speaks " +
             std::to_string(kWireVersion);
    case FrameError::unknown_kind: return "unknown frame kind " + std::to_string(h.kind);
    case FrameError::hello_length:
      return "hello payload of " + std::to_string(h.length) + " bytes, expected " +
             std::to_string(kHelloFixedBytes) + " to " + std::to_string(kMaxHelloPayload);
    case FrameError::nonzero_count:
      return "count " + std::to_string(h.count) + " on a frame of kind " + std::to_string(h.kind) +
             ", expected 0";
    case FrameError::ack_payload:
      return "ack frame with " + std::to_string(h.length) + " payload bytes, expected 0";
    case FrameError::bulk_without_epoch:
      return "bulk frame of " + std::to_string(h.length) + " payload bytes, too short for its epoch (" +
             std::to_string(kBulkEpochBytes) + ")";
    case FrameError::write_too_long:
      return "write length " + std::to_string(h.length) + " exceeds the frame limit (" +
             std::to_string(kMaxWritePayload) + ")";
    case FrameError::offset_below_header:
      return "offset " + std::to_string(h.value) + " below region header (" +
             std::to_string(kRegionHeaderBytes) + ")";
    case FrameError::past_region_end:
      return "write [" + std::to_string(h.value) + ", " + std::to_string(h.value + h.length) +
             ") runs past the region end (" + std::to_string(region_bytes) + ")";
  }
  return "unknown frame error";
}

void append_hello(const Hello& hello, std::vector<std::byte>& out) {
  if (hello.group.size() > kMaxGroupNameBytes) {
    throw std::invalid_argument("group name is " + std::to_string(hello.group.size()) +
                                " bytes, the tcp handshake allows at most " +
                                std::to_string(kMaxGroupNameBytes));
  }
  FrameHeader h;
  h.kind = static_cast<std::uint16_t>(FrameKind::hello);
  h.length = static_cast<std::uint32_t>(kHelloFixedBytes + hello.group.size());
  h.value = hello.region_bytes;
  const std::size_t at = out.size();
  out.resize(at + kHeaderBytes + h.length);
  encode_header(h, out.data() + at);
  std::byte* payload = out.data() + at + kHeaderBytes;
  store_le(payload, hello.sender, 4);
  store_le(payload + 4, hello.receiver, 4);
  std::memcpy(payload + kHelloFixedBytes, hello.group.data(), hello.group.size());
}

Hello decode_hello(const FrameHeader& header, std::span<const std::byte> payload) {
  Hello hello;
  hello.sender = static_cast<MemberId>(load_le(payload.data(), 4));
  hello.receiver = static_cast<MemberId>(load_le(payload.data() + 4, 4));
  hello.group.assign(reinterpret_cast<const char*>(payload.data() + kHelloFixedBytes),
                     payload.size() - kHelloFixedBytes);
  hello.region_bytes = header.value;
  return hello;
}

std::string hello_mismatch(const Hello& got, const Hello& expected) {
  std::string out;
  auto add = [&out](const std::string& what) { out += (out.empty() ? "" : "; ") + what; };
  if (got.group != expected.group) {
    add("group name '" + got.group + "', expected '" + expected.group + "'");
  }
  if (got.region_bytes != expected.region_bytes) {
    add("region size " + std::to_string(got.region_bytes) + ", expected " +
        std::to_string(expected.region_bytes));
  }
  if (got.sender != expected.sender) {
    add("sender member " + std::to_string(got.sender) + ", expected " +
        std::to_string(expected.sender));
  }
  if (got.receiver != expected.receiver) {
    add("addressed to member " + std::to_string(got.receiver) + ", but this is member " +
        std::to_string(expected.receiver));
  }
  return out;
}

void append_ack(std::uint64_t applied, std::vector<std::byte>& out) {
  FrameHeader h;
  h.kind = static_cast<std::uint16_t>(FrameKind::ack);
  h.value = applied;
  const std::size_t at = out.size();
  out.resize(at + kHeaderBytes);
  encode_header(h, out.data() + at);
}

FrameReader::FrameReader(std::size_t capacity, std::uint64_t region_bytes)
    : capacity_(capacity),
      region_bytes_(region_bytes),
      buffer_(std::make_unique_for_overwrite<std::byte[]>(capacity)) {
  if (capacity < kHeaderBytes + kMaxHelloPayload) {
    throw std::invalid_argument("FrameReader capacity " + std::to_string(capacity) +
                                " cannot hold a hello frame");
  }
}

std::span<std::byte> FrameReader::space() {
  if (begin_ == end_) {
    begin_ = end_ = 0;
  } else if (begin_ > 0 && (begin_ + need_ > capacity_ || capacity_ - end_ < capacity_ / 4)) {
    // Only a partial frame (at most a quarter of the buffer) is ever left behind, so this
    // move stays small.
    std::memmove(buffer_.get(), buffer_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  return {buffer_.get() + end_, capacity_ - end_};
}

void FrameReader::commit(std::size_t n) { end_ += n; }

void FrameReader::reset() {
  begin_ = end_ = 0;
  need_ = kHeaderBytes;
  stream_left_ = 0;
  stream_bulk_ = false;
}

void FrameReader::grow(std::size_t capacity) {
  if (capacity <= capacity_) return;
  auto bigger = std::make_unique_for_overwrite<std::byte[]>(capacity);
  std::memcpy(bigger.get(), buffer_.get() + begin_, end_ - begin_);
  end_ -= begin_;
  begin_ = 0;
  buffer_ = std::move(bigger);
  capacity_ = capacity;
}

FrameEvent FrameReader::next() {
  FrameEvent ev;
  const std::size_t avail = end_ - begin_;
  const std::byte* at = buffer_.get() + begin_;

  if (stream_left_ != 0 && stream_bulk_) {
    // Whatever is buffered goes out as one piece; with nothing buffered the caller reads the
    // rest straight into the region (direct()).
    if (avail == 0) {
      need_ = 1;
      return ev;
    }
    const std::size_t n = std::min<std::size_t>(avail, stream_left_);
    ev.kind = FrameEvent::Kind::bulk;
    ev.header = stream_header_;
    ev.offset = stream_offset_;
    ev.epoch = stream_epoch_;
    ev.bytes = {at, n};
    begin_ += n;
    stream_offset_ += n;
    stream_left_ -= static_cast<std::uint32_t>(n);
    if (stream_left_ == 0) {
      ev.completes = stream_header_.count;
      stream_bulk_ = false;
    }
    need_ = kHeaderBytes;
    return ev;
  }

  if (stream_left_ != 0) {
    // Cut at the last 8-byte boundary (of the absolute region offset) that the buffered bytes
    // reach, so no aligned word is split between pieces. The frame's last piece is taken
    // whole once all of it is here, however its end is aligned.
    std::size_t n = stream_left_;
    if (avail < n) {
      const std::uint64_t cut = (stream_offset_ + avail) & ~std::uint64_t{7};
      if (cut <= stream_offset_) {
        // Not even one boundary reached: wait for the bytes up to the next one (or the end).
        need_ = std::min<std::size_t>(stream_left_, 8 - (stream_offset_ % 8));
        return ev;
      }
      n = static_cast<std::size_t>(cut - stream_offset_);
    }
    ev.kind = FrameEvent::Kind::write;
    ev.header = stream_header_;
    ev.offset = stream_offset_;
    ev.bytes = {at, n};
    begin_ += n;
    stream_offset_ += n;
    stream_left_ -= static_cast<std::uint32_t>(n);
    if (stream_left_ == 0) ev.completes = stream_header_.count;
    need_ = kHeaderBytes;
    return ev;
  }

  if (avail < kHeaderBytes) {
    need_ = kHeaderBytes;
    return ev;
  }
  const FrameHeader h = decode_header(at);
  ev.header = h;
  ev.error = validate_header(h, region_bytes_);
  if (ev.error != FrameError::none) {
    ev.kind = FrameEvent::Kind::bad;
    return ev;
  }
  const auto kind = static_cast<FrameKind>(h.kind);
  const std::size_t total = kHeaderBytes + h.length;
  if (kind == FrameKind::bulk) {
    // The epoch first; the bytes for the region then stream through, or straight into place.
    if (avail < kHeaderBytes + kBulkEpochBytes) {
      need_ = kHeaderBytes + kBulkEpochBytes;
      return ev;
    }
    std::memcpy(&stream_epoch_, at + kHeaderBytes, kBulkEpochBytes);
    begin_ += kHeaderBytes + kBulkEpochBytes;
    need_ = kHeaderBytes;
    const std::uint32_t bytes = h.length - static_cast<std::uint32_t>(kBulkEpochBytes);
    if (bytes == 0) {
      ev.kind = FrameEvent::Kind::bulk;
      ev.offset = h.value;
      ev.epoch = stream_epoch_;
      ev.completes = h.count;
      return ev;
    }
    stream_header_ = h;
    stream_offset_ = h.value;
    stream_left_ = bytes;
    stream_bulk_ = true;
    return next();
  }
  if (kind == FrameKind::write && h.length > whole_frame_limit(capacity_)) {
    begin_ += kHeaderBytes;
    stream_header_ = h;
    stream_offset_ = h.value;
    stream_left_ = h.length;
    stream_bulk_ = false;
    return next();
  }
  if (avail < total) {
    need_ = total;
    return ev;
  }
  ev.bytes = {at + kHeaderBytes, h.length};
  begin_ += total;
  need_ = kHeaderBytes;
  switch (kind) {
    case FrameKind::hello: ev.kind = FrameEvent::Kind::hello; break;
    case FrameKind::ack: ev.kind = FrameEvent::Kind::ack; break;
    case FrameKind::write:
      ev.kind = FrameEvent::Kind::write;
      ev.offset = h.value;
      ev.completes = h.count;
      break;
    case FrameKind::bulk: break;  // handled above
  }
  return ev;
}

std::optional<FrameReader::Direct> FrameReader::direct() const {
  if (stream_left_ == 0 || !stream_bulk_ || begin_ != end_) return std::nullopt;
  return Direct{stream_offset_, stream_left_, stream_epoch_};
}

std::uint32_t FrameReader::took_direct(std::size_t n) {
  if (!direct() || n > stream_left_) {
    throw std::logic_error("took_direct(" + std::to_string(n) + ") outside a bulk frame's remaining " +
                           std::to_string(stream_left_) + " bytes");
  }
  stream_offset_ += n;
  stream_left_ -= static_cast<std::uint32_t>(n);
  if (stream_left_ != 0) return 0;
  stream_bulk_ = false;
  need_ = kHeaderBytes;
  return stream_header_.count;
}

std::string FrameReader::describe_truncation() const {
  if (stream_left_ != 0) {
    return "connection closed with " + std::to_string(stream_left_) + " of " +
           std::to_string(stream_header_.length) + " payload bytes of a write still missing";
  }
  const std::size_t have = end_ - begin_;
  if (have < kHeaderBytes) {
    return "connection closed inside a frame header (" + std::to_string(have) + " of " +
           std::to_string(kHeaderBytes) + " bytes)";
  }
  return "connection closed inside a frame (" + std::to_string(have) + " of " +
         std::to_string(need_) + " bytes)";
}

}  // namespace derecho::transport::tcp
