#include "runtime/signal_names.h"

#include <string.h>

namespace wisp::runtime {

std::string SignalName(int signal) {
  const char* abbrev = ::sigabbrev_np(signal);
  if (abbrev == nullptr) return "signal " + std::to_string(signal);
  return std::string("SIG") + abbrev;
}

std::string DescribeExit(int64_t exit_status, int term_signal) {
  if (term_signal != 0) return "killed by " + SignalName(term_signal);
  return "exited with status " + std::to_string(exit_status);
}

}  // namespace wisp::runtime
