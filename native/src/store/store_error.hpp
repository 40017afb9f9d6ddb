#pragma once
#include <stdexcept>
#include <string>

namespace derecho::store {

// Why a store call failed. The numbers are part of the C ABI (derecho_store_error).
enum class ErrorCode {
  invalid_argument = 1,  // a key or value over the configured maximum, an empty key
  unknown_version = 2,   // a version this shard has not reached
  not_retained = 3,      // a version or time below what the log still holds
  future_time = 4,       // a time after this member's clock
  log_full = 5,          // the log cannot grow (disk full or quota): puts are refused, reads go on
  busy = 6,              // too many operations queued for sending, or moved and awaiting state
  stopped = 7,           // did not complete normally (stopped, left, removed, moved): the message
                         // says whether a write was applied, not applied, or is unknown
};

const char* error_name(ErrorCode code);

class StoreError : public std::runtime_error {
 public:
  StoreError(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace derecho::store
