#pragma once
#include <cstdint>
#include <span>

#include "common/types.hpp"

namespace derecho::multicast {

struct Delivery {
  std::uint64_t index;       // global order index within the subgroup, nulls included
  std::uint64_t sender_seq;  // the sender's application-message count in the subgroup and view, from 0
  std::uint32_t subgroup;
  MemberId sender;
  std::span<const std::byte> payload;  // valid only during deliver()
  std::uint64_t vid = 0;               // the view it was delivered in
};

// Where delivered messages go. Called on the predicate thread, a whole stable batch at a time.
class DeliverySink {
 public:
  virtual ~DeliverySink() = default;
  // False holds delivery back (the consumer is behind); the ring then fills and senders stall.
  virtual bool ready() = 0;
  virtual void deliver(std::span<const Delivery> batch) = 0;
};

}  // namespace derecho::multicast
