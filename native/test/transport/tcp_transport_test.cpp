#include "transport/tcp_transport.hpp"

#include <sys/resource.h>

#include "../support/free_ports.hpp"
#include "../support/link_events.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/log.hpp"
#include "transport/tcp_frame.hpp"
#include "transport/tcp_socket.hpp"

namespace derecho::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using tcp::Fd;

constexpr std::size_t kRegion = 1u << 20;
constexpr auto kPatience = 5s;
constexpr char kGroup[] = "tcp-test";

using derecho::testing::eventually;
using derecho::testing::free_ports;
using derecho::testing::take_up_events;

GroupConfig make_group(const std::vector<std::uint16_t>& ports, std::string name = kGroup) {
  GroupConfig group;
  group.group_name = std::move(name);
  group.transport = TransportKind::tcp;
  for (std::size_t i = 0; i < ports.size(); ++i) {
    group.members.push_back({static_cast<MemberId>(i + 1), "127.0.0.1", ports[i]});
  }
  return group;
}

std::unique_ptr<Transport> make(const GroupConfig& group, MemberId self,
                                std::size_t region_bytes = kRegion) {
  return make_tcp_transport(TransportOptions{group, self, region_bytes});
}

std::uint64_t load_word(Transport& t, std::size_t offset) {
  auto* word = reinterpret_cast<std::uint64_t*>(t.region().data() + offset);
  return std::atomic_ref<std::uint64_t>(*word).load(std::memory_order_acquire);
}

void store_word(Transport& t, std::size_t offset, std::uint64_t value) {
  std::memcpy(t.region().data() + offset, &value, sizeof value);
}

void fill(Transport& t, std::size_t offset, std::size_t len, unsigned seed) {
  for (std::size_t i = 0; i < len; ++i) {
    t.region()[offset + i] = static_cast<std::byte>((i * 31 + seed) & 0xff);
  }
}

bool same_bytes(Transport& a, Transport& b, std::size_t offset, std::size_t len) {
  return std::memcmp(a.region().data() + offset, b.region().data() + offset, len) == 0;
}

// Waits on `t`'s doorbell (as the engine would) until the word at `offset` reaches `value`.
bool wait_word(Transport& t, std::size_t offset, std::uint64_t value) {
  const auto deadline = Clock::now() + kPatience;
  for (;;) {
    const std::uint32_t seen = t.doorbell().snapshot();
    if (load_word(t, offset) >= value) return true;
    if (Clock::now() > deadline) return false;
    t.doorbell().wait(seen, 10ms);
  }
}

// Starts every transport, waits until each has all its links up, and takes every transport's
// up event for each of its peers, so writes between any two of them are accepted.
void start_all(const std::vector<Transport*>& all) {
  for (Transport* t : all) t->start(0ms);
  for (Transport* t : all) t->start(kPatience);
  for (Transport* t : all) {
    std::vector<MemberId> peers;
    for (Transport* other : all) {
      if (other == t) continue;
      ASSERT_TRUE(t->link_up(other->self())) << t->self() << "->" << other->self();
      peers.push_back(other->self());
    }
    ASSERT_TRUE(take_up_events(*t, peers)) << "member " << t->self() << " got no up events";
  }
}

// Collects link events until one matches, keeping the ones seen on the way.
bool wait_event(Transport& t, MemberId peer, bool up, std::vector<LinkEvent>& seen) {
  return eventually([&] {
    for (LinkEvent& e : t.take_link_events()) seen.push_back(std::move(e));
    for (const LinkEvent& e : seen) {
      if (e.peer == peer && e.up == up) return true;
    }
    return false;
  });
}

class LogCapture {
 public:
  LogCapture() {
    set_log_sink([this](LogLevel level, std::string_view, std::string_view message) {
      std::lock_guard lock(mutex_);
      lines_.push_back(std::string(to_string(level)) + " " + std::string(message));
    });
  }
  ~LogCapture() { set_log_sink(nullptr); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  bool saw(const std::string& needle) {
    std::lock_guard lock(mutex_);
    for (const auto& line : lines_) {
      if (line.find(needle) != std::string::npos) return true;
    }
    return false;
  }
  bool wait_for(const std::string& needle) {
    return eventually([&] { return saw(needle); });
  }
  std::string dump() {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& line : lines_) out += line + "\n";
    return out;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> lines_;
};

// A hand-driven socket speaking (or abusing) the wire format.
class RawSocket {
 public:
  explicit RawSocket(Fd fd) : fd_(std::move(fd)) {}
  static RawSocket connect_to(std::uint16_t port) {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    return RawSocket(std::move(fd));
  }

  void send_bytes(const std::vector<std::byte>& bytes) {
    ASSERT_EQ(::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  void send_hello(MemberId sender, MemberId receiver, const std::string& group = kGroup,
                  std::uint64_t region = kRegion) {
    std::vector<std::byte> bytes;
    tcp::append_hello(tcp::Hello{sender, receiver, group, region}, bytes);
    send_bytes(bytes);
  }
  void send_write_header(std::uint64_t offset, std::uint32_t length) {
    tcp::FrameHeader h;
    h.kind = static_cast<std::uint16_t>(tcp::FrameKind::write);
    h.value = offset;
    h.length = length;
    h.count = 1;
    std::vector<std::byte> bytes(tcp::kHeaderBytes);
    tcp::encode_header(h, bytes.data());
    send_bytes(bytes);
  }

  // Reads exactly n bytes, or fewer if the connection ends or the deadline passes.
  std::vector<std::byte> read_exactly(std::size_t n) {
    std::vector<std::byte> out(n);
    std::size_t have = 0;
    const auto deadline = Clock::now() + kPatience;
    while (have < n && Clock::now() < deadline) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 10) <= 0) continue;
      const ssize_t r = ::recv(fd_.get(), out.data() + have, n - have, 0);
      if (r <= 0) break;
      have += static_cast<std::size_t>(r);
    }
    out.resize(have);
    return out;
  }
  std::optional<tcp::FrameHeader> read_frame(std::vector<std::byte>* payload = nullptr) {
    const auto header = read_exactly(tcp::kHeaderBytes);
    if (header.size() != tcp::kHeaderBytes) return std::nullopt;
    const tcp::FrameHeader h = tcp::decode_header(header.data());
    auto body = read_exactly(h.length);
    if (body.size() != h.length) return std::nullopt;
    if (payload != nullptr) *payload = std::move(body);
    return h;
  }
  // True once the other side has closed the connection (EOF or reset).
  bool closed_by_peer() {
    const auto deadline = Clock::now() + kPatience;
    std::byte sink[4096];
    while (Clock::now() < deadline) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 10) <= 0) continue;
      const ssize_t r = ::recv(fd_.get(), sink, sizeof sink, 0);
      if (r == 0 || (r < 0 && errno == ECONNRESET)) return true;
    }
    return false;
  }
  int fd() const { return fd_.get(); }

 private:
  Fd fd_;
};

// A listener standing in for an absent member, so tests can play its side of a handshake.
class RawListener {
 public:
  explicit RawListener(std::uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    std::string error;
    fd_ = tcp::listen_on(addr, error);
    EXPECT_TRUE(fd_) << error;
  }
  std::optional<RawSocket> accept_one() {
    const auto deadline = Clock::now() + kPatience;
    while (Clock::now() < deadline) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 10) <= 0) continue;
      const int fd = ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) return RawSocket(Fd(fd));
    }
    return std::nullopt;
  }

 private:
  Fd fd_;
};

// Writes flow both ways between two started transports (used after abuse to show they survive).
void expect_writes_flow(Transport& a, Transport& b, std::uint64_t marker) {
  store_word(a, 16384, marker);
  a.post_write(b.self(), 16384, 8);
  a.flush();
  EXPECT_TRUE(wait_word(b, 16384, marker)) << a.self() << " -> " << b.self();
  store_word(b, 16392, marker);
  b.post_write(a.self(), 16392, 8);
  b.flush();
  EXPECT_TRUE(wait_word(a, 16392, marker)) << b.self() << " -> " << a.self();
}

TEST(TcpTransport, DataIsVisibleBeforeTheCounterThatFollowsIt) {
  const auto group = make_group(free_ports(2));
  auto a = make(group, 1);
  auto b = make(group, 2);
  start_all({a.get(), b.get()});

  constexpr std::uint64_t kRounds = 3000;
  constexpr std::size_t kCounter = 4096;
  constexpr std::size_t kData = 8192;
  constexpr std::size_t kDataWords = 16;
  std::atomic<bool> reader_ok{true};
  std::thread reader([&] {
    const auto deadline = Clock::now() + kPatience;
    std::uint64_t counter = 0;
    while (counter < kRounds && Clock::now() < deadline) {
      const std::uint32_t seen = b->doorbell().snapshot();
      counter = load_word(*b, kCounter);
      // Every data word was written before the counter that announced it.
      for (std::size_t w = 0; w < kDataWords; ++w) {
        if (load_word(*b, kData + 8 * w) < counter) reader_ok = false;
      }
      if (counter < kRounds) b->doorbell().wait(seen, 10ms);
    }
    if (counter != kRounds) reader_ok = false;
  });
  for (std::uint64_t i = 1; i <= kRounds; ++i) {
    for (std::size_t w = 0; w < kDataWords; ++w) store_word(*a, kData + 8 * w, i);
    a->post_write(2, kData, 8 * kDataWords);
    store_word(*a, kCounter, i);
    a->post_write(2, kCounter, 8);
    if (i % 7 == 0) a->flush();
  }
  a->flush();
  reader.join();
  EXPECT_TRUE(reader_ok);
  EXPECT_EQ(load_word(*b, kCounter), kRounds);
  EXPECT_TRUE(eventually([&] { return a->completed(2) == 2 * kRounds; })) << a->completed(2);
  EXPECT_EQ(a->bad_frames() + b->bad_frames(), 0u);
}

// Bulk writes (large-object blocks) go from the region to the socket and from the socket into
// the region without a copy in between; the counter posted after them still lands after them.
TEST(TcpTransport, BulkWritesLandBeforeTheCounterThatFollowsThem) {
  const auto group = make_group(free_ports(2));
  constexpr std::size_t kRegionBig = 64u << 20;
  auto a = make(group, 1, kRegionBig);
  auto b = make(group, 2, kRegionBig);
  start_all({a.get(), b.get()});
  constexpr std::size_t kCounter = 4096;
  constexpr std::size_t kData = 1u << 20;
  // Sizes around the reader's buffer and the 16 MiB frame limit, at unaligned offsets.
  const std::size_t sizes[] = {1, 4095, 300001, (16u << 20) + 13, 5u << 20};
  std::uint64_t round = 0;
  for (std::size_t size : sizes) {
    ++round;
    const std::size_t at = kData + round * 3;
    fill(*a, at, size, static_cast<unsigned>(round));
    a->post_bulk_write(2, at, size, 1);
    store_word(*a, kCounter, round);
    a->post_write(2, kCounter, 8);
    a->flush();
    ASSERT_TRUE(wait_word(*b, kCounter, round)) << "round " << round;
    EXPECT_TRUE(same_bytes(*a, *b, at, size)) << size << " bytes";
  }
  EXPECT_TRUE(eventually([&] { return a->completed(2) == 2 * round; })) << a->completed(2);
  EXPECT_EQ(a->bad_frames() + b->bad_frames(), 0u);
  EXPECT_EQ(a->queued_bytes(2), 0u);

  // Once b is fenced beyond an epoch, bulk writes of it are read off the socket and dropped;
  // writes after them still land, and of the current epoch bulk writes land again.
  b->fence_bulk_below(5);
  const std::size_t at = kData + 64;
  fill(*a, at, 100000, 7);
  const auto before = std::vector<std::byte>(b->region().begin() + at, b->region().begin() + at + 100000);
  a->post_bulk_write(2, at, 100000, 4);
  store_word(*a, kCounter, ++round);
  a->post_write(2, kCounter, 8);
  a->flush();
  ASSERT_TRUE(wait_word(*b, kCounter, round));
  EXPECT_TRUE(std::equal(before.begin(), before.end(), b->region().begin() + at)) << "a fenced bulk write landed";
  a->post_bulk_write(2, at, 100000, 5);
  store_word(*a, kCounter, ++round);
  a->post_write(2, kCounter, 8);
  a->flush();
  ASSERT_TRUE(wait_word(*b, kCounter, round));
  EXPECT_TRUE(same_bytes(*a, *b, at, 100000));
  EXPECT_EQ(a->bad_frames() + b->bad_frames(), 0u);
}

TEST(TcpTransport, DoorbellRingsOnlyAfterTheBytesLanded) {
  const auto group = make_group(free_ports(2));
  auto a = make(group, 1);
  auto b = make(group, 2);
  // start_all took b's link-up event, so the doorbell ring that came with it is already over.
  start_all({a.get(), b.get()});

  for (std::uint64_t i = 1; i <= 50; ++i) {
    const std::uint32_t seen = b->doorbell().snapshot();
    store_word(*a, 4096, i);
    a->post_write(2, 4096, 8);
    a->flush();
    ASSERT_TRUE(eventually([&] { return b->doorbell().snapshot() != seen; })) << i;
    EXPECT_EQ(load_word(*b, 4096), i);
  }
}

TEST(TcpTransport, CompletedCountsPostsEvenWhenContiguousWritesCoalesce) {
  const auto group = make_group(free_ports(2));
  auto a = make(group, 1);
  auto b = make(group, 2);
  start_all({a.get(), b.get()});

  // 5000 contiguous 8-byte posts (coalesced into few frames) then 5000 scattered ones.
  constexpr std::size_t kPosts = 5000;
  fill(*a, 4096, 8 * kPosts, 3);
  for (std::size_t i = 0; i < kPosts; ++i) a->post_write(2, 4096 + 8 * i, 8);
  a->flush();
  fill(*a, 65536, 16 * kPosts, 4);
  for (std::size_t i = 0; i < kPosts; ++i) {
    a->post_write(2, 65536 + 16 * i, 8);
    if (i % 100 == 99) a->flush();
  }
  a->flush();
  ASSERT_TRUE(eventually([&] { return a->completed(2) == 2 * kPosts; })) << a->completed(2);
  EXPECT_TRUE(same_bytes(*a, *b, 4096, 8 * kPosts));
  for (std::size_t i = 0; i < kPosts; ++i) ASSERT_TRUE(same_bytes(*a, *b, 65536 + 16 * i, 8)) << i;
  // Nothing was sent the other way.
  EXPECT_EQ(b->completed(1), 0u);
}

TEST(TcpTransport, ManySmallWritesAndLargeWritesArrive) {
  const auto group = make_group(free_ports(2));
  constexpr std::size_t kBig = (32u << 20) + 4096;
  auto a = make(group, 1, kBig);
  auto b = make(group, 2, kBig);
  start_all({a.get(), b.get()});

  // 100k 100-byte messages through a 64-slot ring, each followed by its counter.
  constexpr std::size_t kMessages = 100000;
  constexpr std::size_t kSlot = 128;
  constexpr std::size_t kRing = 8192;
  for (std::size_t i = 1; i <= kMessages; ++i) {
    const std::size_t slot = kRing + (i % 64) * kSlot;
    std::memset(a->region().data() + slot, static_cast<int>(i & 0xff), 100);
    a->post_write(2, slot, 100);
    store_word(*a, 4096, i);
    a->post_write(2, 4096, 8);
    if (i % 32 == 0) a->flush();
  }
  a->flush();
  ASSERT_TRUE(wait_word(*b, 4096, kMessages));
  EXPECT_TRUE(same_bytes(*a, *b, kRing, 64 * kSlot));

  // A 64 KiB write, and one longer than a frame may carry (split across frames).
  fill(*a, 1u << 20, 64u << 10, 9);
  a->post_write(2, 1u << 20, 64u << 10);
  fill(*a, 2u << 20, (17u << 20) + 5, 11);
  a->post_write(2, 2u << 20, (17u << 20) + 5);
  a->flush();
  ASSERT_TRUE(eventually([&] { return a->completed(2) == 2 * kMessages + 2; }))
      << a->completed(2);
  EXPECT_TRUE(same_bytes(*a, *b, 1u << 20, 64u << 10));
  EXPECT_TRUE(same_bytes(*a, *b, 2u << 20, (17u << 20) + 5));
}

TEST(TcpTransport, ThreeMembersWriteToEachOther) {
  const auto group = make_group(free_ports(3));
  std::vector<std::unique_ptr<Transport>> members;
  for (MemberId id = 1; id <= 3; ++id) members.push_back(make(group, id));
  start_all({members[0].get(), members[1].get(), members[2].get()});

  // Each member owns a row; it writes the row, then its counter, to both others.
  for (auto& m : members) {
    const std::size_t row = 8192 * m->self();
    fill(*m, row, 4096, m->self());
    store_word(*m, 4096 + 8 * m->self(), 1000 + m->self());
    for (auto& other : members) {
      if (other == m) continue;
      m->post_write(other->self(), row, 4096);
      m->post_write(other->self(), 4096 + 8 * m->self(), 8);
    }
    m->flush();
  }
  for (auto& m : members) {
    for (auto& other : members) {
      if (other == m) continue;
      ASSERT_TRUE(wait_word(*m, 4096 + 8 * other->self(), 1000 + other->self()));
      EXPECT_TRUE(same_bytes(*m, *other, 8192 * other->self(), 4096));
      EXPECT_TRUE(eventually([&] { return other->completed(m->self()) == 2; }));
    }
  }
}

TEST(TcpTransport, BadFramesCutOnlyTheOffendingConnection) {
  LogCapture logs;
  // Member 3 is configured but never started: the raw socket plays it.
  const auto ports = free_ports(3);
  const auto group = make_group(ports);
  auto a = make(group, 1);
  auto b = make(group, 2);
  a->start(0ms);
  b->start(0ms);
  ASSERT_TRUE(eventually([&] { return a->link_up(2) && b->link_up(1); }));
  ASSERT_TRUE(take_up_events(*a, {2}));
  ASSERT_TRUE(take_up_events(*b, {1}));

  std::uint64_t expected_bad = 0;
  auto expect_cut = [&](RawSocket& raw, const std::string& needle) {
    ++expected_bad;
    EXPECT_TRUE(raw.closed_by_peer()) << needle;
    EXPECT_TRUE(logs.wait_for(needle)) << needle << "\n" << logs.dump();
    EXPECT_TRUE(eventually([&] { return a->bad_frames() == expected_bad; })) << a->bad_frames();
    expect_writes_flow(*a, *b, 100 + expected_bad);
  };
  auto handshake_as_3 = [&](RawSocket& raw) {
    raw.send_hello(3, 1);
    std::vector<std::byte> payload;
    const auto reply = raw.read_frame(&payload);
    ASSERT_TRUE(reply.has_value());
    ASSERT_EQ(reply->kind, static_cast<std::uint16_t>(tcp::FrameKind::hello));
    const tcp::Hello hello = tcp::decode_hello(*reply, payload);
    EXPECT_EQ(hello.sender, 1u);
    EXPECT_EQ(hello.receiver, 3u);
    EXPECT_EQ(hello.group, kGroup);
  };

  {  // (a) garbage instead of a handshake
    auto raw = RawSocket::connect_to(ports[0]);
    std::vector<std::byte> garbage(64, std::byte{0x5a});
    raw.send_bytes(garbage);
    expect_cut(raw, "bad frame from 127.0.0.1:");
    EXPECT_TRUE(logs.saw("magic 0x5a5a5a5a is not DRTC")) << logs.dump();
  }
  {  // (b) a write into the transport's own header
    auto raw = RawSocket::connect_to(ports[0]);
    handshake_as_3(raw);
    raw.send_write_header(12, 8);
    raw.send_bytes(std::vector<std::byte>(8));
    expect_cut(raw, "bad frame from member 3: offset 12 below region header (4096)");
  }
  {  // (c) a write running past the region's end
    auto raw = RawSocket::connect_to(ports[0]);
    handshake_as_3(raw);
    raw.send_write_header(kRegion - 8, 16);
    raw.send_bytes(std::vector<std::byte>(16));
    expect_cut(raw, "bad frame from member 3: write [1048568, 1048584) runs past the region end");
  }
  {  // (d) an absurd length
    auto raw = RawSocket::connect_to(ports[0]);
    handshake_as_3(raw);
    raw.send_write_header(8192, 0xffffffffu);
    expect_cut(raw, "bad frame from member 3: write length 4294967295 exceeds the frame limit");
  }
  {  // (d) a frame cut short by the sender closing
    auto raw = RawSocket::connect_to(ports[0]);
    handshake_as_3(raw);
    raw.send_write_header(8192, 100);
    raw.send_bytes(std::vector<std::byte>(50));
    ::shutdown(raw.fd(), SHUT_WR);
    expect_cut(raw, "bad frame from member 3: connection closed inside a frame (74 of 124 bytes)");
  }
  {  // a write before any handshake
    auto raw = RawSocket::connect_to(ports[0]);
    raw.send_write_header(8192, 8);
    raw.send_bytes(std::vector<std::byte>(8));
    expect_cut(raw, "write frame before the handshake");
  }
  {  // a bulk write before any handshake, its header and epoch alone first: nothing lands
    auto raw = RawSocket::connect_to(ports[0]);
    tcp::FrameHeader h;
    h.kind = static_cast<std::uint16_t>(tcp::FrameKind::bulk);
    h.value = 65536;
    h.length = 8 + 4096;
    h.count = 1;
    std::vector<std::byte> head(tcp::kHeaderBytes + tcp::kBulkEpochBytes, std::byte{0});
    tcp::encode_header(h, head.data());
    raw.send_bytes(head);
    std::this_thread::sleep_for(50ms);
    raw.send_bytes(std::vector<std::byte>(4096, std::byte{0x77}));
    expect_cut(raw, "write frame before the handshake");
    EXPECT_EQ(load_word(*a, 65536), 0u) << "a bulk write without a handshake landed";
  }
  // The real members' links never blinked.
  EXPECT_TRUE(a->take_link_events().empty());
  EXPECT_TRUE(b->take_link_events().empty());
  EXPECT_EQ(b->bad_frames(), 0u);

  {  // and a peer that reconnects after being cut is accepted again, its writes applied
    auto raw = RawSocket::connect_to(ports[0]);
    handshake_as_3(raw);
    raw.send_write_header(20480, 8);
    std::vector<std::byte> value(8);
    value[0] = std::byte{42};
    raw.send_bytes(value);
    ASSERT_TRUE(wait_word(*a, 20480, 42));
    const auto ack = raw.read_frame();
    ASSERT_TRUE(ack.has_value());
    EXPECT_EQ(ack->kind, static_cast<std::uint16_t>(tcp::FrameKind::ack));
    EXPECT_EQ(ack->value, 1u);
  }
  EXPECT_EQ(a->bad_frames(), expected_bad);
}

TEST(TcpTransport, HandshakeMismatchesAreRefusedNamingTheField) {
  LogCapture logs;
  const auto ports = free_ports(3);
  const auto group = make_group(ports);
  auto a = make(group, 1);
  a->start(0ms);

  {  // inbound: wrong group name and region size
    auto raw = RawSocket::connect_to(ports[0]);
    raw.send_hello(3, 1, "other-group", 2 * kRegion);
    EXPECT_TRUE(raw.closed_by_peer());
    EXPECT_TRUE(logs.wait_for("handshake refused: group name 'other-group', expected 'tcp-test'; "
                              "region size 2097152, expected 1048576"))
        << logs.dump();
  }
  {  // inbound: a member id that is not in the group
    auto raw = RawSocket::connect_to(ports[0]);
    raw.send_hello(9, 1);
    EXPECT_TRUE(raw.closed_by_peer());
    EXPECT_TRUE(logs.wait_for("member 9 is not a peer in group 'tcp-test'")) << logs.dump();
  }
  {  // inbound: a hello meant for someone else (swapped addresses)
    auto raw = RawSocket::connect_to(ports[0]);
    raw.send_hello(3, 2);
    EXPECT_TRUE(raw.closed_by_peer());
    EXPECT_TRUE(logs.wait_for("addressed to member 2, but this is member 1")) << logs.dump();
  }
  {  // outbound: member 3's listener answers with a different region size
    RawListener listener(ports[2]);
    auto conn = listener.accept_one();
    ASSERT_TRUE(conn.has_value());
    std::vector<std::byte> payload;
    const auto hello = conn->read_frame(&payload);
    ASSERT_TRUE(hello.has_value());
    const tcp::Hello theirs = tcp::decode_hello(*hello, payload);
    EXPECT_EQ(theirs.sender, 1u);
    EXPECT_EQ(theirs.receiver, 3u);
    EXPECT_EQ(theirs.region_bytes, kRegion);
    conn->send_hello(3, 1, kGroup, kRegion / 2);
    EXPECT_TRUE(conn->closed_by_peer());
    EXPECT_TRUE(logs.wait_for("bad frame from member 3: handshake refused: region size 524288, "
                              "expected 1048576"))
        << logs.dump();
    EXPECT_FALSE(a->link_up(3));
  }
  EXPECT_EQ(a->bad_frames(), 4u);
}

TEST(TcpTransport, ReconnectsAfterAPeerRestarts) {
  const auto group = make_group(free_ports(2));
  auto a = make(group, 1);
  auto b = make(group, 2);
  start_all({a.get(), b.get()});
  expect_writes_flow(*a, *b, 1);
  ASSERT_TRUE(eventually([&] { return a->completed(2) == 1; }));

  b.reset();
  std::vector<LinkEvent> seen;
  ASSERT_TRUE(wait_event(*a, 2, false, seen));
  EXPECT_FALSE(a->link_up(2));
  EXPECT_FALSE(seen.front().reason.empty());

  // Posted while the link is down: dropped, and never counted as completed.
  store_word(*a, 16384, 999);
  a->post_write(2, 16384, 8);
  a->flush();

  b = make(group, 2);
  b->start(kPatience);
  ASSERT_TRUE(b->link_up(1));
  ASSERT_TRUE(take_up_events(*b, {1}));
  ASSERT_TRUE(wait_event(*a, 2, true, seen));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_FALSE(seen[0].up);
  EXPECT_TRUE(seen[1].up);
  EXPECT_EQ(load_word(*b, 16384), 0u) << "a write posted while the link was down arrived";

  expect_writes_flow(*a, *b, 2);
  EXPECT_TRUE(eventually([&] { return a->completed(2) == 2; })) << a->completed(2);
  EXPECT_EQ(a->bad_frames(), 0u);
}

TEST(TcpTransport, StartReturnsAtTheTimeoutAndKeepsRetrying) {
  const auto group = make_group(free_ports(2));
  auto a = make(group, 1);
  const auto begin = Clock::now();
  a->start(100ms);
  const auto waited = Clock::now() - begin;
  EXPECT_GE(waited, 90ms);
  EXPECT_LT(waited, 2s);
  EXPECT_FALSE(a->link_up(2));
  EXPECT_TRUE(a->take_link_events().empty());

  auto b = make(group, 2);
  b->start(kPatience);
  std::vector<LinkEvent> seen;
  EXPECT_TRUE(wait_event(*a, 2, true, seen));
  ASSERT_TRUE(take_up_events(*b, {1}));
  expect_writes_flow(*a, *b, 7);
}

TEST(TcpTransport, WritesWaitUntilTheUpEventIsTaken) {
  const auto group = make_group(free_ports(2));
  auto a = make(group, 1);
  auto b = make(group, 2);
  a->start(0ms);
  b->start(0ms);
  ASSERT_TRUE(eventually([&] { return a->link_up(2); }));

  // The link is up but the engine has not taken its up event: the write is dropped.
  store_word(*a, 16384, 111);
  a->post_write(2, 16384, 8);
  a->flush();
  EXPECT_EQ(a->completed(2), 0u);

  std::vector<LinkEvent> seen;
  ASSERT_TRUE(take_up_events(*a, {2}, &seen));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_TRUE(seen[0].up);
  EXPECT_NE(seen[0].session, 0u);

  // Taken: the next write lands. Writes to one peer land in order, so had the first one been
  // sent it would be visible by now.
  store_word(*a, 16392, 222);
  a->post_write(2, 16392, 8);
  a->flush();
  ASSERT_TRUE(wait_word(*b, 16392, 222));
  EXPECT_TRUE(eventually([&] { return a->completed(2) == 1; })) << a->completed(2);
  EXPECT_EQ(load_word(*b, 16384), 0u) << "a write posted before the up event was taken arrived";
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(a->completed(2), 1u);
  EXPECT_EQ(load_word(*b, 16384), 0u);
  EXPECT_EQ(a->bad_frames() + b->bad_frames(), 0u);
}

TEST(TcpTransport, AfterAReconnectWritesWaitForTheNewUpEvent) {
  const auto group = make_group(free_ports(2));
  auto a = make(group, 1);
  auto b = make(group, 2);
  a->start(0ms);
  b->start(0ms);
  std::vector<LinkEvent> first;
  ASSERT_TRUE(take_up_events(*a, {2}, &first));
  ASSERT_TRUE(take_up_events(*b, {1}));
  ASSERT_EQ(first.size(), 1u);
  expect_writes_flow(*a, *b, 1);
  ASSERT_TRUE(eventually([&] { return a->completed(2) == 1; })) << a->completed(2);

  b.reset();
  std::vector<LinkEvent> down;
  ASSERT_TRUE(wait_event(*a, 2, false, down));
  b = make(group, 2);
  b->start(kPatience);
  ASSERT_TRUE(take_up_events(*b, {1}));
  ASSERT_TRUE(eventually([&] { return a->link_up(2); }));

  // The new session is up, but its up event has not been taken: dropped, and never counted.
  store_word(*a, 24576, 333);
  a->post_write(2, 24576, 8);
  a->flush();
  EXPECT_EQ(a->completed(2), 1u);

  std::vector<LinkEvent> second;
  ASSERT_TRUE(take_up_events(*a, {2}, &second));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_NE(second[0].session, first[0].session) << "a new link session reuses the old number";

  store_word(*a, 24584, 444);
  a->post_write(2, 24584, 8);
  a->flush();
  ASSERT_TRUE(wait_word(*b, 24584, 444));
  EXPECT_TRUE(eventually([&] { return a->completed(2) == 2; })) << a->completed(2);
  EXPECT_EQ(load_word(*b, 24576), 0u) << "a write posted before the new up event was taken arrived";
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(a->completed(2), 2u);
  EXPECT_EQ(load_word(*b, 24576), 0u);
  EXPECT_EQ(a->bad_frames() + b->bad_frames(), 0u);
}

TEST(TcpTransport, APeerThatStopsReadingBreaksTheLinkAtTheQueueCap) {
  const auto ports = free_ports(2);
  const auto group = make_group(ports);
  constexpr std::size_t kBig = (16u << 20) + 4096;
  auto a = make(group, 1, kBig);
  RawListener listener(ports[1]);
  a->start(0ms);
  auto conn = listener.accept_one();
  ASSERT_TRUE(conn.has_value());
  ASSERT_TRUE(conn->read_frame().has_value());
  conn->send_hello(2, 1, kGroup, kBig);
  std::vector<LinkEvent> seen;
  ASSERT_TRUE(wait_event(*a, 2, true, seen));

  // Member 2 never reads again; 256 MiB later the link is declared broken.
  for (int i = 0; i < 40 && a->link_up(2); ++i) {
    a->post_write(2, 4096, 16u << 20);
    a->flush();
  }
  ASSERT_TRUE(wait_event(*a, 2, false, seen));
  EXPECT_NE(seen.back().reason.find("bytes queued for the peer"), std::string::npos)
      << seen.back().reason;
}

TEST(TcpTransport, RejectsBadOptionsAndWrites) {
  const auto ports = free_ports(2);
  const auto group = make_group(ports);
  EXPECT_THROW(make(group, 1, 4096 + 100), std::invalid_argument);
  EXPECT_THROW(make(group, 7), std::invalid_argument);
  auto a = make(group, 1);
  EXPECT_THROW(make(group, 1), std::runtime_error) << "a second listener on the same port";
  EXPECT_THROW(a->post_write(2, 100, 8), std::out_of_range);
  EXPECT_THROW(a->post_write(2, kRegion - 4, 8), std::out_of_range);
  EXPECT_THROW(a->post_write(5, 4096, 8), std::invalid_argument);
}

}  // namespace
}  // namespace derecho::transport

namespace derecho::transport {
namespace {

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// The number the next descriptor would get: with RLIMIT_NOFILE set to it, none can be opened.
rlim_t lowest_free_fd() {
  const int probe = ::dup(0);
  ::close(probe);
  return static_cast<rlim_t>(probe);
}

}  // namespace

TEST(TcpTransport, OutOfFileDescriptorsPausesAcceptsInsteadOfSpinning) {
  LogCapture logs;
  const auto group = make_group(free_ports(2));
  auto a = make(group, 1);  // member 2 never starts: a keeps retrying it as well
  a->start(0ms);
  Fd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit tight = saved;
  tight.rlim_cur = lowest_free_fd();  // no new descriptor anywhere in this process
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(group.members[0].port);
  ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);  // queued, not accepted
  const bool paused = logs.wait_for("accept failed, pausing accepts");
  const double before = cpu_seconds();
  std::this_thread::sleep_for(300ms);
  const double used = cpu_seconds() - before;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_TRUE(paused) << logs.dump();
  // A listener left readable in epoll would burn the whole 300 ms here.
  EXPECT_LT(used, 0.1) << "the IO thread spun while accept kept failing";
  // With descriptors back, the pending connection is accepted; garbage on it is cut off.
  const char garbage[32] = "not a derecho frame at all.....";
  ASSERT_EQ(::send(client.get(), garbage, sizeof garbage, MSG_NOSIGNAL), static_cast<ssize_t>(sizeof garbage));
  EXPECT_TRUE(eventually([&] { return a->bad_frames() == 1; })) << logs.dump();
}

}  // namespace derecho::transport
