#include "runtime/trace_context.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace wisp::runtime {
namespace {

constexpr const char* kTrace = "4bf92f3577b34da6a3ce929d0e0e4736";

TEST(TraceContextTest, ParsesValidTraceparentsAndRefusesTheRest) {
  TraceContext c;
  ASSERT_TRUE(ParseTraceparent(std::string("00-") + kTrace + "-00f067aa0ba902b7-01", &c));
  EXPECT_EQ(c.trace_id, kTrace);
  EXPECT_EQ(c.span_id, "00f067aa0ba902b7");
  EXPECT_EQ(c.flags, "01");
  EXPECT_TRUE(ParseTraceparent(std::string("01-") + kTrace + "-00f067aa0ba902b7-00-extra", &c))
      << "a later version is read by its prefix";
  const std::string bad[] = {
      "",
      std::string("00-") + kTrace + "-00f067aa0ba902b7-01-extra",  // version 00 has no more
      std::string("ff-") + kTrace + "-00f067aa0ba902b7-01",        // version ff is invalid
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   // all-zero trace
      std::string("00-") + kTrace + "-0000000000000000-01",        // all-zero span
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   // upper case
      std::string("00-") + kTrace + "-00f067aa0ba902b7-0",         // short flags
      std::string("00_") + kTrace + "-00f067aa0ba902b7-01",
  };
  for (const std::string& value : bad) {
    EXPECT_FALSE(ParseTraceparent(value, &c)) << "accepted '" << value << "'";
  }
}

TEST(TraceContextTest, AnInvocationContinuesItsTraceWithASpanOfItsOwn) {
  proto::Invoke invoke;
  proto::Header* h = invoke.add_headers();
  h->set_name("traceparent");
  h->set_value(std::string("00-") + kTrace + "-00f067aa0ba902b7-01");
  invoke.add_headers()->set_name("x-other");
  StartInvocationSpan(&invoke);
  EXPECT_EQ(invoke.trace_id(), kTrace);
  EXPECT_EQ(invoke.span_id().size(), 16u);
  EXPECT_NE(invoke.span_id(), "00f067aa0ba902b7") << "the invocation is a new span";
  int traceparents = 0;
  for (const proto::Header& header : invoke.headers()) {
    if (header.name() != "traceparent") continue;
    ++traceparents;
    EXPECT_EQ(header.value(), std::string("00-") + kTrace + "-" + invoke.span_id() + "-01");
  }
  EXPECT_EQ(traceparents, 1);
  EXPECT_EQ(invoke.headers_size(), 2) << "other headers stay";
}

TEST(TraceContextTest, WithoutAValidTraceparentAnInvocationStartsATrace) {
  std::set<std::string> traces;
  for (int i = 0; i < 100; ++i) {
    proto::Invoke invoke;
    proto::Header* h = invoke.add_headers();
    h->set_name("ce-traceparent");
    h->set_value("garbage");
    StartInvocationSpan(&invoke);
    EXPECT_TRUE(IsTraceId(invoke.trace_id())) << invoke.trace_id();
    ASSERT_EQ(invoke.headers_size(), 1) << "the bad header is replaced";
    EXPECT_EQ(invoke.headers(0).name(), "traceparent");
    traces.insert(invoke.trace_id());
  }
  EXPECT_EQ(traces.size(), 100u) << "trace ids repeat";
}

}  // namespace
}  // namespace wisp::runtime
