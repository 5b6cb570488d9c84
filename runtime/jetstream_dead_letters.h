// Dead letters on NATS, kept in JetStream so that every controller on the
// server (or cluster) lists and replays the same ones, whichever dead-lettered
// them, and a controller's disk holds none of them.
//
// Stream: WISP_DEAD_LETTERS on "wisp.dead.>" (file storage, limits retention,
// kept kMaxAgeNs, at most kMaxPerFunction per function, oldest dropped first,
// the 2-minute duplicate window). A dead letter of function F is one message
// on "wisp.dead.F": the event's data, its headers, and wisp-subject (where it
// was published), wisp-attempts, wisp-error-code and wisp-error. Its id is its
// stream sequence, its time JetStream's.
//
// Replay: each letter is published as a new event on the subject that only F's
// replay consumer takes (JetStreamDelivery::ReplaySubject), with
// wisp-subject naming where it first came, and Nats-Msg-Id "replay-<id>" (a
// replay repeated within the duplicate window runs once). Once JetStream has
// stored it, the letter is deleted. A crash in between leaves the letter:
// replayed again, it may run twice (at least once, as everywhere).
//
// Ownership: borrows the requests (which outlive it).
// Threading: the loop thread only; every callback runs on it, never inside
// the call that takes it, and never after Close.
#ifndef WISP_RUNTIME_JETSTREAM_DEAD_LETTERS_H_
#define WISP_RUNTIME_JETSTREAM_DEAD_LETTERS_H_

#include <cstdint>
#include <climits>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "api.pb.h"
#include "runtime/base/loop_thread.h"
#include "runtime/base/status.h"
#include "runtime/broker_requests.h"
#include "triggers/broker.h"

namespace wisp::runtime {

class JetStreamDeadLetters {
 public:
  static constexpr const char* kStream = "WISP_DEAD_LETTERS";
  static constexpr const char* kSubjectPrefix = "wisp.dead.";
  static constexpr int64_t kMaxAgeNs = 30LL * 24 * 3600 * 1000000000LL;
  static constexpr int64_t kMaxPerFunction = 10000;
  // Letters one replay call takes at most; the rest wait for the next call.
  static constexpr size_t kMaxReplayed = 10000;
  static constexpr uint64_t kApiTimeoutMs = 5000;

  using ListDone = std::function<void(StatusOr<std::vector<api::DeadLetter>>)>;
  using ReplayDone = std::function<void(StatusOr<size_t>)>;

  explicit JetStreamDeadLetters(BrokerRequests* requests);
  JetStreamDeadLetters(const JetStreamDeadLetters&) = delete;
  JetStreamDeadLetters& operator=(const JetStreamDeadLetters&) = delete;

  // Copies JetStream keeps of the stream, applied when it is created.
  void set_replicas(int replicas) { replicas_ = replicas; }

  // Stores event as a dead letter of function name after attempts, failing
  // with code and error; duplicate_id (the event's stream sequence; empty:
  // none) makes a second store of the same letter within the duplicate
  // window a no-op.
  // done gets OK once JetStream has it, else why not (then nothing may be
  // stored: the caller must not let the event go).
  void Add(const std::string& name, triggers::BrokerMessage event, uint32_t attempts,
           const std::string& code, const std::string& error, const std::string& duplicate_id,
           std::function<void(Status)> done);

  // Up to limit of name's dead letters, oldest first. None (not an error)
  // when the stream does not exist yet.
  void List(const std::string& name, size_t limit, ListDone done);

  // Publishes name's dead letters (id 0: all of them, up to kMaxReplayed;
  // else the one with that id) on replay_subject as new events, then deletes
  // them; done gets how many. NotFound when id is not one of name's.
  void Replay(const std::string& name, int64_t id, const std::string& replay_subject,
              ReplayDone done);

  // How many dead letters name has, as last read from the stream. Reading
  // again happens in the background once the figure is kCountsMaxAgeMs old
  // and someone asks, and after each store and replay here.
  uint64_t Count(const std::string& name);
  static constexpr int64_t kCountsMaxAgeMs = 1000;

  // No callback runs after this; what is in flight is abandoned.
  void Close() { alive_.reset(); }

  // The subject a dead letter of name is stored on.
  static std::string Subject(const std::string& name) { return kSubjectPrefix + name; }

 private:
  struct Listing;
  struct Replaying;

  void Api(const std::string& subject, std::string body,
           std::function<void(Status, triggers::BrokerMessage)> done);
  // Runs done once the stream exists (creating it if needed).
  void EnsureStream(std::function<void(Status)> done);
  void NextLetter(std::shared_ptr<Listing> listing);
  void ReplayNext(std::shared_ptr<Replaying> replaying);
  static std::string Progress(const Replaying& replaying);
  void ReadCounts();

  BrokerRequests* requests_;
  LoopThread loop_thread_;
  int replicas_ = 1;
  bool stream_ready_ = false;
  bool ensuring_ = false;
  std::vector<std::function<void(Status)>> waiting_for_stream_;
  std::map<std::string, uint64_t> counts_;  // by function
  int64_t counts_read_ms_ = INT64_MIN / 2;  // steady clock; when counts_ were asked for
  bool reading_counts_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_JETSTREAM_DEAD_LETTERS_H_
