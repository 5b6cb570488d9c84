// The system's users as listed by getent (runtime/system_users.h), checked
// against getpwent in the test process.
#include "runtime/system_users.h"

#include <gtest/gtest.h>
#include <pwd.h>

#include <map>
#include <string>

namespace wisp::runtime {
namespace {

TEST(SystemUsersTest, EveryUserGetpwentListsIsVisitedWithItsName) {
  std::map<uid_t, std::string> want;
  ::setpwent();
  for (passwd* pw = ::getpwent(); pw != nullptr; pw = ::getpwent()) {
    want.emplace(pw->pw_uid, pw->pw_name);
  }
  ::endpwent();
  ASSERT_EQ(want.count(0), 1u) << "getpwent lists no root";

  std::map<uid_t, std::string> got;
  ForEachSystemUser([&](uid_t uid, std::string_view name) {
    got.emplace(uid, std::string(name));
    return true;
  });
  EXPECT_EQ(want, got);
}

TEST(SystemUsersTest, TheVisitStopsWhenTheVisitorSaysSo) {
  int visits = 0;
  ForEachSystemUser([&](uid_t, std::string_view) {
    ++visits;
    return false;
  });
  EXPECT_EQ(1, visits);
}

}  // namespace
}  // namespace wisp::runtime
