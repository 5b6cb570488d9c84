// URL query strings and percent-encoding (RFC 3986), for the control API.
// Pure functions; callable from any thread.
#ifndef WISP_TRIGGERS_QUERY_H_
#define WISP_TRIGGERS_QUERY_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/base/status.h"

namespace wisp::triggers {

using QueryParams = std::vector<std::pair<std::string, std::string>>;

// Decodes %XX escapes (and '+' as a space when plus_is_space, as forms do).
// InvalidArgument for a '%' not followed by two hex digits.
[[nodiscard]] Status PercentDecode(std::string_view text, bool plus_is_space, std::string* out);

// Splits "a=1&b=x%2Ay&a=2" into decoded pairs, in order; a key without '='
// has an empty value, empty pieces are skipped. InvalidArgument names the
// bad piece.
[[nodiscard]] Status ParseQuery(std::string_view query, QueryParams* out);

// Percent-encodes everything but RFC 3986's unreserved characters.
std::string PercentEncode(std::string_view text);

}  // namespace wisp::triggers

#endif  // WISP_TRIGGERS_QUERY_H_
