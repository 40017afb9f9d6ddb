// N-API addon over the C ABI: the one door from TypeScript into the engine (native/index.ts).
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "api/c_api.h"
#include "common/log.hpp"

namespace {

// Delivery batch format 2 (docs/delivery-batch.md): u64 index, u64 senderSeq, u64 vid,
// u32 subgroup, u32 sender, u32 length, payload.
constexpr std::uint32_t kDeliveryBatchVersion = 2;
constexpr std::size_t kDeliveryHeaderBytes = 36;
// Deliveries handed to JavaScript but not yet consumed; above this the engine holds delivery
// back, rings fill up and senders stall, instead of the process growing without bound.
constexpr std::size_t kMaxOutstandingDeliveryBytes = 4u << 20;

struct LogLine {
  std::string level;
  std::string component;
  std::string message;
};

// What the engine thread hands to JavaScript, queued in the engine's order: records of one or
// more delivery batches (appended while nothing else comes between them), an installed view, a
// membership event, a request for a snapshot of a subgroup's state, or a state to restore.
struct PendingView {
  std::uint64_t vid = 0;
  std::uint32_t leader = 0;
  std::vector<std::uint32_t> members;
  std::vector<std::uint32_t> joined;
  std::vector<std::uint32_t> departed;
  // Per configured subgroup, per shard, member ids (no shards: not sharded, or inadequate).
  std::vector<std::vector<std::vector<std::uint32_t>>> shards;
  bool adequate = true;
  std::string inadequate;
};
struct PendingEvent {
  derecho_membership_event kind;
  std::string reason;
};
struct PendingSnapshot {
  std::uint32_t subgroup;
  std::uint64_t vid;
};
struct PendingRestore {
  std::uint32_t subgroup;
  std::uint64_t vid;
  std::unique_ptr<std::vector<std::uint8_t>> state;
};
// The completion of a store operation (derecho_store_done_fn), copied off the engine thread;
// also what a sync read copies out of derecho_store_get.
struct PendingStoreDone {
  std::uint64_t ticket = 0;
  int code = 0;  // 0: done; otherwise a derecho_store_error
  std::string error;
  std::uint64_t version = 0;
  std::uint64_t hlc = 0;
  std::uint64_t at_version = 0;
  bool found = false;
  std::vector<std::uint8_t> value;
};
using PendingRecords = std::unique_ptr<std::vector<std::uint8_t>>;
using PendingItem =
    std::variant<PendingRecords, PendingView, PendingEvent, PendingSnapshot, PendingRestore, PendingStoreDone>;

// The names JavaScript sees as StoreError codes (native/index.ts), by derecho_store_error.
const char* store_error_name(int code) {
  switch (code) {
    case DERECHO_STORE_INVALID_ARGUMENT: return "invalid_argument";
    case DERECHO_STORE_UNKNOWN_VERSION: return "unknown_version";
    case DERECHO_STORE_NOT_RETAINED: return "not_retained";
    case DERECHO_STORE_FUTURE_TIME: return "future_time";
    case DERECHO_STORE_LOG_FULL: return "log_full";
    case DERECHO_STORE_BUSY: return "busy";
    case DERECHO_STORE_STOPPED: return "stopped";
  }
  return nullptr;
}

// What a derecho_store_* call refused (rc > 0: a store error, whose name becomes `code`; -1:
// any other error, without a code) or a completion reported.
Napi::Error store_error(Napi::Env env, int rc, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  if (const char* name = rc > 0 ? store_error_name(rc) : nullptr) e.Set("code", Napi::String::New(env, name));
  return e;
}

// What a store operation's promise resolves to: a StoreStamp, a StoreRead or a version.
enum class StoreAnswer { stamp, read, version };

// A StoreRead: when not found, version and hlc are 0 and value is null.
Napi::Object read_object(Napi::Env env, const PendingStoreDone& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("atVersion", Napi::BigInt::New(env, r.at_version));
  o.Set("found", Napi::Boolean::New(env, r.found));
  o.Set("version", Napi::BigInt::New(env, r.found ? r.version : 0));
  o.Set("hlc", Napi::BigInt::New(env, r.found ? r.hlc : 0));
  o.Set("value", r.found ? Napi::Value(Napi::Buffer<std::uint8_t>::Copy(env, r.value.data(), r.value.size())) : env.Null());
  return o;
}

Napi::Value store_answer(Napi::Env env, StoreAnswer answer, const PendingStoreDone& done) {
  switch (answer) {
    case StoreAnswer::stamp: {
      Napi::Object o = Napi::Object::New(env);
      o.Set("version", Napi::BigInt::New(env, done.version));
      o.Set("hlc", Napi::BigInt::New(env, done.hlc));
      return o;
    }
    case StoreAnswer::read: return read_object(env, done);
    case StoreAnswer::version: return Napi::BigInt::New(env, done.version);
  }
  return env.Undefined();
}

const char* event_name(derecho_membership_event kind) {
  switch (kind) {
    case DERECHO_EVENT_WEDGED: return "wedged";
    case DERECHO_EVENT_REMOVED: return "removed";
    case DERECHO_EVENT_MINORITY: return "minority";
    case DERECHO_EVENT_INADEQUATE: return "inadequate";
    case DERECHO_EVENT_LEFT: return "left";
  }
  return "unknown";
}

std::vector<std::uint32_t> copy_ids(const std::uint32_t* ids, std::size_t count) {
  return count == 0 ? std::vector<std::uint32_t>{} : std::vector<std::uint32_t>(ids, ids + count);
}

// Decodes the flat shard map of c_api.h: per subgroup S, then per shard n and n ids.
std::vector<std::vector<std::vector<std::uint32_t>>> decode_shards(const std::uint32_t* flat, std::size_t length) {
  std::vector<std::vector<std::vector<std::uint32_t>>> out;
  std::size_t at = 0;
  const auto next = [&]() -> std::uint32_t { return at < length ? flat[at++] : 0; };
  while (at < length) {
    auto& subgroup = out.emplace_back();
    const std::uint32_t shards = next();
    for (std::uint32_t k = 0; k < shards && at < length; ++k) {
      auto& shard = subgroup.emplace_back();
      const std::uint32_t n = next();
      for (std::uint32_t i = 0; i < n && at < length; ++i) shard.push_back(next());
    }
  }
  return out;
}

PendingView copy_view(const derecho_view& v) {
  return {v.vid,
          v.leader,
          copy_ids(v.members, v.member_count),
          copy_ids(v.joined, v.joined_count),
          copy_ids(v.departed, v.departed_count),
          decode_shards(v.shards, v.shards_length),
          v.adequate != 0,
          v.inadequate ? v.inadequate : ""};
}

Napi::Array id_array(Napi::Env env, const std::vector<std::uint32_t>& ids) {
  Napi::Array a = Napi::Array::New(env, ids.size());
  for (std::uint32_t i = 0; i < ids.size(); ++i) a.Set(i, Napi::Number::New(env, ids[i]));
  return a;
}

// { vid, members, leader, joined, departed, shards, adequate, inadequate }: NativeView in
// native/index.ts.
Napi::Object view_object(Napi::Env env, const PendingView& v) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("vid", Napi::Number::New(env, static_cast<double>(v.vid)));
  o.Set("members", id_array(env, v.members));
  o.Set("leader", Napi::Number::New(env, v.leader));
  o.Set("joined", id_array(env, v.joined));
  o.Set("departed", id_array(env, v.departed));
  Napi::Array shards = Napi::Array::New(env, v.shards.size());
  for (std::uint32_t s = 0; s < v.shards.size(); ++s) {
    Napi::Array subgroup = Napi::Array::New(env, v.shards[s].size());
    for (std::uint32_t k = 0; k < v.shards[s].size(); ++k) subgroup.Set(k, id_array(env, v.shards[s][k]));
    shards.Set(s, subgroup);
  }
  o.Set("shards", shards);
  o.Set("adequate", Napi::Boolean::New(env, v.adequate));
  o.Set("inadequate", Napi::String::New(env, v.inadequate));
  return o;
}

void call_deliver(Napi::Env env, Napi::Function fn, class MemberWrap* wrap, std::nullptr_t* unused);
void call_writable(Napi::Env env, Napi::Function fn, class MemberWrap* wrap, std::nullptr_t* unused);
void call_log(Napi::Env env, Napi::Function fn, std::nullptr_t* context, LogLine* line);

using DeliverTsfn = Napi::TypedThreadSafeFunction<MemberWrap, std::nullptr_t, call_deliver>;
using WritableTsfn = Napi::TypedThreadSafeFunction<MemberWrap, std::nullptr_t, call_writable>;
using LogTsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, LogLine, call_log>;

void put_u32(std::uint8_t* at, std::uint32_t v) { std::memcpy(at, &v, 4); }
void put_u64(std::uint8_t* at, std::uint64_t v) { std::memcpy(at, &v, 8); }

// Field readers that name the field in their TypeError.
Napi::Value field(const Napi::Object& o, const char* name, const std::string& path) {
  if (!o.Has(name)) throw Napi::TypeError::New(o.Env(), path + "." + name + " is required");
  return o.Get(name);
}
std::uint32_t u32_field(const Napi::Object& o, const char* name, const std::string& path) {
  const Napi::Value v = field(o, name, path);
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), path + "." + name + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (d < 0 || d > 4294967295.0 || d != static_cast<double>(static_cast<std::uint32_t>(d))) {
    throw Napi::TypeError::New(o.Env(), path + "." + name + " must be an unsigned 32-bit integer");
  }
  return static_cast<std::uint32_t>(d);
}
// Absent or undefined: 0 (the engine's default).
std::uint32_t optional_u32_field(const Napi::Object& o, const char* name, const std::string& path) {
  if (!o.Has(name) || o.Get(name).IsUndefined()) return 0;
  return u32_field(o, name, path);
}
std::string string_field(const Napi::Object& o, const char* name, const std::string& path) {
  const Napi::Value v = field(o, name, path);
  if (!v.IsString()) throw Napi::TypeError::New(o.Env(), path + "." + name + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}
// Absent or undefined: 0 (the engine's default). A number (a safe integer) or a BigInt.
std::uint64_t optional_u64_field(const Napi::Object& o, const char* name, const std::string& path) {
  if (!o.Has(name) || o.Get(name).IsUndefined()) return 0;
  const Napi::Value v = o.Get(name);
  if (v.IsBigInt()) {
    bool lossless = false;
    const std::uint64_t n = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::TypeError::New(o.Env(), path + "." + name + " must be an unsigned 64-bit integer");
    return n;
  }
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), path + "." + name + " must be a number or a BigInt");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<std::uint64_t>(d))) {
    throw Napi::TypeError::New(o.Env(), path + "." + name + " must be an integer 0..2^53-1");
  }
  return static_cast<std::uint64_t>(d);
}
Napi::Array array_field(const Napi::Object& o, const char* name, const std::string& path) {
  const Napi::Value v = field(o, name, path);
  if (!v.IsArray()) throw Napi::TypeError::New(o.Env(), path + "." + name + " must be an array");
  return v.As<Napi::Array>();
}
std::vector<std::uint32_t> id_list(const Napi::Object& o, const char* name, const std::string& path) {
  const Napi::Array a = array_field(o, name, path);
  std::vector<std::uint32_t> ids;
  for (std::uint32_t i = 0; i < a.Length(); ++i) {
    const Napi::Value v = a.Get(i);
    if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), path + "." + name + "[" + std::to_string(i) + "] must be a number");
    ids.push_back(v.As<Napi::Number>().Uint32Value());
  }
  return ids;
}

// Owns the storage that the C config structs point into.
struct ConfigStorage {
  std::string group;
  std::vector<std::string> hosts;
  std::vector<derecho_member_address> members;
  std::vector<std::string> names;
  std::vector<std::vector<std::uint32_t>> member_lists;
  std::vector<std::vector<std::uint32_t>> sender_lists;
  std::vector<std::vector<std::uint32_t>> reserved_counts;
  std::vector<std::vector<std::uint32_t>> reserved_ids;
  std::deque<derecho_store_config> stores;  // a deque: the subgroups point into it as it grows
  std::deque<derecho_large_object_config> large_objects;
  std::vector<derecho_subgroup_config> subgroups;
  std::string data_dir;
  derecho_group_config config{};
};

// subgroups[i].store: { storage: 'volatile' | 'persistent', window?, maxKeyBytes?, maxValueBytes?,
// segmentBytes?, maxLogBytes? } or absent (NativeStoreConfig in native/index.ts).
void read_store(const Napi::Object& sg, const std::string& path, ConfigStorage& s, derecho_subgroup_config& out) {
  out.store = nullptr;
  if (!sg.Has("store") || sg.Get("store").IsUndefined() || sg.Get("store").IsNull()) return;
  const std::string at = path + ".store";
  if (!sg.Get("store").IsObject()) throw Napi::TypeError::New(sg.Env(), at + " must be an object");
  const Napi::Object store = sg.Get("store").As<Napi::Object>();
  derecho_store_config c{};
  const std::string storage = string_field(store, "storage", at);
  if (storage == "volatile") c.storage = DERECHO_STORE_VOLATILE;
  else if (storage == "persistent") c.storage = DERECHO_STORE_PERSISTENT;
  else throw Napi::TypeError::New(sg.Env(), at + ".storage must be 'volatile' or 'persistent', got '" + storage + "'");
  c.window = optional_u64_field(store, "window", at);
  c.max_key_bytes = optional_u32_field(store, "maxKeyBytes", at);
  c.max_value_bytes = optional_u32_field(store, "maxValueBytes", at);
  c.segment_bytes = optional_u64_field(store, "segmentBytes", at);
  c.max_log_bytes = optional_u64_field(store, "maxLogBytes", at);
  s.stores.push_back(c);
  out.store = &s.stores.back();
}

// subgroups[i].largeObjects: { thresholdBytes?, maxObjectBytes, blockBytes? } or absent
// (NativeLargeObjectConfig in native/index.ts).
void read_large_objects(const Napi::Object& sg, const std::string& path, ConfigStorage& s, derecho_subgroup_config& out) {
  out.large_objects = nullptr;
  if (!sg.Has("largeObjects") || sg.Get("largeObjects").IsUndefined() || sg.Get("largeObjects").IsNull()) return;
  const std::string at = path + ".largeObjects";
  if (!sg.Get("largeObjects").IsObject()) throw Napi::TypeError::New(sg.Env(), at + " must be an object");
  const Napi::Object large = sg.Get("largeObjects").As<Napi::Object>();
  derecho_large_object_config c{};
  c.threshold_bytes = optional_u64_field(large, "thresholdBytes", at);
  c.max_object_bytes = optional_u64_field(large, "maxObjectBytes", at);
  c.block_bytes = optional_u32_field(large, "blockBytes", at);
  s.large_objects.push_back(c);
  out.large_objects = &s.large_objects.back();
}

// createMember's options: { dataDir?, flush?: 'auto' | 'persist' | 'msync', clockOffsetNs? }
// (NativeMemberOptions in native/index.ts), this member's own, not the group's.
void read_member_options(const Napi::Value& js, ConfigStorage& s) {
  if (js.IsUndefined() || js.IsNull()) return;
  if (!js.IsObject()) throw Napi::TypeError::New(js.Env(), "options must be an object");
  const Napi::Object o = js.As<Napi::Object>();
  if (o.Has("dataDir") && !o.Get("dataDir").IsUndefined()) {
    s.data_dir = string_field(o, "dataDir", "options");
    s.config.data_dir = s.data_dir.c_str();
  }
  if (o.Has("flush") && !o.Get("flush").IsUndefined()) {
    const std::string flush = string_field(o, "flush", "options");
    if (flush == "auto") s.config.flush_mode = DERECHO_FLUSH_AUTOMATIC;
    else if (flush == "persist") s.config.flush_mode = DERECHO_FLUSH_PMEM_PERSIST;
    else if (flush == "msync") s.config.flush_mode = DERECHO_FLUSH_MSYNC;
    else throw Napi::TypeError::New(js.Env(), "options.flush must be 'auto', 'persist' or 'msync', got '" + flush + "'");
  }
  if (o.Has("clockOffsetNs") && !o.Get("clockOffsetNs").IsUndefined()) {
    const Napi::Value v = o.Get("clockOffsetNs");
    bool exact = true;
    std::int64_t offset = 0;
    if (v.IsBigInt()) {
      offset = v.As<Napi::BigInt>().Int64Value(&exact);
    } else if (v.IsNumber()) {
      const double d = v.As<Napi::Number>().DoubleValue();
      exact = d >= -9007199254740991.0 && d <= 9007199254740991.0 && d == static_cast<double>(static_cast<std::int64_t>(d));
      offset = exact ? static_cast<std::int64_t>(d) : 0;
    } else {
      exact = false;
    }
    if (!exact) throw Napi::TypeError::New(js.Env(), "options.clockOffsetNs must be an integer (a number or a BigInt)");
    s.config.clock_offset_ns = offset;
  }
}

// subgroups[i].sharding: { shards, minPerShard, maxPerShard, reserved?: number[][] } or absent.
void read_sharding(const Napi::Object& sg, const std::string& path, ConfigStorage& s, derecho_subgroup_config& out) {
  out.shards = 0;
  out.min_per_shard = 0;
  out.max_per_shard = 0;
  out.reserved_counts = nullptr;
  out.reserved_shard_count = 0;
  out.reserved = nullptr;
  if (!sg.Has("sharding") || sg.Get("sharding").IsUndefined() || sg.Get("sharding").IsNull()) return;
  const std::string at = path + ".sharding";
  if (!sg.Get("sharding").IsObject()) throw Napi::TypeError::New(sg.Env(), at + " must be an object");
  const Napi::Object sharding = sg.Get("sharding").As<Napi::Object>();
  out.shards = u32_field(sharding, "shards", at);
  if (out.shards == 0) throw Napi::TypeError::New(sg.Env(), at + ".shards must be at least 1");
  out.min_per_shard = u32_field(sharding, "minPerShard", at);
  out.max_per_shard = u32_field(sharding, "maxPerShard", at);
  auto& counts = s.reserved_counts.back();
  auto& ids = s.reserved_ids.back();
  if (sharding.Has("reserved") && !sharding.Get("reserved").IsUndefined()) {
    const Napi::Array lists = array_field(sharding, "reserved", at);
    for (std::uint32_t k = 0; k < lists.Length(); ++k) {
      const std::string list_path = at + ".reserved[" + std::to_string(k) + "]";
      const Napi::Value v = lists.Get(k);
      if (!v.IsArray()) throw Napi::TypeError::New(sg.Env(), list_path + " must be an array");
      const Napi::Array list = v.As<Napi::Array>();
      counts.push_back(list.Length());
      for (std::uint32_t i = 0; i < list.Length(); ++i) {
        const Napi::Value id = list.Get(i);
        if (!id.IsNumber()) throw Napi::TypeError::New(sg.Env(), list_path + "[" + std::to_string(i) + "] must be a number");
        ids.push_back(id.As<Napi::Number>().Uint32Value());
      }
    }
  }
  out.reserved_counts = counts.data();
  out.reserved_shard_count = counts.size();
  out.reserved = ids.data();
}

std::unique_ptr<ConfigStorage> read_config(const Napi::Object& js) {
  auto s = std::make_unique<ConfigStorage>();
  s->group = string_field(js, "group", "config");
  const std::string transport = string_field(js, "transport", "config");
  if (transport == "shm") s->config.transport = DERECHO_TRANSPORT_SHM;
  else if (transport == "tcp") s->config.transport = DERECHO_TRANSPORT_TCP;
  else if (transport == "verbs") s->config.transport = DERECHO_TRANSPORT_VERBS;
  else throw Napi::TypeError::New(js.Env(), "config.transport must be 'shm', 'tcp' or 'verbs', got '" + transport + "'");
  const Napi::Array members = array_field(js, "members", "config");
  s->hosts.reserve(members.Length());
  for (std::uint32_t i = 0; i < members.Length(); ++i) {
    const std::string path = "config.members[" + std::to_string(i) + "]";
    const Napi::Value v = members.Get(i);
    if (!v.IsObject()) throw Napi::TypeError::New(js.Env(), path + " must be an object");
    const Napi::Object m = v.As<Napi::Object>();
    s->hosts.push_back(string_field(m, "host", path));
    const std::uint32_t port = u32_field(m, "port", path);
    if (port > 65535) throw Napi::TypeError::New(js.Env(), path + ".port must be 0..65535");
    s->members.push_back({u32_field(m, "id", path), nullptr, static_cast<std::uint16_t>(port)});
  }
  for (std::size_t i = 0; i < s->members.size(); ++i) s->members[i].host = s->hosts[i].c_str();
  const Napi::Array subgroups = array_field(js, "subgroups", "config");
  const std::uint32_t n = subgroups.Length();
  s->names.reserve(n);
  s->member_lists.reserve(n);
  s->sender_lists.reserve(n);
  s->reserved_counts.reserve(n);
  s->reserved_ids.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::string path = "config.subgroups[" + std::to_string(i) + "]";
    const Napi::Value v = subgroups.Get(i);
    if (!v.IsObject()) throw Napi::TypeError::New(js.Env(), path + " must be an object");
    const Napi::Object sg = v.As<Napi::Object>();
    s->names.push_back(string_field(sg, "name", path));
    s->member_lists.push_back(id_list(sg, "members", path));
    s->sender_lists.push_back(id_list(sg, "senders", path));
    derecho_subgroup_config c{};
    c.name = s->names.back().c_str();
    c.members = s->member_lists.back().data();
    c.member_count = s->member_lists.back().size();
    c.senders = s->sender_lists.back().data();
    c.sender_count = s->sender_lists.back().size();
    c.ring_bytes = u32_field(sg, "ringBytes", path);
    c.max_message_bytes = u32_field(sg, "maxMessageBytes", path);
    s->reserved_counts.emplace_back();
    s->reserved_ids.emplace_back();
    read_sharding(sg, path, *s, c);
    read_store(sg, path, *s, c);
    read_large_objects(sg, path, *s, c);
    s->subgroups.push_back(c);
  }
  s->config.group = s->group.c_str();
  s->config.members = s->members.data();
  s->config.member_count = s->members.size();
  s->config.subgroups = s->subgroups.data();
  s->config.subgroup_count = s->subgroups.size();
  s->config.spin_us = u32_field(js, "spinMicros", "config");
  s->config.heartbeat_ms = optional_u32_field(js, "heartbeatMillis", "config");
  s->config.suspect_after_ms = optional_u32_field(js, "suspectAfterMillis", "config");
  s->config.initial_members = optional_u32_field(js, "initialMembers", "config");
  s->config.state_chunk_bytes = optional_u32_field(js, "stateChunkBytes", "config");
  return s;
}

LogTsfn log_tsfn;
std::atomic<int> log_users{0};

class MemberWrap : public Napi::ObjectWrap<MemberWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "NativeMember",
                       {InstanceMethod<&MemberWrap::start>("start"), InstanceMethod<&MemberWrap::send>("send"),
                        InstanceMethod<&MemberWrap::send_batch>("sendBatch"),
                        InstanceMethod<&MemberWrap::writable>("writable"), InstanceMethod<&MemberWrap::stats>("stats"),
                        InstanceMethod<&MemberWrap::subgroup_stats>("subgroupStats"),
                        InstanceMethod<&MemberWrap::view>("view"), InstanceMethod<&MemberWrap::set_on_view>("onView"),
                        InstanceMethod<&MemberWrap::set_on_event>("onEvent"),
                        InstanceMethod<&MemberWrap::set_on_snapshot>("onSnapshot"),
                        InstanceMethod<&MemberWrap::set_on_restore>("onRestore"),
                        InstanceMethod<&MemberWrap::leave>("leave"), InstanceMethod<&MemberWrap::stop>("stop"),
                        InstanceMethod<&MemberWrap::store_put>("storePut"),
                        InstanceMethod<&MemberWrap::store_remove>("storeRemove"),
                        InstanceMethod<&MemberWrap::store_get>("storeGet"),
                        InstanceMethod<&MemberWrap::store_get_by_time>("storeGetByTime"),
                        InstanceMethod<&MemberWrap::store_version_at_time>("storeVersionAtTime"),
                        InstanceMethod<&MemberWrap::store_ordered_get>("storeOrderedGet"),
                        InstanceMethod<&MemberWrap::store_wait_persisted>("storeWaitPersisted"),
                        InstanceMethod<&MemberWrap::store_wait_delivered>("storeWaitDelivered"),
                        InstanceMethod<&MemberWrap::store_entries>("storeEntries"),
                        InstanceMethod<&MemberWrap::store_list_keys>("storeListKeys"),
                        InstanceMethod<&MemberWrap::store_frontier>("storeFrontier"),
                        InstanceMethod<&MemberWrap::store_truncate>("storeTruncate"),
                        InstanceMethod<&MemberWrap::store_repairs>("storeRepairs")});
  }

  // new NativeMember(config, self, onDeliver, onLog, options?)
  explicit MemberWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MemberWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsObject() || !info[1].IsNumber() || !info[2].IsFunction() ||
        !info[3].IsFunction()) {
      throw Napi::TypeError::New(env, "createMember(config, self, onDeliver, onLog, options?): wrong argument types");
    }
    const auto storage = read_config(info[0].As<Napi::Object>());
    read_member_options(info.Length() > 4 ? info[4] : env.Undefined(), *storage);
    attach_log(env, info[3].As<Napi::Function>());
    const derecho_callbacks callbacks{&MemberWrap::on_deliver,  &MemberWrap::on_ready, &MemberWrap::on_writable,
                                      this,                     &MemberWrap::on_view,  &MemberWrap::on_event,
                                      &MemberWrap::on_snapshot, &MemberWrap::on_restore};
    char error[512] = {0};
    member_ = derecho_member_create(&storage->config, info[1].As<Napi::Number>().Uint32Value(), &callbacks, error,
                                    sizeof error);
    if (!member_) {
      detach_log();
      throw Napi::Error::New(env, error);
    }
    derecho_store_on_done(member_, &MemberWrap::on_store_done, this);
    // The engine calls back only after start(), so the functions can come after creation. Queued
    // calls reach this object after stop(); each function holds a reference until its finalizer
    // runs, so the object outlives every call that names it.
    on_deliver_ = Napi::Persistent(info[2].As<Napi::Function>());
    Ref();
    deliver_ = DeliverTsfn::New(env, info[2].As<Napi::Function>(), "derecho-deliver", 0, 1, this,
                                &MemberWrap::unref_on_finalize, static_cast<void*>(nullptr));
    Ref();
    writable_tsfn_ = WritableTsfn::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                       "derecho-writable", 0, 1, this, &MemberWrap::unref_on_finalize,
                                       static_cast<void*>(nullptr));
  }

  // stop() must be called: until then the engine runs and the object stays referenced.
  ~MemberWrap() override { shutdown(); }

  void settle_writable(Napi::Env env) {
    refused_ = false;
    for (auto& d : waiting_writable_) d.Resolve(env.Undefined());
    waiting_writable_.clear();
  }

  // On the JavaScript thread: hands over everything queued, in the engine's order. A view
  // reaches JavaScript after every delivery of the view before it and before any of its own.
  // A handler that throws does not cut the rest short: the first error is rethrown at the end.
  void consume(Napi::Env env, Napi::Function fn) {
    std::deque<PendingItem> items = take_pending();
    const bool live = !stopped_ && env && fn;
    std::optional<Napi::Error> failure;
    const auto call = [&](const Napi::Function& f, const std::initializer_list<napi_value>& args) {
      try {
        f.Call(args);
      } catch (const Napi::Error& e) {
        if (!failure) failure = e;
      }
    };
    for (auto& item : items) {
      if (auto* records = std::get_if<PendingRecords>(&item)) {
        const std::size_t bytes = (*records)->size();
        if (!live) {
          drained(bytes);
          continue;
        }
        std::vector<std::uint8_t>* raw = records->release();
        auto buffer = Napi::Buffer<std::uint8_t>::New(env, raw->data(), raw->size(),
                                                      [](Napi::Env, std::uint8_t*, std::vector<std::uint8_t>* v) {
                                                        std::unique_ptr<std::vector<std::uint8_t>> owned(v);
                                                      },
                                                      raw);
        drained(bytes);
        call(fn, {buffer});
      } else if (const auto* view = std::get_if<PendingView>(&item)) {
        if (live && !on_view_.IsEmpty()) call(on_view_.Value(), {view_object(env, *view)});
      } else if (const auto* event = std::get_if<PendingEvent>(&item)) {
        if (live && !on_event_.IsEmpty()) {
          call(on_event_.Value(), {Napi::String::New(env, event_name(event->kind)), Napi::String::New(env, event->reason)});
        }
      } else if (const auto* request = std::get_if<PendingSnapshot>(&item)) {
        if (!live) continue;
        if (on_snapshot_.IsEmpty()) {
          provide(env, request->subgroup, request->vid, nullptr, 0);
          continue;
        }
        try {
          const Napi::Value answer = on_snapshot_.Value().Call(
              {Napi::Number::New(env, request->subgroup), Napi::Number::New(env, static_cast<double>(request->vid))});
          answer_snapshot(env, request->subgroup, request->vid, answer);
        } catch (const Napi::Error& e) {
          if (!failure) failure = e;
        }
      } else if (const auto* done = std::get_if<PendingStoreDone>(&item)) {
        // Settled even when stopped: every operation's promise settles. Resolving runs no
        // JavaScript here (reactions are microtasks, after this call).
        if (env) settle_store(env, *done);
      } else if (auto* restore = std::get_if<PendingRestore>(&item)) {
        if (!live || on_restore_.IsEmpty()) continue;
        std::vector<std::uint8_t>* raw = restore->state.release();
        auto buffer = Napi::Buffer<std::uint8_t>::New(env, raw->data(), raw->size(),
                                                      [](Napi::Env, std::uint8_t*, std::vector<std::uint8_t>* v) {
                                                        std::unique_ptr<std::vector<std::uint8_t>> owned(v);
                                                      },
                                                      raw);
        call(on_restore_.Value(), {Napi::Number::New(env, restore->subgroup),
                                   Napi::Number::New(env, static_cast<double>(restore->vid)), buffer});
      }
    }
    if (failure) throw *failure;
  }

  // What onSnapshot returned: a Buffer (or any Uint8Array), handed to the engine now, or a
  // Promise of one, handed over when it resolves. A rejected promise is an error like a handler
  // that throws: it is rethrown (an unhandled rejection).
  void answer_snapshot(Napi::Env env, std::uint32_t subgroup, std::uint64_t vid, const Napi::Value& answer) {
    if (answer.IsTypedArray()) {
      const auto bytes = answer.As<Napi::Uint8Array>();
      if (bytes.TypedArrayType() != napi_uint8_array) {
        throw Napi::TypeError::New(env, "onSnapshot must return a Buffer or a Promise of one");
      }
      provide(env, subgroup, vid, bytes.Data(), bytes.ByteLength());
      return;
    }
    bool is_promise = false;
    if (napi_is_promise(env, answer, &is_promise) != napi_ok || !is_promise) {
      throw Napi::TypeError::New(env, "onSnapshot must return a Buffer or a Promise of one (subgroup " +
                                          std::to_string(subgroup) + ", view " + std::to_string(vid) + ")");
    }
    // The wrapper stays alive until the promise settles.
    Ref();
    auto fulfilled = Napi::Function::New(env, [this, subgroup, vid](const Napi::CallbackInfo& info) {
      Napi::Env e = info.Env();
      Unref();
      const Napi::Value value = info.Length() > 0 ? info[0] : e.Undefined();
      if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
        throw Napi::TypeError::New(e, "the Promise onSnapshot returned must resolve to a Buffer (subgroup " +
                                          std::to_string(subgroup) + ", view " + std::to_string(vid) + ")");
      }
      const auto bytes = value.As<Napi::Uint8Array>();
      provide(e, subgroup, vid, bytes.Data(), bytes.ByteLength());
    });
    auto rejected = Napi::Function::New(env, [this](const Napi::CallbackInfo& info) {
      Unref();
      throw Napi::Error(info.Env(), info.Length() > 0 ? info[0] : info.Env().Undefined());
    });
    const Napi::Object promise = answer.As<Napi::Object>();
    promise.Get("then").As<Napi::Function>().Call(promise, {fulfilled, rejected});
  }

  // Hands a snapshot to the engine (it copies it); ignored once the member is stopped.
  void provide(Napi::Env env, std::uint32_t subgroup, std::uint64_t vid, const std::uint8_t* data, std::size_t length) {
    if (!member_ || stopped_) return;
    char error[512] = {0};
    if (derecho_member_provide_snapshot(member_, subgroup, vid, data, length, error, sizeof error) != 0) {
      throw Napi::Error::New(env, error);
    }
  }

  // The engine held delivery back while too much was outstanding; once JavaScript has caught
  // up, wake it rather than leave it asleep until its idle timeout.
  void drained(std::size_t bytes) {
    const std::size_t before = outstanding_.fetch_sub(bytes);
    if (before >= kMaxOutstandingDeliveryBytes && before - bytes < kMaxOutstandingDeliveryBytes && member_) {
      derecho_member_wake(member_);
    }
  }

  void start_finished(Napi::Env env) {
    starting_ = false;
    settle_stop_waiters(env);
  }

  // A leave finished (the engine has stopped): JavaScript gets everything the engine handed over
  // before it, the `left` event included, before the promise resolves.
  void leave_finished(Napi::Env env) {
    leaving_ = false;
    if (!on_deliver_.IsEmpty()) consume(env, on_deliver_.Value());
  }

  void settle_stop_waiters(Napi::Env env) {
    if (starting_ || leaving_ || stop_waiters_.empty()) return;
    shutdown();
    settle_writable(env);
    settle_store_after_stop(env);
    for (auto& d : stop_waiters_) d.Resolve(env.Undefined());
    stop_waiters_.clear();
  }

 private:
  static void unref_on_finalize(Napi::Env, void*, MemberWrap* self) { self->Unref(); }

  // Batches that arrive while JavaScript has not yet taken the previous one are appended to it,
  // so at most one call is ever queued: JavaScript gets fewer, larger batches, and its event
  // loop still turns (timers, IPC) between them instead of draining a long call queue. Views
  // and events go into the same queue, so they keep their place among the deliveries.
  static void on_deliver(void* context, const derecho_delivery* batch, std::size_t count) {
    auto* self = static_cast<MemberWrap*>(context);
    std::size_t bytes = 0;
    for (std::size_t i = 0; i < count; ++i) bytes += kDeliveryHeaderBytes + batch[i].length;
    bool first = false;
    {
      std::lock_guard lock(self->pending_mutex_);
      first = self->pending_.empty();
      if (first || !std::holds_alternative<PendingRecords>(self->pending_.back())) {
        self->pending_.emplace_back(std::make_unique<std::vector<std::uint8_t>>());
      }
      auto& out = *std::get<PendingRecords>(self->pending_.back());
      std::size_t at = out.size();
      out.resize(at + bytes);
      for (std::size_t i = 0; i < count; ++i) {
        const derecho_delivery& d = batch[i];
        std::uint8_t* p = out.data() + at;
        put_u64(p, d.index);
        put_u64(p + 8, d.sender_seq);
        put_u64(p + 16, d.vid);
        put_u32(p + 24, d.subgroup);
        put_u32(p + 28, d.sender);
        put_u32(p + 32, d.length);
        if (d.length > 0) std::memcpy(p + kDeliveryHeaderBytes, d.data, d.length);
        at += kDeliveryHeaderBytes + d.length;
      }
      self->outstanding_.fetch_add(bytes);
    }
    if (first) self->schedule();
  }

  static void on_view(void* context, const derecho_view* view) {
    static_cast<MemberWrap*>(context)->enqueue(copy_view(*view));
  }

  static void on_event(void* context, derecho_membership_event kind, const char* reason) {
    static_cast<MemberWrap*>(context)->enqueue(PendingEvent{kind, reason ? reason : ""});
  }

  static void on_snapshot(void* context, std::uint32_t subgroup, std::uint64_t vid) {
    static_cast<MemberWrap*>(context)->enqueue(PendingSnapshot{subgroup, vid});
  }

  // ---- Versioned stores (C ABI version 4): NativeStore in native/index.ts wraps these. ----
  // Async calls return a Promise settled when the completion reaches the JavaScript thread,
  // through the same queue as deliveries and views; each call takes a ticket from
  // store_waiters_. A completion the engine reports inline, during the derecho_store_* call,
  // waits in that queue too: no JavaScript runs inside a call into the engine.

  // Engine thread, or the JavaScript thread inside a derecho_store_* call: queued either way.
  static void on_store_done(void* context, std::uint64_t ticket, int code, const char* error,
                            const derecho_store_result* result) {
    PendingStoreDone done;
    done.ticket = ticket;
    done.code = code;
    done.error = error ? error : "";
    if (code == 0 && result) copy_result(*result, done);
    static_cast<MemberWrap*>(context)->enqueue(std::move(done));
  }

  static void copy_result(const derecho_store_result& r, PendingStoreDone& out) {
    out.version = r.version;
    out.hlc = r.hlc;
    out.at_version = r.at_version;
    out.found = r.found != 0;
    if (r.value && r.value_length > 0) out.value.assign(r.value, r.value + r.value_length);
  }

  // The arguments every store method takes: the subgroup, then `kinds` in order (Buffers into
  // `bytes`, bigints into `u64`; an absent optional_u64 is DERECHO_STORE_LATEST).
  enum class Arg { bytes, u64, optional_u64 };
  struct StoreArgs {
    StoreArgs(const Napi::CallbackInfo& info, const char* usage, std::initializer_list<Arg> kinds) {
      Napi::Env env = info.Env();
      if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, usage);
      subgroup = info[0].As<Napi::Number>().Uint32Value();
      std::size_t at = 1;
      for (const Arg kind : kinds) {
        const Napi::Value v = at < info.Length() ? info[at] : env.Undefined();
        ++at;
        if (kind == Arg::bytes) {
          if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
            throw Napi::TypeError::New(env, usage);
          }
          bytes.push_back(v.As<Napi::Uint8Array>());
        } else if (kind == Arg::optional_u64 && v.IsUndefined()) {
          u64.push_back(DERECHO_STORE_LATEST);
        } else {
          bool lossless = false;
          if (!v.IsBigInt()) throw Napi::TypeError::New(env, usage);
          u64.push_back(v.As<Napi::BigInt>().Uint64Value(&lossless));
          if (!lossless) throw Napi::RangeError::New(env, std::string(usage) + ": a version or time is 0..2^64-1");
        }
      }
      u64.resize(std::max<std::size_t>(u64.size(), 2), 0);
    }
    std::uint32_t subgroup = 0;
    std::vector<Napi::Uint8Array> bytes;
    std::vector<std::uint64_t> u64;
    char error[512] = {0};
  };

  template <typename Call>
  Napi::Value store_async(Napi::Env env, StoreAnswer answer, Call call) {
    auto deferred = Napi::Promise::Deferred::New(env);
    if (!member_ || stopped_) {
      deferred.Reject(store_error(env, DERECHO_STORE_STOPPED, "the member is stopped").Value());
      return deferred.Promise();
    }
    const std::uint64_t ticket = next_ticket_++;
    store_waiters_.emplace(ticket, StoreWaiter{deferred, answer});
    char error[512] = {0};
    const int rc = call(ticket, error, sizeof error);
    if (rc != 0) {
      store_waiters_.erase(ticket);
      deferred.Reject(store_error(env, rc, error).Value());
    }
    return deferred.Promise();
  }

  void check_store_live(Napi::Env env) const {
    if (!member_ || stopped_) throw store_error(env, DERECHO_STORE_STOPPED, "the member is stopped");
  }

  // A sync call's return code: thrown as an Error (with `code` for a store error).
  void store_sync(Napi::Env env, int rc, const char* error) const {
    if (rc != 0) throw store_error(env, rc, error);
  }

  void settle_store(Napi::Env env, const PendingStoreDone& done) {
    const auto it = store_waiters_.find(done.ticket);
    if (it == store_waiters_.end()) return;
    StoreWaiter waiter = std::move(it->second);
    store_waiters_.erase(it);
    if (done.code != 0) waiter.deferred.Reject(store_error(env, done.code, done.error).Value());
    else waiter.deferred.Resolve(store_answer(env, waiter.answer, done));
  }

  // After the engine stopped: the completions it reported on the way out, then `stopped` for
  // any operation it never completed. What else was queued is dropped, as consume() would.
  void settle_store_after_stop(Napi::Env env) {
    for (auto& item : take_pending()) {
      if (const auto* done = std::get_if<PendingStoreDone>(&item)) settle_store(env, *done);
    }
    auto waiters = std::move(store_waiters_);
    store_waiters_.clear();
    for (auto& [ticket, waiter] : waiters) {
      waiter.deferred.Reject(
          store_error(env, DERECHO_STORE_STOPPED, "the member stopped before the operation completed").Value());
    }
  }

  static void on_restore(void* context, std::uint32_t subgroup, std::uint64_t vid, const std::uint8_t* data,
                         std::size_t length) {
    auto state = std::make_unique<std::vector<std::uint8_t>>();
    if (length > 0) state->assign(data, data + length);
    static_cast<MemberWrap*>(context)->enqueue(PendingRestore{subgroup, vid, std::move(state)});
  }

  void enqueue(PendingItem item) {
    bool first = false;
    {
      std::lock_guard lock(pending_mutex_);
      first = pending_.empty();
      pending_.push_back(std::move(item));
    }
    if (first) schedule();
  }

  // Queues the one call that hands the queue to JavaScript; once the function is released
  // (stopping), whatever is queued is dropped.
  void schedule() {
    if (deliver_.NonBlockingCall(nullptr) == napi_ok) return;
    for (auto& item : take_pending()) {
      if (const auto* records = std::get_if<PendingRecords>(&item)) outstanding_.fetch_sub((*records)->size());
    }
  }

  std::deque<PendingItem> take_pending() {
    std::lock_guard lock(pending_mutex_);
    std::deque<PendingItem> items;
    items.swap(pending_);
    return items;
  }

  static int on_ready(void* context) {
    return static_cast<MemberWrap*>(context)->outstanding_.load() < kMaxOutstandingDeliveryBytes ? 1 : 0;
  }

  static void on_writable(void* context, std::uint32_t) {
    static_cast<MemberWrap*>(context)->writable_tsfn_.NonBlockingCall(nullptr);
  }

  static void attach_log(Napi::Env env, Napi::Function on_log) {
    if (log_users.fetch_add(1) == 0) {
      log_tsfn = LogTsfn::New(env, on_log, "derecho-log", 0, 1, nullptr);
      log_tsfn.Unref(env);
      derecho::set_log_sink([](derecho::LogLevel level, std::string_view component, std::string_view message) {
        auto line = std::make_unique<LogLine>(
            LogLine{std::string(derecho::to_string(level)), std::string(component), std::string(message)});
        if (log_tsfn.NonBlockingCall(line.get()) == napi_ok) line.release();
      });
    }
  }

  static void detach_log() {
    if (log_users.fetch_sub(1) == 1) {
      derecho::set_log_sink(nullptr);
      log_tsfn.Release();
    }
  }

  void check_live(Napi::Env env) const {
    if (!member_) throw Napi::Error::New(env, "member is stopped");
  }

  Napi::Value start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_live(env);
    const std::uint32_t timeout = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 10000;
    if (starting_) throw Napi::Error::New(env, "start() is already running");
    if (leaving_ || left_) throw Napi::Error::New(env, "the member is leaving or has left the group");
    starting_ = true;
    auto deferred = Napi::Promise::Deferred::New(env);
    // An AsyncWorker deletes itself once it has settled the promise.
    std::make_unique<StartWorker>(env, this, timeout, deferred).release()->Queue();
    return deferred.Promise();
  }

  // Connects on a pool thread. A stop() that arrives meanwhile waits for it (start_finished).
  class StartWorker : public Napi::AsyncWorker {
   public:
    StartWorker(Napi::Env env, MemberWrap* wrap, std::uint32_t timeout, Napi::Promise::Deferred deferred)
        : Napi::AsyncWorker(env), wrap_(wrap), member_(wrap->member_), timeout_(timeout), deferred_(deferred) {}
    void Execute() override {
      char error[512] = {0};
      if (derecho_member_start(member_, timeout_, error, sizeof error) != 0) SetError(error);
    }
    void OnOK() override {
      deferred_.Resolve(Env().Undefined());
      wrap_->start_finished(Env());
    }
    void OnError(const Napi::Error& e) override {
      deferred_.Reject(e.Value());
      wrap_->start_finished(Env());
    }

   private:
    MemberWrap* wrap_;
    derecho_member* member_;
    std::uint32_t timeout_;
    Napi::Promise::Deferred deferred_;
  };

  // leave(timeoutMs): resolves true once the others installed a view without this member, false
  // when that did not happen in time; the engine is stopped either way (stop() still must be
  // called). Blocks a pool thread meanwhile.
  Napi::Value leave(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_live(env);
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "leave(timeoutMs: number)");
    if (starting_) throw Napi::Error::New(env, "leave() while start() is running: wait for start() first");
    if (leaving_ || left_) throw Napi::Error::New(env, "leave() is already running or done");
    const double timeout = info[0].As<Napi::Number>().DoubleValue();
    if (!(timeout >= 0) || timeout > 4294967295.0) throw Napi::RangeError::New(env, "leave(timeoutMs): 0..2^32-1 ms");
    leaving_ = true;
    left_ = true;
    auto deferred = Napi::Promise::Deferred::New(env);
    std::make_unique<LeaveWorker>(env, this, static_cast<std::uint32_t>(timeout), deferred).release()->Queue();
    return deferred.Promise();
  }

  class LeaveWorker : public Napi::AsyncWorker {
   public:
    LeaveWorker(Napi::Env env, MemberWrap* wrap, std::uint32_t timeout, Napi::Promise::Deferred deferred)
        : Napi::AsyncWorker(env), wrap_(wrap), member_(wrap->member_), timeout_(timeout), deferred_(deferred) {}
    void Execute() override {
      char error[512] = {0};
      rc_ = derecho_member_leave(member_, timeout_, error, sizeof error);
      if (rc_ < 0) SetError(error);
    }
    void OnOK() override { finish([&] { deferred_.Resolve(Napi::Boolean::New(Env(), rc_ == 0)); }); }
    void OnError(const Napi::Error& e) override { finish([&] { deferred_.Reject(e.Value()); }); }

   private:
    template <typename Settle>
    void finish(Settle settle) {
      Napi::Env env = Env();
      std::optional<Napi::Error> failure;
      try {
        wrap_->leave_finished(env);
      } catch (const Napi::Error& e) {
        failure = e;
      }
      if (failure) deferred_.Reject(failure->Value());
      else settle();
      wrap_->settle_stop_waiters(env);
    }

    MemberWrap* wrap_;
    derecho_member* member_;
    std::uint32_t timeout_;
    int rc_ = -1;
    Napi::Promise::Deferred deferred_;
  };

  int send_one(Napi::Env env, std::uint32_t subgroup, const std::uint8_t* data, std::size_t len) {
    char error[512] = {0};
    const int rc = derecho_member_send(member_, subgroup, data, len, error, sizeof error);
    if (rc < 0) throw Napi::RangeError::New(env, error);
    if (rc == 0) refused_ = true;
    return rc;
  }

  Napi::Value send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_live(env);
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsTypedArray()) {
      throw Napi::TypeError::New(env, "send(subgroup: number, payload: Buffer)");
    }
    const auto payload = info[1].As<Napi::Uint8Array>();
    return Napi::Boolean::New(env, send_one(env, info[0].As<Napi::Number>().Uint32Value(), payload.Data(),
                                            payload.ByteLength()) == 1);
  }

  Napi::Value send_batch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_live(env);
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsTypedArray()) {
      throw Napi::TypeError::New(env, "sendBatch(subgroup: number, packed: Buffer)");
    }
    const auto packed = info[1].As<Napi::Uint8Array>();
    char error[512] = {0};
    std::size_t accepted = 0;
    const int rc = derecho_member_send_packed(member_, info[0].As<Napi::Number>().Uint32Value(), packed.Data(),
                                              packed.ByteLength(), &accepted, error, sizeof error);
    if (rc < 0) throw Napi::RangeError::New(env, error);
    if (rc == 0) refused_ = true;
    return Napi::Number::New(env, accepted);
  }

  Napi::Value writable(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto deferred = Napi::Promise::Deferred::New(env);
    if (!refused_ || !member_) {
      deferred.Resolve(env.Undefined());
    } else {
      waiting_writable_.push_back(deferred);
    }
    return deferred.Promise();
  }

  Napi::Value stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_live(env);
    derecho_stats s{};
    derecho_member_stats(member_, &s);
    Napi::Object o = Napi::Object::New(env);
    o.Set("delivered", static_cast<double>(s.delivered));
    o.Set("deliveredBytes", static_cast<double>(s.delivered_bytes));
    o.Set("sent", static_cast<double>(s.sent));
    o.Set("nullsSent", static_cast<double>(s.nulls_sent));
    o.Set("deliveryBatches", static_cast<double>(s.delivery_batches));
    o.Set("sleeps", static_cast<double>(s.sleeps));
    o.Set("badFrames", static_cast<double>(s.bad_frames));
    o.Set("failed", s.failed != 0);
    o.Set("resent", static_cast<double>(s.resent));
    o.Set("vid", static_cast<double>(s.vid));
    return o;
  }

  // subgroupStats(subgroup): { delivered, deliveredBytes, queuedMessages, queuedBytes }
  Napi::Value subgroup_stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_live(env);
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "subgroupStats(subgroup: number)");
    const double index = info[0].As<Napi::Number>().DoubleValue();
    if (!(index >= 0) || index > 4294967295.0 || index != static_cast<double>(static_cast<std::uint64_t>(index))) {
      throw Napi::RangeError::New(env, "subgroupStats(subgroup): a subgroup index is an integer 0..2^32-1, got " +
                                           info[0].ToString().Utf8Value());
    }
    derecho_subgroup_stats s{};
    char error[512] = {0};
    if (derecho_member_subgroup_stats(member_, static_cast<std::uint32_t>(index), &s, error, sizeof error) != 0) {
      throw Napi::RangeError::New(env, error);
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("delivered", static_cast<double>(s.delivered));
    o.Set("deliveredBytes", static_cast<double>(s.delivered_bytes));
    o.Set("queuedMessages", static_cast<double>(s.queued_messages));
    o.Set("queuedBytes", static_cast<double>(s.queued_bytes));
    return o;
  }

  Napi::Value view(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_live(env);
    std::optional<PendingView> copy;
    derecho_member_view(
        member_, [](void* context, const derecho_view* v) { *static_cast<std::optional<PendingView>*>(context) = copy_view(*v); },
        &copy);
    return copy ? Napi::Value(view_object(env, *copy)) : env.Null();
  }

  // onView(fn | null), onEvent(fn | null): called on the JavaScript thread, in order with the
  // deliveries. Views installed before a handler is set are not replayed: set them before start().
  Napi::Value set_on_view(const Napi::CallbackInfo& info) {
    set_handler(info, on_view_, "onView(handler: (view) => void)");
    return info.Env().Undefined();
  }

  Napi::Value set_on_event(const Napi::CallbackInfo& info) {
    set_handler(info, on_event_, "onEvent(handler: (kind, reason) => void)");
    return info.Env().Undefined();
  }

  // onSnapshot(fn | null): (subgroup, vid) => Buffer | Promise<Buffer>, in order with the
  // deliveries; without one, joiners get an empty state. onRestore(fn | null): (subgroup, vid,
  // state) => void, before any delivery of that view.
  Napi::Value set_on_snapshot(const Napi::CallbackInfo& info) {
    set_handler(info, on_snapshot_, "onSnapshot(handler: (subgroup, vid) => Buffer | Promise<Buffer>)");
    return info.Env().Undefined();
  }

  Napi::Value set_on_restore(const Napi::CallbackInfo& info) {
    set_handler(info, on_restore_, "onRestore(handler: (subgroup, vid, state) => void)");
    return info.Env().Undefined();
  }

  static void set_handler(const Napi::CallbackInfo& info, Napi::FunctionReference& slot, const char* usage) {
    if (info.Length() < 1 || !(info[0].IsFunction() || info[0].IsNull() || info[0].IsUndefined())) {
      throw Napi::TypeError::New(info.Env(), usage);
    }
    if (info[0].IsFunction()) slot = Napi::Persistent(info[0].As<Napi::Function>());
    else slot.Reset();
  }

  // storePut(subgroup, key: Buffer, value: Buffer, after: bigint): Promise<{version, hlc}>
  Napi::Value store_put(const Napi::CallbackInfo& info) {
    StoreArgs a(info, "storePut(subgroup, key: Buffer, value: Buffer, after: bigint)", {Arg::bytes, Arg::bytes, Arg::u64});
    return store_async(info.Env(), StoreAnswer::stamp, [&](std::uint64_t ticket, char* error, std::size_t len) {
      return derecho_store_put(member_, a.subgroup, a.bytes[0].Data(), a.bytes[0].ByteLength(), a.bytes[1].Data(),
                               a.bytes[1].ByteLength(), a.u64[0], ticket, error, len);
    });
  }

  // storeRemove(subgroup, key: Buffer, after: bigint): Promise<{version, hlc}>
  Napi::Value store_remove(const Napi::CallbackInfo& info) {
    StoreArgs a(info, "storeRemove(subgroup, key: Buffer, after: bigint)", {Arg::bytes, Arg::u64});
    return store_async(info.Env(), StoreAnswer::stamp, [&](std::uint64_t ticket, char* error, std::size_t len) {
      return derecho_store_remove(member_, a.subgroup, a.bytes[0].Data(), a.bytes[0].ByteLength(), a.u64[0], ticket,
                                  error, len);
    });
  }

  // storeGetByTime(subgroup, key: Buffer, t: bigint): Promise<StoreRead>
  Napi::Value store_get_by_time(const Napi::CallbackInfo& info) {
    StoreArgs a(info, "storeGetByTime(subgroup, key: Buffer, t: bigint)", {Arg::bytes, Arg::u64});
    return store_async(info.Env(), StoreAnswer::read, [&](std::uint64_t ticket, char* error, std::size_t len) {
      return derecho_store_get_by_time(member_, a.subgroup, a.bytes[0].Data(), a.bytes[0].ByteLength(), a.u64[0],
                                       ticket, error, len);
    });
  }

  // storeVersionAtTime(subgroup, t: bigint): Promise<bigint>
  Napi::Value store_version_at_time(const Napi::CallbackInfo& info) {
    StoreArgs a(info, "storeVersionAtTime(subgroup, t: bigint)", {Arg::u64});
    return store_async(info.Env(), StoreAnswer::version, [&](std::uint64_t ticket, char* error, std::size_t len) {
      return derecho_store_version_at_time(member_, a.subgroup, a.u64[0], ticket, error, len);
    });
  }

  // storeOrderedGet(subgroup, key: Buffer): Promise<StoreRead>
  Napi::Value store_ordered_get(const Napi::CallbackInfo& info) {
    StoreArgs a(info, "storeOrderedGet(subgroup, key: Buffer)", {Arg::bytes});
    return store_async(info.Env(), StoreAnswer::read, [&](std::uint64_t ticket, char* error, std::size_t len) {
      return derecho_store_ordered_get(member_, a.subgroup, a.bytes[0].Data(), a.bytes[0].ByteLength(), ticket, error,
                                       len);
    });
  }

  // storeWaitPersisted(subgroup, version: bigint): Promise<bigint>
  Napi::Value store_wait_persisted(const Napi::CallbackInfo& info) {
    StoreArgs a(info, "storeWaitPersisted(subgroup, version: bigint)", {Arg::u64});
    return store_async(info.Env(), StoreAnswer::version, [&](std::uint64_t ticket, char* error, std::size_t len) {
      return derecho_store_wait_persisted(member_, a.subgroup, a.u64[0], ticket, error, len);
    });
  }

  // storeWaitDelivered(subgroup, version: bigint): Promise<bigint>, the latest delivered version
  Napi::Value store_wait_delivered(const Napi::CallbackInfo& info) {
    StoreArgs a(info, "storeWaitDelivered(subgroup, version: bigint)", {Arg::u64});
    return store_async(info.Env(), StoreAnswer::version, [&](std::uint64_t ticket, char* error, std::size_t len) {
      return derecho_store_wait_delivered(member_, a.subgroup, a.u64[0], ticket, error, len);
    });
  }

  // storeEntries(subgroup, from: bigint, maxCount: bigint, maxBytes: bigint):
  // [{ version, hlc (bigints), kind: 'put' | 'remove' | 'other', key: Buffer, value: Buffer | null }]
  Napi::Value store_entries(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_store_live(env);
    StoreArgs a(info, "storeEntries(subgroup, from: bigint, maxCount: bigint, maxBytes: bigint)",
                {Arg::u64, Arg::u64, Arg::u64});
    struct Entry {
      std::uint64_t version;
      std::uint64_t hlc;
      std::uint32_t kind;
      std::vector<std::uint8_t> key;
      std::vector<std::uint8_t> value;
    };
    std::vector<Entry> entries;
    const auto to_size = [](std::uint64_t n) { return static_cast<std::size_t>(std::min<std::uint64_t>(n, SIZE_MAX)); };
    store_sync(env, derecho_store_entries(
                        member_, a.subgroup, a.u64[0], to_size(a.u64[1]), to_size(a.u64[2]),
                        [](void* context, const derecho_store_entry* e) {
                          static_cast<std::vector<Entry>*>(context)->push_back(
                              {e->version, e->hlc, e->kind, {e->key, e->key + e->key_length},
                               {e->value, e->value + e->value_length}});
                        },
                        &entries, a.error, sizeof a.error),
               a.error);
    Napi::Array out = Napi::Array::New(env, entries.size());
    for (std::uint32_t i = 0; i < entries.size(); ++i) {
      const Entry& e = entries[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("version", Napi::BigInt::New(env, e.version));
      o.Set("hlc", Napi::BigInt::New(env, e.hlc));
      o.Set("kind", e.kind == DERECHO_STORE_ENTRY_PUT      ? "put"
                    : e.kind == DERECHO_STORE_ENTRY_REMOVE ? "remove"
                                                           : "other");
      o.Set("key", Napi::Buffer<std::uint8_t>::Copy(env, e.key.data(), e.key.size()));
      o.Set("value", e.kind == DERECHO_STORE_ENTRY_PUT
                         ? Napi::Value(Napi::Buffer<std::uint8_t>::Copy(env, e.value.data(), e.value.size()))
                         : env.Null());
      out.Set(i, o);
    }
    return out;
  }

  // storeGet(subgroup, key: Buffer, version: bigint | undefined): StoreRead (undefined: latest)
  Napi::Value store_get(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_store_live(env);
    StoreArgs a(info, "storeGet(subgroup, key: Buffer, version?: bigint)", {Arg::bytes, Arg::optional_u64});
    PendingStoreDone read;
    store_sync(env, derecho_store_get(
                        member_, a.subgroup, a.bytes[0].Data(), a.bytes[0].ByteLength(), a.u64[0],
                        [](void* context, const derecho_store_result* r) { copy_result(*r, *static_cast<PendingStoreDone*>(context)); },
                        &read, a.error, sizeof a.error),
               a.error);
    return read_object(env, read);
  }

  // storeListKeys(subgroup, version: bigint | undefined): Buffer[], in byte order
  Napi::Value store_list_keys(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_store_live(env);
    StoreArgs a(info, "storeListKeys(subgroup, version?: bigint)", {Arg::optional_u64});
    std::vector<std::vector<std::uint8_t>> keys;
    store_sync(env, derecho_store_list_keys(
                        member_, a.subgroup, a.u64[0],
                        [](void* context, const std::uint8_t* key, std::size_t length) {
                          static_cast<std::vector<std::vector<std::uint8_t>>*>(context)->emplace_back(key, key + length);
                        },
                        &keys, a.error, sizeof a.error),
               a.error);
    Napi::Array out = Napi::Array::New(env, keys.size());
    for (std::uint32_t i = 0; i < keys.size(); ++i) {
      out.Set(i, Napi::Buffer<std::uint8_t>::Copy(env, keys[i].data(), keys[i].size()));
    }
    return out;
  }

  // storeFrontier(subgroup): { firstRetained, delivered, persisted, globalPersisted, stableHlc
  // (bigints), logFull, logError }
  Napi::Value store_frontier(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_store_live(env);
    StoreArgs a(info, "storeFrontier(subgroup)", {});
    derecho_store_frontier_info f{};
    store_sync(env, derecho_store_frontier(member_, a.subgroup, &f, a.error, sizeof a.error), a.error);
    Napi::Object o = Napi::Object::New(env);
    o.Set("firstRetained", Napi::BigInt::New(env, f.first_retained));
    o.Set("delivered", Napi::BigInt::New(env, f.delivered));
    o.Set("persisted", Napi::BigInt::New(env, f.persisted));
    o.Set("globalPersisted", Napi::BigInt::New(env, f.global_persisted));
    o.Set("stableHlc", Napi::BigInt::New(env, f.stable_hlc));
    o.Set("logFull", Napi::Boolean::New(env, f.log_full != 0));
    o.Set("logError", Napi::String::New(env, f.log_error));
    return o;
  }

  // storeTruncate(subgroup, version: bigint)
  Napi::Value store_truncate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_store_live(env);
    StoreArgs a(info, "storeTruncate(subgroup, version: bigint)", {Arg::u64});
    store_sync(env, derecho_store_truncate(member_, a.subgroup, a.u64[0], a.error, sizeof a.error), a.error);
    return env.Undefined();
  }

  // storeRepairs(subgroup): [{ file, offset, bytesDropped, reason }]
  Napi::Value store_repairs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    check_store_live(env);
    StoreArgs a(info, "storeRepairs(subgroup)", {});
    struct Repair {
      std::string file;
      std::uint64_t offset;
      std::uint64_t bytes_dropped;
      std::string reason;
    };
    std::vector<Repair> repairs;
    store_sync(env, derecho_store_repairs(
                        member_, a.subgroup,
                        [](void* context, const char* file, std::uint64_t offset, std::uint64_t bytes, const char* reason) {
                          static_cast<std::vector<Repair>*>(context)->push_back({file, offset, bytes, reason});
                        },
                        &repairs, a.error, sizeof a.error),
               a.error);
    Napi::Array out = Napi::Array::New(env, repairs.size());
    for (std::uint32_t i = 0; i < repairs.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("file", Napi::String::New(env, repairs[i].file));
      o.Set("offset", Napi::Number::New(env, static_cast<double>(repairs[i].offset)));
      o.Set("bytesDropped", Napi::Number::New(env, static_cast<double>(repairs[i].bytes_dropped)));
      o.Set("reason", Napi::String::New(env, repairs[i].reason));
      out.Set(i, o);
    }
    return out;
  }

  Napi::Value stop(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto deferred = Napi::Promise::Deferred::New(env);
    if (starting_ || leaving_) {
      stop_waiters_.push_back(deferred);
      return deferred.Promise();
    }
    shutdown();
    settle_writable(env);
    settle_store_after_stop(env);
    deferred.Resolve(env.Undefined());
    return deferred.Promise();
  }

  void shutdown() {
    if (!member_) return;
    stopped_ = true;
    derecho_member_destroy(member_);
    member_ = nullptr;
    release();
  }

  void release() {
    deliver_.Release();
    writable_tsfn_.Release();
    detach_log();
    // The handlers may hold the JavaScript object that holds this one: let both be collected.
    on_view_.Reset();
    on_event_.Reset();
    on_snapshot_.Reset();
    on_restore_.Reset();
    on_deliver_.Reset();
  }

  derecho_member* member_ = nullptr;
  DeliverTsfn deliver_;
  WritableTsfn writable_tsfn_;
  std::atomic<std::size_t> outstanding_{0};
  std::mutex pending_mutex_;
  std::deque<PendingItem> pending_;  // not yet handed to JavaScript, in the engine's order
  Napi::FunctionReference on_view_;
  Napi::FunctionReference on_event_;
  Napi::FunctionReference on_snapshot_;
  Napi::FunctionReference on_restore_;
  Napi::FunctionReference on_deliver_;
  bool refused_ = false;
  bool stopped_ = false;
  bool starting_ = false;
  bool leaving_ = false;
  bool left_ = false;  // leave() was called: the engine stops, start() and leave() are refused
  std::vector<Napi::Promise::Deferred> waiting_writable_;
  std::vector<Napi::Promise::Deferred> stop_waiters_;
  struct StoreWaiter {
    Napi::Promise::Deferred deferred;
    StoreAnswer answer;
  };
  std::unordered_map<std::uint64_t, StoreWaiter> store_waiters_;  // by ticket, JavaScript thread only
  std::uint64_t next_ticket_ = 1;
};

void call_deliver(Napi::Env env, Napi::Function fn, MemberWrap* wrap, std::nullptr_t*) { wrap->consume(env, fn); }

void call_writable(Napi::Env env, Napi::Function, MemberWrap* wrap, std::nullptr_t*) {
  if (env) wrap->settle_writable(env);
}

void call_log(Napi::Env env, Napi::Function fn, std::nullptr_t*, LogLine* raw) {
  std::unique_ptr<LogLine> line(raw);
  if (env && fn) fn.Call({Napi::String::New(env, line->level), Napi::String::New(env, line->component),
                          Napi::String::New(env, line->message)});
}

Napi::FunctionReference* constructor_ref(Napi::Env env) { return env.GetInstanceData<Napi::FunctionReference>(); }

Napi::Value create_member(const Napi::CallbackInfo& info) {
  std::vector<napi_value> args(info.Length());
  for (std::size_t i = 0; i < info.Length(); ++i) args[i] = info[i];
  return constructor_ref(info.Env())->New(args);
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto ctor = std::make_unique<Napi::FunctionReference>(Napi::Persistent(MemberWrap::define(env)));
  env.SetInstanceData(ctor.release());
  exports.Set("createMember", Napi::Function::New(env, create_member, "createMember"));
  exports.Set("apiVersion", Napi::Number::New(env, DERECHO_C_API_VERSION));
  exports.Set("deliveryBatchVersion", Napi::Number::New(env, kDeliveryBatchVersion));
  return exports;
}

}  // namespace

NODE_API_MODULE(derecho, init)
