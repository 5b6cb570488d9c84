// W3C Trace Context (traceparent) for invocations: a trace arriving on HTTP
// or in an event header is carried on, one span per invocation; a call
// without one starts a trace. The function sees `traceparent` naming its own
// span, the events it emits carry the same, and its record keeps the trace
// id (GET /v1/invocations?trace=ID follows a pipeline run end to end).
//
// Pure functions; any thread (span ids come from a per-thread generator
// seeded from the kernel, not a syscall per invocation).
#ifndef WISP_RUNTIME_TRACE_CONTEXT_H_
#define WISP_RUNTIME_TRACE_CONTEXT_H_

#include <string>
#include <string_view>

#include "worker.pb.h"

namespace wisp::runtime {

struct TraceContext {
  std::string trace_id;  // 32 lower-case hex digits, not all zero
  std::string span_id;   // 16 lower-case hex digits, not all zero
  std::string flags = "01";
};

// Parses a traceparent value ("00-<trace>-<span>-<flags>"; later versions
// are read by the same prefix). False when malformed or all-zero.
bool ParseTraceparent(std::string_view value, TraceContext* out);

std::string FormatTraceparent(const TraceContext& context);

// Whether text is a trace id as ParseTraceparent accepts it.
bool IsTraceId(std::string_view text);

// Starts the span of one invocation: continues the trace of its
// `traceparent` (or `ce-traceparent`) header when valid, else a new trace;
// sets invoke's trace_id and span_id and its `traceparent` header (replacing
// any) to the new span, so the function sees its own context.
void StartInvocationSpan(proto::Invoke* invoke);

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_TRACE_CONTEXT_H_
