/* The engine's C ABI (docs/c-api.md). The N-API addon is built on it; other languages can be. */
#ifndef DERECHO_C_API_H
#define DERECHO_C_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DERECHO_C_API_VERSION 6

typedef struct derecho_member derecho_member;

typedef enum { DERECHO_TRANSPORT_SHM = 0, DERECHO_TRANSPORT_TCP = 1, DERECHO_TRANSPORT_VERBS = 2 } derecho_transport;

typedef struct {
  uint32_t id;
  const char* host;
  uint16_t port;
} derecho_member_address;

/* A subgroup that is a replicated, versioned key-value store (docs/store.md). 0 in a numeric
 * field: the engine's default (window 100000, max_key_bytes 256, max_value_bytes 16384,
 * segment_bytes 64 MiB, max_log_bytes 0 = no quota). */
typedef enum { DERECHO_STORE_VOLATILE = 0, DERECHO_STORE_PERSISTENT = 1 } derecho_storage_kind;

typedef struct {
  uint32_t storage;         /* derecho_storage_kind */
  uint64_t window;          /* volatile: versions kept for reads by version or time */
  uint32_t max_key_bytes;   /* 1..65535 */
  uint32_t max_value_bytes;
  uint64_t segment_bytes;   /* persistent: log segment file size */
  uint64_t max_log_bytes;   /* persistent: a quota on the log's segments */
} derecho_store_config;

/* Messages above threshold_bytes travel through the block relay (docs/protocol-rdmc.md), into an
 * area of max_object_bytes per sender in every member's region (version 6). 0 in threshold_bytes
 * or block_bytes: the engine's default (65536, 1 MiB). */
typedef struct {
  uint64_t threshold_bytes;
  uint64_t max_object_bytes;
  uint32_t block_bytes;
} derecho_large_object_config;

typedef struct {
  const char* name;
  const uint32_t* members;
  size_t member_count;
  const uint32_t* senders;
  size_t sender_count;
  uint32_t ring_bytes;
  uint32_t max_message_bytes;
  /* Sharding (docs/layout.md): 0 = not sharded. Otherwise the subgroup is split into `shards`
   * shards of min_per_shard..max_per_shard members at every view, `members` are the candidates
   * and `senders` must list the same ids. reserved_counts[i] (i < reserved_shard_count <= shards)
   * is how many ids shard i reserves; `reserved` holds them all, shard 0's first. */
  uint32_t shards;
  uint32_t min_per_shard;
  uint32_t max_per_shard;
  const uint32_t* reserved_counts;
  size_t reserved_shard_count;
  const uint32_t* reserved;
  /* NULL: a plain multicast subgroup. Otherwise a store: senders must list the same ids as
   * members, and the engine consumes the subgroup's deliveries itself (version 4). */
  const derecho_store_config* store;
  /* NULL: no large objects (version 6). */
  const derecho_large_object_config* large_objects;
} derecho_subgroup_config;

typedef enum {
  DERECHO_FLUSH_AUTOMATIC = 0, /* pmem_persist on DAX-mapped persistent memory, msync otherwise */
  DERECHO_FLUSH_PMEM_PERSIST = 1,
  DERECHO_FLUSH_MSYNC = 2
} derecho_flush_mode;

typedef struct {
  const char* group;
  derecho_transport transport;
  const derecho_member_address* members;
  size_t member_count;
  const derecho_subgroup_config* subgroups;
  size_t subgroup_count;
  uint32_t spin_us;
  uint32_t heartbeat_ms;     /* failure detection: heartbeat period; 0: the default (50) */
  uint32_t suspect_after_ms; /* a silent member is suspected after this; 0: the default (1000) */
  uint32_t initial_members;  /* the first member starts the group once the first this-many configured
                                members are up and in no view; 0: all of them */
  uint32_t state_chunk_bytes; /* state transfer chunk size: a multiple of 64, >= 4096; 0: the default (65536) */
  /* This member's own options (version 4), not the group's: */
  const char* data_dir;    /* persistent stores keep their logs in data_dir/<subgroup name>; NULL or "": none */
  uint32_t flush_mode;     /* derecho_flush_mode */
  int64_t clock_offset_ns; /* added to the wall clock under the stores' hybrid clock (tests skew members) */
} derecho_group_config;

typedef struct {
  uint64_t index;      /* position in the subgroup's total order within the view, nulls included */
  uint64_t sender_seq; /* the sender's application-message count in the subgroup and view, from 0 */
  uint64_t vid;        /* the view the message was delivered in */
  uint32_t subgroup;
  uint32_t sender;
  const uint8_t* data; /* valid only during the callback */
  uint32_t length;
} derecho_delivery;

typedef struct {
  uint64_t sent;
  uint64_t nulls_sent;
  uint64_t delivered;
  uint64_t delivered_bytes;
  uint64_t delivery_batches;
  uint64_t predicate_passes;
  uint64_t sleeps;
  uint64_t bad_frames;
  int failed; /* the engine thread stopped on an error (logged); the member delivers nothing more */
  uint64_t resent; /* own messages cut off by a view change and sent again in the next view */
  uint64_t vid;    /* the installed view; 0 while in none */
} derecho_stats;

/* One subgroup at this member (version 5). */
typedef struct {
  uint64_t delivered;       /* application messages delivered here, all views (a store: its operations) */
  uint64_t delivered_bytes; /* their payload bytes */
  uint64_t queued_messages; /* queued here, not yet sent into the ring (a store: its own outbox too) */
  uint64_t queued_bytes;    /* their payload bytes */
} derecho_subgroup_stats;

/* An installed view, the same at every member that installs it. Members are in the config's
 * order; the leader coordinates the next view change (the first member nobody suspects, members
 * of the previous view before joiners). joined: members that were not in the previous view;
 * departed: members of the previous view that are not in this one. The arrays and strings are
 * valid only during the call that passes them.
 *
 * shards: the shard map, flat: for each configured subgroup in order, its shard count S (0 for a
 * subgroup that is not sharded), then for each of its S shards the member count n and the n
 * member ids (seniority order, docs/layout.md). shards_length counts the u32 words. adequate is 0
 * when the view cannot give every shard its minimum (sharded subgroups wait); inadequate then
 * says why (otherwise ""). In an inadequate view the map is empty (S = 0 everywhere). */
typedef struct {
  uint64_t vid;
  uint32_t leader;
  const uint32_t* members;
  size_t member_count;
  const uint32_t* joined;
  size_t joined_count;
  const uint32_t* departed;
  size_t departed_count;
  const uint32_t* shards;
  size_t shards_length;
  int adequate;
  const char* inadequate;
} derecho_view;

typedef enum {
  DERECHO_EVENT_WEDGED = 0,     /* the current view stopped: a view change is under way */
  DERECHO_EVENT_REMOVED = 1,    /* the group went on without this member; it is joining again */
  DERECHO_EVENT_MINORITY = 2,   /* this member leads a minority of the view: it stays wedged */
  DERECHO_EVENT_INADEQUATE = 3, /* the view cannot give every shard its minimum: sharded subgroups wait */
  DERECHO_EVENT_LEFT = 4        /* this member left the group (the others installed a view without it) */
} derecho_membership_event;

/* Called on the engine thread with one stable batch, in delivery order. */
typedef void (*derecho_deliver_fn)(void* context, const derecho_delivery* batch, size_t count);
/* Returns 0 to hold delivery back while the consumer catches up. */
typedef int (*derecho_ready_fn)(void* context);
/* Called on the engine thread when a subgroup's full send queue has room again. */
typedef void (*derecho_writable_fn)(void* context, uint32_t subgroup);
/* Called on the engine thread for every view this member installs: after every delivery of the
 * previous view, before any delivery of this one. */
typedef void (*derecho_view_fn)(void* context, const derecho_view* view);
/* Called on the engine thread for membership events; `reason` is valid only during the call. */
typedef void (*derecho_event_fn)(void* context, derecho_membership_event event, const char* reason);
/* State transfer, source side. Called on the engine thread when this member must hand the state
 * of `subgroup` to members that join it in view `vid`: after every delivery of the previous view
 * and the view callback of `vid`, before any delivery of `vid`. Answer with
 * derecho_member_provide_snapshot(member, subgroup, vid, ...), from any thread, now or later. */
typedef void (*derecho_snapshot_fn)(void* context, uint32_t subgroup, uint64_t vid);
/* State transfer, joiner side. Called on the engine thread with the state of `subgroup` as the
 * source had it when asked for view `vid`, after the view callback of `vid` and before any
 * delivery in it. `data` is valid only during the call. */
typedef void (*derecho_restore_fn)(void* context, uint32_t subgroup, uint64_t vid, const uint8_t* data, size_t length);

typedef struct {
  derecho_deliver_fn deliver;
  derecho_ready_fn ready; /* may be NULL: always ready */
  derecho_writable_fn writable; /* may be NULL */
  void* context;
  derecho_view_fn view;   /* may be NULL */
  derecho_event_fn event; /* may be NULL */
  derecho_snapshot_fn snapshot; /* may be NULL: the state handed to joiners is empty */
  derecho_restore_fn restore;   /* may be NULL: the state received is dropped */
} derecho_callbacks;

/* On failure these return NULL / non-zero and write a message into error[error_len]. */
derecho_member* derecho_member_create(const derecho_group_config* config, uint32_t self,
                                      const derecho_callbacks* callbacks, char* error, size_t error_len);
/* Connects and starts the engine: the first configured member starts (bootstraps) the group
 * once every one of the first initial_members configured members is reachable and in no view;
 * every other member joins through the leader of the running group. 0 once the member is in an open view (any view: configured
 * members that are down do not hold it back); 1 when it is in none within the timeout (error
 * filled in; the engine keeps trying); -1 on error. */
int derecho_member_start(derecho_member* member, uint32_t timeout_ms, char* error, size_t error_len);
/* 1: queued; 0: queue full (wait for writable); -1: invalid (error filled in). */
int derecho_member_send(derecho_member* member, uint32_t subgroup, const void* data, size_t length,
                        char* error, size_t error_len);
/* Messages packed as [u32 length LE][bytes]...: queues the longest prefix that fits and stores its
 * message count in *accepted. 1: all queued; 0: the queue filled up (wait for writable); -1: a
 * message is malformed or invalid (nothing is queued, error filled in). */
int derecho_member_send_packed(derecho_member* member, uint32_t subgroup, const void* packed, size_t length,
                               size_t* accepted, char* error, size_t error_len);
/* Any thread: makes the engine re-check at once, e.g. after ready() would now return 1. */
void derecho_member_wake(derecho_member* member);
void derecho_member_stats(const derecho_member* member, derecho_stats* out);
/* Any thread. 0: *out filled in; -1: an unknown subgroup, one without this member, or NULL out
 * (error filled in). */
int derecho_member_subgroup_stats(const derecho_member* member, uint32_t subgroup, derecho_subgroup_stats* out,
                                  char* error, size_t error_len);
/* Any thread: calls visit(context, view) with the installed view, before returning 1; returns 0
 * without calling it while the member is in no view. */
int derecho_member_view(const derecho_member* member, derecho_view_fn visit, void* context);
/* Any thread: the snapshot the snapshot callback asked for (copied). A snapshot for a view that
 * is no longer current is ignored. 0: taken (or ignored as stale); -1: error (error filled in). */
int derecho_member_provide_snapshot(derecho_member* member, uint32_t subgroup, uint64_t vid, const void* data,
                                    size_t length, char* error, size_t error_len);
/* Leaves the group gracefully: the others install a view without this member, which reports
 * DERECHO_EVENT_LEFT. Blocks until then or timeout_ms, and stops the engine either way (call
 * derecho_member_destroy afterwards). A view of two cannot lose one (no majority): there it
 * times out. 0: left; 1: timed out (error filled in); -1: error. */
int derecho_member_leave(derecho_member* member, uint32_t timeout_ms, char* error, size_t error_len);
/* Stops the engine thread and the transport; no callback runs after it returns. Store
 * operations still pending complete with DERECHO_STORE_STOPPED before it returns. */
void derecho_member_destroy(derecho_member* member);

/* ---- Versioned key-value stores (version 4; docs/c-api.md, docs/store.md) ----
 *
 * Return convention of every derecho_store_* call below: 0 accepted (async) or done (sync); a
 * positive derecho_store_error when refused at once (error filled in; an async call then reports
 * no completion); -1 for other errors (an unknown subgroup, a subgroup with no store or without
 * this member, NULL arguments; error filled in). Keys are bytes (1..max_key_bytes). */
typedef enum {
  DERECHO_STORE_INVALID_ARGUMENT = 1, /* a key or value over the configured maximum, an empty key */
  DERECHO_STORE_UNKNOWN_VERSION = 2,  /* a version this shard has not reached */
  DERECHO_STORE_NOT_RETAINED = 3,     /* a version or time below what the log still holds */
  DERECHO_STORE_FUTURE_TIME = 4,      /* a time after this member's clock */
  DERECHO_STORE_LOG_FULL = 5,         /* the log cannot grow: puts are refused, reads go on */
  DERECHO_STORE_BUSY = 6,             /* too many operations queued for sending */
  DERECHO_STORE_STOPPED = 7           /* the member stopped or left before the operation completed */
} derecho_store_error;

/* What an operation produced; the pointers are valid only during the call that passes it.
 * put, remove: version and hlc of the write. get, get_by_time, ordered_get: at_version (the
 * version the read ran at), found, and when found the version and hlc of the write that set the
 * value and the value. version_at_time: version. wait_persisted: version (the one waited for).
 * wait_delivered: version (the latest delivered, at least the one waited for). */
typedef struct {
  uint64_t version;
  uint64_t hlc;
  uint64_t at_version;
  int found;
  const uint8_t* value;
  size_t value_length;
} derecho_store_result;

/* Completion of an async store operation: on the engine thread, or on the caller's thread
 * before the derecho_store_* call returns when the answer is already known. error_code 0: done,
 * `result` set; otherwise a derecho_store_error, `error` says why and `result` is NULL. */
typedef void (*derecho_store_done_fn)(void* context, uint64_t ticket, int error_code, const char* error,
                                      const derecho_store_result* result);
typedef void (*derecho_store_read_fn)(void* context, const derecho_store_result* result);
typedef void (*derecho_store_key_fn)(void* context, const uint8_t* key, size_t length);
typedef void (*derecho_store_repair_fn)(void* context, const char* file, uint64_t offset, uint64_t bytes_dropped,
                                        const char* reason);

typedef struct {
  uint64_t first_retained;   /* the oldest version reads can ask for (0: everything) */
  uint64_t delivered;        /* the latest version here */
  uint64_t persisted;        /* durable here (volatile: delivered) */
  uint64_t global_persisted; /* durable at every member of the shard */
  uint64_t stable_hlc;       /* reads at times up to here are final */
  int log_full;              /* the log cannot grow: puts are refused */
  char log_error[256];       /* why, "" otherwise (cut to fit) */
} derecho_store_frontier_info;

/* The one completion callback of every async store call of this member; set it before
 * derecho_member_start. 0; -1 when `done` is NULL. */
int derecho_store_on_done(derecho_member* member, derecho_store_done_fn done, void* context);

/* Async: each takes a caller-chosen `ticket` that its completion carries back.
 * after_hlc: the latest time the caller has seen (e.g. a read's hlc); the write is stamped after
 * it (0: no constraint). */
int derecho_store_put(derecho_member* member, uint32_t subgroup, const void* key, size_t key_length, const void* value,
                      size_t value_length, uint64_t after_hlc, uint64_t ticket, char* error, size_t error_len);
int derecho_store_remove(derecho_member* member, uint32_t subgroup, const void* key, size_t key_length,
                         uint64_t after_hlc, uint64_t ticket, char* error, size_t error_len);
/* The value of `key` at time t (the state at the last version stamped at or before t), once t
 * is stable here; refused with DERECHO_STORE_FUTURE_TIME for a t after this member's clock. */
int derecho_store_get_by_time(derecho_member* member, uint32_t subgroup, const void* key, size_t key_length,
                              uint64_t t, uint64_t ticket, char* error, size_t error_len);
int derecho_store_version_at_time(derecho_member* member, uint32_t subgroup, uint64_t t, uint64_t ticket,
                                  char* error, size_t error_len);
/* A read ordered with the writes: it is multicast and runs where it is delivered. */
int derecho_store_ordered_get(derecho_member* member, uint32_t subgroup, const void* key, size_t key_length,
                              uint64_t ticket, char* error, size_t error_len);
/* Completes once `version` is durable at every member of the shard. */
int derecho_store_wait_persisted(derecho_member* member, uint32_t subgroup, uint64_t version, uint64_t ticket,
                                 char* error, size_t error_len);
/* Completes once this member delivered `version` (at once when it has); the result's version is
 * the latest delivered then. Fails with DERECHO_STORE_STOPPED when the member stops or moves to
 * another shard (version 5). */
int derecho_store_wait_delivered(derecho_member* member, uint32_t subgroup, uint64_t version, uint64_t ticket,
                                 char* error, size_t error_len);

/* Sync, any thread. version DERECHO_STORE_LATEST: the latest delivered version. */
#define DERECHO_STORE_LATEST UINT64_MAX
/* Calls visit(context, result) once, before returning 0. */
int derecho_store_get(derecho_member* member, uint32_t subgroup, const void* key, size_t key_length, uint64_t version,
                      derecho_store_read_fn visit, void* context, char* error, size_t error_len);
/* Calls visit once per key present at `version`, in byte order, before returning 0. */
int derecho_store_list_keys(derecho_member* member, uint32_t subgroup, uint64_t version, derecho_store_key_fn visit,
                            void* context, char* error, size_t error_len);
int derecho_store_frontier(derecho_member* member, uint32_t subgroup, derecho_store_frontier_info* out, char* error,
                           size_t error_len);
/* Versions below `version` are no longer readable (a persistent log frees their segments). */
int derecho_store_truncate(derecho_member* member, uint32_t subgroup, uint64_t version, char* error, size_t error_len);
/* Calls visit once per damage the persistent log cut when it was opened, before returning 0. */
int derecho_store_repairs(derecho_member* member, uint32_t subgroup, derecho_store_repair_fn visit, void* context,
                          char* error, size_t error_len);

/* What one version did (version 5). OTHER: a version that changes no key (a clock tick), with an
 * empty key and value; REMOVE has no value. The pointers are valid only during the call. */
typedef enum {
  DERECHO_STORE_ENTRY_PUT = 1,
  DERECHO_STORE_ENTRY_REMOVE = 2,
  DERECHO_STORE_ENTRY_OTHER = 3
} derecho_store_entry_kind;

typedef struct {
  uint64_t version;
  uint64_t hlc;
  uint32_t kind; /* derecho_store_entry_kind */
  const uint8_t* key;
  size_t key_length;
  const uint8_t* value;
  size_t value_length;
} derecho_store_entry;

typedef void (*derecho_store_entry_fn)(void* context, const derecho_store_entry* entry);

/* Calls visit for each delivered version from `from` on, in order, before returning 0: at most
 * max_count (>= 1) of them, and no more once the next would take their keys and values past
 * max_bytes (SIZE_MAX: no limit), but always the first there is. None when `from` is not
 * delivered yet. DERECHO_STORE_INVALID_ARGUMENT for from 0 or max_count 0;
 * DERECHO_STORE_NOT_RETAINED for a version folded into the base (from <= first_retained once
 * something was truncated or left a volatile window). */
int derecho_store_entries(derecho_member* member, uint32_t subgroup, uint64_t from, size_t max_count, size_t max_bytes,
                          derecho_store_entry_fn visit, void* context, char* error, size_t error_len);

#ifdef __cplusplus
}
#endif

#endif
