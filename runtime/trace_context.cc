#include "runtime/trace_context.h"

#include <cstdint>

#include "runtime/base/ascii.h"
#include "runtime/base/random.h"

namespace wisp::runtime {
namespace {

bool IsLowerHex(std::string_view text) {
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZero(std::string_view text) { return text.find_first_not_of('0') == std::string_view::npos; }

// splitmix64, seeded once per thread from the kernel: unique enough for span
// and trace ids, without a getrandom call per invocation.
uint64_t NextRandom() {
  thread_local uint64_t state = [] {
    uint64_t seed = 0;
    FillRandom(&seed, sizeof(seed));
    return seed;
  }();
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string RandomHex(size_t digits) {
  std::string out(digits, '0');
  while (AllZero(out)) {
    uint64_t bits = 0;
    for (size_t i = 0; i < digits; ++i) {
      if (i % 16 == 0) bits = NextRandom();
      out[i] = kLowerHexDigits[bits & 0xf];
      bits >>= 4;
    }
  }
  return out;
}

}  // namespace

bool IsTraceId(std::string_view text) {
  return text.size() == 32 && IsLowerHex(text) && !AllZero(text);
}

bool ParseTraceparent(std::string_view value, TraceContext* out) {
  // version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2.
  if (value.size() < 55 || value[2] != '-' || value[35] != '-' || value[52] != '-') return false;
  const std::string_view version = value.substr(0, 2);
  if (!IsLowerHex(version) || version == "ff") return false;
  if (version == "00" && value.size() != 55) return false;
  if (value.size() > 55 && value[55] != '-') return false;
  const std::string_view trace = value.substr(3, 32);
  const std::string_view span = value.substr(36, 16);
  const std::string_view flags = value.substr(53, 2);
  if (!IsTraceId(trace) || !IsLowerHex(span) || AllZero(span) || !IsLowerHex(flags)) return false;
  out->trace_id = std::string(trace);
  out->span_id = std::string(span);
  out->flags = std::string(flags);
  return true;
}

std::string FormatTraceparent(const TraceContext& context) {
  std::string value;
  value.reserve(6 + context.trace_id.size() + context.span_id.size() + context.flags.size());
  value.append("00-").append(context.trace_id).append("-").append(context.span_id);
  value.append("-").append(context.flags);
  return value;
}

void StartInvocationSpan(proto::Invoke* invoke) {
  TraceContext context;
  bool found = false;
  auto* headers = invoke->mutable_headers();
  for (int i = 0; i < headers->size();) {
    const std::string& name = headers->Get(i).name();
    if (EqualsIgnoreCase(name, "traceparent") || EqualsIgnoreCase(name, "ce-traceparent")) {
      if (!found) found = ParseTraceparent(headers->Get(i).value(), &context);
      headers->DeleteSubrange(i, 1);
      continue;
    }
    ++i;
  }
  if (!found) context.trace_id = RandomHex(32);
  context.span_id = RandomHex(16);
  proto::Header* h = invoke->add_headers();
  h->set_name("traceparent");
  h->set_value(FormatTraceparent(context));
  invoke->set_trace_id(std::move(context.trace_id));
  invoke->set_span_id(std::move(context.span_id));
}

}  // namespace wisp::runtime
