// What the client subcommands share: calling the controller's HTTP API,
// reading request data, printing errors. Threading: the main thread.
#ifndef WISP_RUNTIME_CLI_API_CALL_H_
#define WISP_RUNTIME_CLI_API_CALL_H_

#include <google/protobuf/util/json_util.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/http_client.h"

namespace wisp::cli {

// The control API token every Call sends: --token, else $WISP_TOKEN, else
// the token file of this machine's data dir ($WISP_HOME or ~/.wisp). Empty
// when none is found (the controller then answers 401).
void UseToken(const std::string& flag);

// With wait_ms > 0, the first Call waits up to that long for the controller
// to answer /healthz (saying so once on stderr) before it sends anything, and
// looks for the token again afterwards (a controller's first start creates it).
void WaitForController(uint64_t wait_ms);

// Prints "wisp: <message>" on stderr and returns code.
int Fail(int code, const std::string& message);

// Reads the whole file at path; false with *error naming it.
bool ReadFile(const std::string& path, std::string* out, std::string* error);

// Request data given on the command line: literal text, @file, or - for
// stdin. False with *error when the file cannot be read.
bool ReadData(const std::string& arg, std::string* out, std::string* error);

// The message of a JSON error body, or the raw body.
std::string ErrorMessage(const runtime::HttpClientResponse& response);

// Sends one request; on transport failure prints why and sets *exit_code
// (kExitUsage for a bad URL, kExitUnreachable when nothing answers). A body
// over 1 MiB shows its upload progress on stderr when that is a terminal.
bool Call(const std::string& server, std::string_view method, const std::string& target,
          std::string_view body, runtime::HttpClientResponse* response, int* exit_code,
          const std::vector<std::pair<std::string, std::string>>& headers = {});

template <typename Message>
bool ParseJson(const std::string& json, Message* message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  return google::protobuf::util::JsonStringToMessage(json, message, options).ok();
}

}  // namespace wisp::cli

#endif  // WISP_RUNTIME_CLI_API_CALL_H_
