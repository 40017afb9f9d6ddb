#pragma once
#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <utility>

// Thin, exception-free wrappers over the socket calls the tcp transport makes.
namespace derecho::transport::tcp {

// Owns one file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset();

 private:
  int fd_ = -1;
};

std::string errno_text(int err);

// Resolves host (an IPv4 literal or a name; empty means any address) and port. Empty string on
// success, otherwise why it failed.
std::string resolve_ipv4(const std::string& host, std::uint16_t port, sockaddr_in& out);
std::string to_string(const sockaddr_in& address);

// Non-blocking listening socket with SO_REUSEADDR, or an invalid Fd and `error` set.
Fd listen_on(const sockaddr_in& address, std::string& error);

// Starts a non-blocking connect. `in_progress` is false when it already completed.
Fd start_connect(const sockaddr_in& address, bool& in_progress, std::string& error);

// Pending SO_ERROR of a socket whose non-blocking connect finished (0 = connected).
int socket_error(int fd);

// Latency over throughput: frames are already batched by flush(), so Nagle only adds delay.
void set_no_delay(int fd);

}  // namespace derecho::transport::tcp
