#pragma once
// The raw loopback TCP connection the benches measure themselves against: a receiver in a forked
// child process, the sending end here.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <stdexcept>

namespace derecho::bench {

// Writes all n bytes or throws.
inline void write_all(int fd, const char* data, std::size_t n) {
  for (std::size_t off = 0; off < n;) {
    const ssize_t w = write(fd, data + off, n - off);
    if (w <= 0) throw std::runtime_error("baseline write failed");
    off += static_cast<std::size_t>(w);
  }
}

class LoopbackTcp {
 public:
  // Runs receive(socket) in a child process, which reads until the sender's finish() and then
  // exits; its results go back through shared memory (shared_anonymous).
  template <typename Receive>
  explicit LoopbackTcp(Receive receive) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(listener_, 1) != 0) {
      throw std::runtime_error("baseline listen failed");
    }
    socklen_t len = sizeof addr;
    getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    pid_ = fork();
    if (pid_ == 0) {
      receive(accept(listener_, nullptr, nullptr));
      _exit(0);
    }
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("baseline connect failed");
  }
  LoopbackTcp(const LoopbackTcp&) = delete;
  LoopbackTcp& operator=(const LoopbackTcp&) = delete;
  ~LoopbackTcp() { finish(); }

  int fd() const { return fd_; }

  // Ends the stream and waits for the receiver, so its results are in.
  void finish() {
    if (fd_ < 0) return;
    shutdown(fd_, SHUT_WR);
    int status = 0;
    waitpid(pid_, &status, 0);
    close(fd_);
    close(listener_);
    fd_ = -1;
  }

 private:
  int listener_ = -1;
  int fd_ = -1;
  pid_t pid_ = -1;
};

}  // namespace derecho::bench
