#include "runtime/manifest.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>

namespace wisp::runtime {
namespace {

TEST(ManifestTest, ParsesFunctionsAndResolvesPaths) {
  const std::string text =
      "functions:\n"
      "  - name: validate\n"
      "    path: fns/validate.so\n"
      "    subscribe: [orders.new, 'orders.*.retry']\n"
      "    timeout: 5s\n"
      "    idle: 1m\n"
      "    max_workers: 3\n"
      "    version: 1.2.3\n"
      "    private: true\n"
      "  - path: /abs/price.so\n"
      "    subscribe: orders.valid\n";
  Manifest m;
  Status s = ParseManifest(text, "dir/wisp.yaml", &m);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(m.functions.size(), 2u);
  const ManifestFunction& v = m.functions[0];
  EXPECT_EQ(v.name, "validate");
  EXPECT_EQ(v.path, "dir/fns/validate.so");
  EXPECT_EQ(v.subscribe, (std::vector<std::string>{"orders.new", "orders.*.retry"}));
  EXPECT_EQ(v.timeout_ms, 5000u);
  EXPECT_EQ(v.idle_ms, 60000u);
  EXPECT_EQ(v.max_workers, 3u);
  EXPECT_EQ(v.version, "1.2.3");
  EXPECT_EQ(v.is_private, true);
  EXPECT_EQ(v.line, 2);
  const ManifestFunction& p = m.functions[1];
  EXPECT_EQ(p.name, "price") << "the name defaults to the file's stem";
  EXPECT_EQ(p.path, "/abs/price.so");
  EXPECT_EQ(p.subscribe, std::vector<std::string>{"orders.valid"});
  EXPECT_FALSE(p.timeout_ms.has_value());
  EXPECT_FALSE(p.is_private.has_value());
}

TEST(ManifestTest, LimitsAreCheckedAndKeptAsWritten) {
  Manifest m;
  Status s = ParseManifest(
      "functions:\n  - path: a.so\n    memory: 256MiB\n    cpu: 2s\n    max_events: 0\n",
      "w.yaml", &m);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(m.functions[0].limits, (std::map<std::string, std::string>{
                                       {"cpu", "2s"}, {"max_events", "0"}, {"memory", "256MiB"}}));
}

TEST(ManifestTest, ErrorsNameFileLineAndField) {
  const std::pair<const char*, const char*> cases[] = {
      {"functions:\n  - path: a.so\n    timeout: soon\n", "w.yaml:3: functions[0].timeout: "},
      {"functions:\n  - path: a.so\n    colour: red\n", "w.yaml:3: functions[0].colour: unknown field"},
      {"functions:\n  - name: a\n", "w.yaml:2: functions[0].path: missing"},
      {"functions:\n  - path: a.so\n  - path: b/a.so\n", "w.yaml:3: functions[1].name: 'a' appears twice"},
      {"functions:\n  - path: a.so\n    subscribe: [ok, 'bad..x']\n",
       "w.yaml:3: functions[0].subscribe: "},
      {"functions:\n  - path: a.so\n    max_workers: 99\n", "w.yaml:3: functions[0].max_workers: "},
      {"functions:\n  - path: a.so\n    name: Bad\n", "w.yaml:3: functions[0].name: 'Bad'"},
      {"functions:\n  - path: a.so\n    private: maybe\n", "w.yaml:3: functions[0].private: "},
      {"functions: []\n", "w.yaml:1: functions: expected a list"},
      {"fns:\n  - path: a.so\n", "w.yaml:1: fns: unknown field"},
      {"functions:\n  - path: [a.so\n", "w.yaml:"},
      {"functions:\n  - path: a.so\n    path: b.so\n", "w.yaml:3: functions[0].path: given twice"},
      {"functions:\n  - path: a.so\n    memory: 1MiB\n",
       "w.yaml:3: functions[0].memory: memory must be a size from 32MiB to 1TiB"},
      {"functions:\n  - path: a.so\n    max_events: -1\n",
       "w.yaml:3: functions[0].max_events: max_events must be a number from 0 to 100000"},
  };
  for (const auto& [text, want] : cases) {
    Manifest m;
    Status s = ParseManifest(text, "w.yaml", &m);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument) << "accepted:\n" << text;
    EXPECT_EQ(s.message().rfind(want, 0), 0u)
        << "expected a message starting '" << want << "', got '" << s.message() << "'";
  }
}

}  // namespace
}  // namespace wisp::runtime
