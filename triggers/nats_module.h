// The NATS broker lives in a loadable module, wisp-nats.so, installed next to
// the wisp binary: nats.c and the TLS libraries it links cost a controller
// on the embedded broker nothing (about 1.8 MB of resident memory), and are
// loaded only by `wisp up --nats`.
//
// The module exports one C-linkage entry point, kNatsModuleEntry, of type
// NatsModuleConnectFn. The broker it returns is a C++ object shared between
// two parts of one program built together (same compiler, same libstdc++),
// not an ABI for others; the module stays loaded for the life of the process.
//
// Threading: LoadNatsBroker runs on the loop thread, like NatsBroker::Connect.
#ifndef WISP_TRIGGERS_NATS_MODULE_H_
#define WISP_TRIGGERS_NATS_MODULE_H_

#include <uv.h>

#include <cstddef>
#include <memory>
#include <string>

#include "runtime/base/status.h"
#include "triggers/broker.h"

namespace wisp::triggers {

inline constexpr const char* kNatsModuleEntry = "wisp_nats_module_connect";

// Connects to urls on loop. On success stores a new broker in *broker (the
// caller owns it) and returns 0; else returns nonzero with a message in error
// (NUL-terminated, at most error_len bytes).
using NatsModuleConnectFn = int (*)(uv_loop_t* loop, const char* urls, Broker** broker,
                                    char* error, size_t error_len);

// Opens the module at module_path and connects through it. IOError naming
// the file when it cannot be loaded; otherwise what NatsBroker::Connect
// returns (Unavailable, InvalidArgument, ...), with its message.
StatusOr<std::unique_ptr<Broker>> LoadNatsBroker(const std::string& module_path, uv_loop_t* loop,
                                                 const std::string& urls);

}  // namespace wisp::triggers

#endif  // WISP_TRIGGERS_NATS_MODULE_H_
