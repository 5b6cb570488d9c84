// The runtime's side of the function ABI: a loaded function .so (RAII).
// Used inside the worker process only; the controller never dlopens a function.
// Threading: one thread, the worker's.
#ifndef WISP_LOADER_FUNCTION_MODULE_H_
#define WISP_LOADER_FUNCTION_MODULE_H_

#include <memory>
#include <string>

#include "runtime/base/status.h"
#include "wisp/function.h"

namespace wisp::loader {

class FunctionModule {
 public:
  // Validates path (ValidateSharedObjectFile), dlopens it (RTLD_NOW |
  // RTLD_LOCAL), resolves wisp_abi_version and wisp_handle (required) and
  // wisp_init and wisp_fini (optional), checks the ABI version, then calls
  // wisp_init(host, &state). host is borrowed and must outlive the module.
  // Fails with a message naming the cause: not a file, not ELF, wrong
  // architecture, dlopen's error, a missing symbol, "ABI version 7, this
  // runtime speaks 1", "wisp_init returned 3". A crash inside the module's
  // constructors or wisp_init kills the calling process; the controller
  // reports it.
  static StatusOr<std::unique_ptr<FunctionModule>> Open(const std::string& path,
                                                         const wisp_host* host);

  // Open without reading and parsing the file first: for artifacts the
  // controller validated at deploy and stores read-only under their SHA-256.
  // dlopen and dlsym still refuse what is not a loadable function; the
  // messages are then dlopen's own.
  static StatusOr<std::unique_ptr<FunctionModule>> OpenValidated(const std::string& path,
                                                                  const wisp_host* host);

  // Calls wisp_fini (if exported) and dlcloses the module.
  ~FunctionModule();
  FunctionModule(const FunctionModule&) = delete;
  FunctionModule& operator=(const FunctionModule&) = delete;

  // Calls wisp_handle; returns its result (0 = success).
  int Handle(wisp_ctx* ctx, const wisp_request* request) const;

  uint32_t abi_version() const { return abi_version_; }

 private:
  FunctionModule() = default;

  void* handle_ = nullptr;
  void* state_ = nullptr;
  uint32_t abi_version_ = 0;
  int (*handle_fn_)(void*, wisp_ctx*, const wisp_request*) = nullptr;
  void (*fini_fn_)(void*) = nullptr;
};

}  // namespace wisp::loader

#endif  // WISP_LOADER_FUNCTION_MODULE_H_
