// JSON as the control API and the NATS service API print it: protobuf's
// json_util with the proto field names (snake_case) and every field, zero
// values included. Pure; any thread.
#ifndef WISP_RUNTIME_JSON_PRINT_H_
#define WISP_RUNTIME_JSON_PRINT_H_

#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include <string>
#include <string_view>

#include "triggers/json_text.h"

namespace wisp::runtime {

// message as JSON; with a final newline when newline (HTTP bodies).
inline std::string ToJson(const google::protobuf::Message& message, bool newline = true) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  if (newline) out += '\n';
  return out;
}

// text as a JSON string literal, quotes included (for the few JSON bodies
// built by hand: JetStream's API wants integer nanoseconds, which proto3
// JSON would print as strings). Escaped as json_util escapes.
inline std::string JsonQuote(std::string_view text) {
  std::string out;
  triggers::AppendJsonString(text, &out);
  return out;
}

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_JSON_PRINT_H_
