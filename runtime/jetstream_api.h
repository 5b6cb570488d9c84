// Helpers for JetStream's API ($JS.API.*, JSON replies) as the controller
// speaks it over the broker (jetstream_delivery.h, cluster_sync.h). Pure;
// any thread.
#ifndef WISP_RUNTIME_JETSTREAM_API_H_
#define WISP_RUNTIME_JETSTREAM_API_H_

#include <google/protobuf/util/json_util.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "jetstream.pb.h"
#include "runtime/base/status.h"
#include "runtime/broker_requests.h"
#include "triggers/broker.h"

namespace wisp::runtime {

// JetStream's error codes the controller tells apart.
inline constexpr int kJsStreamNotFound = 10059;
inline constexpr int kJsStreamNameInUse = 10058;
inline constexpr int kJsNoMessageFound = 10037;
inline constexpr int kJsWrongLastSequence = 10071;

// Parses a JSON reply into message, ignoring fields it does not name.
// False when json is not such a message.
template <typename Message>
bool ParseJetStreamReply(const std::string& json, Message* message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  return google::protobuf::util::JsonStringToMessage(json, message, options).ok();
}

// Unavailable, naming what failed and JetStream's description and code.
inline Status JetStreamFailure(const std::string& what, const jetstream::ApiError& error) {
  return Status::Unavailable("JetStream " + what + ": " + error.description() + " (" +
                             std::to_string(error.err_code()) + ")");
}

// The outcome of a publish on a stream's subject whose request ended with s
// and reply: s if it failed, Corruption for an unreadable PubAck, else the
// PubAck's error (JetStreamFailure naming what). *ack gets the PubAck.
inline Status PubAckStatus(Status s, const std::string& reply, const std::string& what,
                           jetstream::PubAck* ack) {
  if (!s.ok()) return s;
  if (!ParseJetStreamReply(reply, ack)) {
    return Status::Corruption("JetStream " + what + ": unreadable acknowledgement '" +
                              reply.substr(0, 200) + "'");
  }
  if (ack->has_error()) return JetStreamFailure(what, ack->error());
  return Status::OK();
}

// The headers in a stored message's NATS header block ("NATS/1.0[ status]
// \r\nName: value\r\n...\r\n"), in order; lines without a colon are skipped.
inline triggers::Headers ParseHeaderBlock(std::string_view block) {
  triggers::Headers headers;
  size_t start = block.find("\r\n");  // past the version line
  while (start != std::string_view::npos && start + 2 < block.size()) {
    start += 2;
    size_t end = block.find("\r\n", start);
    const std::string_view line =
        block.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos && colon > 0) {
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
    }
    start = end;
  }
  return headers;
}

// Sends request (a $JS.API call, or a publish on a stream's subject) through
// requests and runs done with the reply on the loop thread, unless alive
// has expired by then (its owner is gone). "No responders" becomes
// Unavailable naming the likely cause (a server without -js). Loop thread.
inline void JetStreamRequest(BrokerRequests* requests, std::weak_ptr<int> alive,
                             triggers::BrokerMessage request, uint64_t timeout_ms,
                             std::function<void(Status, triggers::BrokerMessage)> done) {
  requests->Request(std::move(request), timeout_ms,
                    [alive = std::move(alive), done = std::move(done)](
                        Status s, triggers::BrokerMessage reply) {
                      if (alive.expired()) return;
                      if (s.code() == Status::Code::kNotFound) {
                        s = Status::Unavailable(
                            "JetStream does not answer: is the server run with -js?");
                      }
                      done(std::move(s), std::move(reply));
                    });
}

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_JETSTREAM_API_H_
