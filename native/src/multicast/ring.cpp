#include "multicast/ring.hpp"

#include <stdexcept>
#include <string>

namespace derecho::multicast {
namespace {

void write_header(std::byte* at, std::uint32_t length, RecordKind kind, std::uint32_t count) {
  const RecordHeader h{length, kind, 0, count, 0};
  std::memcpy(at, &h, sizeof h);
}

}  // namespace

RingWriter::RingWriter(std::span<std::byte> ring) : ring_(ring) {
  if (ring.size() < 4 * kRecordHeaderBytes || ring.size() % kRecordHeaderBytes != 0) {
    throw std::invalid_argument("ring size must be a multiple of 16 bytes and hold at least 4 headers");
  }
}

void RingWriter::mark_dirty(std::size_t offset, std::size_t length) {
  if (!dirty_.empty() && dirty_.back().offset + dirty_.back().length == offset) {
    dirty_.back().length += length;
  } else {
    dirty_.push_back({offset, length});
  }
}

// A record never straddles the end of the ring: one that would is preceded by a wrap marker,
// and the bytes skipped count as used until the record is released.
std::size_t RingWriter::bytes_to_reserve(std::size_t bytes) const {
  const std::size_t to_end = ring_.size() - head_ % ring_.size();
  return to_end < bytes ? to_end + bytes : bytes;
}

bool RingWriter::can_append(std::size_t payload_bytes) const {
  return bytes_to_reserve(record_bytes(payload_bytes)) <= free_bytes();
}

std::byte* RingWriter::reserve(std::size_t bytes, std::uint64_t messages) {
  if (bytes_to_reserve(bytes) > free_bytes()) return nullptr;
  const std::size_t at = head_ % ring_.size();
  const std::size_t to_end = ring_.size() - at;
  std::size_t start = at;
  if (to_end < bytes) {
    write_header(ring_.data() + at, 0, RecordKind::wrap, 0);
    mark_dirty(at, kRecordHeaderBytes);
    head_ += to_end;
    start = 0;
  }
  head_ += bytes;
  messages_ += messages;
  in_flight_.push_back({head_, messages_});
  mark_dirty(start, bytes);
  return ring_.data() + start;
}

bool RingWriter::append_record(RecordKind kind, std::span<const std::byte> payload) {
  std::byte* at = reserve(record_bytes(payload.size()), 1);
  if (!at) return false;
  write_header(at, static_cast<std::uint32_t>(payload.size()), kind, 1);
  if (!payload.empty()) std::memcpy(at + kRecordHeaderBytes, payload.data(), payload.size());
  return true;
}

bool RingWriter::append_message(std::span<const std::byte> payload) { return append_record(RecordKind::message, payload); }

bool RingWriter::append_object(std::span<const std::byte> descriptor) { return append_record(RecordKind::object, descriptor); }

bool RingWriter::append_nulls(std::uint32_t count) {
  std::byte* at = reserve(kRecordHeaderBytes, count);
  if (!at) return false;
  write_header(at, 0, RecordKind::nulls, count);
  return true;
}

void RingWriter::release_delivered(std::uint64_t delivered_messages) {
  while (!in_flight_.empty() && in_flight_.front().end_message <= delivered_messages) {
    tail_ = in_flight_.front().end_position;
    in_flight_.pop_front();
  }
}

RingReader::RingReader(std::span<const std::byte> ring) : ring_(ring) {}

RecordHeader RingReader::header_at(std::size_t offset) const {
  RecordHeader h;
  std::memcpy(&h, ring_.data() + offset, sizeof h);
  return h;
}

RingReader::Message RingReader::next() {
  if (nulls_left_ > 0) {
    --nulls_left_;
    ++messages_;
    return {true, {}};
  }
  std::size_t at = position_ % ring_.size();
  RecordHeader h = header_at(at);
  const auto corrupt = [&](const std::string& why) {
    return std::runtime_error("corrupted ring record at offset " + std::to_string(at) + ": " + why);
  };
  if (h.kind == RecordKind::wrap) {
    if (at == 0) throw corrupt("wrap record at the start of the ring");
    position_ += ring_.size() - at;
    at = 0;
    h = header_at(0);
    if (h.kind == RecordKind::wrap) throw corrupt("wrap record right after a wrap");
  }
  switch (h.kind) {
    case RecordKind::nulls:
      if (h.count == 0 || h.length != 0) {
        throw corrupt("null record with count " + std::to_string(h.count) + " length " + std::to_string(h.length));
      }
      position_ += kRecordHeaderBytes;
      nulls_left_ = h.count - 1;
      ++messages_;
      return {true, {}};
    case RecordKind::message:
    case RecordKind::object: {
      if (h.count != 1 || record_bytes(h.length) > ring_.size() - at) {
        throw corrupt("message length " + std::to_string(h.length) + " count " + std::to_string(h.count));
      }
      position_ += record_bytes(h.length);
      ++messages_;
      return {false, ring_.subspan(at + kRecordHeaderBytes, h.length), h.kind == RecordKind::object};
    }
    case RecordKind::wrap: break;
  }
  throw corrupt("unknown kind " + std::to_string(static_cast<unsigned>(h.kind)));
}

}  // namespace derecho::multicast
