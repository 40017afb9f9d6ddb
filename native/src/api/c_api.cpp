#include "api/c_api.h"

#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "member/member.hpp"

namespace {

void write_error(char* error, std::size_t error_len, const std::string& message) {
  if (!error || error_len == 0) return;
  const std::size_t n = std::min(error_len - 1, message.size());
  std::memcpy(error, message.data(), n);
  error[n] = '\0';
}

class CallbackSink final : public derecho::multicast::DeliverySink {
 public:
  explicit CallbackSink(const derecho_callbacks& callbacks) : callbacks_(callbacks) {}

  bool ready() override { return !callbacks_.ready || callbacks_.ready(callbacks_.context) != 0; }

  void deliver(std::span<const derecho::multicast::Delivery> batch) override {
    records_.resize(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& d = batch[i];
      records_[i] = {d.index, d.sender_seq, d.subgroup, d.sender,
                     reinterpret_cast<const std::uint8_t*>(d.payload.data()),
                     static_cast<std::uint32_t>(d.payload.size())};
    }
    callbacks_.deliver(callbacks_.context, records_.data(), records_.size());
  }

 private:
  derecho_callbacks callbacks_;
  std::vector<derecho_delivery> records_;
};

derecho::GroupConfig to_config(const derecho_group_config& c) {
  derecho::GroupConfig config;
  config.group_name = c.group ? c.group : "";
  switch (c.transport) {
    case DERECHO_TRANSPORT_SHM: config.transport = derecho::TransportKind::shm; break;
    case DERECHO_TRANSPORT_TCP: config.transport = derecho::TransportKind::tcp; break;
    case DERECHO_TRANSPORT_VERBS: config.transport = derecho::TransportKind::verbs; break;
    default: throw std::invalid_argument("transport: unknown kind " + std::to_string(static_cast<int>(c.transport)));
  }
  for (std::size_t i = 0; i < c.member_count; ++i) {
    config.members.push_back({c.members[i].id, c.members[i].host ? c.members[i].host : "", c.members[i].port});
  }
  for (std::size_t i = 0; i < c.subgroup_count; ++i) {
    const auto& s = c.subgroups[i];
    derecho::SubgroupConfig sg;
    sg.name = s.name ? s.name : "";
    sg.members.assign(s.members, s.members + s.member_count);
    sg.senders.assign(s.senders, s.senders + s.sender_count);
    sg.ring_bytes = s.ring_bytes;
    sg.max_message_bytes = s.max_message_bytes;
    config.subgroups.push_back(std::move(sg));
  }
  config.spin = std::chrono::microseconds(c.spin_us);
  return config;
}

}  // namespace

struct derecho_member {
  explicit derecho_member(const derecho_callbacks& callbacks) : sink(callbacks) {}
  CallbackSink sink;
  std::unique_ptr<derecho::Member> member;
};

extern "C" {

derecho_member* derecho_member_create(const derecho_group_config* config, uint32_t self,
                                      const derecho_callbacks* callbacks, char* error, size_t error_len) {
  try {
    if (!config || !callbacks || !callbacks->deliver) throw std::invalid_argument("config and deliver callback are required");
    auto handle = std::make_unique<derecho_member>(*callbacks);
    handle->member = std::make_unique<derecho::Member>(to_config(*config), self, handle->sink);
    if (callbacks->writable) {
      handle->member->on_writable([cb = *callbacks](std::uint32_t subgroup) { cb.writable(cb.context, subgroup); });
    }
    return handle.release();
  } catch (const std::exception& e) {
    write_error(error, error_len, e.what());
    return nullptr;
  }
}

int derecho_member_start(derecho_member* member, uint32_t timeout_ms, char* error, size_t error_len) {
  try {
    if (!member->member->start(std::chrono::milliseconds(timeout_ms))) {
      write_error(error, error_len, "not every peer was reachable within " + std::to_string(timeout_ms) + " ms");
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    write_error(error, error_len, e.what());
    return -1;
  }
}

int derecho_member_send(derecho_member* member, uint32_t subgroup, const void* data, size_t length, char* error,
                        size_t error_len) {
  try {
    return member->member->send(subgroup, {static_cast<const std::byte*>(data), length}) ? 1 : 0;
  } catch (const std::exception& e) {
    write_error(error, error_len, e.what());
    return -1;
  }
}

int derecho_member_send_packed(derecho_member* member, uint32_t subgroup, const void* packed, size_t length,
                               size_t* accepted, char* error, size_t error_len) {
  try {
    if (!accepted) throw std::invalid_argument("accepted must not be NULL");
    const auto queued = member->member->send_packed(subgroup, {static_cast<const std::byte*>(packed), length});
    *accepted = queued.messages;
    return queued.bytes == length ? 1 : 0;
  } catch (const std::exception& e) {
    if (accepted) *accepted = 0;
    write_error(error, error_len, e.what());
    return -1;
  }
}

void derecho_member_wake(derecho_member* member) { member->member->wake(); }

void derecho_member_stats(const derecho_member* member, derecho_stats* out) {
  const auto s = member->member->stats();
  *out = {s.sent,   s.nulls_sent, s.delivered,  s.delivered_bytes, s.delivery_batches, s.predicate_passes,
          s.sleeps, s.bad_frames, s.failed ? 1 : 0};
}

void derecho_member_destroy(derecho_member* member) {
  if (!member) return;
  member->member->stop();
  std::unique_ptr<derecho_member> owned(member);
}

}  // extern "C"
