#include "transport/tcp_frame.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

namespace derecho::transport::tcp {
namespace {

constexpr std::uint64_t kRegion = 1u << 20;

FrameHeader write_header(std::uint64_t offset, std::uint32_t length, std::uint32_t count = 1) {
  FrameHeader h;
  h.kind = static_cast<std::uint16_t>(FrameKind::write);
  h.value = offset;
  h.length = length;
  h.count = count;
  return h;
}

void append_write(std::vector<std::byte>& out, std::uint64_t offset,
                  const std::vector<std::byte>& payload, std::uint32_t count = 1) {
  std::byte header[kHeaderBytes];
  encode_header(write_header(offset, static_cast<std::uint32_t>(payload.size()), count), header);
  out.insert(out.end(), header, header + kHeaderBytes);
  out.insert(out.end(), payload.begin(), payload.end());
}

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 131 + seed) & 0xff);
  return v;
}

TEST(TcpFrame, HeaderIsLittleEndianAndRoundTrips) {
  const FrameHeader h = write_header(0x0102030405060708ull, 0x0a0b0c0d, 0x11223344);
  std::byte bytes[kHeaderBytes];
  encode_header(h, bytes);
  // "DRTC" on the wire, then version 2 and kind 2 as little-endian u16.
  EXPECT_EQ(std::memcmp(bytes, "DRTC", 4), 0);
  EXPECT_EQ(bytes[4], std::byte{2});
  EXPECT_EQ(bytes[5], std::byte{0});
  EXPECT_EQ(bytes[6], std::byte{2});
  EXPECT_EQ(bytes[8], std::byte{0x0d});
  EXPECT_EQ(bytes[12], std::byte{0x44});
  EXPECT_EQ(bytes[16], std::byte{0x08});
  EXPECT_EQ(bytes[23], std::byte{0x01});

  const FrameHeader back = decode_header(bytes);
  EXPECT_EQ(back.magic, kMagic);
  EXPECT_EQ(back.version, kWireVersion);
  EXPECT_EQ(back.kind, h.kind);
  EXPECT_EQ(back.length, h.length);
  EXPECT_EQ(back.count, h.count);
  EXPECT_EQ(back.value, h.value);
}

TEST(TcpFrame, HelloRoundTripsAndReportsEveryMismatch) {
  const Hello hello{3, 7, "sensors", 1u << 20};
  std::vector<std::byte> bytes;
  append_hello(hello, bytes);
  ASSERT_EQ(bytes.size(), kHeaderBytes + kHelloFixedBytes + 7);
  const FrameHeader h = decode_header(bytes.data());
  EXPECT_EQ(validate_header(h, kRegion), FrameError::none);
  const Hello back = decode_hello(h, std::span(bytes).subspan(kHeaderBytes));
  EXPECT_EQ(back.sender, 3u);
  EXPECT_EQ(back.receiver, 7u);
  EXPECT_EQ(back.group, "sensors");
  EXPECT_EQ(back.region_bytes, 1u << 20);
  EXPECT_EQ(hello_mismatch(back, hello), "");

  const std::string all = hello_mismatch(Hello{4, 8, "other", 4096}, hello);
  EXPECT_NE(all.find("group name 'other', expected 'sensors'"), std::string::npos) << all;
  EXPECT_NE(all.find("region size 4096, expected 1048576"), std::string::npos) << all;
  EXPECT_NE(all.find("sender member 4, expected 3"), std::string::npos) << all;
  EXPECT_NE(all.find("addressed to member 8, but this is member 7"), std::string::npos) << all;

  std::vector<std::byte> unused;
  EXPECT_THROW(append_hello(Hello{1, 2, std::string(kMaxGroupNameBytes + 1, 'g'), 4096}, unused),
               std::invalid_argument);
}

TEST(TcpFrame, AckRoundTrips) {
  std::vector<std::byte> bytes;
  append_ack(123456789012ull, bytes);
  ASSERT_EQ(bytes.size(), kHeaderBytes);
  const FrameHeader h = decode_header(bytes.data());
  EXPECT_EQ(validate_header(h, kRegion), FrameError::none);
  EXPECT_EQ(h.kind, static_cast<std::uint16_t>(FrameKind::ack));
  EXPECT_EQ(h.value, 123456789012ull);
}

struct BadCase {
  const char* name;
  FrameHeader header;
  FrameError error;
  const char* text;
};

TEST(TcpFrame, EveryValidationErrorIsDetectedAndDescribed) {
  auto with = [](FrameHeader h, auto change) {
    change(h);
    return h;
  };
  const FrameHeader ok = write_header(8192, 100);
  const BadCase cases[] = {
      {"magic", with(ok, [](FrameHeader& h) { h.magic = 0x12345678; }), FrameError::bad_magic,
       "magic 0x12345678 is not DRTC (0x43545244)"},
      {"version", with(ok, [](FrameHeader& h) { h.version = 1; }), FrameError::bad_version,
       "wire version 1, this member speaks 2"},
      {"kind", with(ok, [](FrameHeader& h) { h.kind = 9; }), FrameError::unknown_kind,
       "unknown frame kind 9"},
      {"hello short", with(ok, [](FrameHeader& h) { h.kind = 1; h.length = 4; h.count = 0; }),
       FrameError::hello_length, "hello payload of 4 bytes, expected 8 to 263"},
      {"hello long", with(ok, [](FrameHeader& h) { h.kind = 1; h.length = 264; h.count = 0; }),
       FrameError::hello_length, "hello payload of 264 bytes"},
      {"hello count", with(ok, [](FrameHeader& h) { h.kind = 1; h.length = 10; h.count = 2; }),
       FrameError::nonzero_count, "count 2 on a frame of kind 1, expected 0"},
      {"ack payload", with(ok, [](FrameHeader& h) { h.kind = 3; h.length = 1; h.count = 0; }),
       FrameError::ack_payload, "ack frame with 1 payload bytes, expected 0"},
      {"ack count", with(ok, [](FrameHeader& h) { h.kind = 3; h.length = 0; h.count = 1; }),
       FrameError::nonzero_count, "count 1 on a frame of kind 3"},
      {"too long", write_header(8192, kMaxWritePayload + 1), FrameError::write_too_long,
       "write length 16777217 exceeds the frame limit (16777216)"},
      {"below header", write_header(12, 8), FrameError::offset_below_header,
       "offset 12 below region header (4096)"},
      {"past end", write_header(kRegion - 8, 16), FrameError::past_region_end,
       "write [1048568, 1048584) runs past the region end (1048576)"},
      {"offset past end", write_header(kRegion + 4096, 0), FrameError::past_region_end,
       "runs past the region end"},
      {"wrapping offset", write_header(~0ull - 4, 16), FrameError::past_region_end,
       "runs past the region end"},
  };
  for (const BadCase& c : cases) {
    EXPECT_EQ(validate_header(c.header, kRegion), c.error) << c.name;
    const std::string text = describe(c.error, c.header, kRegion);
    EXPECT_NE(text.find(c.text), std::string::npos) << c.name << ": " << text;
  }
  EXPECT_EQ(validate_header(ok, kRegion), FrameError::none);
  EXPECT_EQ(validate_header(write_header(kRegion - 16, 16), kRegion), FrameError::none);
  EXPECT_EQ(validate_header(write_header(4096, 0), kRegion), FrameError::none);
  // A bulk write obeys the same bounds as a write for the bytes after its epoch.
  for (const BadCase& c : cases) {
    if (c.header.kind != static_cast<std::uint16_t>(FrameKind::write)) continue;
    FrameHeader bulk = c.header;
    bulk.kind = static_cast<std::uint16_t>(FrameKind::bulk);
    bulk.length += kBulkEpochBytes;
    EXPECT_EQ(validate_header(bulk, kRegion), c.error) << c.name << " (bulk)";
  }
  FrameHeader no_epoch = write_header(8192, 4);
  no_epoch.kind = static_cast<std::uint16_t>(FrameKind::bulk);
  EXPECT_EQ(validate_header(no_epoch, kRegion), FrameError::bulk_without_epoch);
  EXPECT_EQ(describe(FrameError::bulk_without_epoch, no_epoch, kRegion),
            "bulk frame of 4 payload bytes, too short for its epoch (8)");
}

TEST(TcpFrameReader, BulkWritesHandOutWhatIsBufferedThenLetTheCallerReadTheRestInPlace) {
  const auto payload = pattern(100000, 3);
  std::vector<std::byte> stream;
  FrameHeader h = write_header(4096 + 5, static_cast<std::uint32_t>(payload.size() + kBulkEpochBytes), 1);
  h.kind = static_cast<std::uint16_t>(FrameKind::bulk);
  std::byte header[kHeaderBytes];
  encode_header(h, header);
  stream.insert(stream.end(), header, header + kHeaderBytes);
  const std::uint64_t epoch = 42;
  const auto* e = reinterpret_cast<const std::byte*>(&epoch);
  stream.insert(stream.end(), e, e + kBulkEpochBytes);
  stream.insert(stream.end(), payload.begin(), payload.end());
  append_write(stream, 8192, pattern(16, 9));
  constexpr std::size_t kPrefix = kHeaderBytes + kBulkEpochBytes;

  FrameReader reader(4096, kRegion);
  std::vector<std::byte> rebuilt(payload.size());
  std::size_t fed = 0;
  // The header and 1000 payload bytes arrive buffered; the rest, cut at odd places, is read
  // "from the socket" straight into place, as the transport does.
  const std::size_t first = kPrefix + 1000;
  auto space = reader.space();
  std::memcpy(space.data(), stream.data(), first);
  reader.commit(first);
  fed = first;
  FrameEvent ev = reader.next();
  ASSERT_EQ(ev.kind, FrameEvent::Kind::bulk);
  EXPECT_EQ(ev.offset, 4096u + 5);
  EXPECT_EQ(ev.epoch, 42u);
  EXPECT_EQ(ev.bytes.size(), 1000u);
  EXPECT_EQ(ev.completes, 0u);
  std::memcpy(rebuilt.data(), ev.bytes.data(), ev.bytes.size());
  EXPECT_EQ(reader.next().kind, FrameEvent::Kind::need_more);
  std::uint32_t completes = 0;
  for (std::size_t chunk = 1; reader.direct(); chunk = chunk * 3 + 7) {
    const auto d = *reader.direct();
    EXPECT_EQ(d.offset, 4096u + 5 + (fed - kPrefix));
    EXPECT_EQ(d.epoch, 42u);
    const std::size_t n = std::min(chunk, d.left);
    std::memcpy(rebuilt.data() + (d.offset - 4096 - 5), stream.data() + fed, n);
    fed += n;
    completes += reader.took_direct(n);
  }
  EXPECT_EQ(rebuilt, payload);
  EXPECT_EQ(completes, 1u);
  // The next frame parses as usual.
  space = reader.space();
  std::memcpy(space.data(), stream.data() + fed, stream.size() - fed);
  reader.commit(stream.size() - fed);
  ev = reader.next();
  ASSERT_EQ(ev.kind, FrameEvent::Kind::write);
  EXPECT_EQ(ev.offset, 8192u);
  EXPECT_FALSE(reader.mid_frame());
  EXPECT_THROW(reader.took_direct(1), std::logic_error);
}

TEST(TcpFrameReader, ABulkWriteCutShortIsReportedAsTruncated) {
  FrameHeader h = write_header(8192, 5000 + kBulkEpochBytes, 1);
  h.kind = static_cast<std::uint16_t>(FrameKind::bulk);
  FrameReader reader(4096, kRegion);
  auto space = reader.space();
  encode_header(h, space.data());
  std::memset(space.data() + kHeaderBytes, 0, kBulkEpochBytes);
  reader.commit(kHeaderBytes + kBulkEpochBytes);
  EXPECT_EQ(reader.next().kind, FrameEvent::Kind::need_more);
  ASSERT_TRUE(reader.direct());
  EXPECT_EQ(reader.took_direct(300), 0u);
  EXPECT_TRUE(reader.mid_frame());
  EXPECT_NE(reader.describe_truncation().find("4700 of 5008 payload bytes"), std::string::npos) << reader.describe_truncation();
}

TEST(TcpFrameReader, ParsesFramesFedOneByteAtATime) {
  std::vector<std::byte> stream;
  append_hello(Hello{1, 2, "g", kRegion}, stream);
  const auto a = pattern(100, 1);
  const auto b = pattern(8, 2);
  append_write(stream, 8192, a);
  append_write(stream, 4096, b, 3);
  append_ack(42, stream);

  FrameReader reader(4096, kRegion);
  std::vector<FrameEvent::Kind> kinds;
  std::vector<std::vector<std::byte>> payloads;
  std::vector<std::uint32_t> completes;
  for (std::byte byte : stream) {
    ASSERT_EQ(reader.next().kind, FrameEvent::Kind::need_more);
    const auto space = reader.space();
    ASSERT_GE(space.size(), 1u);
    space[0] = byte;
    reader.commit(1);
    for (FrameEvent ev = reader.next(); ev.kind != FrameEvent::Kind::need_more;
         ev = reader.next()) {
      ASSERT_NE(ev.kind, FrameEvent::Kind::bad);
      kinds.push_back(ev.kind);
      payloads.emplace_back(ev.bytes.begin(), ev.bytes.end());
      completes.push_back(ev.completes);
    }
  }
  EXPECT_FALSE(reader.mid_frame());
  ASSERT_EQ(kinds.size(), 4u);
  EXPECT_EQ(kinds[0], FrameEvent::Kind::hello);
  EXPECT_EQ(kinds[1], FrameEvent::Kind::write);
  EXPECT_EQ(payloads[1], a);
  EXPECT_EQ(completes[1], 1u);
  EXPECT_EQ(kinds[2], FrameEvent::Kind::write);
  EXPECT_EQ(payloads[2], b);
  EXPECT_EQ(completes[2], 3u);
  EXPECT_EQ(kinds[3], FrameEvent::Kind::ack);
}

TEST(TcpFrameReader, StreamsLargeWritesInAlignedPieces) {
  // Payload larger than a quarter of the buffer, starting at an unaligned offset, delivered in
  // odd-sized reads: every piece must end on an 8-byte boundary except the last.
  const std::uint64_t offset = 4096 + 3;
  const auto payload = pattern(10000, 7);
  std::vector<std::byte> stream;
  append_write(stream, offset, payload, 2);
  append_write(stream, 8192, pattern(16, 9));

  FrameReader reader(4096, kRegion);
  std::vector<std::byte> rebuilt(payload.size());
  std::uint64_t next_offset = offset;
  std::uint32_t completed = 0;
  int small_frames = 0;
  std::size_t fed = 0;
  while (fed < stream.size()) {
    const auto space = reader.space();
    const std::size_t n = std::min({space.size(), stream.size() - fed, std::size_t{777}});
    std::memcpy(space.data(), stream.data() + fed, n);
    reader.commit(n);
    fed += n;
    for (FrameEvent ev = reader.next(); ev.kind != FrameEvent::Kind::need_more;
         ev = reader.next()) {
      ASSERT_EQ(ev.kind, FrameEvent::Kind::write);
      if (ev.offset == 8192) {
        ++small_frames;
        continue;
      }
      ASSERT_EQ(ev.offset, next_offset);
      std::memcpy(rebuilt.data() + (ev.offset - offset), ev.bytes.data(), ev.bytes.size());
      next_offset += ev.bytes.size();
      if (next_offset != offset + payload.size()) {
        EXPECT_EQ(next_offset % 8, 0u) << "a piece ends mid-word";
        EXPECT_EQ(ev.completes, 0u);
      }
      completed += ev.completes;
    }
  }
  EXPECT_EQ(rebuilt, payload);
  EXPECT_EQ(completed, 2u);
  EXPECT_EQ(small_frames, 1);
  EXPECT_FALSE(reader.mid_frame());
}

// One write frame of a test stream, and what a reader handed out for it.
struct SentWrite {
  std::uint64_t offset;
  std::vector<std::byte> payload;
  std::uint32_t count;
};

struct Piece {
  FrameHeader header;
  std::uint64_t offset;
  std::vector<std::byte> bytes;
  std::uint32_t completes;
};

// Feeds `stream` to `reader` in reads of `chunk()` bytes (capped by the space offered) and
// collects every write event. Fails if the reader ever offers no space while it needs bytes.
template <class Chunk>
std::vector<Piece> feed(FrameReader& reader, const std::vector<std::byte>& stream, Chunk chunk) {
  std::vector<Piece> pieces;
  std::size_t fed = 0;
  while (fed < stream.size()) {
    const auto space = reader.space();
    if (space.empty()) {
      ADD_FAILURE() << "reader offers no space with " << stream.size() - fed << " bytes to go";
      break;
    }
    const std::size_t n = std::min({space.size(), stream.size() - fed, chunk()});
    std::memcpy(space.data(), stream.data() + fed, n);
    reader.commit(n);
    fed += n;
    for (FrameEvent ev = reader.next(); ev.kind != FrameEvent::Kind::need_more;
         ev = reader.next()) {
      if (ev.kind != FrameEvent::Kind::write) {
        ADD_FAILURE() << "unexpected event kind " << static_cast<int>(ev.kind);
        return pieces;
      }
      // Checked before the bytes are touched: a piece must lie inside its frame.
      const std::uint64_t frame_end = ev.header.value + ev.header.length;
      if (ev.offset < ev.header.value || ev.offset > frame_end ||
          ev.bytes.size() > frame_end - ev.offset) {
        ADD_FAILURE() << "piece [" << ev.offset << ", +" << ev.bytes.size()
                      << ") outside its frame [" << ev.header.value << ", " << frame_end << ")";
        return pieces;
      }
      pieces.push_back({ev.header, ev.offset, {ev.bytes.begin(), ev.bytes.end()}, ev.completes});
    }
  }
  return pieces;
}

// Checks that `pieces` are exactly `sent`, in order: every piece lies inside its frame, pieces
// follow each other without gaps, a frame is cut only at 8-byte-aligned region offsets (so no
// aligned word is split between pieces), and only a frame's last piece completes its posts.
void expect_reassembled(const std::vector<SentWrite>& sent, const std::vector<Piece>& pieces) {
  std::size_t p = 0;
  for (std::size_t f = 0; f < sent.size(); ++f) {
    SCOPED_TRACE("frame " + std::to_string(f) + " at offset " + std::to_string(sent[f].offset) +
                 ", " + std::to_string(sent[f].payload.size()) + " bytes");
    const std::uint64_t begin = sent[f].offset;
    const std::uint64_t end = begin + sent[f].payload.size();
    std::vector<std::byte> rebuilt;
    std::uint64_t at = begin;
    std::uint32_t completes = 0;
    do {
      ASSERT_LT(p, pieces.size()) << "pieces missing";
      const Piece& piece = pieces[p++];
      EXPECT_EQ(piece.header.value, begin);
      EXPECT_EQ(piece.header.length, sent[f].payload.size());
      ASSERT_EQ(piece.offset, at) << "gap or overlap between pieces";
      ASSERT_LE(piece.bytes.size(), end - at) << "piece runs past the frame's end";
      if (sent[f].payload.empty()) {
        ASSERT_TRUE(piece.bytes.empty());
      } else {
        ASSERT_FALSE(piece.bytes.empty()) << "empty piece inside a frame";
      }
      rebuilt.insert(rebuilt.end(), piece.bytes.begin(), piece.bytes.end());
      at += piece.bytes.size();
      completes += piece.completes;
      if (at != end) {
        EXPECT_EQ(at % 8, 0u) << "a piece ends mid-word at " << at;
        EXPECT_EQ(piece.completes, 0u) << "a piece before the last completes posts";
      }
    } while (at != end);
    EXPECT_EQ(completes, sent[f].count);
    EXPECT_TRUE(rebuilt == sent[f].payload) << "payload differs";
  }
  EXPECT_EQ(p, pieces.size()) << "extra pieces";
}

// Write frames at every offset alignment, with lengths that are not multiples of 8, most of
// them long enough to stream through a buffer of `capacity`, including one that ends exactly at
// the region's end.
std::vector<SentWrite> unaligned_writes(std::size_t capacity, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<SentWrite> sent;
  std::uint64_t offset = 4096;
  for (std::uint64_t misalign = 0; misalign < 8; ++misalign) {
    const std::size_t len = capacity / 4 + 1 + rng() % (3 * capacity);
    sent.push_back({offset + misalign, pattern(len, static_cast<unsigned>(rng())),
                    static_cast<std::uint32_t>(1 + rng() % 3)});
    offset += 4 * capacity + 64;
    // A small frame (handed out whole) in between, at an odd offset.
    sent.push_back({offset + 5, pattern(1 + rng() % 30, static_cast<unsigned>(rng())), 1});
    offset += 64;
  }
  // One starting a byte short of a word boundary.
  sent.push_back({offset + 7, pattern(capacity / 4 + 2, 3), 1});
  const std::size_t tail = capacity / 4 + 13;
  sent.push_back({kRegion - tail, pattern(tail, 4), 2});
  return sent;
}

std::vector<std::byte> encode_writes(const std::vector<SentWrite>& sent) {
  std::vector<std::byte> stream;
  for (const SentWrite& w : sent) {
    const auto h = write_header(w.offset, static_cast<std::uint32_t>(w.payload.size()), w.count);
    EXPECT_EQ(validate_header(h, kRegion), FrameError::none) << "test frame at " << w.offset;
    append_write(stream, w.offset, w.payload, w.count);
  }
  return stream;
}

TEST(TcpFrameReader, StreamedWriteWithUnalignedOffsetWaitsForAWordBoundary) {
  // Regression: with fewer bytes buffered than reach the next 8-byte boundary, the cut used to
  // underflow and hand out a span of nearly 2^64 bytes.
  const auto payload = pattern(2000, 1);
  std::vector<std::byte> stream;
  append_write(stream, 4097, payload);
  FrameReader reader(4096, kRegion);

  auto space = reader.space();
  std::memcpy(space.data(), stream.data(), kHeaderBytes + 3);
  reader.commit(kHeaderBytes + 3);
  EXPECT_EQ(reader.next().kind, FrameEvent::Kind::need_more);
  EXPECT_TRUE(reader.mid_frame());

  // Four more bytes reach offset 4104: the first piece is [4097, 4104).
  space = reader.space();
  ASSERT_GE(space.size(), 4u);
  std::memcpy(space.data(), stream.data() + kHeaderBytes + 3, 4);
  reader.commit(4);
  FrameEvent ev = reader.next();
  ASSERT_EQ(ev.kind, FrameEvent::Kind::write);
  EXPECT_EQ(ev.offset, 4097u);
  ASSERT_EQ(ev.bytes.size(), 7u);
  EXPECT_TRUE(std::equal(ev.bytes.begin(), ev.bytes.end(), payload.begin()));
  EXPECT_EQ(ev.completes, 0u);
  EXPECT_EQ(reader.next().kind, FrameEvent::Kind::need_more);

  // Seven more bytes do not reach 4112.
  space = reader.space();
  std::memcpy(space.data(), stream.data() + kHeaderBytes + 7, 7);
  reader.commit(7);
  EXPECT_EQ(reader.next().kind, FrameEvent::Kind::need_more);

  // The rest arrives: one piece to the frame's (unaligned) end, completing the post.
  const std::size_t rest = stream.size() - (kHeaderBytes + 14);
  space = reader.space();
  ASSERT_GE(space.size(), rest);
  std::memcpy(space.data(), stream.data() + kHeaderBytes + 14, rest);
  reader.commit(rest);
  ev = reader.next();
  ASSERT_EQ(ev.kind, FrameEvent::Kind::write);
  EXPECT_EQ(ev.offset, 4104u);
  ASSERT_EQ(ev.bytes.size(), payload.size() - 7);
  EXPECT_TRUE(std::equal(ev.bytes.begin(), ev.bytes.end(), payload.begin() + 7));
  EXPECT_EQ(ev.completes, 1u);
  EXPECT_EQ(reader.next().kind, FrameEvent::Kind::need_more);
  EXPECT_FALSE(reader.mid_frame());
}

TEST(TcpFrameReader, UnalignedStreamedWritesFedOneByteAtATimeReassemble) {
  for (const std::size_t capacity : {std::size_t{4096}, std::size_t{1000}}) {
    SCOPED_TRACE("capacity " + std::to_string(capacity));
    const auto sent = unaligned_writes(capacity, 11);
    FrameReader reader(capacity, kRegion);
    const auto pieces = feed(reader, encode_writes(sent), [] { return std::size_t{1}; });
    expect_reassembled(sent, pieces);
    EXPECT_FALSE(reader.mid_frame());
  }
}

TEST(TcpFrameReader, UnalignedStreamedWritesFedInRandomChunksReassemble) {
  for (const std::size_t capacity : {std::size_t{4096}, std::size_t{1000}, std::size_t{16384}}) {
    for (unsigned seed = 1; seed <= 20; ++seed) {
      SCOPED_TRACE("capacity " + std::to_string(capacity) + ", seed " + std::to_string(seed));
      const auto sent = unaligned_writes(capacity, seed);
      std::mt19937 rng(seed * 7919);
      // Mostly short reads (fewer bytes than reach a word boundary), some long ones.
      auto chunk = [&rng, capacity]() -> std::size_t {
        switch (rng() % 4) {
          case 0: return 1 + rng() % 7;
          case 1: return 1 + rng() % 64;
          case 2: return 1 + rng() % capacity;
          default: return 1 + rng() % (2 * capacity);
        }
      };
      FrameReader reader(capacity, kRegion);
      const auto pieces = feed(reader, encode_writes(sent), chunk);
      expect_reassembled(sent, pieces);
      EXPECT_FALSE(reader.mid_frame());
      if (::testing::Test::HasFailure()) return;
    }
  }
}

TEST(TcpFrameReader, ReportsBadHeaderAndTruncation) {
  std::vector<std::byte> stream;
  append_write(stream, 12, pattern(8, 1));
  FrameReader reader(4096, kRegion);
  auto space = reader.space();
  std::memcpy(space.data(), stream.data(), stream.size());
  reader.commit(stream.size());
  const FrameEvent ev = reader.next();
  ASSERT_EQ(ev.kind, FrameEvent::Kind::bad);
  EXPECT_EQ(ev.error, FrameError::offset_below_header);

  FrameReader partial(4096, kRegion);
  std::vector<std::byte> frame;
  append_write(frame, 8192, pattern(100, 1));
  space = partial.space();
  std::memcpy(space.data(), frame.data(), 50);
  partial.commit(50);
  EXPECT_EQ(partial.next().kind, FrameEvent::Kind::need_more);
  EXPECT_TRUE(partial.mid_frame());
  EXPECT_EQ(partial.describe_truncation(), "connection closed inside a frame (50 of 124 bytes)");

  FrameReader header_only(4096, kRegion);
  space = header_only.space();
  std::memcpy(space.data(), frame.data(), 10);
  header_only.commit(10);
  EXPECT_EQ(header_only.next().kind, FrameEvent::Kind::need_more);
  EXPECT_EQ(header_only.describe_truncation(),
            "connection closed inside a frame header (10 of 24 bytes)");
}

TEST(TcpFrameReader, GrowKeepsUnparsedBytes) {
  std::vector<std::byte> stream;
  append_write(stream, 8192, pattern(3000, 5));
  FrameReader reader(4096, kRegion);
  auto space = reader.space();
  std::memcpy(space.data(), stream.data(), 1000);
  reader.commit(1000);
  reader.grow(1u << 20);
  space = reader.space();
  ASSERT_GE(space.size(), stream.size() - 1000);
  std::memcpy(space.data(), stream.data() + 1000, stream.size() - 1000);
  reader.commit(stream.size() - 1000);
  std::vector<std::byte> got;
  for (FrameEvent ev = reader.next(); ev.kind != FrameEvent::Kind::need_more; ev = reader.next()) {
    ASSERT_EQ(ev.kind, FrameEvent::Kind::write);
    got.insert(got.end(), ev.bytes.begin(), ev.bytes.end());
  }
  EXPECT_EQ(got, pattern(3000, 5));
}

}  // namespace
}  // namespace derecho::transport::tcp
