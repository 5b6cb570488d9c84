// The /healthz body, printed without protobuf reflection (triggers/json_text.h):
// health probes come every few seconds for the life of a controller, and
// json_util's first use costs it about 0.9 MiB. The text is json_util's for
// the same message (ToJson in json_print.h); a test holds the two equal.
// Pure; any thread.
#ifndef WISP_RUNTIME_HEALTH_JSON_H_
#define WISP_RUNTIME_HEALTH_JSON_H_

#include <string>

#include "api.pb.h"

namespace wisp::runtime {

// health as JSON, with a final newline (an HTTP body).
std::string HealthJson(const api::Health& health);

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_HEALTH_JSON_H_
