// Path routing for the controller's HTTP endpoints.
#include "triggers/route.h"

namespace wisp::triggers {
namespace {

constexpr std::string_view kHealthPath = "/healthz";
constexpr std::string_view kFunctionPrefix = "/fn/";
constexpr std::string_view kApiFunctionsPath = "/v1/functions";
constexpr std::string_view kApiEventsPrefix = "/v1/events/";
constexpr std::string_view kApiRequestsPrefix = "/v1/requests/";
constexpr std::string_view kApiServicesPath = "/v1/services";
constexpr std::string_view kApiInvocationsPath = "/v1/invocations";
constexpr size_t kMaxNameLength = 63;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// "/fn/<name>[/<rest>]": rest keeps its leading slash and defaults to "/".
Route RouteFunction(std::string_view tail) {
  Route route;
  size_t slash = tail.find('/');
  std::string_view name = tail.substr(0, slash);
  if (name.empty()) return route;
  route.kind = Route::Kind::kFunction;
  route.name = std::string(name);
  route.rest = slash == std::string_view::npos ? "/" : std::string(tail.substr(slash));
  return route;
}

// "/v1/functions[/]", "/v1/functions/<name>" and "/v1/functions/<name>/<action>".
Route RouteApi(std::string_view tail) {
  Route route;
  if (tail.empty() || tail == "/") {
    route.kind = Route::Kind::kApiFunctions;
    return route;
  }
  if (tail.front() != '/') return route;
  std::string_view name = tail.substr(1);
  const size_t slash = name.find('/');
  if (slash != std::string_view::npos) {
    std::string_view action = name.substr(slash + 1);
    name = name.substr(0, slash);
    if (name.empty() || action.empty() || action.find('/') != std::string_view::npos) {
      return route;
    }
    route.kind = Route::Kind::kApiFunctionAction;
    route.name = std::string(name);
    route.rest = std::string(action);
    return route;
  }
  if (name.empty()) return route;
  route.kind = Route::Kind::kApiFunction;
  route.name = std::string(name);
  return route;
}

// "<prefix><subject>": one path segment, not empty.
Route RouteSubject(std::string_view subject, Route::Kind kind) {
  Route route;
  if (subject.empty() || subject.find('/') != std::string_view::npos) return route;
  route.kind = kind;
  route.name = std::string(subject);
  return route;
}

}  // namespace

Route RoutePath(std::string_view path) {
  if (path == kHealthPath) {
    Route route;
    route.kind = Route::Kind::kHealth;
    return route;
  }
  if (path == "/ui" || path == "/ui/") {
    Route route;
    route.kind = Route::Kind::kDashboard;
    return route;
  }
  if (path == "/metrics") {
    Route route;
    route.kind = Route::Kind::kMetrics;
    return route;
  }
  if (path.starts_with(kFunctionPrefix)) return RouteFunction(path.substr(kFunctionPrefix.size()));
  if (path.starts_with(kApiFunctionsPath)) return RouteApi(path.substr(kApiFunctionsPath.size()));
  if (path.starts_with(kApiEventsPrefix)) {
    return RouteSubject(path.substr(kApiEventsPrefix.size()), Route::Kind::kApiEvent);
  }
  if (path.starts_with(kApiRequestsPrefix)) {
    return RouteSubject(path.substr(kApiRequestsPrefix.size()), Route::Kind::kApiRequest);
  }
  if (path == kApiInvocationsPath || path == "/v1/invocations/") {
    Route route;
    route.kind = Route::Kind::kApiInvocations;
    return route;
  }
  if (path == kApiServicesPath || path == "/v1/services/") {
    Route route;
    route.kind = Route::Kind::kApiServices;
    return route;
  }
  return Route();
}

bool IsValidFunctionName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  if (!IsLowerAlnum(name.front())) return false;
  for (char c : name.substr(1)) {
    if (!IsLowerAlnum(c) && c != '_' && c != '-') return false;
  }
  return true;
}

}  // namespace wisp::triggers
