#pragma once
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "transport/transport.hpp"

namespace derecho::transport {

// A whole network in one process for deterministic tests and simulation: every endpoint's
// writes wait in a FIFO per (from, to) link until the test applies them, in an order chosen by a
// seeded generator. Links keep FIFO order, as real transports do; nothing else is ordered.
class MemoryNetwork {
 public:
  MemoryNetwork(std::vector<MemberId> members, std::size_t region_bytes, std::uint64_t seed);
  ~MemoryNetwork();

  // The endpoint of one member; the network must outlive it.
  std::unique_ptr<Transport> endpoint(MemberId id);

  // Applies the oldest write of one randomly chosen non-empty link; false when none is pending.
  bool deliver_one();
  // Applies the oldest write of the link from -> to; false when that link is empty.
  bool deliver_from(MemberId from, MemberId to);
  void deliver_all();
  std::size_t pending() const;
  std::mt19937_64& random() { return random_; }

 private:
  class Endpoint;
  struct Write {
    std::size_t offset;
    std::vector<std::byte> bytes;
  };
  struct Node {
    std::vector<std::byte> region;
    Doorbell* doorbell = nullptr;
  };

  void enqueue(MemberId from, MemberId to, std::size_t offset, std::span<const std::byte> bytes);
  void apply(MemberId to, const Write& w);

  std::vector<MemberId> members_;
  std::size_t region_bytes_;
  std::mt19937_64 random_;
  std::map<MemberId, Node> nodes_;
  std::map<std::pair<MemberId, MemberId>, std::deque<Write>> links_;
};

}  // namespace derecho::transport
