// Fixed-size record pools: every engine record (VM, mapping, VmBo, tree node)
// lives in one engine-global pool and is named by a u32 handle.
//
// Handle rules (both engines must agree, handles are visible to JS):
// - handle 0 is never used, so 0 means "none";
// - Alloc() takes the most recently freed slot (LIFO free list), else the
//   lowest slot never used; capacity growth never changes that order;
// - pools never shrink.
//
// Reservation (the dma-fence rule): a pending op list Reserve()s what its
// application may need; any other allocation first calls Ensure(need), which
// grows the pool so that `available >= reserved + need`. Applying a list then
// only calls Alloc() and never grows the storage.
#pragma once

#include <vector>

#include "io.h"

namespace gpuvm {

template <typename T>
class Pool {
 public:
  explicit Pool(u32 initial = 64) { Grow(initial < 2 ? 2 : initial); }

  T& operator[](u32 h) { return items_[h]; }
  const T& operator[](u32 h) const { return items_[h]; }

  // Slots ever handed out, plus slot 0: valid handles are [1, Limit()).
  u32 Limit() const { return hwm_; }
  u32 InUse() const { return hwm_ - 1 - static_cast<u32>(free_.size()); }
  u32 Capacity() const { return cap_; }
  u32 Available() const { return static_cast<u32>(free_.size()) + cap_ - hwm_; }

  // Grow so that `need` slots can be taken without touching reservations.
  void Ensure(u32 need) {
    const u64 want = static_cast<u64>(reserved_) + need;
    if (Available() >= want) return;
    u64 cap = cap_;
    while (static_cast<u64>(free_.size()) + cap - hwm_ < want) cap *= 2;
    Grow(static_cast<u32>(cap));
  }
  void Reserve(u32 n) {
    Ensure(n);
    reserved_ += n;
  }
  void Unreserve(u32 n) { reserved_ -= n; }
  u32 Reserved() const { return reserved_; }

  u32 Alloc() {
    if (!free_.empty()) {
      const u32 h = free_.back();
      free_.pop_back();
      return h;
    }
    // Only reached without a prior Ensure(); keeps the pool usable anyway.
    if (hwm_ == cap_) Grow(cap_ * 2);
    return hwm_++;
  }

  // The free list has capacity for every slot, so this never allocates.
  void Free(u32 h) { free_.push_back(h); }

 private:
  void Grow(u32 cap) {
    items_.resize(cap);
    free_.reserve(cap);
    cap_ = cap;
  }

  std::vector<T> items_;
  std::vector<u32> free_;
  u32 cap_ = 0;
  u32 hwm_ = 1;  // next never-used slot; slot 0 is "none"
  u32 reserved_ = 0;
};

}  // namespace gpuvm
