#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/types.hpp"

// The tcp transport's wire format (docs/wire-tcp.md): pure encode/decode/validate, no sockets,
// so every rule can be tested byte by byte.
namespace derecho::transport::tcp {

inline constexpr std::uint32_t kMagic = 0x43545244;  // "DRTC" in little-endian byte order
inline constexpr std::uint16_t kWireVersion = 2;
inline constexpr std::size_t kHeaderBytes = 24;
// Larger posts are cut into several frames; a receiver refuses anything longer.
inline constexpr std::uint32_t kMaxWritePayload = 16u << 20;
inline constexpr std::size_t kMaxGroupNameBytes = 255;
inline constexpr std::size_t kHelloFixedBytes = 8;
inline constexpr std::size_t kMaxHelloPayload = kHelloFixedBytes + kMaxGroupNameBytes;
// A bulk frame's payload starts with the writer's epoch.
inline constexpr std::size_t kBulkEpochBytes = 8;

enum class FrameKind : std::uint16_t { hello = 1, write = 2, ack = 3, bulk = 4 };

// Field meanings depend on the kind:
//   hello: value = region bytes, length = hello payload bytes, count = 0
//   write: value = region offset, length = payload bytes, count = post_write calls it completes
//   bulk:  as write, for bytes nobody reads until a later write announces them (post_bulk_write);
//          the payload starts with the writer's epoch (u64), then the bytes for `value`
//   ack:   value = cumulative count of applied writes on this connection, length = count = 0
struct FrameHeader {
  std::uint32_t magic = kMagic;
  std::uint16_t version = kWireVersion;
  std::uint16_t kind = 0;
  std::uint32_t length = 0;
  std::uint32_t count = 0;
  std::uint64_t value = 0;
};

enum class FrameError {
  none,
  bad_magic,
  bad_version,
  unknown_kind,
  hello_length,
  nonzero_count,
  ack_payload,
  write_too_long,
  bulk_without_epoch,
  offset_below_header,
  past_region_end,
};

void encode_header(const FrameHeader& header, std::byte* out);
FrameHeader decode_header(const std::byte* in);

// Checks one header against the receiver's region size; FrameError::none when acceptable.
FrameError validate_header(const FrameHeader& header, std::uint64_t region_bytes);
// Says what was expected and what was found, e.g. "offset 12 below region header (4096)".
std::string describe(FrameError error, const FrameHeader& header, std::uint64_t region_bytes);

struct Hello {
  MemberId sender = 0;
  MemberId receiver = 0;  // who the sender believes it reached: catches swapped addresses
  std::string group;
  std::uint64_t region_bytes = 0;
};

// Appends the whole hello frame (header and payload) to `out`.
void append_hello(const Hello& hello, std::vector<std::byte>& out);
Hello decode_hello(const FrameHeader& header, std::span<const std::byte> payload);
// Empty when `got` matches `expected`, otherwise every field that differs.
std::string hello_mismatch(const Hello& got, const Hello& expected);

void append_ack(std::uint64_t applied, std::vector<std::byte>& out);

// Next item parsed from a FrameReader. Payload spans point into the reader's buffer and stay
// valid until the next call to next() or space().
struct FrameEvent {
  enum class Kind { need_more, hello, write, bulk, ack, bad };
  Kind kind = Kind::need_more;
  FrameHeader header;
  FrameError error = FrameError::none;
  // write: bytes to store at `offset`; a frame larger than a quarter of the buffer arrives as
  // several of these, cut only at 8-byte-aligned offsets so no aligned word is ever torn.
  // bulk: bytes of a bulk frame that were already buffered, cut anywhere (see direct()), and
  // the frame's epoch.
  std::uint64_t epoch = 0;
  std::uint64_t offset = 0;
  std::span<const std::byte> bytes;
  // write, bulk: posts completed once `bytes` is applied (non-zero on a frame's last piece).
  std::uint32_t completes = 0;
};

// Incremental parser for one byte stream: read into space(), commit(), then drain next().
// Small frames are handed out whole; large writes stream through in aligned pieces, so the
// buffer never has to hold a whole 16 MiB frame.
class FrameReader {
 public:
  FrameReader(std::size_t capacity, std::uint64_t region_bytes);

  std::span<std::byte> space();
  void commit(std::size_t n);
  FrameEvent next();

  // Inside a bulk frame with nothing buffered: where its remaining payload goes, so the caller
  // can read it from the socket straight into the region (no copy through this buffer), then
  // report the bytes it read with took_direct().
  struct Direct {
    std::uint64_t offset;
    std::size_t left;
    std::uint64_t epoch;
  };
  std::optional<Direct> direct() const;
  // Returns the frame's count once its last byte is in, else 0.
  std::uint32_t took_direct(std::size_t n);

  // Forgets all buffered bytes, for a new connection.
  void reset();
  // Enlarges the buffer, keeping unparsed bytes (a connection starts small until it is trusted).
  void grow(std::size_t capacity);

  // True when the stream stopped inside a frame (used to report truncation at EOF).
  bool mid_frame() const { return begin_ != end_ || stream_left_ != 0; }
  std::string describe_truncation() const;

 private:
  std::size_t capacity_;
  std::uint64_t region_bytes_;
  std::unique_ptr<std::byte[]> buffer_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::size_t need_ = kHeaderBytes;  // bytes from begin_ the next event requires
  FrameHeader stream_header_;
  std::uint64_t stream_offset_ = 0;
  std::uint32_t stream_left_ = 0;
  bool stream_bulk_ = false;
  std::uint64_t stream_epoch_ = 0;
};

}  // namespace derecho::transport::tcp
