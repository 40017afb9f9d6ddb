#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/types.hpp"
#include "transport/transport.hpp"

namespace derecho::sst {

// The shared state table: one row of 64-bit counters per member, laid out identically in every
// member's region. A member writes only its own row and pushes the changed words to every peer,
// so each member holds a (possibly slightly stale) copy of every other row.
class Sst {
 public:
  Sst(transport::Transport& transport, std::vector<MemberId> members, std::size_t base_offset,
      std::size_t columns);

  static std::size_t bytes_needed(std::size_t members, std::size_t columns);

  std::size_t rows() const { return members_.size(); }
  std::size_t columns() const { return columns_; }
  std::size_t my_row() const { return my_row_; }
  std::size_t row_of(MemberId id) const;
  MemberId member_at(std::size_t row) const { return members_[row]; }

  std::uint64_t read(std::size_t row, std::size_t column) const {
    return std::atomic_ref<std::uint64_t>(word(row, column)).load(std::memory_order_acquire);
  }
  std::uint64_t read_own(std::size_t column) const { return read(my_row_, column); }

  // Changes our own row locally; peers see it after the next push().
  void write_own(std::size_t column, std::uint64_t value);

  // Posts the changed part of our row to every peer (data posted earlier lands first).
  void push();
  // Posts our whole row to one peer, e.g. after its link came back.
  void push_all_to(MemberId peer);

 private:
  std::uint64_t& word(std::size_t row, std::size_t column) const;
  std::size_t offset_of(std::size_t row, std::size_t column) const;

  transport::Transport& transport_;
  std::vector<MemberId> members_;
  std::size_t base_offset_;
  std::size_t columns_;
  std::size_t row_bytes_;
  std::size_t my_row_;
  std::size_t dirty_lo_;
  std::size_t dirty_hi_ = 0;
};

}  // namespace derecho::sst
