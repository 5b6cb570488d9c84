// NATS subject syntax: validation of publish and subscribe subjects, and
// matching a subject against a pattern. Pure functions; any thread.
#include <cstdio>
#include <string>
#include <string_view>

#include "runtime/base/ascii.h"
#include "triggers/broker.h"

namespace wisp::triggers {
namespace {

constexpr size_t kMaxQuotedBytes = 80;

bool IsForbiddenByte(unsigned char c) { return c <= 0x20 || c == 0x7f; }

// 'subject' for an error message: control bytes escaped as \xNN, long
// subjects cut short with "...".
std::string Quote(std::string_view subject) {
  std::string out = "'";
  for (size_t i = 0; i < subject.size() && i < kMaxQuotedBytes; ++i) {
    auto c = static_cast<unsigned char>(subject[i]);
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      AppendLowerHex(subject.substr(i, 1), &out);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (subject.size() > kMaxQuotedBytes) out += "...";
  out += "'";
  return out;
}

std::string ByteName(unsigned char c) {
  std::string name = "0x";
  const char byte = static_cast<char>(c);
  AppendLowerHex(std::string_view(&byte, 1), &name);
  return name;
}

// Checks a token of subject that is empty or holds '*' or '>'; it starts at
// offset, and last says whether it ends the subject.
Status CheckUnusualToken(std::string_view subject, std::string_view token, size_t offset, bool last,
                         bool allow_wildcards) {
  if (token.empty()) {
    return Status::InvalidArgument("subject " + Quote(subject) + " has an empty token at offset " +
                                   std::to_string(offset));
  }
  const bool gt = token == ">";
  if (!gt && token != "*") {
    return Status::InvalidArgument("subject " + Quote(subject) + " has token " + Quote(token) +
                                   " mixing a wildcard with other characters; '*' and '>' must "
                                   "stand alone as a token");
  }
  if (!allow_wildcards) {
    return Status::InvalidArgument("subject " + Quote(subject) + " has wildcard token " +
                                   Quote(token) + "; a publish subject must be literal");
  }
  if (gt && !last) {
    return Status::InvalidArgument("subject " + Quote(subject) +
                                   " has '>' before its last token; '>' may only end a subject");
  }
  return Status::OK();
}

Status ValidateSubject(std::string_view subject, bool allow_wildcards) {
  if (subject.empty()) return Status::InvalidArgument("subject is empty");
  if (subject.size() > kMaxSubjectBytes) {
    return Status::InvalidArgument("subject " + Quote(subject) + " is " +
                                   std::to_string(subject.size()) + " bytes; the limit is " +
                                   std::to_string(kMaxSubjectBytes));
  }
  // One pass; only empty tokens and tokens with '*' or '>' need a closer look.
  size_t token_start = 0;
  bool wildcard_byte = false;
  for (size_t i = 0; i <= subject.size(); ++i) {
    const bool end = i == subject.size();
    if (!end) {
      auto c = static_cast<unsigned char>(subject[i]);
      if (IsForbiddenByte(c)) {
        return Status::InvalidArgument("subject " + Quote(subject) +
                                       " has a whitespace or control byte (" + ByteName(c) +
                                       ") at offset " + std::to_string(i));
      }
      if (c == '*' || c == '>') wildcard_byte = true;
      if (c != '.') continue;
    }
    if (wildcard_byte || i == token_start) {
      WISP_RETURN_IF_ERROR(CheckUnusualToken(subject, subject.substr(token_start, i - token_start),
                                             token_start, end, allow_wildcards));
    }
    token_start = i + 1;
    wildcard_byte = false;
  }
  return Status::OK();
}

// The token starting at pos and the offset just past it (the '.' or the end).
std::string_view TokenAt(std::string_view s, size_t pos, size_t* end) {
  size_t dot = s.find('.', pos);
  *end = dot == std::string_view::npos ? s.size() : dot;
  return s.substr(pos, *end - pos);
}

}  // namespace

Status ValidatePublishSubject(std::string_view subject) {
  return ValidateSubject(subject, /*allow_wildcards=*/false);
}

Status ValidateSubscribeSubject(std::string_view subject) {
  return ValidateSubject(subject, /*allow_wildcards=*/true);
}

bool SubjectMatches(std::string_view pattern, std::string_view subject) {
  if (pattern.empty() || subject.empty()) return false;
  size_t p = 0;
  size_t s = 0;
  for (;;) {
    size_t p_end;
    size_t s_end;
    std::string_view pattern_token = TokenAt(pattern, p, &p_end);
    std::string_view subject_token = TokenAt(subject, s, &s_end);
    // The subject has a token here, so '>' matches it and all that follow.
    if (pattern_token == ">") return true;
    if (pattern_token != "*" && pattern_token != subject_token) return false;
    const bool pattern_done = p_end == pattern.size();
    const bool subject_done = s_end == subject.size();
    if (pattern_done || subject_done) return pattern_done && subject_done;
    p = p_end + 1;
    s = s_end + 1;
  }
}

Status ValidateQueueGroup(std::string_view group) {
  if (group.size() > kMaxSubjectBytes) {
    return Status::InvalidArgument("queue group is " + std::to_string(group.size()) +
                                   " bytes; the limit is " + std::to_string(kMaxSubjectBytes));
  }
  for (size_t i = 0; i < group.size(); ++i) {
    auto c = static_cast<unsigned char>(group[i]);
    if (c <= 0x20 || c == 0x7f) {
      char byte[8];
      std::snprintf(byte, sizeof(byte), "0x%02x", c);
      return Status::InvalidArgument("queue group '" + std::string(group.substr(0, i)) +
                                     "...' has a whitespace or control byte (" + byte +
                                     ") at offset " + std::to_string(i));
    }
  }
  return Status::OK();
}

}  // namespace wisp::triggers
