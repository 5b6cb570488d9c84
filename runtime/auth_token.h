// The control API's bearer token: created at the controller's first start
// as <data dir>/token (mode 0600, 64 hex characters from the kernel's
// CSPRNG), read at later starts. /v1/ requests must carry it as
// "Authorization: Bearer <token>".
//
// Threading: any thread; the functions keep no state.
#ifndef WISP_RUNTIME_AUTH_TOKEN_H_
#define WISP_RUNTIME_AUTH_TOKEN_H_

#include <string>
#include <string_view>

#include "runtime/base/status.h"

namespace wisp::runtime {

// Reads <data_dir>/token, creating it (O_EXCL, 0600, fsync) when missing.
// IOError when it cannot be read or written; Corruption when it does not
// hold a token; InvalidArgument when other users may read it.
[[nodiscard]] StatusOr<std::string> LoadOrCreateToken(const std::string& data_dir);

// Reads the token at path without creating it (the CLI's discovery).
[[nodiscard]] StatusOr<std::string> ReadToken(const std::string& path);

// Whether an Authorization header value is "Bearer <token>" for this token
// (scheme case-insensitive; the token compared in constant time).
bool BearerMatches(std::string_view authorization, const std::string& token);

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_AUTH_TOKEN_H_
