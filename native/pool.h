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
// only calls Alloc() and never grows the storage. Growth goes through the
// engine's Budget: Ensure and Reserve return false (nothing changed) when it
// is refused, and Alloc() requires a prior successful Ensure or Reserve.
#pragma once

#include "budget.h"
#include "io.h"

namespace gpuvm {

template <typename T>
class Pool {
 public:
  Pool(Budget* budget, u32 initial) : budget_(budget) { Grow(initial < 2 ? 2 : initial, true); }
  ~Pool() {
    budget_->Free(raw_, Bytes(cap_));
  }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  T& operator[](u32 h) { return items_[h]; }
  const T& operator[](u32 h) const { return items_[h]; }

  // Slots ever handed out, plus slot 0: valid handles are [1, Limit()).
  u32 Limit() const { return hwm_; }
  u32 InUse() const { return hwm_ - 1 - freeN_; }
  u32 Capacity() const { return cap_; }
  u32 Available() const { return freeN_ + (cap_ > hwm_ ? cap_ - hwm_ : 0); }
  // The handle the next Alloc() returns.
  u32 NextHandle() const { return freeN_ != 0 ? free_[freeN_ - 1] : hwm_; }
  // The address of the record base pointer, which stays valid across growth
  // (readers that must not cache the base itself, see EndSource).
  const unsigned char* const* BaseRef() const { return &bytes_; }

  // Grow so that `need` slots can be taken without touching reservations.
  // `force` ignores the limit (undo only).
  GPUVM_INLINE bool Ensure(u32 need, bool force = false) {
    const u64 want = static_cast<u64>(reserved_) + need;
    if (Available() >= want) return true;
    return GrowFor(want, force);
  }
  bool Reserve(u32 n) {
    if (!Ensure(n)) return false;
    reserved_ += n;
    return true;
  }
  void Unreserve(u32 n) { reserved_ -= n; }
  u32 Reserved() const { return reserved_; }

  GPUVM_INLINE u32 Alloc() {
    if (freeN_ != 0) return free_[--freeN_];
    return hwm_++;
  }

  // The free list has room for every slot, so this never allocates.
  GPUVM_INLINE void Free(u32 h) { free_[freeN_++] = h; }

 private:
  static constexpr size_t kAlign = alignof(T) < 16 ? 16 : alignof(T);
  // Records, then the free list (a u32 per slot), in one block.
  static size_t Bytes(u64 cap) {
    return static_cast<size_t>(cap) * sizeof(T) + static_cast<size_t>(cap) * 4 + kAlign;
  }

  bool GrowFor(u64 want, bool force) {
    u64 cap = cap_ < 2 ? 2 : cap_;
    while (static_cast<u64>(freeN_) + (cap > hwm_ ? cap - hwm_ : 0) < want) cap *= 2;
    if (cap > 0xffffffffu) return false;  // handles are u32
    return Grow(static_cast<u32>(cap), force);
  }

  // New block (aligned by hand: realloc keeps no alignment), records and
  // free list copied, new slots default-constructed.
  bool Grow(u32 cap, bool force) {
    const size_t bytes = Bytes(cap);
    if (!budget_->Allows(bytes, force)) return false;
    void* raw = std::malloc(bytes);
    if (raw == nullptr) return false;
    budget_->used += bytes;
    const uintptr_t base = (reinterpret_cast<uintptr_t>(raw) + kAlign - 1) & ~(uintptr_t{kAlign} - 1);
    T* items = reinterpret_cast<T*>(base);
    u32* fr = reinterpret_cast<u32*>(items + cap);
    if (cap_ != 0) {
      std::memcpy(static_cast<void*>(items), static_cast<const void*>(items_), static_cast<size_t>(cap_) * sizeof(T));
      if (freeN_ != 0) std::memcpy(fr, free_, static_cast<size_t>(freeN_) * 4);
    }
    for (u32 i = cap_; i < cap; ++i) new (&items[i]) T();
    budget_->Free(raw_, cap_ != 0 ? Bytes(cap_) : 0);
    raw_ = raw;
    items_ = items;
    bytes_ = reinterpret_cast<unsigned char*>(items);
    free_ = fr;
    cap_ = cap;
    return true;
  }

  Budget* budget_;
  void* raw_ = nullptr;
  T* items_ = nullptr;
  unsigned char* bytes_ = nullptr;  // items_, as bytes
  u32* free_ = nullptr;
  u32 freeN_ = 0;
  u32 cap_ = 0;
  u32 hwm_ = 1;  // next never-used slot; slot 0 is "none"
  u32 reserved_ = 0;
};

}  // namespace gpuvm
