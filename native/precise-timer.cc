// PreciseTimer: a callback on the event loop at an absolute CLOCK_MONOTONIC time, to the microsecond. libuv's
// own timers have millisecond resolution (it sleeps in epoll_wait with a timeout in ms), so a load generator
// that schedules sends with setTimeout sends up to a millisecond late and in bursts. A timerfd armed at the
// exact time makes epoll_wait return then; libuv polls the fd like a socket, so the callback runs on the loop
// with no thread and no spinning. Linux only: elsewhere the export is absent and the caller falls back to
// setTimeout (and says so).
#include "precise-timer.h"

#ifdef __linux__
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace {

// The uv handle outlives the JS object until uv_close's callback, so it is allocated on its own.
struct PollHandle {
  uv_poll_t poll;
  int fd;
  class PreciseTimer* owner;
};

void OnClosed(uv_handle_t* handle) {
  PollHandle* h = static_cast<PollHandle*>(handle->data);
  close(h->fd);
  delete h;
}

class PreciseTimer : public Napi::ObjectWrap<PreciseTimer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PreciseTimer",
                       {InstanceMethod<&PreciseTimer::Arm>("arm"), InstanceMethod<&PreciseTimer::Disarm>("disarm"),
                        InstanceMethod<&PreciseTimer::Close>("close")});
  }

  explicit PreciseTimer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PreciseTimer>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsFunction()) {
      Napi::TypeError::New(env, "PreciseTimer(callback): callback must be a function").ThrowAsJavaScriptException();
      return;
    }
    callback_ = Napi::Persistent(info[0].As<Napi::Function>());
    // Linux lets a sleeping thread's timers fire up to its timer slack late (50 µs by default) to batch wakeups;
    // this thread's epoll_wait is what the timerfd wakes, so the slack would be all of the timer's error.
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    context_ = new Napi::AsyncContext(env, "fastcgi-engine:precise-timer");
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0) {
      Napi::Error::New(env, std::string("timerfd_create failed: ") + strerror(errno)).ThrowAsJavaScriptException();
      return;
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      close(fd);
      Napi::Error::New(env, "no libuv loop").ThrowAsJavaScriptException();
      return;
    }
    handle_ = new PollHandle{};
    handle_->fd = fd;
    handle_->owner = this;
    handle_->poll.data = handle_;
    if (uv_poll_init(loop, &handle_->poll, fd) != 0) {
      close(fd);
      delete handle_;
      handle_ = nullptr;
      Napi::Error::New(env, "uv_poll_init failed").ThrowAsJavaScriptException();
      return;
    }
    // Only an armed timer keeps the loop alive, like a pending setTimeout.
    uv_unref(reinterpret_cast<uv_handle_t*>(&handle_->poll));
    uv_poll_start(&handle_->poll, UV_READABLE, OnReadable);
  }

  ~PreciseTimer() override {
    CloseHandle();
    delete context_;
  }

 private:
  static void OnReadable(uv_poll_t* poll, int status, int /*events*/) {
    PollHandle* h = static_cast<PollHandle*>(poll->data);
    uint64_t expirations = 0;
    // Draining the fd re-arms readability; EAGAIN means a disarm raced the wakeup: nothing to call.
    if (read(h->fd, &expirations, sizeof expirations) != sizeof expirations || status < 0) return;
    PreciseTimer* self = h->owner;
    if (self == nullptr) return;
    uv_unref(reinterpret_cast<uv_handle_t*>(poll));
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    // MakeCallback runs microtasks and reports a throw as uncaught, as a timer callback would.
    self->callback_.MakeCallback(env.Global(), {}, *self->context_);
  }

  // arm(deadlineNs): call back at that CLOCK_MONOTONIC time in ns (process.hrtime's clock); a past time calls
  // back at once. Re-arming replaces the previous deadline.
  void Arm(const Napi::CallbackInfo& info) {
    if (handle_ == nullptr) return;
    double ns = info[0].As<Napi::Number>().DoubleValue();
    if (!(ns > 0)) ns = 1;  // 0 would disarm
    itimerspec spec{};
    spec.it_value.tv_sec = static_cast<time_t>(ns / 1e9);
    spec.it_value.tv_nsec = static_cast<long>(ns - static_cast<double>(spec.it_value.tv_sec) * 1e9);
    if (spec.it_value.tv_nsec < 0) spec.it_value.tv_nsec = 0;
    if (spec.it_value.tv_nsec >= 1000000000L) spec.it_value.tv_nsec = 999999999L;
    timerfd_settime(handle_->fd, TFD_TIMER_ABSTIME, &spec, nullptr);
    uv_ref(reinterpret_cast<uv_handle_t*>(&handle_->poll));
  }

  void Disarm(const Napi::CallbackInfo&) {
    if (handle_ == nullptr) return;
    itimerspec spec{};
    timerfd_settime(handle_->fd, 0, &spec, nullptr);
    uv_unref(reinterpret_cast<uv_handle_t*>(&handle_->poll));
  }

  void Close(const Napi::CallbackInfo&) { CloseHandle(); }

  void CloseHandle() {
    if (handle_ == nullptr) return;
    handle_->owner = nullptr;
    uv_poll_stop(&handle_->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&handle_->poll), OnClosed);
    handle_ = nullptr;
  }

  Napi::FunctionReference callback_;
  Napi::AsyncContext* context_ = nullptr;
  PollHandle* handle_ = nullptr;
};

}  // namespace

void RegisterPreciseTimer(Napi::Env env, Napi::Object exports) {
  exports.Set("PreciseTimer", PreciseTimer::Define(env));
}

#else

void RegisterPreciseTimer(Napi::Env, Napi::Object) {}

#endif
