/* The engine's C ABI (docs/c-api.md). The N-API addon is built on it; other languages can be. */
#ifndef DERECHO_C_API_H
#define DERECHO_C_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DERECHO_C_API_VERSION 1

typedef struct derecho_member derecho_member;

typedef enum { DERECHO_TRANSPORT_SHM = 0, DERECHO_TRANSPORT_TCP = 1, DERECHO_TRANSPORT_VERBS = 2 } derecho_transport;

typedef struct {
  uint32_t id;
  const char* host;
  uint16_t port;
} derecho_member_address;

typedef struct {
  const char* name;
  const uint32_t* members;
  size_t member_count;
  const uint32_t* senders;
  size_t sender_count;
  uint32_t ring_bytes;
  uint32_t max_message_bytes;
} derecho_subgroup_config;

typedef struct {
  const char* group;
  derecho_transport transport;
  const derecho_member_address* members;
  size_t member_count;
  const derecho_subgroup_config* subgroups;
  size_t subgroup_count;
  uint32_t spin_us;
} derecho_group_config;

typedef struct {
  uint64_t index;
  uint64_t sender_seq;
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
} derecho_stats;

/* Called on the engine thread with one stable batch, in delivery order. */
typedef void (*derecho_deliver_fn)(void* context, const derecho_delivery* batch, size_t count);
/* Returns 0 to hold delivery back while the consumer catches up. */
typedef int (*derecho_ready_fn)(void* context);
/* Called on the engine thread when a subgroup's full send queue has room again. */
typedef void (*derecho_writable_fn)(void* context, uint32_t subgroup);

typedef struct {
  derecho_deliver_fn deliver;
  derecho_ready_fn ready; /* may be NULL: always ready */
  derecho_writable_fn writable; /* may be NULL */
  void* context;
} derecho_callbacks;

/* On failure these return NULL / non-zero and write a message into error[error_len]. */
derecho_member* derecho_member_create(const derecho_group_config* config, uint32_t self,
                                      const derecho_callbacks* callbacks, char* error, size_t error_len);
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
/* Stops the engine thread and the transport; no callback runs after it returns. */
void derecho_member_destroy(derecho_member* member);

#ifdef __cplusplus
}
#endif

#endif
