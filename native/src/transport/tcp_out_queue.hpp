#pragma once
#include <cstddef>
#include <deque>
#include <span>
#include <vector>

namespace derecho::transport::tcp {

// The bytes waiting to go out on one connection, in order: bytes of the queue's own (frame
// headers, small writes copied at post time) and references to region bytes that stay as they
// are until sent (bulk writes), so bulk data goes from the region to the socket without a copy.
class OutQueue {
 public:
  std::size_t bytes() const { return bytes_; }
  bool empty() const { return bytes_ == 0; }

  // The last segment of own bytes, to append to (a new one after a reference).
  std::vector<std::byte>& own_tail();
  // Call after appending to own_tail(), with how many bytes were appended.
  void grew(std::size_t n) { bytes_ += n; }
  void append_reference(std::span<const std::byte> bytes);

  // Sends as much as the socket takes without blocking; 0, or the errno of a failure other
  // than "would block".
  int send_some(int fd);
  // Moves every segment to the end of `to`, leaving this queue empty (no bytes are copied).
  void move_to(OutQueue& to);
  void clear();

 private:
  int send_once(int fd);

  struct Segment {
    std::vector<std::byte> own;
    std::span<const std::byte> reference;  // empty for own bytes
    std::span<const std::byte> bytes() const { return reference.empty() ? std::span<const std::byte>(own) : reference; }
  };
  std::deque<Segment> segments_;
  std::size_t front_sent_ = 0;  // bytes of the first segment already sent
  std::size_t bytes_ = 0;       // unsent, in all segments
};

}  // namespace derecho::transport::tcp
