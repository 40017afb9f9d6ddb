#include "api/c_api.h"

#include <chrono>
#include <cstring>
#include <exception>
#include <memory>
#include <span>
#include <stdexcept>
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
      records_[i] = {d.index, d.sender_seq, d.vid, d.subgroup, d.sender,
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
    const std::string field = "subgroups[" + std::to_string(i) + "]";
    if (s.shards != 0) {
      derecho::ShardingConfig sharding;
      sharding.shards = s.shards;
      sharding.min_per_shard = s.min_per_shard;
      sharding.max_per_shard = s.max_per_shard;
      if (s.reserved_shard_count > s.shards) {
        throw std::invalid_argument(field + ".reserved: " + std::to_string(s.reserved_shard_count) +
                                    " lists, more than shards (" + std::to_string(s.shards) + ")");
      }
      if (s.reserved_shard_count > 0 && !s.reserved_counts) {
        throw std::invalid_argument(field + ".reserved: reserved_counts must not be NULL");
      }
      std::size_t at = 0;
      for (std::size_t k = 0; k < s.reserved_shard_count; ++k) {
        const std::size_t n = s.reserved_counts[k];
        if (n > 0 && !s.reserved) throw std::invalid_argument(field + ".reserved: reserved must not be NULL");
        sharding.reserved.emplace_back(s.reserved + at, s.reserved + at + n);
        at += n;
      }
      sg.sharding = std::move(sharding);
    } else if (s.reserved_shard_count != 0) {
      throw std::invalid_argument(field + ".reserved: only a sharded subgroup (shards > 0) reserves members");
    }
    config.subgroups.push_back(std::move(sg));
  }
  config.spin = std::chrono::microseconds(c.spin_us);
  if (c.heartbeat_ms != 0) config.heartbeat_interval = std::chrono::milliseconds(c.heartbeat_ms);
  if (c.suspect_after_ms != 0) config.suspect_after = std::chrono::milliseconds(c.suspect_after_ms);
  config.initial_members = c.initial_members;
  if (c.state_chunk_bytes != 0) config.state_chunk_bytes = c.state_chunk_bytes;
  return config;
}

derecho_membership_event to_c(derecho::membership::MembershipEvent event) {
  switch (event) {
    case derecho::membership::MembershipEvent::wedged: return DERECHO_EVENT_WEDGED;
    case derecho::membership::MembershipEvent::removed: return DERECHO_EVENT_REMOVED;
    case derecho::membership::MembershipEvent::minority: return DERECHO_EVENT_MINORITY;
    case derecho::membership::MembershipEvent::inadequate: return DERECHO_EVENT_INADEQUATE;
    case derecho::membership::MembershipEvent::left: return DERECHO_EVENT_LEFT;
  }
  throw std::logic_error("unknown membership event " + std::to_string(static_cast<int>(event)));
}

// The shard map, flat (c_api.h): per subgroup S, then per shard n and n ids.
std::vector<std::uint32_t> flat_shards(const derecho::membership::View& view, std::size_t subgroups) {
  std::vector<std::uint32_t> out;
  for (std::size_t s = 0; s < subgroups; ++s) {
    if (s >= view.shards.size()) {
      out.push_back(0);
      continue;
    }
    out.push_back(static_cast<std::uint32_t>(view.shards[s].size()));
    for (const auto& shard : view.shards[s]) {
      out.push_back(static_cast<std::uint32_t>(shard.size()));
      out.insert(out.end(), shard.begin(), shard.end());
    }
  }
  return out;
}

// The C view points into `view` and `shards`: valid while they live.
derecho_view to_c(const derecho::membership::View& view, const std::vector<std::uint32_t>& shards) {
  return {view.vid,
          view.leader(),
          view.members.data(),
          view.members.size(),
          view.joined.data(),
          view.joined.size(),
          view.departed.data(),
          view.departed.size(),
          shards.data(),
          shards.size(),
          view.adequate ? 1 : 0,
          view.inadequate.c_str()};
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
    if (callbacks->view) {
      const std::size_t subgroups = config->subgroup_count;
      handle->member->on_view([cb = *callbacks, subgroups](const derecho::membership::View& view) {
        const auto shards = flat_shards(view, subgroups);
        const derecho_view c = to_c(view, shards);
        cb.view(cb.context, &c);
      });
    }
    if (callbacks->snapshot) {
      handle->member->on_snapshot([cb = *callbacks](std::uint32_t subgroup, std::uint64_t vid) {
        cb.snapshot(cb.context, subgroup, vid);
      });
    }
    if (callbacks->restore) {
      handle->member->on_restore([cb = *callbacks](std::uint32_t subgroup, std::uint64_t vid, std::span<const std::byte> state) {
        cb.restore(cb.context, subgroup, vid, reinterpret_cast<const std::uint8_t*>(state.data()), state.size());
      });
    }
    if (callbacks->event) {
      handle->member->on_event([cb = *callbacks](derecho::membership::MembershipEvent event, const std::string& why) {
        cb.event(cb.context, to_c(event), why.c_str());
      });
    }
    return handle.release();
  } catch (const std::exception& e) {
    write_error(error, error_len, e.what());
    return nullptr;
  }
}

int derecho_member_start(derecho_member* member, uint32_t timeout_ms, char* error, size_t error_len) {
  try {
    // Member::start waits for a view with every configured member; a member that is down (a
    // spare, a crashed one) must not hold this one back, so it waits for no time there and then
    // for any open view here. The transport keeps connecting in the background either way.
    auto& m = *member->member;
    m.start(std::chrono::milliseconds{0});
    if (!m.wait_for_members(1, std::chrono::milliseconds(timeout_ms))) {
      const auto& config = m.config();
      const bool bootstraps = !config.members.empty() && config.members.front().id == m.self();
      write_error(error, error_len,
                  "member " + std::to_string(m.self()) + " is in no view of group '" + config.group_name +
                      "' after " + std::to_string(timeout_ms) + " ms: " +
                      (bootstraps ? "as the first configured member it starts the group once each of the first " +
                                        std::to_string(config.initial_members ? config.initial_members
                                                                              : config.members.size()) +
                                        " configured members (initialMembers) is reachable and in no view"
                                  : std::string("it joins through the leader of a running group, or waits for the "
                                                "first configured member to start one")) +
                      "; the engine keeps trying");
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
  *out = {s.sent,   s.nulls_sent, s.delivered,       s.delivered_bytes, s.delivery_batches, s.predicate_passes,
          s.sleeps, s.bad_frames, s.failed ? 1 : 0, s.resent,          s.vid};
}

int derecho_member_provide_snapshot(derecho_member* member, uint32_t subgroup, uint64_t vid, const void* data,
                                    size_t length, char* error, size_t error_len) {
  try {
    if (!data && length > 0) throw std::invalid_argument("data must not be NULL when length > 0");
    const auto* bytes = static_cast<const std::byte*>(data);
    member->member->provide_snapshot(subgroup, vid, length == 0 ? std::vector<std::byte>{}
                                                                : std::vector<std::byte>(bytes, bytes + length));
    return 0;
  } catch (const std::exception& e) {
    write_error(error, error_len, e.what());
    return -1;
  }
}

int derecho_member_leave(derecho_member* member, uint32_t timeout_ms, char* error, size_t error_len) {
  try {
    auto& m = *member->member;
    if (m.leave(std::chrono::milliseconds(timeout_ms))) return 0;
    write_error(error, error_len,
                "member " + std::to_string(m.self()) + " did not leave group '" + m.config().group_name + "' within " +
                    std::to_string(timeout_ms) +
                    " ms (the others decide a view without it only while a majority of the view remains); its engine is stopped");
    return 1;
  } catch (const std::exception& e) {
    write_error(error, error_len, e.what());
    return -1;
  }
}

int derecho_member_view(const derecho_member* member, derecho_view_fn visit, void* context) {
  const auto view = member->member->view();
  if (!view) return 0;
  const auto shards = flat_shards(*view, member->member->config().subgroups.size());
  const derecho_view c = to_c(*view, shards);
  if (visit) visit(context, &c);
  return 1;
}

void derecho_member_destroy(derecho_member* member) {
  if (!member) return;
  member->member->stop();
  std::unique_ptr<derecho_member> owned(member);
}

}  // extern "C"
