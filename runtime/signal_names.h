// Readable descriptions of how a process ended. Pure; any thread.
#ifndef WISP_RUNTIME_SIGNAL_NAMES_H_
#define WISP_RUNTIME_SIGNAL_NAMES_H_

#include <cstdint>
#include <string>

namespace wisp::runtime {

// "SIGSEGV" for 11; "signal 77" for a number without a name.
std::string SignalName(int signal);

// "killed by SIGSEGV" when term_signal != 0, else "exited with status 3".
std::string DescribeExit(int64_t exit_status, int term_signal);

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_SIGNAL_NAMES_H_
