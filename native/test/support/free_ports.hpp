#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <stdexcept>
#include <vector>

namespace derecho::testing {

// Ports the kernel just handed out on 127.0.0.1. All probe sockets stay open until every port
// is chosen, so one call never returns the same port twice.
inline std::vector<std::uint16_t> free_ports(std::size_t n) {
  std::vector<int> holders;
  std::vector<std::uint16_t> ports;
  for (std::size_t i = 0; i < n; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      for (int h : holders) ::close(h);
      if (fd >= 0) ::close(fd);
      throw std::runtime_error("could not get a free port");
    }
    ports.push_back(ntohs(addr.sin_port));
    holders.push_back(fd);
  }
  for (int h : holders) ::close(h);
  return ports;
}

}  // namespace derecho::testing
