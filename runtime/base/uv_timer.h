// Owned libuv timers: created with new, freed in their close callback.
// Threading: the loop thread that owns the timer.
#ifndef WISP_RUNTIME_BASE_UV_TIMER_H_
#define WISP_RUNTIME_BASE_UV_TIMER_H_

#include <uv.h>

#include <functional>
#include <utility>

namespace wisp {

// Stops and closes timer (allocated with new), deletes it in the close
// callback, then runs then (may be empty). timer->data is overwritten.
inline void CloseOwnedTimer(uv_timer_t* timer, std::function<void()> then) {
  uv_timer_stop(timer);
  timer->data = new std::function<void()>(std::move(then));
  uv_close(reinterpret_cast<uv_handle_t*>(timer), [](uv_handle_t* h) {
    auto* then_ptr = static_cast<std::function<void()>*>(h->data);
    std::function<void()> run = std::move(*then_ptr);
    delete then_ptr;
    delete reinterpret_cast<uv_timer_t*>(h);
    if (run) run();
  });
}

}  // namespace wisp

#endif  // WISP_RUNTIME_BASE_UV_TIMER_H_
