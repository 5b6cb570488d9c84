#include <gtest/gtest.h>

#include <string>

#include "triggers/broker.h"

namespace wisp::triggers {
namespace {

struct BadSubject {
  std::string subject;
  std::string message;  // the whole expected error message
};

using Validator = Status (*)(std::string_view);

void ExpectAccepted(Validator validate, const std::string& subject) {
  Status status = validate(subject);
  EXPECT_TRUE(status.ok()) << "subject '" << subject << "': expected OK, got " << status.ToString();
}

void ExpectRefused(Validator validate, const BadSubject& c) {
  Status status = validate(c.subject);
  EXPECT_EQ(Status::Code::kInvalidArgument, status.code())
      << "subject '" << c.subject << "': expected InvalidArgument, got " << status.ToString();
  EXPECT_EQ(c.message, status.message());
}

TEST(SubjectTest, ValidPublishSubjects) {
  const std::string cases[] = {
      "a",
      "orders.created",
      "a.b.c",
      "$SRV.PING",
      "_INBOX.abc.1",
      "A-b_c:1/2",
      "caf\xc3\xa9.x",
      std::string(256, 'x'),
  };
  for (const std::string& subject : cases) {
    ExpectAccepted(ValidatePublishSubject, subject);
    ExpectAccepted(ValidateSubscribeSubject, subject);
  }
}

TEST(SubjectTest, InvalidPublishSubjects) {
  const BadSubject cases[] = {
      {"", "subject is empty"},
      {"a..b", "subject 'a..b' has an empty token at offset 2"},
      {".a", "subject '.a' has an empty token at offset 0"},
      {"a.", "subject 'a.' has an empty token at offset 2"},
      {".", "subject '.' has an empty token at offset 0"},
      {"a b", "subject 'a b' has a whitespace or control byte (0x20) at offset 1"},
      {"a\tb", "subject 'a\\x09b' has a whitespace or control byte (0x09) at offset 1"},
      {"a.\x7f", "subject 'a.\\x7f' has a whitespace or control byte (0x7f) at offset 2"},
      {"a\nb", "subject 'a\\x0ab' has a whitespace or control byte (0x0a) at offset 1"},
      {std::string("a\0b", 3),
       "subject 'a\\x00b' has a whitespace or control byte (0x00) at offset 1"},
      {std::string(257, 'x'),
       "subject '" + std::string(80, 'x') + "...' is 257 bytes; the limit is 256"},
      {"a.*", "subject 'a.*' has wildcard token '*'; a publish subject must be literal"},
      {"a.>", "subject 'a.>' has wildcard token '>'; a publish subject must be literal"},
      {">", "subject '>' has wildcard token '>'; a publish subject must be literal"},
      {"a*.b",
       "subject 'a*.b' has token 'a*' mixing a wildcard with other characters; '*' and '>' "
       "must stand alone as a token"},
      {"a.b>",
       "subject 'a.b>' has token 'b>' mixing a wildcard with other characters; '*' "
       "and '>' must stand alone as a token"},
  };
  for (const BadSubject& c : cases) ExpectRefused(ValidatePublishSubject, c);
}

TEST(SubjectTest, ValidSubscribeSubjects) {
  const std::string cases[] = {
      "a", "a.b", "*", ">", "a.*", "a.>", "*.*.>", "a.*.c", "$SRV.PING.*", "_INBOX.x.>",
  };
  for (const std::string& subject : cases) ExpectAccepted(ValidateSubscribeSubject, subject);
}

TEST(SubjectTest, InvalidSubscribeSubjects) {
  const BadSubject cases[] = {
      {"", "subject is empty"},
      {"a.>.b", "subject 'a.>.b' has '>' before its last token; '>' may only end a subject"},
      {">.a", "subject '>.a' has '>' before its last token; '>' may only end a subject"},
      {"a*",
       "subject 'a*' has token 'a*' mixing a wildcard with other characters; '*' and '>' "
       "must stand alone as a token"},
      {"a.b*c",
       "subject 'a.b*c' has token 'b*c' mixing a wildcard with other characters; '*' "
       "and '>' must stand alone as a token"},
      {"a.>>",
       "subject 'a.>>' has token '>>' mixing a wildcard with other characters; '*' "
       "and '>' must stand alone as a token"},
      {"a..*", "subject 'a..*' has an empty token at offset 2"},
      {"a.*.", "subject 'a.*.' has an empty token at offset 4"},
      {"a. b", "subject 'a. b' has a whitespace or control byte (0x20) at offset 2"},
  };
  for (const BadSubject& c : cases) ExpectRefused(ValidateSubscribeSubject, c);
}

struct MatchCase {
  std::string pattern;
  std::string subject;
  bool matches;
};

TEST(SubjectTest, Matches) {
  const MatchCase cases[] = {
      // Literal.
      {"a", "a", true},
      {"a.b.c", "a.b.c", true},
      {"a.b", "a.b.c", false},
      {"a.b.c", "a.b", false},
      {"a.b", "a.bc", false},
      {"a.bc", "a.b", false},
      {"a", "ab", false},
      {"ab", "a", false},
      // Case-sensitive.
      {"Orders.created", "orders.created", false},
      {"orders.*", "orders.Created", true},
      // '*': exactly one token.
      {"*", "a", true},
      {"*", "a.b", false},
      {"a.*", "a.b", true},
      {"a.*", "a", false},
      {"a.*", "a.b.c", false},
      {"a.*.c", "a.b.c", true},
      {"a.*.c", "a.b.d", false},
      {"*.*", "a.b", true},
      {"*.b", "a.c", false},
      // '>': one or more tokens, never zero.
      {">", "a", true},
      {">", "a.b.c", true},
      {"a.>", "a", false},
      {"a.>", "a.b", true},
      {"a.>", "a.b.c", true},
      {"a.>", "b.c", false},
      {"*.>", "a", false},
      {"*.>", "a.b", true},
      {"a.*.>", "a.b", false},
      {"a.*.>", "a.b.c.d", true},
      // Empty inputs match nothing.
      {"", "", false},
      {">", "", false},
  };
  for (const MatchCase& c : cases) {
    EXPECT_EQ(c.matches, SubjectMatches(c.pattern, c.subject))
        << "pattern '" << c.pattern << "' against subject '" << c.subject << "': expected "
        << (c.matches ? "a match" : "no match");
  }
}

}  // namespace
}  // namespace wisp::triggers
