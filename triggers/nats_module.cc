#include "triggers/nats_module.h"

#include <dlfcn.h>

namespace wisp::triggers {

StatusOr<std::unique_ptr<Broker>> LoadNatsBroker(const std::string& module_path, uv_loop_t* loop,
                                                 const std::string& urls) {
  // Never closed: the broker's code lives there as long as the process.
  void* module = ::dlopen(module_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (module == nullptr) {
    const char* why = ::dlerror();
    return Status::IOError("cannot load the NATS module " + module_path + ": " +
                           (why != nullptr ? why : "unknown error"));
  }
  auto connect = reinterpret_cast<NatsModuleConnectFn>(::dlsym(module, kNatsModuleEntry));
  if (connect == nullptr) {
    return Status::IOError(module_path + " is not wisp's NATS module (no " +
                           std::string(kNatsModuleEntry) + ")");
  }
  Broker* broker = nullptr;
  char error[512] = {0};
  if (connect(loop, urls.c_str(), &broker, error, sizeof(error)) != 0 || broker == nullptr) {
    return Status::Unavailable(error[0] != '\0' ? error : "the NATS module could not connect");
  }
  return std::unique_ptr<Broker>(broker);
}

}  // namespace wisp::triggers
