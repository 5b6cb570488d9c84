// CloudEvents 1.0 over NATS: every event the controller publishes or hands a
// function is in binary mode (attributes in ce-* headers, payload as is);
// structured mode (application/cloudevents+json) is accepted on input and
// converted. See DESIGN.md, "NATS".
//
// Pure functions on values; callable from any thread. NormalizeCloudEvent
// parses JSON only in structured mode: the binary-mode path is one pass over
// the headers plus the headers it adds (measured here: 0.2 us with every
// attribute given, 0.5 us filling all of them in). Structured mode goes through
// protobuf 3.21's json_util, which is slow: about 40 us for a 75-byte event,
// 210 us for 900 bytes, most of a second for 1 MB; bound structured bodies
// before normalizing them on the loop thread.
#ifndef WISP_TRIGGERS_CLOUDEVENTS_H_
#define WISP_TRIGGERS_CLOUDEVENTS_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "runtime/base/status.h"
#include "triggers/broker.h"

namespace wisp::triggers {

// Attributes given to an event that lacks them.
struct EventDefaults {
  std::string source;  // ce-source, e.g. "/wisp/publish" or "/wisp/fn/<name>"
  std::string type;    // ce-type, e.g. "io.wisp.event"
};

// Limits on a message's headers, checked before anything else.
inline constexpr size_t kMaxEventHeaders = 64;
inline constexpr size_t kMaxHeaderNameBytes = 256;
inline constexpr size_t kMaxHeaderValueBytes = 4096;
// Deepest nesting of arrays and objects in a structured-mode body (protobuf's
// JSON parser fails near 50 levels, and slows quadratically with depth).
inline constexpr int kMaxStructuredJsonDepth = 32;
// Largest structured-mode body: parsing runs on the loop thread at about
// 0.2 us a byte, so 64 KiB costs about 15 ms; larger events use binary mode.
inline constexpr size_t kMaxStructuredBytes = 64 * 1024;

// Rewrites *message, in place, as a binary-mode CloudEvent:
// - Binary mode: ce-* headers (any case) are the attributes; their names are
//   written back lower-case.
// - Structured mode (Content-Type application/cloudevents+json, parameters
//   allowed): the JSON body's attributes become ce-* headers (extension
//   attributes too: strings as is, booleans and integers as text), any ce-*
//   headers sent along are dropped, and the body becomes the data: a JSON
//   `data` as JSON text (a JSON string as its text when datacontenttype is not
//   JSON), `data_base64` decoded. The JSON text is protobuf's printing of it:
//   same value, but numbers pass through a double (integers beyond 2^53 lose
//   digits) and object members may change order. Content-Type becomes datacontenttype
//   (application/json for `data` when none is given), or goes when there is
//   none. The JSON must carry specversion, id, source and type.
// - Then, in both modes, missing attributes are filled in, appended in this
//   order: ce-specversion "1.0", ce-id NewEventId(), ce-source and ce-type from
//   defaults, ce-time NowRfc3339Millis(), ce-datacontenttype from Content-Type.
// Other headers keep their place and bytes.
//
// Fails with InvalidArgument, message naming the header or attribute, for:
// more than kMaxEventHeaders headers; a name that is empty, longer than
// kMaxHeaderNameBytes or not printable ASCII without ':'; a value longer than
// kMaxHeaderValueBytes or not printable ASCII (spaces allowed); a ce-* name
// whose attribute part is not [a-z0-9]+ after lower-casing; a repeated
// attribute; ce-specversion other than "1.0"; empty ce-id, ce-source or
// ce-type (also when missing and the default is empty); a ce-time that is not
// RFC 3339; and, in structured mode, a body that is not a JSON object, nests
// deeper than kMaxStructuredJsonDepth, lacks a required attribute, has an
// attribute of the wrong JSON type, has both data and data_base64, or has
// data_base64 that is not padded standard base64. A batch
// (application/cloudevents-batch+json) is refused the same way.
// On failure *message may be partly rewritten (names lower-cased): drop it.
[[nodiscard]] Status NormalizeCloudEvent(BrokerMessage* message, const EventDefaults& defaults);

// A fresh event id: a random (version 4) UUID in lower-case 8-4-4-4-12 hex,
// its 122 random bits from getrandom(2), fetched 32 ids at a time per thread;
// a forked child refetches, never repeating its parent's. Aborts only if the
// kernel has no getrandom.
std::string NewEventId();

// The current time, UTC, RFC 3339 with milliseconds: "2026-11-27T23:04:54.123Z".
std::string NowRfc3339Millis();

// Whether text is an RFC 3339 date-time: YYYY-MM-DD, 'T', hh:mm:ss, an
// optional fraction, then 'Z' or +hh:mm / -hh:mm (RFC 3339 5.6; 't' and 'z'
// allowed as the RFC allows). Fields are range-checked, days per month and
// leap year included; second 60 is allowed (leap second).
bool IsRfc3339(std::string_view text);

// The value of the first header called name, ignoring case in the headers,
// or nullptr. name must be lower-case ("content-type"). The pointer is into
// headers and lives as long as that element.
const std::string* FindHeader(const Headers& headers, std::string_view name);

}  // namespace wisp::triggers

#endif  // WISP_TRIGGERS_CLOUDEVENTS_H_
