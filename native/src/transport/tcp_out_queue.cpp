#include "transport/tcp_out_queue.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cerrno>

namespace derecho::transport::tcp {

std::vector<std::byte>& OutQueue::own_tail() {
  if (segments_.empty() || !segments_.back().reference.empty()) segments_.emplace_back();
  return segments_.back().own;
}

void OutQueue::append_reference(std::span<const std::byte> bytes) {
  if (bytes.empty()) return;
  segments_.push_back({{}, bytes});
  bytes_ += bytes.size();
}

int OutQueue::send_some(int fd) {
  while (bytes_ > 0) {
    const std::size_t before = bytes_;
    if (const int err = send_once(fd); err != 0) return err;
    if (bytes_ == before) return 0;  // the socket is full
  }
  return 0;
}

int OutQueue::send_once(int fd) {
  // Up to this many segments per sendmsg; a longer queue takes several.
  constexpr std::size_t kMaxIov = 64;
  std::array<iovec, kMaxIov> iov;
  std::size_t count = 0;
  for (std::size_t i = 0; i < segments_.size() && count < kMaxIov; ++i) {
    std::span<const std::byte> b = segments_[i].bytes();
    if (i == 0) b = b.subspan(front_sent_);
    if (b.empty()) continue;
    iov[count++] = {const_cast<std::byte*>(b.data()), b.size()};
  }
  if (count == 0) return 0;
  msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = count;
  const ssize_t n = ::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : errno;
  auto left = static_cast<std::size_t>(n);
  bytes_ -= left;
  while (left > 0) {
    const std::size_t rest = segments_.front().bytes().size() - front_sent_;
    if (left < rest) {
      front_sent_ += left;
      break;
    }
    left -= rest;
    segments_.pop_front();
    front_sent_ = 0;
  }
  if (bytes_ == 0) clear();  // empty segments own_tail() may have left
  return 0;
}

void OutQueue::move_to(OutQueue& to) {
  if (segments_.empty()) return;
  // The front's sent prefix is dropped first, so `to` gets only unsent bytes.
  if (front_sent_ > 0) {
    Segment& front = segments_.front();
    if (front.reference.empty()) {
      front.own.erase(front.own.begin(), front.own.begin() + static_cast<std::ptrdiff_t>(front_sent_));
    } else {
      front.reference = front.reference.subspan(front_sent_);
    }
    front_sent_ = 0;
  }
  for (Segment& s : segments_) {
    if (s.bytes().empty()) continue;
    to.bytes_ += s.bytes().size();
    to.segments_.push_back(std::move(s));
  }
  clear();
}

void OutQueue::clear() {
  segments_.clear();
  front_sent_ = 0;
  bytes_ = 0;
}

}  // namespace derecho::transport::tcp
