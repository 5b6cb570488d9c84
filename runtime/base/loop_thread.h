// Asserts that code meant for the controller's loop thread runs there.
// A LoopThread is created on the loop thread and records its id; callbacks
// call WISP_ASSERT_LOOP_THREAD(x) where x is a LoopThread.
#ifndef WISP_RUNTIME_BASE_LOOP_THREAD_H_
#define WISP_RUNTIME_BASE_LOOP_THREAD_H_

#include <thread>

#include "runtime/base/check.h"

namespace wisp {

class LoopThread {
 public:
  LoopThread() : id_(std::this_thread::get_id()) {}
  bool IsCurrent() const { return std::this_thread::get_id() == id_; }

 private:
  std::thread::id id_;
};

}  // namespace wisp

#define WISP_ASSERT_LOOP_THREAD(loop_thread) WISP_CHECK((loop_thread).IsCurrent())

#endif  // WISP_RUNTIME_BASE_LOOP_THREAD_H_
