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
#include "store/store_error.hpp"

namespace {

using derecho::store::StoreError;

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

derecho::StoreConfig to_store_config(const derecho_store_config& c, const std::string& field) {
  derecho::StoreConfig store;
  switch (c.storage) {
    case DERECHO_STORE_VOLATILE: store.storage = derecho::StorageKind::volatile_memory; break;
    case DERECHO_STORE_PERSISTENT: store.storage = derecho::StorageKind::persistent; break;
    default:
      throw std::invalid_argument(field + ".storage: expected 0 (volatile) or 1 (persistent), found " +
                                  std::to_string(c.storage));
  }
  if (c.window != 0) store.window = c.window;
  if (c.max_key_bytes != 0) store.max_key_bytes = c.max_key_bytes;
  if (c.max_value_bytes != 0) store.max_value_bytes = c.max_value_bytes;
  if (c.segment_bytes != 0) store.segment_bytes = c.segment_bytes;
  store.max_log_bytes = c.max_log_bytes;
  return store;
}

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
    if (s.store) sg.store = to_store_config(*s.store, field + ".store");
    if (s.large_objects) {
      derecho::LargeObjectConfig large;
      if (s.large_objects->threshold_bytes != 0) large.threshold_bytes = s.large_objects->threshold_bytes;
      large.max_object_bytes = s.large_objects->max_object_bytes;
      if (s.large_objects->block_bytes != 0) large.block_bytes = s.large_objects->block_bytes;
      sg.large_objects = large;
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

// This member's own options: the fields after state_chunk_bytes (version 4).
derecho::Member::Options to_options(const derecho_group_config& c) {
  derecho::Member::Options options;
  if (c.data_dir) options.data_dir = c.data_dir;
  switch (c.flush_mode) {
    case DERECHO_FLUSH_AUTOMATIC: options.flush = derecho::persistence::FlushMode::automatic; break;
    case DERECHO_FLUSH_PMEM_PERSIST: options.flush = derecho::persistence::FlushMode::persist; break;
    case DERECHO_FLUSH_MSYNC: options.flush = derecho::persistence::FlushMode::msync; break;
    default:
      throw std::invalid_argument("flush_mode: expected 0 (automatic), 1 (pmem_persist) or 2 (msync), found " +
                                  std::to_string(c.flush_mode));
  }
  if (c.clock_offset_ns != 0) {
    options.physical_clock = [offset = c.clock_offset_ns] {
      return static_cast<std::uint64_t>(static_cast<std::int64_t>(derecho::persistence::HybridClock::wall_ns()) + offset);
    };
  }
  return options;
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
  // Before `member`: stores may complete operations while the member is destroyed.
  derecho_store_done_fn store_done = nullptr;
  void* store_context = nullptr;
  std::unique_ptr<derecho::Member> member;
};

namespace {

// What every derecho_store_* call returns for an exception (c_api.h): a StoreError's code, -1
// for anything else; the message goes to `error` either way.
int store_failure(char* error, std::size_t error_len) {
  try {
    throw;
  } catch (const StoreError& e) {
    write_error(error, error_len, e.what());
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    write_error(error, error_len, e.what());
    return -1;
  } catch (...) {
    write_error(error, error_len, "unknown exception");
    return -1;
  }
}

template <typename Call>
int store_call(char* error, std::size_t error_len, Call call) {
  try {
    call();
    return 0;
  } catch (...) {
    return store_failure(error, error_len);
  }
}

derecho::store::VersionedStore& store_of(derecho_member* member, std::uint32_t subgroup) {
  if (!member || !member->member) throw std::invalid_argument("member must not be NULL");
  return member->member->store(subgroup);
}

std::string_view key_of(const void* key, std::size_t length) {
  if (!key && length > 0) throw std::invalid_argument("key must not be NULL when key_length > 0");
  return {static_cast<const char*>(key), length};
}

derecho_store_result to_c(const derecho::store::ReadResult& r) {
  return {r.written.version,
          r.written.hlc,
          r.at_version,
          r.found ? 1 : 0,
          reinterpret_cast<const std::uint8_t*>(r.value.data()),
          r.value.size()};
}
derecho_store_result to_c(const derecho::store::Stamp& s) { return {s.version, s.hlc, 0, 0, nullptr, 0}; }
derecho_store_result to_c(std::uint64_t version) { return {version, 0, 0, 0, nullptr, 0}; }

std::uint32_t to_c(derecho::store::EntryKind kind) {
  switch (kind) {
    case derecho::store::EntryKind::put: return DERECHO_STORE_ENTRY_PUT;
    case derecho::store::EntryKind::remove: return DERECHO_STORE_ENTRY_REMOVE;
    case derecho::store::EntryKind::other: return DERECHO_STORE_ENTRY_OTHER;
  }
  throw std::logic_error("unknown store entry kind " + std::to_string(static_cast<int>(kind)));
}

// The completion of `ticket`, reported through the member's one store callback. Checked before
// anything is sent, so a refused call never has a completion.
template <typename T>
derecho::store::Done<T> done_for(derecho_member* member, std::uint64_t ticket) {
  if (!member || !member->store_done) {
    throw std::invalid_argument("no store completion callback: call derecho_store_on_done before derecho_member_start");
  }
  return [fn = member->store_done, context = member->store_context, ticket](const StoreError* error, const T& result) {
    if (error) {
      fn(context, ticket, static_cast<int>(error->code()), error->what(), nullptr);
      return;
    }
    const derecho_store_result c = to_c(result);
    fn(context, ticket, 0, "", &c);
  };
}

}  // namespace

extern "C" {

derecho_member* derecho_member_create(const derecho_group_config* config, uint32_t self,
                                      const derecho_callbacks* callbacks, char* error, size_t error_len) {
  try {
    if (!config || !callbacks || !callbacks->deliver) throw std::invalid_argument("config and deliver callback are required");
    auto handle = std::make_unique<derecho_member>(*callbacks);
    handle->member = std::make_unique<derecho::Member>(to_config(*config), self, handle->sink, to_options(*config));
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

int derecho_member_subgroup_stats(const derecho_member* member, uint32_t subgroup, derecho_subgroup_stats* out,
                                  char* error, size_t error_len) {
  try {
    if (!member || !out) throw std::invalid_argument("member and out must not be NULL");
    const auto s = member->member->subgroup_stats(subgroup);
    *out = {s.delivered, s.delivered_bytes, s.queued_messages, s.queued_bytes};
    return 0;
  } catch (const std::exception& e) {
    write_error(error, error_len, e.what());
    return -1;
  }
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

int derecho_store_on_done(derecho_member* member, derecho_store_done_fn done, void* context) {
  if (!member || !done) return -1;
  member->store_done = done;
  member->store_context = context;
  return 0;
}

int derecho_store_put(derecho_member* member, uint32_t subgroup, const void* key, size_t key_length, const void* value,
                      size_t value_length, uint64_t after_hlc, uint64_t ticket, char* error, size_t error_len) {
  return store_call(error, error_len, [&] {
    auto& store = store_of(member, subgroup);
    if (!value && value_length > 0) throw std::invalid_argument("value must not be NULL when value_length > 0");
    store.put(key_of(key, key_length), {static_cast<const std::byte*>(value), value_length}, after_hlc,
              done_for<derecho::store::Stamp>(member, ticket));
  });
}

int derecho_store_remove(derecho_member* member, uint32_t subgroup, const void* key, size_t key_length,
                         uint64_t after_hlc, uint64_t ticket, char* error, size_t error_len) {
  return store_call(error, error_len, [&] {
    store_of(member, subgroup).remove(key_of(key, key_length), after_hlc, done_for<derecho::store::Stamp>(member, ticket));
  });
}

int derecho_store_get_by_time(derecho_member* member, uint32_t subgroup, const void* key, size_t key_length,
                              uint64_t t, uint64_t ticket, char* error, size_t error_len) {
  return store_call(error, error_len, [&] {
    store_of(member, subgroup).get_by_time(key_of(key, key_length), t,
                                           done_for<derecho::store::ReadResult>(member, ticket));
  });
}

int derecho_store_version_at_time(derecho_member* member, uint32_t subgroup, uint64_t t, uint64_t ticket,
                                  char* error, size_t error_len) {
  return store_call(error, error_len, [&] {
    store_of(member, subgroup).version_at_time(t, done_for<std::uint64_t>(member, ticket));
  });
}

int derecho_store_ordered_get(derecho_member* member, uint32_t subgroup, const void* key, size_t key_length,
                              uint64_t ticket, char* error, size_t error_len) {
  return store_call(error, error_len, [&] {
    store_of(member, subgroup).ordered_get(key_of(key, key_length), done_for<derecho::store::ReadResult>(member, ticket));
  });
}

int derecho_store_wait_persisted(derecho_member* member, uint32_t subgroup, uint64_t version, uint64_t ticket,
                                 char* error, size_t error_len) {
  return store_call(error, error_len, [&] {
    store_of(member, subgroup).wait_global_persisted(version, done_for<std::uint64_t>(member, ticket));
  });
}

int derecho_store_wait_delivered(derecho_member* member, uint32_t subgroup, uint64_t version, uint64_t ticket,
                                 char* error, size_t error_len) {
  return store_call(error, error_len, [&] {
    store_of(member, subgroup).wait_delivered(version, done_for<std::uint64_t>(member, ticket));
  });
}

int derecho_store_get(derecho_member* member, uint32_t subgroup, const void* key, size_t key_length, uint64_t version,
                      derecho_store_read_fn visit, void* context, char* error, size_t error_len) {
  return store_call(error, error_len, [&] {
    if (!visit) throw std::invalid_argument("visit must not be NULL");
    const auto& store = store_of(member, subgroup);
    const std::string_view k = key_of(key, key_length);
    const auto read = version == DERECHO_STORE_LATEST ? store.get(k) : store.get(k, version);
    const derecho_store_result c = to_c(read);
    visit(context, &c);
  });
}

int derecho_store_list_keys(derecho_member* member, uint32_t subgroup, uint64_t version, derecho_store_key_fn visit,
                            void* context, char* error, size_t error_len) {
  return store_call(error, error_len, [&] {
    if (!visit) throw std::invalid_argument("visit must not be NULL");
    const auto& store = store_of(member, subgroup);
    const auto keys = version == DERECHO_STORE_LATEST ? store.list_keys() : store.list_keys(version);
    for (const auto& key : keys) visit(context, reinterpret_cast<const std::uint8_t*>(key.data()), key.size());
  });
}

int derecho_store_frontier(derecho_member* member, uint32_t subgroup, derecho_store_frontier_info* out, char* error,
                           size_t error_len) {
  return store_call(error, error_len, [&] {
    if (!out) throw std::invalid_argument("out must not be NULL");
    const auto f = store_of(member, subgroup).frontier();
    *out = {f.first_retained, f.delivered, f.persisted, f.global_persisted, f.stable_hlc, f.log_full ? 1 : 0, {}};
    write_error(out->log_error, sizeof out->log_error, f.log_error);
  });
}

int derecho_store_truncate(derecho_member* member, uint32_t subgroup, uint64_t version, char* error, size_t error_len) {
  return store_call(error, error_len, [&] { store_of(member, subgroup).truncate_below(version); });
}

int derecho_store_repairs(derecho_member* member, uint32_t subgroup, derecho_store_repair_fn visit, void* context,
                          char* error, size_t error_len) {
  return store_call(error, error_len, [&] {
    if (!visit) throw std::invalid_argument("visit must not be NULL");
    for (const auto& r : store_of(member, subgroup).repairs()) {
      visit(context, r.file.c_str(), r.offset, r.bytes_dropped, r.reason.c_str());
    }
  });
}

int derecho_store_entries(derecho_member* member, uint32_t subgroup, uint64_t from, size_t max_count, size_t max_bytes,
                          derecho_store_entry_fn visit, void* context, char* error, size_t error_len) {
  return store_call(error, error_len, [&] {
    if (!visit) throw std::invalid_argument("visit must not be NULL");
    for (const auto& e : store_of(member, subgroup).entries(from, max_count, max_bytes)) {
      const derecho_store_entry c{e.version,
                                  e.hlc,
                                  to_c(e.kind),
                                  reinterpret_cast<const std::uint8_t*>(e.key.data()),
                                  e.key.size(),
                                  reinterpret_cast<const std::uint8_t*>(e.value.data()),
                                  e.value.size()};
      visit(context, &c);
    }
  });
}

}  // extern "C"
