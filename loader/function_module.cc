#include "loader/function_module.h"

#include <dlfcn.h>

#include "loader/elf_validator.h"

namespace wisp::loader {
namespace {

using AbiVersionFn = uint32_t (*)(void);
using InitFn = int (*)(const wisp_host*, void**);
using HandleFn = int (*)(void*, wisp_ctx*, const wisp_request*);
using FiniFn = void (*)(void*);

// dlopen treats a name without a slash as a library to search for on the
// library path; a function is always a file, so make the path explicit.
std::string DlopenPath(const std::string& path) {
  if (path.find('/') != std::string::npos) return path;
  return "./" + path;
}

std::string LastDlError() {
  const char* err = dlerror();
  return err != nullptr ? err : "unknown dlopen error";
}

// The address of symbol in handle, or nullptr if it is not exported.
void* FindSymbol(void* handle, const char* symbol) {
  dlerror();  // clear any stale error
  return dlsym(handle, symbol);
}

template <typename Fn>
Fn FindFunction(void* handle, const char* symbol) {
  return reinterpret_cast<Fn>(FindSymbol(handle, symbol));
}

// Owns a dlopen handle until released: closes it on every failure path.
class DlHandle {
 public:
  explicit DlHandle(void* handle) : handle_(handle) {}
  ~DlHandle() {
    if (handle_ != nullptr) dlclose(handle_);
  }
  DlHandle(const DlHandle&) = delete;
  DlHandle& operator=(const DlHandle&) = delete;
  void* get() const { return handle_; }
  void* release() {
    void* h = handle_;
    handle_ = nullptr;
    return h;
  }

 private:
  void* handle_;
};

}  // namespace

StatusOr<std::unique_ptr<FunctionModule>> FunctionModule::Open(const std::string& path,
                                                                const wisp_host* host) {
  WISP_RETURN_IF_ERROR(ValidateSharedObjectFile(path));
  return OpenValidated(path, host);
}

StatusOr<std::unique_ptr<FunctionModule>> FunctionModule::OpenValidated(const std::string& path,
                                                                         const wisp_host* host) {
  DlHandle dl(dlopen(DlopenPath(path).c_str(), RTLD_NOW | RTLD_LOCAL));
  if (dl.get() == nullptr) {
    return Status::InvalidArgument(path + ": dlopen failed: " + LastDlError());
  }
  auto abi_fn = FindFunction<AbiVersionFn>(dl.get(), "wisp_abi_version");
  auto handle_fn = FindFunction<HandleFn>(dl.get(), "wisp_handle");
  // The validator already checked both; dlsym can still disagree (e.g. a
  // symbol that resolves to NULL), so do not trust it blindly.
  if (abi_fn == nullptr) {
    return Status::InvalidArgument(path + ": does not export wisp_abi_version");
  }
  if (handle_fn == nullptr) {
    return Status::InvalidArgument(path + ": does not export wisp_handle");
  }
  auto init_fn = FindFunction<InitFn>(dl.get(), "wisp_init");
  auto fini_fn = FindFunction<FiniFn>(dl.get(), "wisp_fini");

  uint32_t version = abi_fn();
  if (version != WISP_ABI_VERSION) {
    return Status::InvalidArgument(path + ": ABI version " + std::to_string(version) +
                                   ", this runtime speaks " +
                                   std::to_string(WISP_ABI_VERSION));
  }
  void* state = nullptr;
  if (init_fn != nullptr) {
    int rc = init_fn(host, &state);
    // A failed init owns nothing we could hand to wisp_fini: just unload.
    if (rc != 0) {
      return Status::InvalidArgument(path + ": wisp_init returned " + std::to_string(rc));
    }
  }
  std::unique_ptr<FunctionModule> module(new FunctionModule());
  module->handle_ = dl.release();
  module->state_ = state;
  module->abi_version_ = version;
  module->handle_fn_ = handle_fn;
  module->fini_fn_ = fini_fn;
  return module;
}

FunctionModule::~FunctionModule() {
  if (fini_fn_ != nullptr) fini_fn_(state_);
  if (handle_ != nullptr) dlclose(handle_);
}

int FunctionModule::Handle(wisp_ctx* ctx, const wisp_request* request) const {
  return handle_fn_(state_, ctx, request);
}

}  // namespace wisp::loader
