#include "multicast/ring.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

using namespace derecho::multicast;

namespace {

std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> v(s.size());
  if (!s.empty()) std::memcpy(v.data(), s.data(), s.size());
  return v;
}

std::string text(std::span<const std::byte> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

}  // namespace

TEST(Ring, MessagesAndNullsRoundTrip) {
  std::vector<std::byte> ring(256);
  RingWriter w(ring);
  RingReader r(ring);
  ASSERT_TRUE(w.append_message(bytes_of("hello")));
  ASSERT_TRUE(w.append_nulls(3));
  ASSERT_TRUE(w.append_message(bytes_of("")));
  EXPECT_EQ(w.messages_written(), 5u);
  EXPECT_EQ(text(r.next().payload), "hello");
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(r.next().is_null);
  auto empty = r.next();
  EXPECT_FALSE(empty.is_null);
  EXPECT_EQ(empty.payload.size(), 0u);
  EXPECT_EQ(r.messages_read(), 5u);
}

TEST(Ring, FlowControlRefusesUntilDelivered) {
  std::vector<std::byte> ring(128);  // four 32-byte records
  RingWriter w(ring);
  const auto m = bytes_of("0123456789abcdef");  // 16 B payload -> 32 B record
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(w.append_message(m)) << i;
  EXPECT_FALSE(w.can_append(16));
  EXPECT_FALSE(w.append_message(m));
  w.release_delivered(1);  // the first message was delivered everywhere
  EXPECT_TRUE(w.can_append(16));
  EXPECT_TRUE(w.append_message(m));
  EXPECT_FALSE(w.append_message(m));
}

TEST(Ring, RecordThatWouldStraddleTheEndWraps) {
  std::vector<std::byte> ring(128);
  RingWriter w(ring);
  RingReader r(ring);
  ASSERT_TRUE(w.append_message(bytes_of(std::string(40, 'a'))));  // 64 B record at 0
  ASSERT_TRUE(w.append_message(bytes_of(std::string(8, 'b'))));   // 32 B at 64; 32 B left
  w.clear_dirty();
  // 48 B needs 64 B: does not fit in the 32 B tail and the ring is not freed yet.
  EXPECT_FALSE(w.append_message(bytes_of(std::string(48, 'c'))));
  EXPECT_EQ(text(r.next().payload), std::string(40, 'a'));
  EXPECT_EQ(text(r.next().payload), std::string(8, 'b'));
  w.release_delivered(1);
  ASSERT_TRUE(w.append_message(bytes_of(std::string(48, 'c'))));
  // Written: a wrap marker at 96, then the record at 0.
  ASSERT_EQ(w.dirty().size(), 2u);
  EXPECT_EQ(w.dirty()[0].offset, 96u);
  EXPECT_EQ(w.dirty()[1].offset, 0u);
  EXPECT_EQ(w.dirty()[1].length, 64u);
  EXPECT_EQ(text(r.next().payload), std::string(48, 'c'));
}

TEST(Ring, CorruptedRecordIsReportedNotRead) {
  std::vector<std::byte> ring(128);
  RingWriter w(ring);
  ASSERT_TRUE(w.append_message(bytes_of("x")));
  const std::uint32_t huge = 1000;
  std::memcpy(ring.data(), &huge, 4);
  RingReader r(ring);
  EXPECT_THROW(r.next(), std::runtime_error);
}

TEST(Ring, MalformedNullAndWrapRecordsAreReported) {
  std::vector<std::byte> ring(128);
  RingWriter w(ring);
  ASSERT_TRUE(w.append_nulls(2));
  const std::uint32_t length = 8;
  std::memcpy(ring.data(), &length, 4);  // a null record never has a payload
  EXPECT_THROW(RingReader(ring).next(), std::runtime_error);

  std::vector<std::byte> wraps(128);
  const std::uint16_t wrap = 3;
  std::memcpy(wraps.data() + 4, &wrap, 2);  // a wrap at offset 0 would loop forever
  EXPECT_THROW(RingReader(wraps).next(), std::runtime_error);
}
