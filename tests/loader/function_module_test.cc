#include "loader/function_module.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

// The test's own invocation context: what the function wrote through the host.
struct wisp_ctx {
  std::string body;
  int status = 200;
  std::map<std::string, std::string> headers;
};

namespace wisp::loader {
namespace {

using ::testing::HasSubstr;

const std::string kFunctions = WISP_TEST_FUNCTIONS_DIR;
const std::string kHello = WISP_EXAMPLES_DIR "/hello.so";

int Write(wisp_ctx* ctx, const void* data, size_t len) {
  ctx->body.append(static_cast<const char*>(data), len);
  return WISP_OK;
}
int SetStatus(wisp_ctx* ctx, int code) {
  ctx->status = code;
  return WISP_OK;
}
int SetHeader(wisp_ctx* ctx, const char* name, const char* value) {
  ctx->headers[name] = value;
  return WISP_OK;
}
int Emit(wisp_ctx*, const char*, const void*, size_t) { return WISP_E_UNSUPPORTED; }
int Log(wisp_ctx*, int, const char*, size_t) { return WISP_OK; }
int EmitEvent(wisp_ctx*, const char*, const void*, size_t, const wisp_header*, size_t) {
  return WISP_E_UNSUPPORTED;
}

const wisp_host kHost = {sizeof(wisp_host), WISP_ABI_VERSION, Write, SetStatus, SetHeader,
                         Emit,              Log,              EmitEvent, nullptr};

// Invokes module with body; returns the handler's result, the reply in *ctx.
int Invoke(const FunctionModule& module, const std::string& body, wisp_ctx* ctx) {
  wisp_request req = {};
  req.size = sizeof(req);
  req.trigger = WISP_TRIGGER_HTTP;
  req.host = &kHost;
  req.method = {"POST", 4};
  req.path = {"/", 1};
  req.query = {"", 0};
  req.subject = {"", 0};
  req.body = body.c_str();
  req.body_len = body.size();
  req.attempt = 1;
  return module.Handle(ctx, &req);
}

TEST(FunctionModuleTest, HelloReplies) {
  auto module = FunctionModule::Open(kHello, &kHost);
  ASSERT_TRUE(module.ok()) << module.status().ToString();
  EXPECT_EQ((*module)->abi_version(), WISP_ABI_VERSION);
  wisp_ctx ctx;
  EXPECT_EQ(Invoke(**module, "world", &ctx), 0);
  EXPECT_EQ(ctx.body, "hello, world");
}

TEST(FunctionModuleTest, CounterKeepsStateAcrossCalls) {
  auto module = FunctionModule::Open(kFunctions + "/counter.so", &kHost);
  ASSERT_TRUE(module.ok()) << module.status().ToString();
  std::string pid = std::to_string(::getpid());
  for (int i = 1; i <= 3; ++i) {
    wisp_ctx ctx;
    EXPECT_EQ(Invoke(**module, "", &ctx), 0);
    EXPECT_EQ(ctx.body, std::to_string(i) + " " + pid);
  }
}

TEST(FunctionModuleTest, TwoInstancesHaveSeparateState) {
  auto first = FunctionModule::Open(kFunctions + "/counter.so", &kHost);
  auto second = FunctionModule::Open(kFunctions + "/counter.so", &kHost);
  ASSERT_TRUE(first.ok() && second.ok());
  wisp_ctx a, b, c;
  EXPECT_EQ(Invoke(**first, "", &a), 0);
  EXPECT_EQ(Invoke(**first, "", &b), 0);
  EXPECT_EQ(Invoke(**second, "", &c), 0);
  EXPECT_THAT(b.body, ::testing::StartsWith("2 "));
  EXPECT_THAT(c.body, ::testing::StartsWith("1 "));
}

TEST(FunctionModuleTest, StatusAndHeadersReachTheHost) {
  auto module = FunctionModule::Open(kFunctions + "/status.so", &kHost);
  ASSERT_TRUE(module.ok()) << module.status().ToString();
  wisp_ctx ctx;
  EXPECT_EQ(Invoke(**module, "404", &ctx), 0);
  EXPECT_EQ(ctx.status, 404);
  EXPECT_EQ(ctx.body, "404");
  EXPECT_EQ(ctx.headers["x-test"], "yes");
  wisp_ctx failed;
  EXPECT_EQ(Invoke(**module, "fail", &failed), 1);
}

struct ErrorCase {
  const char* name;
  std::string path;
  const char* want;  // substring of the message
};

class FunctionModuleErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(FunctionModuleErrorTest, FailsWithMessage) {
  auto module = FunctionModule::Open(GetParam().path, &kHost);
  ASSERT_FALSE(module.ok()) << GetParam().path << " opened";
  EXPECT_THAT(module.status().message(), HasSubstr(GetParam().want));
  EXPECT_THAT(module.status().message(), HasSubstr(GetParam().path));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, FunctionModuleErrorTest,
    ::testing::Values(
        ErrorCase{"Missing", kFunctions + "/does_not_exist.so", "no such file"},
        ErrorCase{"Directory", kFunctions, "not a regular file"},
        ErrorCase{"NotElf", std::string(__FILE__), "not an ELF file"},
        ErrorCase{"NoHandle", kFunctions + "/no_handle.so", "does not export wisp_handle"},
        ErrorCase{"BadAbi", kFunctions + "/bad_abi.so", "ABI version 7, this runtime speaks 1"},
        ErrorCase{"InitFail", kFunctions + "/init_fail.so", "wisp_init returned 3"}),
    [](const ::testing::TestParamInfo<ErrorCase>& info) { return info.param.name; });

TEST(FunctionModuleTest, RelativePathWithoutSlashIsAFile) {
  // dlopen("hello.so") would search the library path; Open must not.
  char* old_cwd = ::getcwd(nullptr, 0);
  ASSERT_EQ(::chdir(WISP_EXAMPLES_DIR), 0);
  auto module = FunctionModule::Open("hello.so", &kHost);
  ASSERT_EQ(::chdir(old_cwd), 0);
  free(old_cwd);
  ASSERT_TRUE(module.ok()) << module.status().ToString();
  wisp_ctx ctx;
  EXPECT_EQ(Invoke(**module, "cwd", &ctx), 0);
  EXPECT_EQ(ctx.body, "hello, cwd");
}

// Expects statement to die of SIGSEGV (scripts/sanitize.sh runs AddressSanitizer
// with handle_segv=0, so a sanitized build dies of the signal too).
#define EXPECT_SEGV(statement) \
  EXPECT_EXIT(statement, ::testing::KilledBySignal(SIGSEGV), "")

// A crashing constructor kills the process that loads it; run it in a child.
TEST(FunctionModuleDeathTest, ConstructorCrashKillsTheLoader) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_SEGV({
    auto module = FunctionModule::Open(kFunctions + "/ctor_crash.so", &kHost);
    std::_Exit(module.ok() ? 0 : 1);
  });
}

TEST(FunctionModuleDeathTest, SegvInHandlerKillsTheLoader) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto module = FunctionModule::Open(kFunctions + "/segv.so", &kHost);
  ASSERT_TRUE(module.ok()) << module.status().ToString();
  wisp_ctx ctx;
  EXPECT_SEGV(Invoke(**module, "", &ctx));
}

}  // namespace
}  // namespace wisp::loader
