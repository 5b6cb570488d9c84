// Parsing of durations given on the command line and in the API.
// Pure; any thread.
#ifndef WISP_RUNTIME_DURATION_H_
#define WISP_RUNTIME_DURATION_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/base/status.h"

namespace wisp::runtime {

// Parses "250ms", "30s", "2m", "1h", "150us", or a bare number of seconds ("45"),
// into milliseconds in *ms. Fractions are accepted ("1.5s"). InvalidArgument
// names the text for anything else, for negative values, and for more than
// max_ms.
Status ParseDurationMs(std::string_view text, uint64_t* ms,
                       uint64_t max_ms = 7ull * 24 * 3600 * 1000);

// The same in microseconds, also accepting "us" ("150us").
Status ParseDurationUs(std::string_view text, uint64_t* us, uint64_t max_us);

// "250ms", "30s", "2m", "1h30m" style, for display.
std::string FormatDurationMs(uint64_t ms);

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_DURATION_H_
