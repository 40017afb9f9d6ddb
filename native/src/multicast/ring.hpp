#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <optional>
#include <span>
#include <vector>

namespace derecho::multicast {

// A sender's byte ring (docs/smc-ring.md). Records are 16-byte aligned:
//   u32 length | u16 kind | u16 reserved | u32 count | u32 reserved | payload, padded to 16
// kind message: one application message of `length` bytes (count = 1);
// kind nulls:   `count` consecutive null messages, no payload;
// kind wrap:    the rest of the ring is unused, the next record starts at offset 0;
// kind object:  one large object's descriptor (object_descriptor.hpp, count = 1): the object
//               itself travels through the block relay, not the ring.
// The ring lives at the same offset in every member's region; the sender writes its own copy
// and pushes the written range, receivers read their copy in place.
inline constexpr std::size_t kRecordHeaderBytes = 16;

enum class RecordKind : std::uint16_t { message = 1, nulls = 2, wrap = 3, object = 4 };

struct RecordHeader {
  std::uint32_t length;
  RecordKind kind;
  std::uint16_t reserved0;
  std::uint32_t count;
  std::uint32_t reserved1;
};
static_assert(sizeof(RecordHeader) == kRecordHeaderBytes);

constexpr std::size_t record_bytes(std::size_t payload) {
  return kRecordHeaderBytes + ((payload + 15) & ~std::size_t{15});
}

// A contiguous range of ring bytes that changed and must be pushed.
struct RingRange {
  std::size_t offset;
  std::size_t length;
};

// Sender side. Positions are monotonically growing byte counts; position % capacity is the
// offset in the ring. Space comes back when every member has delivered a record's messages.
class RingWriter {
 public:
  explicit RingWriter(std::span<std::byte> ring);

  std::size_t capacity() const { return ring_.size(); }
  std::size_t free_bytes() const { return ring_.size() - (head_ - tail_); }
  std::uint64_t messages_written() const { return messages_; }

  // Whether a message of this many payload bytes fits now.
  bool can_append(std::size_t payload_bytes) const;
  // Appends one message; false (nothing written) when it does not fit now.
  bool append_message(std::span<const std::byte> payload);
  // Appends one large object's descriptor, as one message; false when it does not fit now.
  bool append_object(std::span<const std::byte> descriptor);
  // Appends `count` null messages as one record; false when it does not fit now.
  bool append_nulls(std::uint32_t count);

  // Frees records whose messages all have an index below `delivered_messages` (counted in
  // this sender's messages, nulls included).
  void release_delivered(std::uint64_t delivered_messages);

  // Byte ranges written since the last call, in write order, adjacent ones merged.
  const std::vector<RingRange>& dirty() const { return dirty_; }
  void clear_dirty() { dirty_.clear(); }

 private:
  bool append_record(RecordKind kind, std::span<const std::byte> payload);
  std::size_t bytes_to_reserve(std::size_t bytes) const;
  std::byte* reserve(std::size_t bytes, std::uint64_t messages);
  void mark_dirty(std::size_t offset, std::size_t length);

  std::span<std::byte> ring_;
  std::uint64_t head_ = 0;
  std::uint64_t tail_ = 0;
  std::uint64_t messages_ = 0;
  std::vector<RingRange> dirty_;
  struct InFlight {
    std::uint64_t end_position;
    std::uint64_t end_message;
  };
  std::deque<InFlight> in_flight_;
};

// Receiver side: walks one sender's ring in order, one message at a time.
class RingReader {
 public:
  struct Message {
    bool is_null;
    std::span<const std::byte> payload;  // an object's descriptor when is_object
    bool is_object = false;
  };

  explicit RingReader(std::span<const std::byte> ring);

  // The next message; the caller guarantees the sender has published it. Throws
  // std::runtime_error on a record that cannot be valid (a corrupted ring).
  Message next();
  std::uint64_t messages_read() const { return messages_; }

 private:
  RecordHeader header_at(std::size_t offset) const;

  std::span<const std::byte> ring_;
  std::uint64_t position_ = 0;
  std::uint64_t messages_ = 0;
  std::uint32_t nulls_left_ = 0;
};

}  // namespace derecho::multicast
