// Engine storage and its budget. Every byte the engine keeps (record pools,
// per-VM arrays, scratch) is taken through Budget, which refuses growth past
// the limit set by memSetLimit and reports allocation failure as false, so
// that callers turn both into -ENOMEM before they change anything. The
// addon is built without exceptions, where a failing std::vector growth
// would end the process: hence these malloc/realloc arrays of trivially
// copyable records (WASM twin: assembly/budget.ts).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>

#include "io.h"

namespace gpuvm {

struct Budget {
  u64 used = 0;   // bytes held by the engine
  u64 limit = 0;  // 0: only the platform's own

  // `force` is for undo steps, which restore a state that fit before and must
  // not fail on the limit alone.
  bool Allows(u64 more, bool force) const {
    return force || limit == 0 || (used + more >= used && used + more <= limit);
  }

  // realloc that charges the difference; nullptr (block unchanged) on refusal.
  void* Realloc(void* p, size_t oldBytes, size_t bytes, bool force = false) {
    if (bytes > oldBytes && !Allows(bytes - oldBytes, force)) return nullptr;
    void* q = std::realloc(p, bytes);
    if (q == nullptr) return nullptr;
    used = used - oldBytes + bytes;
    return q;
  }
  void Free(void* p, size_t bytes) {
    if (p == nullptr) return;
    std::free(p);
    used -= bytes;
  }
};

// A growable array (capacity doubles from 16, never shrinks until Release).
// Trivially copyable itself, so records holding one can live in a Pool;
// whoever owns it calls Release.
template <typename T>
class Array {
  static_assert(std::is_trivially_copyable<T>::value, "Array moves its elements with realloc");

 public:
  T* data() { return data_; }
  const T* data() const { return data_; }
  u32 size() const { return len_; }
  u32 capacity() const { return cap_; }
  bool empty() const { return len_ == 0; }
  T& operator[](u32 i) { return data_[i]; }
  const T& operator[](u32 i) const { return data_[i]; }
  T* begin() { return data_; }
  T* end() { return data_ + len_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + len_; }

  // Capacity for n elements. false (nothing changed) when refused.
  bool Reserve(Budget& b, u64 n, bool force = false) {
    if (n <= cap_) return true;
    if (n > 0x7fffffffu) return false;
    u64 cap = cap_ < 16 ? 16 : cap_;
    while (cap < n) cap *= 2;
    if (cap > 0x7fffffffu) cap = 0x7fffffffu;
    void* p = b.Realloc(data_, static_cast<size_t>(cap_) * sizeof(T),
                        static_cast<size_t>(cap) * sizeof(T), force);
    if (p == nullptr) return false;
    data_ = static_cast<T*>(p);
    cap_ = static_cast<u32>(cap);
    return true;
  }

  // One more element (contents undefined), or nullptr when refused.
  GPUVM_INLINE T* Append(Budget& b) {
    if (len_ == cap_ && !Reserve(b, static_cast<u64>(len_) + 1)) return nullptr;
    return &data_[len_++];
  }
  bool Push(Budget& b, const T& v) {
    T* p = Append(b);
    if (p == nullptr) return false;
    *p = v;
    return true;
  }
  bool Append(Budget& b, const T* src, u32 n) {
    if (n == 0) return true;
    if (!Reserve(b, static_cast<u64>(len_) + n)) return false;
    std::memcpy(data_ + len_, src, static_cast<size_t>(n) * sizeof(T));
    len_ += n;
    return true;
  }
  // Appends into room the caller reserved.
  GPUVM_INLINE void PushReserved(const T& v) { data_[len_++] = v; }
  // For logs that only feed reports: grows past the limit if it must, and
  // drops the element (false) only when the platform has no memory.
  GPUVM_INLINE bool PushSoft(Budget& b, const T& v) {
    if (len_ == cap_ && !Reserve(b, static_cast<u64>(len_) + 1, true)) return false;
    data_[len_++] = v;
    return true;
  }
  // Lengthens to n <= capacity(), zero-filling the new elements.
  void GrowZeroed(u32 n) {
    if (n > len_) std::memset(static_cast<void*>(data_ + len_), 0, static_cast<size_t>(n - len_) * sizeof(T));
    len_ = n;
  }
  // Gives capacity beyond max(n, size()) back (kept when realloc says no).
  void ShrinkTo(Budget& b, u32 n) {
    if (n < len_) n = len_;
    if (n >= cap_) return;
    if (n == 0) {
      Release(b);
      return;
    }
    void* p = b.Realloc(data_, static_cast<size_t>(cap_) * sizeof(T), static_cast<size_t>(n) * sizeof(T));
    if (p == nullptr) return;
    data_ = static_cast<T*>(p);
    cap_ = n;
  }
  T& Back() { return data_[len_ - 1]; }
  T Pop() { return data_[--len_]; }

  void Clear() { len_ = 0; }
  // Shrinks the length (never grows it).
  void Truncate(u32 n) { len_ = n; }
  void EraseFront(u32 n) {
    if (n == 0) return;
    if (n < len_) std::memmove(data_, data_ + n, static_cast<size_t>(len_ - n) * sizeof(T));
    len_ -= n;
  }
  void Swap(Array& o) {
    T* d = data_;
    data_ = o.data_;
    o.data_ = d;
    u32 t = len_;
    len_ = o.len_;
    o.len_ = t;
    t = cap_;
    cap_ = o.cap_;
    o.cap_ = t;
  }
  void Release(Budget& b) {
    b.Free(data_, static_cast<size_t>(cap_) * sizeof(T));
    data_ = nullptr;
    len_ = 0;
    cap_ = 0;
  }

 private:
  T* data_ = nullptr;
  u32 len_ = 0;
  u32 cap_ = 0;
};

}  // namespace gpuvm
