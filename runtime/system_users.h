// The system's users, as getpwent enumerates them (NSS: files, systemd,
// LDAP, ...), listed by a short-lived `getent passwd` so the NSS modules
// (libnss_systemd maps 0.3 MiB, others keep threads and sockets) are never
// loaded into the long-lived controller. Where getent cannot run, getpwent
// runs here instead. Blocking (a few ms): for start-up only. Loop thread.
#ifndef WISP_RUNTIME_SYSTEM_USERS_H_
#define WISP_RUNTIME_SYSTEM_USERS_H_

#include <sys/types.h>

#include <functional>
#include <string_view>

namespace wisp::runtime {

// Calls visit(uid, name) for each user until it returns false.
void ForEachSystemUser(const std::function<bool(uid_t uid, std::string_view name)>& visit);

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_SYSTEM_USERS_H_
