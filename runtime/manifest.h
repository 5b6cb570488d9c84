// wisp.yaml: a set of functions and their wiring, applied in one step.
//
//   functions:
//     - name: validate              # optional: the file's stem
//       path: build/examples/x.so   # relative to the manifest's directory
//       subscribe: [orders.new]     # or one string
//       timeout: 5s
//       idle: 1m
//       max_workers: 2
//       version: 1.0.0
//       private: false
//       env:                        # the config map, as the worker's environment
//         GREETING: hello
//       memory: 256MiB              # limits (runtime/function_limits.h): memory, cpu,
//       max_events: 10              # open_files, processes, max_request, max_reply, max_events
//
// Parsed with yaml-cpp. Every error names the file, the line and the field
// ("wisp.yaml:7: functions[1].timeout: ..."). What a field omits is left to
// the controller's defaults.
// Threading: any thread; no state.
#ifndef WISP_RUNTIME_MANIFEST_H_
#define WISP_RUNTIME_MANIFEST_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/base/status.h"

namespace wisp::runtime {

struct ManifestFunction {
  std::string name;
  std::string path;  // resolved against the manifest's directory
  std::vector<std::string> subscribe;
  std::optional<uint64_t> timeout_ms;
  std::optional<uint64_t> idle_ms;
  uint32_t max_workers = 0;  // 0: not given
  std::string version;       // empty: not given
  std::optional<bool> is_private;
  std::map<std::string, std::string> env;  // checked by the controller
  // Durable triggers; the retry fields are checked by the controller.
  bool durable = false;
  uint32_t max_attempts = 0;  // 0: not given
  std::optional<uint64_t> backoff_ms, max_backoff_ms;
  std::string dead_letter;  // empty: not given
  std::optional<uint64_t> every_ms;
  std::string cron;  // empty: not given
  std::map<std::string, std::string> limits;  // by parameter name, as written; checked here
  int line = 0;  // where the entry starts, for messages
};

struct Manifest {
  std::string file;
  std::vector<ManifestFunction> functions;
};

// Parses text, read from file (used in messages and to resolve paths).
// InvalidArgument "<file>:<line>: <field>: <what>" for anything malformed:
// YAML syntax, unknown or duplicate fields, a bad name, subject, duration
// or count, a duplicate function name, no functions.
[[nodiscard]] Status ParseManifest(const std::string& text, const std::string& file,
                                   Manifest* out);

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_MANIFEST_H_
