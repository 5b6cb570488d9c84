#include "triggers/route.h"

#include <gtest/gtest.h>

#include <string>

namespace wisp::triggers {
namespace {

const char* KindName(Route::Kind kind) {
  switch (kind) {
    case Route::Kind::kNotFound:
      return "kNotFound";
    case Route::Kind::kHealth:
      return "kHealth";
    case Route::Kind::kMetrics:
      return "kMetrics";
    case Route::Kind::kDashboard:
      return "kDashboard";
    case Route::Kind::kFunction:
      return "kFunction";
    case Route::Kind::kApiFunctions:
      return "kApiFunctions";
    case Route::Kind::kApiFunction:
      return "kApiFunction";
    case Route::Kind::kApiFunctionAction:
      return "kApiFunctionAction";
    case Route::Kind::kApiInvocations:
      return "kApiInvocations";
    case Route::Kind::kApiEvent:
      return "kApiEvent";
    case Route::Kind::kApiRequest:
      return "kApiRequest";
    case Route::Kind::kApiServices:
      return "kApiServices";
  }
  return "?";
}

struct RouteCase {
  std::string path;
  Route::Kind kind;
  std::string name;
  std::string rest;
};

TEST(RouteTest, RoutePathTable) {
  using K = Route::Kind;
  const RouteCase cases[] = {
      {"/healthz", K::kHealth, "", ""},
      {"/healthz/", K::kNotFound, "", ""},
      {"/metrics", K::kMetrics, "", ""},
      {"/ui", K::kDashboard, "", ""},
      {"/ui/", K::kDashboard, "", ""},
      {"/ui/x", K::kNotFound, "", ""},
      {"/metrics/x", K::kNotFound, "", ""},
      {"/fn/hello", K::kFunction, "hello", "/"},
      {"/fn/hello/", K::kFunction, "hello", "/"},
      {"/fn/hello/a/b", K::kFunction, "hello", "/a/b"},
      {"/fn/hello//x", K::kFunction, "hello", "//x"},
      {"/fn/", K::kNotFound, "", ""},
      {"/fn//x", K::kNotFound, "", ""},
      {"/fn", K::kNotFound, "", ""},
      {"/v1/functions", K::kApiFunctions, "", ""},
      {"/v1/functions/", K::kApiFunctions, "", ""},
      {"/v1/functions/hello", K::kApiFunction, "hello", ""},
      {"/v1/functions/hello/rollback", K::kApiFunctionAction, "hello", "rollback"},
      {"/v1/functions/hello/logs", K::kApiFunctionAction, "hello", "logs"},
      {"/v1/functions/hello/", K::kNotFound, "", ""},
      {"/v1/functions//invoke", K::kNotFound, "", ""},
      {"/v1/functions/hello/a/b", K::kNotFound, "", ""},
      {"/v1/invocations", K::kApiInvocations, "", ""},
      {"/v1/invocations/x", K::kNotFound, "", ""},
      {"/v1/functionsx", K::kNotFound, "", ""},
      {"/v1/function", K::kNotFound, "", ""},
      {"/v1/events/orders.new", K::kApiEvent, "orders.new", ""},
      {"/v1/events/a%2Eb", K::kApiEvent, "a%2Eb", ""},
      {"/v1/events/", K::kNotFound, "", ""},
      {"/v1/events/a/b", K::kNotFound, "", ""},
      {"/v1/requests/wisp.fn.hello", K::kApiRequest, "wisp.fn.hello", ""},
      {"/v1/requests/", K::kNotFound, "", ""},
      {"/v1/services", K::kApiServices, "", ""},
      {"/v1/services/x", K::kNotFound, "", ""},
      {"/", K::kNotFound, "", ""},
      {"", K::kNotFound, "", ""},
      {"/other", K::kNotFound, "", ""},
  };
  for (const RouteCase& c : cases) {
    SCOPED_TRACE("path=\"" + c.path + "\"");
    Route route = RoutePath(c.path);
    EXPECT_STREQ(KindName(c.kind), KindName(route.kind));
    EXPECT_EQ(c.name, route.name);
    EXPECT_EQ(c.rest, route.rest);
  }
}

TEST(RouteTest, IsValidFunctionNameTable) {
  const std::string max_name(63, 'a');
  const std::string too_long(64, 'a');
  const struct {
    std::string name;
    bool valid;
  } cases[] = {
      {"hello", true},
      {"a", true},
      {"0", true},
      {"a-b_c9", true},
      {max_name, true},
      {too_long, false},
      {"", false},
      {"A", false},
      {"helloWorld", false},
      {"-x", false},
      {"_x", false},
      {"../etc", false},
      {"a/b", false},
      {"a.b", false},
      {"a b", false},
      {"é", false},
      {std::string("a\0b", 3), false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.valid, IsValidFunctionName(c.name)) << "name=\"" << c.name << "\"";
  }
}

}  // namespace
}  // namespace wisp::triggers
