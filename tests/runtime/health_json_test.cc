#include "runtime/health_json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <gtest/gtest.h>

#include <string>

#include "runtime/json_print.h"

namespace wisp::runtime {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// Sets every field of message (and of its message fields) to a value other
// than its default, each one different, so a field the printer leaves out or
// misplaces shows.
void SetEveryField(Message* message, int* counter) {
  const google::protobuf::Descriptor* d = message->GetDescriptor();
  const google::protobuf::Reflection* r = message->GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    const int n = ++*counter;
    const std::string text = f->name() + " <" + std::to_string(n) + "> \"q\" \xc3\xbc";
    if (f->is_repeated()) {
      ASSERT_EQ(FieldDescriptor::CPPTYPE_STRING, f->cpp_type()) << f->full_name();
      r->AddString(message, f, text);
      r->AddString(message, f, "second");
      continue;
    }
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        r->SetString(message, f, text);
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        r->SetUInt64(message, f, 1000000000000ull + static_cast<uint64_t>(n));
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        r->SetBool(message, f, true);
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        SetEveryField(r->MutableMessage(message, f), counter);
        break;
      default:
        FAIL() << f->full_name() << " has a type the health printer does not print";
    }
  }
}

TEST(HealthJsonTest, EveryFieldIsPrintedAsJsonUtilPrintsIt) {
  api::Health health;
  int counter = 0;
  SetEveryField(&health, &counter);
  EXPECT_EQ(ToJson(health), HealthJson(health));
}

TEST(HealthJsonTest, DefaultsAndAbsentSectionsAreAsJsonUtilPrintsThem) {
  api::Health health;
  EXPECT_EQ(ToJson(health), HealthJson(health));
  health.set_status("ok");
  health.mutable_events();
  EXPECT_EQ(ToJson(health), HealthJson(health));
  health.mutable_cluster();
  EXPECT_EQ(ToJson(health), HealthJson(health));
}

}  // namespace
}  // namespace wisp::runtime
