#include "transport/tcp_frame.hpp"

#include <gtest/gtest.h>

#include <cstring>
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
  // "DRTC" on the wire, then version 1 and kind 2 as little-endian u16.
  EXPECT_EQ(std::memcmp(bytes, "DRTC", 4), 0);
  EXPECT_EQ(bytes[4], std::byte{1});
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
      {"version", with(ok, [](FrameHeader& h) { h.version = 2; }), FrameError::bad_version,
       "wire version 2, this member speaks 1"},
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
