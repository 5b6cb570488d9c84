// A deploy's parameters, from the query of PUT /v1/functions/<name>:
// timeout, idle, max_workers, subscribe (repeatable), version, private,
// env (repeatable KEY=VALUE, the config map), and for durable triggers
// durable, max_attempts, backoff, max_backoff, dead_letter; a timer: every
// (a duration) or cron (an expression, runtime/schedule.h).
// Pure functions; any thread.
#ifndef WISP_RUNTIME_DEPLOY_PARAMS_H_
#define WISP_RUNTIME_DEPLOY_PARAMS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/base/status.h"
#include "runtime/function_store.h"

namespace wisp::runtime {

inline constexpr uint32_t kMaxWorkersLimit = 64;
inline constexpr size_t kMaxSubjectsPerFunction = 32;
inline constexpr size_t kMaxEnvEntries = 128;
inline constexpr size_t kMaxEnvBytes = 64 * 1024;
inline constexpr uint32_t kMaxAttemptsLimit = 100;
inline constexpr uint64_t kMinEveryMs = 100;
inline constexpr uint64_t kMaxBackoffMs = 24ull * 3600 * 1000;
// Versions kept per function (the current one always among them); older
// ones are pruned at deploy, with their artifacts once nothing uses them.
inline constexpr size_t kVersionsKept = 20;

// Applies the query (timeout=30s&idle=1m&max_workers=2&version=1.2.3
// &subscribe=orders.*&private=true&env=KEY%3Dvalue) to record. InvalidArgument names the
// parameter: an unknown one, a bad duration, count, subject (reserved ones
// included: _INBOX., $..., wisp.fn., ">"), version or env entry (a key
// that is not [A-Za-z_][A-Za-z0-9_]*, a WISP_ key, a NUL, over the limits).
[[nodiscard]] Status ApplyDeployQuery(std::string_view query, FunctionRecord* record);

// Subjects only wisp publishes on: the dead letters it stores
// (wisp.dead.<name>) and their replays (wisp.replay.<name>). InvalidArgument
// naming the prefix for a subject, or a subscription pattern, that could be
// one of them.
[[nodiscard]] Status CheckNotInternal(std::string_view subject);

// Whether text is MAJOR.MINOR.PATCH (digits, no leading zeros) with an
// optional -prerelease of [0-9A-Za-z.-].
bool IsSemver(std::string_view text);

// The version after previous: the release of a pre-release (1.2.3-rc.1 ->
// 1.2.3), else its patch number plus one ("0.0.1" first).
std::string NextPatch(const std::string& previous);

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_DEPLOY_PARAMS_H_
