#include "transport/tcp_out_queue.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace derecho::transport::tcp {
namespace {

// A connected pair of stream sockets, closed at the end.
struct SocketPair {
  SocketPair() {
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) throw std::runtime_error("socketpair failed");
  }
  ~SocketPair() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  std::vector<std::byte> read_all_available(std::size_t n) const {
    std::vector<std::byte> out(n);
    std::size_t have = 0;
    while (have < n) {
      const ssize_t r = ::recv(fds[1], out.data() + have, n - have, MSG_DONTWAIT);
      if (r <= 0) break;
      have += static_cast<std::size_t>(r);
    }
    out.resize(have);
    return out;
  }
  int fds[2];
};

std::vector<std::byte> bytes(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 17 + seed) & 0xff);
  return v;
}

}  // namespace

TEST(TcpOutQueue, SendsOwnBytesAndReferencesInOrder) {
  const auto head = bytes(10, 1), region = bytes(5000, 2), tail = bytes(7, 3);
  OutQueue q;
  q.own_tail().insert(q.own_tail().end(), head.begin(), head.end());
  q.grew(head.size());
  q.append_reference(region);
  q.own_tail().insert(q.own_tail().end(), tail.begin(), tail.end());
  q.grew(tail.size());
  EXPECT_EQ(q.bytes(), 5017u);
  SocketPair s;
  ASSERT_EQ(q.send_some(s.fds[0]), 0);
  EXPECT_TRUE(q.empty());
  std::vector<std::byte> want(head);
  want.insert(want.end(), region.begin(), region.end());
  want.insert(want.end(), tail.begin(), tail.end());
  EXPECT_EQ(s.read_all_available(want.size()), want);
}

// A full socket takes part of the queue; what is left moves to another queue (the backlog)
// without copying and goes out later, in order.
TEST(TcpOutQueue, WhatAFullSocketLeavesGoesOutLaterInOrder) {
  const auto big = bytes(8u << 20, 4);
  OutQueue pending, backlog;
  auto& own = pending.own_tail();
  own.assign(100, std::byte{9});
  pending.grew(100);
  pending.append_reference(big);
  SocketPair s;
  ASSERT_EQ(pending.send_some(s.fds[0]), 0);
  ASSERT_FALSE(pending.empty()) << "a socket pair buffers less than 8 MiB";
  const std::size_t left = pending.bytes();
  pending.move_to(backlog);
  EXPECT_TRUE(pending.empty());
  EXPECT_EQ(backlog.bytes(), left);
  std::vector<std::byte> got;
  while (got.size() < 100 + big.size()) {
    const auto chunk = s.read_all_available(100 + big.size() - got.size());
    got.insert(got.end(), chunk.begin(), chunk.end());
    ASSERT_EQ(backlog.send_some(s.fds[0]), 0);
  }
  EXPECT_TRUE(backlog.empty());
  std::vector<std::byte> want(100, std::byte{9});
  want.insert(want.end(), big.begin(), big.end());
  EXPECT_EQ(got, want);
}

TEST(TcpOutQueue, ReportsAFailedSend) {
  OutQueue q;
  q.own_tail().assign(10, std::byte{1});
  q.grew(10);
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  ::close(fds[1]);
  EXPECT_NE(q.send_some(fds[0]), 0);
  ::close(fds[0]);
}

}  // namespace derecho::transport::tcp
