// ThreadSanitizer annotations for the packaged abseil's synchronization (linked into every
// executable of a -DPAGODA_TSAN=ON build; docs/hardening.md).
//
// Debian's libabsl_synchronization is not built with -fsanitize=thread, so absl::Mutex's lock and
// unlock run in uninstrumented code on atomics and futexes ThreadSanitizer never sees: without
// help every member guarded by an absl::Mutex would read as a data race. An abseil built with
// TSan annotates its Mutex with the __tsan_mutex_* interface; this file does the same from
// outside. It defines the Mutex / CondVar / Notification members that block or release, so the
// executable's definitions take precedence over the shared library's for every caller (ours
// through the static link, gRPC's and abseil's own through the dynamic symbol table: the PLT
// calls resolve to the executable first), and each calls the library's original (dlsym
// RTLD_NEXT) between the annotations ThreadSanitizer's own abseil build would make.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

#ifndef ABSL_OPTION_INLINE_NAMESPACE_NAME
#error "abseil without an inline namespace: the mangled names below need one"
#endif

namespace {

#define PAGODA_TSAN_STRINGIFY_INNER(x) #x
#define PAGODA_TSAN_STRINGIFY(x) PAGODA_TSAN_STRINGIFY_INNER(x)

// The shared library's definition of the member whose Itanium mangling, after
// `_ZN4absl<len><inline namespace>` (or `_ZNK...` for const members), is `rest`.
void* Original(const char* prefix, const char* rest) {
  const std::string inline_namespace = PAGODA_TSAN_STRINGIFY(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name = std::string(prefix) + "4absl" + std::to_string(inline_namespace.size()) +
                           inline_namespace + rest;
  void* original = dlsym(RTLD_NEXT, name.c_str());
  if (original == nullptr) {
    std::fprintf(stderr, "absl_mutex_annotations: %s not found in the abseil libraries\n",
                 name.c_str());
    std::abort();
  }
  return original;
}

template <typename Function>
Function* Member(const char* rest, const char* prefix = "_ZN") {
  return reinterpret_cast<Function*>(Original(prefix, rest));
}

constexpr unsigned kRead = __tsan_mutex_read_lock;

// The executable's code (the linker's bounds of its text), which is all instrumented; the shared
// libraries' is not.
extern "C" char __executable_start[];
extern "C" char etext[];

bool CalledFromExecutable(const void* return_address) {
  const char* address = static_cast<const char*>(return_address);
  return address >= __executable_start && address < etext;
}

// Set while a wrapped call runs on this thread: the library's members call each other through
// the same symbols (AwaitWithTimeout calls AwaitWithDeadline), and only the outermost call is
// annotated.
thread_local bool in_wrapped_call = false;
// What the outermost wrapped call is doing, for a condition evaluated inside it.
thread_local absl::Mutex* wrapped_mutex = nullptr;
thread_local unsigned wrapped_flags = 0;
thread_local bool wrapped_locking = false;

void Enter(absl::Mutex* mu, unsigned flags, bool locking) {
  wrapped_mutex = mu;
  wrapped_flags = flags;
  wrapped_locking = locking;
}

class WrappedCall {
 public:
  WrappedCall() : outermost_(!in_wrapped_call) { in_wrapped_call = true; }
  ~WrappedCall() {
    if (outermost_) in_wrapped_call = false;
  }
  bool outermost() const { return outermost_; }

 private:
  const bool outermost_;
};

// Lock-like calls: the mutex is held (in the given mode) when `acquire` returns.
template <typename Acquire>
auto Locked(absl::Mutex* mu, unsigned flags, Acquire acquire) {
  WrappedCall call;
  if (!call.outermost()) return acquire();
  Enter(mu, flags, /*locking=*/true);
  __tsan_mutex_pre_lock(mu, flags);
  auto result = acquire();
  __tsan_mutex_post_lock(mu, flags, 0);
  return result;
}

bool TryLocked(absl::Mutex* mu, unsigned flags, bool (*try_lock)(absl::Mutex*)) {
  WrappedCall call;
  if (!call.outermost()) return try_lock(mu);
  Enter(mu, flags | __tsan_mutex_try_lock, /*locking=*/true);
  __tsan_mutex_pre_lock(mu, flags | __tsan_mutex_try_lock);
  const bool locked = try_lock(mu);
  __tsan_mutex_post_lock(
      mu, flags | __tsan_mutex_try_lock | (locked ? 0 : __tsan_mutex_try_lock_failed), 0);
  return locked;
}

void Unlocked(absl::Mutex* mu, unsigned flags, void (*unlock)(absl::Mutex*)) {
  WrappedCall call;
  if (!call.outermost()) return unlock(mu);
  Enter(mu, flags, /*locking=*/false);
  __tsan_mutex_pre_unlock(mu, flags);
  unlock(mu);
  __tsan_mutex_post_unlock(mu, flags);
}

// Calls that may release a held mutex and take it again before they return (Await, CondVar
// waits): to ThreadSanitizer, an unlock before and a lock after.
template <typename Wait>
auto Released(absl::Mutex* mu, Wait wait) {
  WrappedCall call;
  if (!call.outermost()) return wait();
  Enter(mu, 0, /*locking=*/true);
  __tsan_mutex_pre_unlock(mu, 0);
  __tsan_mutex_post_unlock(mu, 0);
  __tsan_mutex_pre_lock(mu, 0);
  auto result = wait();
  __tsan_mutex_post_lock(mu, 0, 0);
  return result;
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

// Only a Mutex of our own code is destroyed in ThreadSanitizer's view (a destruction racing with
// a use is a bug to report): gRPC frees its mutexes once an uninstrumented atomic reference
// count drops to zero, an ordering TSan cannot see.
Mutex::~Mutex() {
  static auto* const original = Member<void(Mutex*)>("5MutexD2Ev");
  if (CalledFromExecutable(__builtin_return_address(0))) __tsan_mutex_destroy(this, 0);
  original(this);
}

void Mutex::Lock() {
  static auto* const original = Member<void(Mutex*)>("5Mutex4LockEv");
  Locked(this, 0, [&] { return (original(this), 0); });
}

void Mutex::ReaderLock() {
  static auto* const original = Member<void(Mutex*)>("5Mutex10ReaderLockEv");
  Locked(this, kRead, [&] { return (original(this), 0); });
}

bool Mutex::TryLock() {
  static auto* const original = Member<bool(Mutex*)>("5Mutex7TryLockEv");
  return TryLocked(this, 0, original);
}

bool Mutex::ReaderTryLock() {
  static auto* const original = Member<bool(Mutex*)>("5Mutex13ReaderTryLockEv");
  return TryLocked(this, kRead, original);
}

void Mutex::Unlock() {
  static auto* const original = Member<void(Mutex*)>("5Mutex6UnlockEv");
  Unlocked(this, 0, original);
}

void Mutex::ReaderUnlock() {
  static auto* const original = Member<void(Mutex*)>("5Mutex12ReaderUnlockEv");
  Unlocked(this, kRead, original);
}

void Mutex::LockWhen(const Condition& cond) {
  static auto* const original =
      Member<void(Mutex*, const Condition&)>("5Mutex8LockWhenERKNS0_9ConditionE");
  Locked(this, 0, [&] { return (original(this, cond), 0); });
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  static auto* const original =
      Member<void(Mutex*, const Condition&)>("5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  Locked(this, kRead, [&] { return (original(this, cond), 0); });
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static auto* const original = Member<bool(Mutex*, const Condition&, Duration)>(
      "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return Locked(this, 0, [&] { return original(this, cond, timeout); });
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static auto* const original = Member<bool(Mutex*, const Condition&, Duration)>(
      "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return Locked(this, kRead, [&] { return original(this, cond, timeout); });
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  static auto* const original = Member<bool(Mutex*, const Condition&, Time)>(
      "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return Locked(this, 0, [&] { return original(this, cond, deadline); });
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  static auto* const original = Member<bool(Mutex*, const Condition&, Time)>(
      "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return Locked(this, kRead, [&] { return original(this, cond, deadline); });
}

void Mutex::Await(const Condition& cond) {
  static auto* const original =
      Member<void(Mutex*, const Condition&)>("5Mutex5AwaitERKNS0_9ConditionE");
  Released(this, [&] { return (original(this, cond), 0); });
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static auto* const original = Member<bool(Mutex*, const Condition&, Duration)>(
      "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return Released(this, [&] { return original(this, cond, timeout); });
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  static auto* const original = Member<bool(Mutex*, const Condition&, Time)>(
      "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return Released(this, [&] { return original(this, cond, deadline); });
}

void CondVar::Wait(Mutex* mu) {
  static auto* const original = Member<void(CondVar*, Mutex*)>("7CondVar4WaitEPNS0_5MutexE");
  Released(mu, [&] { return (original(this, mu), 0); });
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static auto* const original = Member<bool(CondVar*, Mutex*, Duration)>(
      "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  return Released(mu, [&] { return original(this, mu, timeout); });
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static auto* const original =
      Member<bool(CondVar*, Mutex*, Time)>("7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  return Released(mu, [&] { return original(this, mu, deadline); });
}

// A condition runs inside a lock, unlock or wait, whose memory accesses are ignored; its own
// are checked with the mutex held, whichever thread evaluates it, as in abseil's TSan build
// (EvalConditionAnnotated): inside a lock, the lock is taken for the evaluation and released
// again; inside an unlock, taken again for it.
bool Condition::Eval() const {
  // Looked up outside the ignored part, so the static's initialization is seen by every thread.
  const auto original = [this] {
    static auto* const function =
        Member<bool(const Condition*)>("9Condition4EvalEv", /*prefix=*/"_ZNK");
    return function(this);
  };
  if (!in_wrapped_call || wrapped_mutex == nullptr) return original();
  absl::Mutex* const mu = wrapped_mutex;
  const unsigned flags = wrapped_flags & ~unsigned{__tsan_mutex_try_lock};
  bool holds;
  if (wrapped_locking) {
    __tsan_mutex_post_lock(mu, wrapped_flags, 0);
    holds = original();
    __tsan_mutex_pre_unlock(mu, flags);
    __tsan_mutex_post_unlock(mu, flags);
    __tsan_mutex_pre_lock(mu, wrapped_flags);
  } else {
    __tsan_mutex_post_unlock(mu, flags);
    __tsan_mutex_pre_lock(mu, flags);
    __tsan_mutex_post_lock(mu, flags, 0);
    holds = original();
    __tsan_mutex_pre_unlock(mu, flags);
  }
  return holds;
}

// HasBeenNotified() is an inline acquire load of the flag Notify() stores in the library: the
// release has to be made visible here. (WaitForNotification* go through LockWhen above.)
void Notification::Notify() {
  static auto* const original = Member<void(Notification*)>("12Notification6NotifyEv");
  static_assert(sizeof(Notification) == sizeof(Mutex) + sizeof(std::atomic<bool>) + 7,
                "abseil's Notification is {Mutex mutex_; std::atomic<bool> notified_yet_;}");
  __tsan_release(reinterpret_cast<char*>(this) + sizeof(Mutex));
  original(this);
}

ABSL_NAMESPACE_END
}  // namespace absl
