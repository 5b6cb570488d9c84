// Status: the result of an operation that can fail (leveldb's shape).
// Cheap to copy when ok; carries a code and a human-readable message otherwise.
// Thread-compatible: a Status is a value; share copies, not references.
#ifndef WISP_RUNTIME_BASE_STATUS_H_
#define WISP_RUNTIME_BASE_STATUS_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace wisp {

class [[nodiscard]] Status {
 public:
  enum class Code {
    kOk = 0,
    kNotFound,
    kInvalidArgument,
    kAlreadyExists,
    kIOError,
    kCorruption,
    kUnavailable,
    kResourceExhausted,
    kTimeout,
    kInternal,
  };

  Status() = default;

  static Status OK() { return Status(); }
  static Status NotFound(std::string_view msg) { return Status(Code::kNotFound, msg); }
  static Status InvalidArgument(std::string_view msg) {
    return Status(Code::kInvalidArgument, msg);
  }
  static Status AlreadyExists(std::string_view msg) {
    return Status(Code::kAlreadyExists, msg);
  }
  static Status IOError(std::string_view msg) { return Status(Code::kIOError, msg); }
  static Status Corruption(std::string_view msg) { return Status(Code::kCorruption, msg); }
  static Status Unavailable(std::string_view msg) { return Status(Code::kUnavailable, msg); }
  static Status ResourceExhausted(std::string_view msg) {
    return Status(Code::kResourceExhausted, msg);
  }
  static Status Timeout(std::string_view msg) { return Status(Code::kTimeout, msg); }
  static Status Internal(std::string_view msg) { return Status(Code::kInternal, msg); }

  // An IOError naming the operation and errno's text ("open x: No such file").
  static Status FromErrno(std::string_view what, int err);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "OK", or "<code name>: <message>".
  std::string ToString() const;
  // The code's snake_case name, used as the JSON error code ("not_found").
  static const char* CodeName(Code code);

  // A copy whose message is "<context>: <message>"; OK stays OK.
  Status WithContext(std::string_view context) const;

 private:
  Status(Code code, std::string_view msg) : code_(code), message_(msg) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design
  StatusOr(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace wisp

#define WISP_RETURN_IF_ERROR(expr)        \
  do {                                    \
    ::wisp::Status wisp_status_ = (expr); \
    if (!wisp_status_.ok()) return wisp_status_; \
  } while (0)

#endif  // WISP_RUNTIME_BASE_STATUS_H_
