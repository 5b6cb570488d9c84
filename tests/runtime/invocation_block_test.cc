#include "runtime/invocation_block.h"

#include <gtest/gtest.h>

#include <climits>
#include <string>
#include <vector>

#include "records.pb.h"

namespace wisp::runtime {
namespace {

// Every field but seq, so a failure shows what was expected and what came.
std::string Describe(const InvocationRecord& r) {
  return r.id + " fn=" + r.function + " v=" + r.version + " trigger=" + r.trigger +
         " started=" + std::to_string(r.started_at_us) + " dur=" + std::to_string(r.duration_us) +
         " cold=" + std::to_string(r.cold) + " status=" + std::to_string(r.status) +
         " code=" + r.error_code + " error=" + r.error + " trace=" + std::string(r.trace_id.view());
}

InvocationRecord Hello(int i, int64_t started_at_us) {
  InvocationRecord r;
  r.id = "Ab12Cd34-" + std::to_string(i);
  r.function = "hello";
  r.version = "f3aa02c490ad";
  r.trigger = "http";
  r.started_at_us = started_at_us;
  r.duration_us = 40 + i;
  r.status = 200;
  r.trace_id.assign("4bf92f3577b34da6a3ce929d0e0e4736");
  return r;
}

// Writes records as one block and reads them back from seq 10.
std::vector<InvocationRecord> RoundTrip(const std::vector<InvocationRecord>& records,
                                        std::string* blob = nullptr) {
  InvocationBlockWriter writer;
  writer.Clear();
  for (const InvocationRecord& r : records) writer.Add(r);
  if (blob != nullptr) *blob = writer.blob();
  std::vector<InvocationRecord> out;
  Status s = DecodeInvocationBlock(writer.blob(), 10, static_cast<int64_t>(records.size()), &out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

void ExpectSame(const std::vector<InvocationRecord>& got,
                const std::vector<InvocationRecord>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(Describe(got[i]), Describe(want[i])) << "record " << i;
    EXPECT_EQ(got[i].seq, static_cast<int64_t>(10 + i)) << "record " << i;
  }
}

TEST(InvocationBlockTest, EveryFieldComesBackThroughRunsAndChanges) {
  std::vector<InvocationRecord> records;
  for (int i = 0; i < 5; ++i) records.push_back(Hello(i, 1'700'000'000'000'000 + i * 7));
  // Another function, a version back to empty, a trigger change, a time
  // earlier than the one before, an error, trace ids that are not 32 hex
  // digits (kept as they are), and none.
  InvocationRecord other = Hello(5, 1'699'999'999'999'000);
  other.function = "echo";
  other.version = "";
  other.trigger = "event";
  other.status = 504;
  other.cold = true;
  other.error_code = "timeout";
  other.error = "took \"too\" long\n";
  other.trace_id.assign("4BF92F3577B34DA6A3CE929D0E0E4736");
  records.push_back(other);
  InvocationRecord short_trace = Hello(6, 1'700'000'000'000'100);
  short_trace.trace_id.assign("abc");
  records.push_back(short_trace);
  InvocationRecord no_trace = Hello(7, 1'700'000'000'000'200);
  no_trace.trace_id.assign("");
  no_trace.version = "";
  records.push_back(no_trace);
  records.push_back(Hello(8, 1'700'000'000'000'300));
  ExpectSame(RoundTrip(records), records);
}

TEST(InvocationBlockTest, ExtremeTimesComeBackExactly) {
  std::vector<InvocationRecord> records = {Hello(0, INT64_MAX), Hello(1, INT64_MIN), Hello(2, 0),
                                           Hello(3, -1), Hello(4, INT64_MAX)};
  ExpectSame(RoundTrip(records), records);
}

// The compact form is what keeps recording cheap on a busy controller.
TEST(InvocationBlockTest, AHelloRecordCostsAboutFortyBytes) {
  std::vector<InvocationRecord> records;
  for (int i = 0; i < 1000; ++i) records.push_back(Hello(i, 1'700'000'000'000'000 + i * 11));
  std::string blob;
  ExpectSame(RoundTrip(records), records);
  ASSERT_FALSE(::testing::Test::HasFailure());
  RoundTrip(records, &blob);
  EXPECT_LE(blob.size(), 45u * records.size())
      << "expected at most 45 bytes a record, got " << blob.size() << " bytes for "
      << records.size() << " records";
}

// A block's first record never takes a field from the block read before it
// into the same vector.
TEST(InvocationBlockTest, TwoBlocksReadIntoOneVectorKeepTheirOwnFields) {
  InvocationBlockWriter writer;
  writer.Clear();
  InvocationRecord first = Hello(0, 1'700'000'000'000'000);
  writer.Add(first);
  const std::string one = writer.blob();
  writer.Clear();
  InvocationRecord second = Hello(1, 1'600'000'000'000'000);
  second.function = "echo";
  second.version = "";
  writer.Add(second);
  const std::string two = writer.blob();
  std::vector<InvocationRecord> out;
  ASSERT_TRUE(DecodeInvocationBlock(one, 1, 1, &out).ok());
  ASSERT_TRUE(DecodeInvocationBlock(two, 2, 1, &out).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(Describe(out[0]), Describe(first));
  EXPECT_EQ(Describe(out[1]), Describe(second));
}

TEST(InvocationBlockTest, ATraceThatIsNotSixteenBytesIsCorruption) {
  records::InvocationBlock block;
  block.set_format(1);
  records::StoredInvocation* r = block.add_records();
  r->set_id("a-1");
  r->set_function("hello");
  r->set_trace(std::string(17, 'x'));
  std::string blob;
  ASSERT_TRUE(block.SerializeToString(&blob));
  std::vector<InvocationRecord> out(1);
  Status s = DecodeInvocationBlock(blob, 1, 1, &out);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("17 bytes"), std::string::npos) << s.ToString();
  EXPECT_EQ(out.size(), 1u) << "a failed decode must leave the vector as it was";
}

// Blocks written before format 1 hold every field of every record; an empty
// field there is empty, not the previous record's.
TEST(InvocationBlockTest, ReadsFormatZeroBlocks) {
  records::InvocationBlock block;
  records::StoredInvocation* first = block.add_records();
  first->set_id("a-1");
  first->set_function("hello");
  first->set_version("v1");
  first->set_trigger("http");
  first->set_started_at_us(1'700'000'000'000'000);
  first->set_duration_us(12);
  first->set_status(200);
  first->set_trace_id("4bf92f3577b34da6a3ce929d0e0e4736");
  records::StoredInvocation* second = block.add_records();
  second->set_id("a-2");
  second->set_started_at_us(1'700'000'000'000'050);
  second->set_status(502);
  second->set_error_code("worker_crashed");
  std::string blob;
  ASSERT_TRUE(block.SerializeToString(&blob));
  // Written by the old writer, empty fields are not on the wire at all.
  records::InvocationBlock reread;
  ASSERT_TRUE(reread.ParseFromString(blob));
  ASSERT_FALSE(reread.records(1).has_function());

  std::vector<InvocationRecord> out;
  Status s = DecodeInvocationBlock(blob, 3, 2, &out);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(Describe(out[0]),
            "a-1 fn=hello v=v1 trigger=http started=1700000000000000 dur=12 cold=0 status=200 "
            "code= error= trace=4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(Describe(out[1]),
            "a-2 fn= v= trigger= started=1700000000000050 dur=0 cold=0 status=502 "
            "code=worker_crashed error= trace=");
  EXPECT_EQ(out[1].seq, 4);
}

TEST(InvocationBlockTest, ANewerFormatIsRefusedByName) {
  records::InvocationBlock block;
  block.set_format(2);
  block.add_records()->set_id("a-1");
  std::string blob;
  ASSERT_TRUE(block.SerializeToString(&blob));
  std::vector<InvocationRecord> out;
  Status s = DecodeInvocationBlock(blob, 1, 1, &out);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("format 2"), std::string::npos) << s.ToString();
}

}  // namespace
}  // namespace wisp::runtime
