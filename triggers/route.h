// Routing of HTTP paths to the controller's endpoints.
// Pure functions; callable from any thread.
#ifndef WISP_TRIGGERS_ROUTE_H_
#define WISP_TRIGGERS_ROUTE_H_

#include <string>
#include <string_view>

namespace wisp::triggers {

struct Route {
  enum class Kind {
    kNotFound,     // no endpoint
    kHealth,       // /healthz
    kMetrics,      // /metrics
    kDashboard,    // /ui
    kFunction,     // /fn/<name> and /fn/<name>/<rest>
    kApiFunctions, // /v1/functions
    kApiFunction,  // /v1/functions/<name>
    kApiFunctionAction,  // /v1/functions/<name>/<action> (rollback, invoke, logs)
    kApiInvocations,     // /v1/invocations
    kApiEvent,     // /v1/events/<subject>
    kApiRequest,   // /v1/requests/<subject>
    kApiServices,  // /v1/services
  };
  Kind kind = Kind::kNotFound;
  std::string name;  // function name for kFunction and kApiFunction; the
                     // subject (still percent-encoded) for kApiEvent and kApiRequest
  std::string rest;  // for kFunction: "/" or "/<rest>", as sent; for
                     // kApiFunctionAction: the action
};

// Classifies a request path (without query). Names are returned as sent;
// checking them is IsValidFunctionName's job.
Route RoutePath(std::string_view path);

// Names match ^[a-z0-9][a-z0-9_-]{0,62}$ so they are safe in file paths,
// subjects and URLs.
bool IsValidFunctionName(std::string_view name);

}  // namespace wisp::triggers

#endif  // WISP_TRIGGERS_ROUTE_H_
