#include "sst/sst.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace derecho::sst {

std::size_t Sst::bytes_needed(std::size_t members, std::size_t columns) {
  return members * align_up(columns * sizeof(std::uint64_t), kCacheLine);
}

Sst::Sst(transport::Transport& transport, std::vector<MemberId> members, std::size_t base_offset,
         std::size_t columns)
    : transport_(transport),
      members_(std::move(members)),
      base_offset_(base_offset),
      columns_(columns),
      row_bytes_(align_up(columns * sizeof(std::uint64_t), kCacheLine)),
      my_row_(row_of(transport.self())),
      dirty_lo_(columns) {
  if (base_offset % kCacheLine != 0) throw std::invalid_argument("SST base offset must be cache-line aligned");
  if (base_offset + bytes_needed(members_.size(), columns) > transport.region().size()) {
    throw std::invalid_argument("SST does not fit in the region");
  }
}

std::size_t Sst::row_of(MemberId id) const {
  const auto it = std::find(members_.begin(), members_.end(), id);
  if (it == members_.end()) throw std::out_of_range("member " + std::to_string(id) + " has no SST row");
  return static_cast<std::size_t>(it - members_.begin());
}

std::size_t Sst::offset_of(std::size_t row, std::size_t column) const {
  return base_offset_ + row * row_bytes_ + column * sizeof(std::uint64_t);
}

std::uint64_t& Sst::word(std::size_t row, std::size_t column) const {
  return *reinterpret_cast<std::uint64_t*>(transport_.region().data() + offset_of(row, column));
}

void Sst::write_own(std::size_t column, std::uint64_t value) {
  std::atomic_ref<std::uint64_t>(word(my_row_, column)).store(value, std::memory_order_release);
  dirty_lo_ = std::min(dirty_lo_, column);
  dirty_hi_ = std::max(dirty_hi_, column + 1);
}

void Sst::push() {
  if (dirty_lo_ >= dirty_hi_) return;
  const std::size_t offset = offset_of(my_row_, dirty_lo_);
  const std::size_t len = (dirty_hi_ - dirty_lo_) * sizeof(std::uint64_t);
  for (std::size_t r = 0; r < members_.size(); ++r) {
    if (r != my_row_) transport_.post_write(members_[r], offset, len);
  }
  dirty_lo_ = columns_;
  dirty_hi_ = 0;
}

void Sst::push_all_to(MemberId peer) {
  transport_.post_write(peer, offset_of(my_row_, 0), columns_ * sizeof(std::uint64_t));
}

}  // namespace derecho::sst
