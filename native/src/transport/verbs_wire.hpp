#pragma once
// Side-channel frames of the verbs transport (wire version 1). Internal to the transport and its
// tests; the format is described in docs/transport-verbs.md and must change only together with
// kWireVersion.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/types.hpp"

namespace derecho::transport::verbs::wire {

inline constexpr std::array<std::uint8_t, 4> kMagic = {'D', 'R', 'V', 'B'};
inline constexpr std::uint16_t kWireVersion = 1;
inline constexpr std::size_t kHeaderBytes = 12;   // magic[4] version u16 type u16 length u32
inline constexpr std::size_t kMaxBodyBytes = 1024;
inline constexpr std::size_t kHelloFixedBytes = 58;
inline constexpr std::size_t kMaxGroupNameBytes = 255;
inline constexpr std::size_t kMaxRejectBytes = 512;

enum class FrameType : std::uint16_t { hello = 1, ready = 2, reject = 3 };

inline constexpr std::uint8_t kHelloFlagEthernet = 0x01;  // sender's port is RoCE (GRH required)

// Everything one end needs to aim RDMA writes at the other end's region.
struct Hello {
  MemberId from = 0;
  MemberId to = 0;
  std::uint32_t qpn = 0;            // 24 bits used
  std::uint32_t psn = 0;            // 24 bits used: first PSN the sender will send
  std::uint16_t lid = 0;
  std::uint8_t mtu = 0;             // enum ibv_mtu value of the sender's active MTU (1..5)
  std::uint8_t flags = 0;           // kHelloFlag*
  std::array<std::uint8_t, 16> gid{};
  std::uint32_t rkey = 0;
  std::uint64_t region_addr = 0;
  std::uint64_t region_bytes = 0;
  std::string group;

  bool operator==(const Hello&) const = default;
};

// A frame that cannot be accepted (bad magic, other wire version, unknown type, wrong length).
class FrameError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Frame {
  FrameType type = FrameType::ready;
  std::vector<std::uint8_t> body;
};

std::vector<std::uint8_t> encode_hello(const Hello& hello);
std::vector<std::uint8_t> encode_ready();
std::vector<std::uint8_t> encode_reject(std::string_view reason);

// Takes one whole frame off the front of `buffer`. Returns std::nullopt (and consumes nothing)
// while the frame is incomplete. Throws FrameError as soon as the header is known to be bad, so
// a peer cannot make us buffer an unbounded amount.
std::optional<Frame> take_frame(std::vector<std::uint8_t>& buffer);

Hello decode_hello(std::span<const std::uint8_t> body);   // throws FrameError
std::string decode_reject(std::span<const std::uint8_t> body);  // throws FrameError

}  // namespace derecho::transport::verbs::wire
