// NatsBroker. Three kinds of threads meet here:
//  - the loop thread: every public method, every handler, the adapter's
//    uv handles and our uv_async_t;
//  - nats.c's delivery threads (one per subscription): OnNatsMessage, which
//    may wait on its SubscriptionContext (paused, or too much handed over)
//    and then posts the message to the Handoff;
//  - nats.c's connection threads (reconnect, async callbacks): connection
//    events and AttachToLoop.
// Ownership: the loop owns Impl; Impl and every SubscriptionContext share
// the Handoff (a delivery thread may still be returning after the broker is
// gone); a SubscriptionContext is shared by its loop-side entry and by nats.c
// (a heap shared_ptr given as the closure, deleted in the subscription's
// on-complete callback, which nats.c runs after the handler's last return —
// also when nats.c closes the subscription on its own).
#include "triggers/nats_broker.h"

// The adapter defines its functions in the header: include it in exactly
// this translation unit.
#include <nats/adapters/libuv.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <unistd.h>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/base/check.h"
#include "runtime/base/loop_thread.h"

namespace wisp::triggers {
namespace {

// How many messages of one subscription may wait for the loop before its
// delivery thread stops handing over (and nats.c's pending limits apply).
constexpr size_t kMaxHandedOverPerSubscription = 128;  // at most 128 MB at NATS's 1 MB max_payload
constexpr auto kAbandonWait = std::chrono::seconds(5);
constexpr size_t kSpentBatch = 64;
constexpr size_t kSpentBatchBytes = 1024 * 1024;
// How long Close lets the loop write out buffered messages before closing.
constexpr uint64_t kCloseDrainMs = 500;
// A descriptor the adapter stopped watching is closed kWatchedGraceMs after
// it was replaced (the adapter closes its handle on it within one loop turn),
// looked for every kWatchedSweepMs.
constexpr uint64_t kWatchedGraceMs = 5000;
constexpr uint64_t kWatchedSweepMs = 1000;
// After the connection closed: the adapter closes its handles within a loop
// turn or two of its detach.
constexpr uint64_t kFinalWatchedGraceMs = 100;

Status FromNats(natsStatus status, const std::string& what) {
  std::string message = what + ": " + natsStatus_GetText(status);
  const char* detail = nats_GetLastError(nullptr);
  if (detail != nullptr && *detail != '\0') message += std::string(" (") + detail + ")";
  switch (status) {
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_NO_SERVER:
    case NATS_NO_SERVER_SUPPORT:
    case NATS_STALE_CONNECTION:
    case NATS_CONNECTION_AUTH_FAILED:
    case NATS_NOT_PERMITTED:
    case NATS_DRAINING:
      return Status::Unavailable(message);
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
    case NATS_INVALID_QUEUE_NAME:
    case NATS_MAX_PAYLOAD:
    case NATS_ADDRESS_MISSING:
      return Status::InvalidArgument(message);
    case NATS_INSUFFICIENT_BUFFER:
    case NATS_NO_MEMORY:
    case NATS_SLOW_CONSUMER:
      return Status::ResourceExhausted(message);
    case NATS_TIMEOUT:
      return Status::Timeout(message);
    case NATS_IO_ERROR:
      return Status::IOError(message);
    default:
      return Status::Internal(message);
  }
}


Status ValidateHeaders(const Headers& headers) {
  for (const auto& [name, value] : headers) {
    if (name.empty()) return Status::InvalidArgument("empty header name");
    for (unsigned char c : name) {
      if (c <= ' ' || c >= 0x7f || c == ':') {
        return Status::InvalidArgument("bad byte in header name '" + name + "'");
      }
    }
    if (value.find_first_of("\r\n") != std::string::npos) {
      return Status::InvalidArgument("header '" + name + "' has CR or LF in its value");
    }
  }
  return Status::OK();
}

std::string ConnectedUrl(natsConnection* nc) {
  char buffer[512];
  if (nc == nullptr || natsConnection_GetConnectedUrl(nc, buffer, sizeof(buffer)) != NATS_OK) {
    return "";
  }
  return buffer;
}

// Copies a received message out of nats.c (the caller destroys msg).
BrokerMessage ToBrokerMessage(natsMsg* msg) {
  BrokerMessage out;
  out.subject = natsMsg_GetSubject(msg);
  const char* reply = natsMsg_GetReply(msg);
  if (reply != nullptr) out.reply = reply;
  const char* data = natsMsg_GetData(msg);
  if (data != nullptr) out.data.assign(data, static_cast<size_t>(natsMsg_GetDataLength(msg)));
  const char** keys = nullptr;
  int key_count = 0;
  if (natsMsgHeader_Keys(msg, &keys, &key_count) != NATS_OK) return out;
  std::vector<std::string> names(keys, keys + key_count);
  free(static_cast<void*>(keys));
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const char** values = nullptr;
    int value_count = 0;
    if (natsMsgHeader_Values(msg, name.c_str(), &values, &value_count) != NATS_OK) continue;
    for (int i = 0; i < value_count; ++i) out.headers.emplace_back(name, values[i]);
    free(static_cast<void*>(values));
  }
  return out;
}

// --- The hand-over from nats.c's threads to the loop -----------------------

struct Delivery {
  SubscriptionId id;
  natsMsg* msg;
};

struct Handoff {
  ~Handoff() {
    for (Delivery& d : deliveries) natsMsg_Destroy(d.msg);
  }

  // Any thread. Queues msg for the loop; false (msg not taken) once the loop
  // side is closing.
  bool Post(SubscriptionId id, natsMsg* msg) {
    std::lock_guard<std::mutex> lock(mu);
    if (async == nullptr) return false;
    deliveries.push_back({id, msg});
    // The loop swaps the queue out before draining it, so only the first
    // message of a batch needs a wake-up.
    if (deliveries.size() == 1) uv_async_send(async);
    return true;
  }

  // Any thread, mu held: wakes the loop unless it is closing.
  void WakeLocked() {
    if (async != nullptr) uv_async_send(async);
  }

  std::mutex mu;
  uv_async_t* async = nullptr;  // owned by Impl; null once it is being closed
  std::vector<Delivery> deliveries;
  bool connection_closed = false;  // nats.c's closed callback ran
  std::condition_variable closed_cv;
};

// Per subscription, shared between the loop and its nats.c delivery thread.
struct SubscriptionContext {
  SubscriptionContext(SubscriptionId id_in, std::shared_ptr<Handoff> handoff_in)
      : id(id_in), handoff(std::move(handoff_in)) {}

  // Loop thread. Pausing takes effect for the next message handed over.
  void SetPaused(bool value) {
    std::lock_guard<std::mutex> lock(mu);
    paused = value;
    if (!paused) cv.notify_all();
  }
  // Loop thread: n handed-over messages were delivered or discarded.
  void Release(size_t n) {
    std::lock_guard<std::mutex> lock(mu);
    bool was_full = handed_over >= kMaxHandedOverPerSubscription;
    handed_over -= std::min(n, handed_over);
    if (was_full && handed_over < kMaxHandedOverPerSubscription) cv.notify_all();
  }
  // Loop thread: no message is handed over any more; wakes a waiting thread.
  void Close() {
    std::lock_guard<std::mutex> lock(mu);
    closed = true;
    cv.notify_all();
  }

  const SubscriptionId id;
  const std::shared_ptr<Handoff> handoff;
  std::mutex mu;
  std::condition_variable cv;
  bool paused = false;
  bool closed = false;
  size_t handed_over = 0;  // posted to the loop, not yet delivered
};

using ContextRef = std::shared_ptr<SubscriptionContext>;

// nats.c delivery thread of the subscription.
void OnNatsMessage(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  SubscriptionContext* context = static_cast<ContextRef*>(closure)->get();
  {
    std::unique_lock<std::mutex> lock(context->mu);
    context->cv.wait(lock, [context] {
      return context->closed ||
             (!context->paused && context->handed_over < kMaxHandedOverPerSubscription);
    });
    if (context->closed) {
      lock.unlock();
      natsMsg_Destroy(msg);
      return;
    }
    ++context->handed_over;
  }
  if (!context->handoff->Post(context->id, msg)) natsMsg_Destroy(msg);
}

// nats.c delivery thread, after the handler's last return.
void OnSubscriptionComplete(void* closure) { delete static_cast<ContextRef*>(closure); }

// --- Connection events (nats.c's async-callback thread) ---------------------

// The URL, or a note when the connection was lost or closed again since.
std::string UrlForLog(natsConnection* nc) {
  std::string url = ConnectedUrl(nc);
  return url.empty() ? "(connection gone again)" : url;
}
void OnConnected(natsConnection* nc, void*) {
  std::fprintf(stderr, "wisp: nats: connected to %s\n", UrlForLog(nc).c_str());
}
void OnReconnected(natsConnection* nc, void*) {
  std::fprintf(stderr, "wisp: nats: reconnected to %s\n", UrlForLog(nc).c_str());
}
void OnDisconnected(natsConnection*, void*) {
  std::fprintf(stderr, "wisp: nats: disconnected; reconnecting\n");
}
// Uses no closure: it may run after the broker is gone (a slow-consumer
// event raised while the connection was closing).
void OnAsyncError(natsConnection* nc, natsSubscription* sub, natsStatus error, void*) {
  if (error == NATS_SLOW_CONSUMER && sub != nullptr) {
    const char* subject = natsSubscription_GetSubject(sub);
    int64_t dropped = 0;
    (void)natsSubscription_GetDropped(sub, &dropped);
    std::fprintf(stderr,
                 "wisp: nats: slow consumer on '%s': pending limit reached, %lld message(s) "
                 "dropped so far\n",
                 subject != nullptr ? subject : "?", static_cast<long long>(dropped));
    return;
  }
  const char* text = nullptr;
  (void)natsConnection_GetLastError(nc, &text);
  std::fprintf(stderr, "wisp: nats: error: %s%s%s\n", natsStatus_GetText(error),
               text != nullptr && *text != '\0' ? ": " : "", text != nullptr ? text : "");
}
// The last connection callback nats.c makes; the broker waits for it.
void OnClosed(natsConnection*, void* closure) {
  std::fprintf(stderr, "wisp: nats: connection closed\n");
  auto* handoff = static_cast<Handoff*>(closure);
  std::lock_guard<std::mutex> lock(handoff->mu);
  handoff->connection_closed = true;
  handoff->closed_cv.notify_all();
  handoff->WakeLocked();
}

// --- The libuv adapter's first attach --------------------------------------
//
// natsLibuv_Attach refuses the first attach off the loop thread
// (NATS_ILLEGAL_STATE), but with retry-on-failed-connect the first
// successful connect happens on nats.c's reconnect thread, which then retries
// forever without ever connecting. So the adapter's per-connection state is
// created here on the loop thread, exactly as natsLibuv_Attach would, and
// handed over on the first attach; the adapter then takes its reconnect path
// and schedules the poll handle onto the loop. Until adopted the seed is
// ours; after, the adapter frees it (natsLibuv_Detach).
struct AdapterSeed {
  uv_loop_t* loop = nullptr;
  natsLibuvEvents* events = nullptr;                      // ours until adopted
  std::atomic<natsLibuvEvents*> adopted_events{nullptr};  // the adapter's, once adopted
  std::atomic<bool> adopted{false};

  // The descriptors the adapter watches (see AttachToLoop): the current
  // one, and those it watched before with when they were replaced, each
  // closed kWatchedGraceMs later (CloseRetiredWatched), once the adapter has
  // long closed its handle on it.
  std::mutex watched_mu;
  int watched = -1;
  std::vector<std::pair<int, std::chrono::steady_clock::time_point>> retired_watched;
};

// Any thread: closes the retired descriptors whose grace has passed.
void CloseRetiredWatched(AdapterSeed* seed) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(seed->watched_mu);
  std::erase_if(seed->retired_watched, [&](const auto& retired) {
    if (now - retired.second < std::chrono::milliseconds(kWatchedGraceMs)) return false;
    ::close(retired.first);
    return true;
  });
}

natsLibuvEvents* CreateAdapterEvents(uv_loop_t* loop) {
  auto* events = static_cast<natsLibuvEvents*>(calloc(1, sizeof(natsLibuvEvents)));
  auto* lock = static_cast<uv_mutex_t*>(malloc(sizeof(uv_mutex_t)));
  auto* scheduler = static_cast<uv_async_t*>(malloc(sizeof(uv_async_t)));
  WISP_CHECK(events != nullptr && lock != nullptr && scheduler != nullptr);
  WISP_CHECK(uv_mutex_init(lock) == 0);
  WISP_CHECK(uv_async_init(loop, scheduler, uvAsyncCb) == 0);
  scheduler->data = events;
  events->lock = lock;
  events->scheduler = scheduler;
  events->loop = loop;
  return events;
}

// Loop thread: frees a seed the adapter never adopted.
void DiscardAdapterEvents(natsLibuvEvents* events) {
  uv_close(reinterpret_cast<uv_handle_t*>(events->scheduler), [](uv_handle_t* handle) {
    auto* unused = static_cast<natsLibuvEvents*>(handle->data);
    uv_mutex_destroy(unused->lock);
    free(unused->lock);
    free(unused->scheduler);
    free(unused);
  });
}

// nats.c's attach callback; the loop thread or the reconnect thread (nats.c
// holds the connection lock).
//
// The adapter watches a duplicate of nats.c's socket, never the socket
// itself. On a lost connection nats.c closes its socket from its own
// thread, and the adapter closes the poll handle on that descriptor only at
// the reconnect, possibly seconds later. Closing a poll handle removes its
// descriptor number from epoll; by then the number may belong to a worker's
// socket or an HTTP connection opened meanwhile, which would never hear
// from epoll again (a worker's replies never read: its call timed out). A
// duplicate stays ours until the adapter is done with it.
natsStatus AttachToLoop(void** user_data, void* seed_pointer, natsConnection* nc, natsSock socket) {
  auto* seed = static_cast<AdapterSeed*>(seed_pointer);
  const int watched = ::fcntl(socket, F_DUPFD_CLOEXEC, 0);
  if (watched < 0) return NATS_SYS_ERROR;
  {
    std::lock_guard<std::mutex> lock(seed->watched_mu);
    if (seed->watched >= 0) {
      seed->retired_watched.emplace_back(seed->watched, std::chrono::steady_clock::now());
    }
    seed->watched = watched;
  }
  socket = watched;
  bool adopting = *user_data == nullptr && seed->events != nullptr;
  if (adopting) {
    seed->events->nc = nc;
    *user_data = seed->events;
    seed->adopted_events = seed->events;
    seed->events = nullptr;
    seed->adopted.store(true);
  }
  natsStatus status = natsLibuv_Attach(user_data, seed->loop, nc, socket);
  // On failure the adapter has detached (freed) the state it was given.
  if (status != NATS_OK && adopting) {
    *user_data = nullptr;
    seed->adopted_events.store(nullptr);
  }
  return status;
}

}  // namespace

// --- The loop side -----------------------------------------------------------

struct NatsBroker::Impl {
  enum class State { kCreated, kRunning, kClosing, kClosed };

  struct Subscription {
    natsSubscription* sub = nullptr;
    ContextRef context;
    std::shared_ptr<MessageHandler> handler;
    bool paused = false;
    std::deque<natsMsg*> held;  // handed over while paused, oldest first
  };

  Impl(uv_loop_t* loop_in, std::string urls_in, NatsBrokerOptions options_in)
      : loop(loop_in),
        urls(std::move(urls_in)),
        options(std::move(options_in)),
        handoff(std::make_shared<Handoff>()) {}

  ~Impl() {
    DestroySpent();
    if (state != State::kClosed) Abandon();
    if (connection != nullptr) natsConnection_Destroy(connection);
    CloseWatchedLater();
  }

  // The connection is closed, but the adapter closes its poll handle on the
  // current descriptor only a loop turn or two from now (closing the
  // handle removes the number from epoll): close the descriptors once the
  // loop has gone on for kFinalWatchedGraceMs, or at once when the loop has
  // nothing left to run.
  void CloseWatchedLater() {
    std::vector<int>* fds = new std::vector<int>;
    {
      std::lock_guard<std::mutex> lock(seed.watched_mu);
      if (seed.watched >= 0) fds->push_back(seed.watched);
      seed.watched = -1;
      for (const auto& [fd, since] : seed.retired_watched) fds->push_back(fd);
      seed.retired_watched.clear();
    }
    if (fds->empty() || !uv_loop_alive(loop)) {
      // A loop with nothing left to run has closed the adapter's handles.
      for (int fd : *fds) ::close(fd);
      delete fds;
      return;
    }
    auto* timer = new uv_timer_t;
    uv_timer_init(loop, timer);
    timer->data = fds;
    uv_timer_start(
        timer,
        [](uv_timer_t* t) {
          auto* owned = static_cast<std::vector<int>*>(t->data);
          for (int fd : *owned) ::close(fd);
          delete owned;
          uv_close(reinterpret_cast<uv_handle_t*>(t),
                   [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
        },
        kFinalWatchedGraceMs, 0);
  }

  // --- Connect ---------------------------------------------------------------

  Status Start() {
    async = new uv_async_t;
    WISP_CHECK(uv_async_init(loop, async, OnAsync) == 0);
    async->data = this;
    ++open_handles;
    {
      std::lock_guard<std::mutex> lock(handoff->mu);
      handoff->async = async;
    }
    seed.loop = loop;
    seed.events = CreateAdapterEvents(loop);
    watched_timer = new uv_timer_t;
    uv_timer_init(loop, watched_timer);
    watched_timer->data = this;
    ++open_handles;
    uv_timer_start(
        watched_timer,
        [](uv_timer_t* timer) {
          CloseRetiredWatched(&static_cast<Impl*>(timer->data)->seed);
        },
        kWatchedSweepMs, kWatchedSweepMs);
    uv_unref(reinterpret_cast<uv_handle_t*>(watched_timer));

    natsOptions* nats_options = nullptr;
    natsStatus s = natsOptions_Create(&nats_options);
    if (s != NATS_OK) return FromNats(s, "nats options");
    s = Configure(nats_options);
    if (s != NATS_OK) {
      natsOptions_Destroy(nats_options);
      return FromNats(s, "nats options for '" + urls + "'");
    }
    s = natsConnection_Connect(&connection, nats_options);
    natsOptions_Destroy(nats_options);  // the connection keeps its own copy
    if (s == NATS_NOT_YET_CONNECTED) {
      std::fprintf(stderr, "wisp: nats: no server at %s yet; retrying every %lld ms\n",
                   urls.c_str(), static_cast<long long>(options.reconnect_wait_ms));
      state = State::kRunning;
      return Status::OK();
    }
    if (s != NATS_OK) {
      connection = nullptr;
      return FromNats(s, "connect to " + urls);
    }
    std::fprintf(stderr, "wisp: nats: connected to %s\n", ConnectedUrl(connection).c_str());
    state = State::kRunning;
    return Status::OK();
  }

  natsStatus Configure(natsOptions* o) {
    // natsOptions_SetURL takes one URL; a comma-separated list is the
    // server pool (tried in random order, each one again on reconnect).
    std::vector<std::string> pool;
    size_t start = 0;
    while (start <= urls.size()) {
      size_t comma = urls.find(',', start);
      if (comma == std::string::npos) comma = urls.size();
      std::string url = urls.substr(start, comma - start);
      url.erase(0, url.find_first_not_of(" \t"));
      url.erase(url.find_last_not_of(" \t") + 1);
      if (!url.empty()) pool.push_back(std::move(url));
      start = comma + 1;
    }
    if (pool.empty()) return NATS_INVALID_ARG;
    std::vector<const char*> servers;
    for (const std::string& url : pool) servers.push_back(url.c_str());
    natsStatus s = natsOptions_SetServers(o, servers.data(), static_cast<int>(servers.size()));
    if (s == NATS_OK) s = natsOptions_SetName(o, options.name.c_str());
    // Without it every publish waits for the flusher thread's 1 ms timer.
    if (s == NATS_OK) s = natsOptions_SetSendAsap(o, true);
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(o, options.reconnect_wait_ms);
    if (s == NATS_OK) s = natsOptions_SetTimeout(o, options.connect_timeout_ms);
    // A connected callback makes the retry asynchronous (NATS_NOT_YET_CONNECTED);
    // without one natsConnection_Connect would retry in place, blocking.
    if (s == NATS_OK) s = natsOptions_SetRetryOnFailedConnect(o, true, OnConnected, nullptr);
    if (s == NATS_OK) s = natsOptions_SetErrorHandler(o, OnAsyncError, nullptr);
    if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(o, OnDisconnected, nullptr);
    if (s == NATS_OK) s = natsOptions_SetReconnectedCB(o, OnReconnected, nullptr);
    if (s == NATS_OK) s = natsOptions_SetClosedCB(o, OnClosed, handoff.get());
    if (s == NATS_OK) {
      s = natsOptions_SetEventLoop(o, &seed, AttachToLoop, natsLibuv_Read, natsLibuv_Write,
                                   natsLibuv_Detach);
    }
    return s;
  }

  // --- Publish and subscriptions ----------------------------------------------

  Status Publish(BrokerMessage message) {
    WISP_ASSERT_LOOP_THREAD(loop_thread);
    if (state != State::kRunning) return Status::Unavailable("nats broker is closed");
    WISP_RETURN_IF_ERROR(ValidatePublishSubject(message.subject));
    if (!message.reply.empty()) {
      WISP_RETURN_IF_ERROR(ValidatePublishSubject(message.reply).WithContext("reply subject"));
    }
    WISP_RETURN_IF_ERROR(ValidateHeaders(message.headers));
    if (message.data.size() > static_cast<size_t>(INT_MAX)) {
      return Status::InvalidArgument("message too large");
    }
    natsMsg* msg = nullptr;
    natsStatus s = natsMsg_Create(&msg, message.subject.c_str(),
                                  message.reply.empty() ? nullptr : message.reply.c_str(),
                                  message.data.data(), static_cast<int>(message.data.size()));
    for (size_t i = 0; s == NATS_OK && i < message.headers.size(); ++i) {
      s = natsMsgHeader_Add(msg, message.headers[i].first.c_str(),
                            message.headers[i].second.c_str());
    }
    if (s == NATS_OK) s = natsConnection_PublishMsg(connection, msg);
    DestroyLater(msg, message.data.size());
    if (s != NATS_OK) return FromNats(s, "publish to " + message.subject);
    ++published;
    return Status::OK();
  }

  StatusOr<SubscriptionId> Subscribe(const std::string& subject, const std::string& queue_group,
                                     MessageHandler handler) {
    WISP_ASSERT_LOOP_THREAD(loop_thread);
    if (state != State::kRunning) return Status::Unavailable("nats broker is closed");
    WISP_RETURN_IF_ERROR(ValidateSubscribeSubject(subject));
    WISP_RETURN_IF_ERROR(ValidateQueueGroup(queue_group));
    if (!handler) return Status::InvalidArgument("empty message handler");

    SubscriptionId id = next_id++;
    auto context = std::make_shared<SubscriptionContext>(id, handoff);
    auto* closure = new ContextRef(context);
    natsSubscription* sub = nullptr;
    natsStatus s =
        queue_group.empty()
            ? natsConnection_Subscribe(&sub, connection, subject.c_str(), OnNatsMessage, closure)
            : natsConnection_QueueSubscribe(&sub, connection, subject.c_str(), queue_group.c_str(),
                                            OnNatsMessage, closure);
    if (s != NATS_OK) {
      // No message can reach a subscription that failed: nats.c is done with it.
      delete closure;
      return FromNats(s, "subscribe to " + subject);
    }
    s = natsSubscription_SetOnCompleteCB(sub, OnSubscriptionComplete, closure);
    if (s != NATS_OK) {
      // Closed under us (the connection closed): its thread may still use
      // closure, and will not free it. Leaking it is the only safe choice.
      Status status = FromNats(s, "subscribe to " + subject);
      context->Close();
      natsSubscription_Destroy(sub);
      return status;
    }
    s = natsSubscription_SetPendingLimits(sub, options.pending_msgs_limit,
                                          options.pending_bytes_limit);
    Subscription& entry = subscriptions[id];
    entry.sub = sub;
    entry.context = std::move(context);
    entry.handler = std::make_shared<MessageHandler>(std::move(handler));
    if (s != NATS_OK) {
      Status status = FromNats(s, "pending limits of " + subject);
      Unsubscribe(id);
      return status;
    }
    return id;
  }

  void Unsubscribe(SubscriptionId id) {
    WISP_ASSERT_LOOP_THREAD(loop_thread);
    auto it = subscriptions.find(id);
    if (it == subscriptions.end()) return;
    Subscription entry = std::move(it->second);
    subscriptions.erase(it);
    Retire(entry);
    (void)natsSubscription_Unsubscribe(entry.sub);  // fails only when already closed
    natsSubscription_Destroy(entry.sub);
  }

  // The subscription gets nothing more: wakes its delivery thread, drops what
  // it held, and remembers its dropped count.
  void Retire(Subscription& entry) {
    entry.context->Close();
    for (natsMsg* msg : entry.held) natsMsg_Destroy(msg);
    entry.held.clear();
    int64_t dropped = 0;
    if (natsSubscription_GetDropped(entry.sub, &dropped) == NATS_OK && dropped > 0) {
      dropped_by_retired += static_cast<uint64_t>(dropped);
    }
  }

  void SetPaused(SubscriptionId id, bool paused) {
    WISP_ASSERT_LOOP_THREAD(loop_thread);
    auto it = subscriptions.find(id);
    if (it == subscriptions.end() || it->second.paused == paused) return;
    it->second.paused = paused;
    it->second.context->SetPaused(paused);
    if (!paused && !it->second.held.empty()) {
      resumed.push_back(id);
      uv_async_send(async);  // delivered from the next drain, never from here
    }
  }

  BrokerStats Stats() const {
    WISP_ASSERT_LOOP_THREAD(loop_thread);
    BrokerStats stats;
    stats.published = published;
    stats.delivered = delivered;
    stats.slow_consumer_dropped = dropped_by_retired;
    for (const auto& [id, entry] : subscriptions) {
      int64_t dropped = 0;
      if (natsSubscription_GetDropped(entry.sub, &dropped) == NATS_OK && dropped > 0) {
        stats.slow_consumer_dropped += static_cast<uint64_t>(dropped);
      }
    }
    return stats;
  }

  // --- Delivery on the loop ----------------------------------------------------

  static void OnAsync(uv_async_t* handle) {
    auto* impl = static_cast<Impl*>(handle->data);
    if (impl != nullptr) impl->Drain();
  }

  void Drain() {
    WISP_ASSERT_LOOP_THREAD(loop_thread);
    std::vector<Delivery> batch;
    {
      std::lock_guard<std::mutex> lock(handoff->mu);
      batch.swap(handoff->deliveries);
    }
    // Held messages of resumed subscriptions are older than anything in batch.
    DeliverResumed();
    DeliverBatch(batch);
    DestroySpent();
    MaybeFinishClose();
  }

  // natsMsg_Destroy hands a message to nats.c's garbage-collector thread and
  // wakes it when it sleeps: one wake-up per message costs the loop more
  // than the rest of an event's handling. Spent messages are destroyed in
  // batches instead: at the end of each delivery run, or once kSpentBatch
  // of them (or kSpentBatchBytes) are waiting.
  void DestroyLater(natsMsg* msg, size_t bytes) {
    spent.push_back(msg);
    spent_bytes += bytes;
    if (spent.size() >= kSpentBatch || spent_bytes >= kSpentBatchBytes) DestroySpent();
  }

  void DestroySpent() {
    for (natsMsg* msg : spent) natsMsg_Destroy(msg);
    spent.clear();
    spent_bytes = 0;
  }

  void DeliverResumed() {
    std::vector<SubscriptionId> ids;
    ids.swap(resumed);
    for (SubscriptionId id : ids) {
      while (true) {
        auto it = subscriptions.find(id);  // a handler may unsubscribe or pause
        if (it == subscriptions.end() || it->second.paused || it->second.held.empty()) break;
        natsMsg* msg = it->second.held.front();
        it->second.held.pop_front();
        ContextRef context = it->second.context;
        Deliver(it->second, msg);
        context->Release(1);
      }
    }
  }

  void DeliverBatch(std::vector<Delivery>& batch) {
    // Releases are counted per run of one subscription's messages.
    ContextRef run_context;
    size_t run_length = 0;
    auto end_run = [&] {
      if (run_context) run_context->Release(run_length);
      run_context.reset();
      run_length = 0;
    };
    for (Delivery& d : batch) {
      auto it = subscriptions.find(d.id);
      if (it == subscriptions.end()) {  // unsubscribed: its context is closed
        natsMsg_Destroy(d.msg);
        continue;
      }
      Subscription& entry = it->second;
      if (entry.paused || !entry.held.empty()) {
        entry.held.push_back(d.msg);
        continue;
      }
      if (run_context != entry.context) {
        end_run();
        run_context = entry.context;
      }
      ++run_length;
      Deliver(entry, d.msg);  // entry may be gone afterwards
    }
    end_run();
  }

  // Runs entry's handler with msg (destroyed here).
  void Deliver(Subscription& entry, natsMsg* msg) {
    BrokerMessage message = ToBrokerMessage(msg);
    DestroyLater(msg, message.data.size());
    std::shared_ptr<MessageHandler> handler = entry.handler;  // survives Unsubscribe
    ++delivered;
    (*handler)(std::move(message));
  }

  // --- Close ---------------------------------------------------------------------

  void Close(std::function<void()> on_closed_in) {
    WISP_ASSERT_LOOP_THREAD(loop_thread);
    if (state != State::kRunning) return;
    DestroySpent();
    state = State::kClosing;
    on_closed = std::move(on_closed_in);
    for (auto& [id, entry] : subscriptions) {
      Retire(entry);
      retired_subs.push_back(entry.sub);
    }
    subscriptions.clear();
    resumed.clear();
    // natsConnection_Close must run on the loop: from any other thread nats.c
    // closes the socket while the adapter's poll handle still watches it
    // (libuv aborts on the next epoll_ctl). On the loop it would flush what
    // is buffered by waiting up to 500 ms for a PONG that only the loop can
    // read, so first let the loop write the buffer out, checking every ms.
    close_deadline = uv_now(loop) + kCloseDrainMs;
    drain_timer = new uv_timer_t;
    uv_timer_init(loop, drain_timer);
    drain_timer->data = this;
    ++open_handles;
    uv_timer_start(drain_timer, OnDrainTimer, 0, 1);
  }

  static void OnDrainTimer(uv_timer_t* timer) {
    auto* impl = static_cast<Impl*>(timer->data);
    WISP_ASSERT_LOOP_THREAD(impl->loop_thread);
    if (!impl->ReadyToCloseConnection() && uv_now(impl->loop) < impl->close_deadline) return;
    uv_timer_stop(timer);
    impl->CloseConnection();
  }

  // Nothing buffered for the server, and no adapter event queued (one would
  // run after nats.c closed the socket).
  bool ReadyToCloseConnection() {
    if (natsConnection_Status(connection) == NATS_CONN_STATUS_CONNECTED &&
        natsConnection_Buffered(connection) > 0) {
      return false;
    }
    natsLibuvEvents* events = seed.adopted_events.load();
    if (events == nullptr) return true;
    uv_mutex_lock(events->lock);
    bool idle = events->head == nullptr;
    uv_mutex_unlock(events->lock);
    return idle;
  }

  void CloseConnection() {
    natsConnection_Close(connection);  // the adapter detaches right here
    for (natsSubscription* sub : retired_subs) natsSubscription_Destroy(sub);
    retired_subs.clear();
    connection_closed_here = true;
    if (!seed.adopted.load()) DiscardAdapterEvents(seed.events);
    seed.events = nullptr;
    CloseHandle(drain_timer);
    drain_timer = nullptr;
    CloseHandle(watched_timer);
    watched_timer = nullptr;
    MaybeFinishClose();
  }

  // Once nats.c's closed callback has come too, nothing will wake the loop
  // for us any more: close the async handle.
  void MaybeFinishClose() {
    if (state != State::kClosing || !connection_closed_here || async == nullptr) return;
    {
      std::lock_guard<std::mutex> lock(handoff->mu);
      if (!handoff->connection_closed) return;
      handoff->async = nullptr;
    }
    CloseHandle(async);
    async = nullptr;
  }

  // Closes one of our handles; the callback frees it and reports to this
  // unless Abandon detached it (data = nullptr).
  template <typename Handle>
  void CloseHandle(Handle* handle) {
    closing_handles.push_back(reinterpret_cast<uv_handle_t*>(handle));
    uv_close(reinterpret_cast<uv_handle_t*>(handle), [](uv_handle_t* closed) {
      auto* impl = static_cast<Impl*>(closed->data);
      if (impl != nullptr) std::erase(impl->closing_handles, closed);
      delete reinterpret_cast<Handle*>(closed);
      if (impl != nullptr) impl->OnHandleClosed();
    });
  }

  void OnHandleClosed() {
    if (--open_handles > 0 || state != State::kClosing) return;
    state = State::kClosed;
    auto callback = std::move(on_closed);
    if (callback) callback();  // may destroy the broker
  }

  // Destroyed without a completed Close (or after a failed Connect): closes
  // in place, blocking. Our handles are detached from this and closed, so
  // the loop may run (or not) after the broker is gone.
  void Abandon() {
    if (state == State::kRunning) {
      std::fprintf(stderr, "wisp: nats: broker destroyed before Close; closing in place\n");
      for (auto& [id, entry] : subscriptions) {
        Retire(entry);
        retired_subs.push_back(entry.sub);
      }
      subscriptions.clear();
    }
    if ((state == State::kRunning || state == State::kClosing) && !connection_closed_here) {
      natsConnection_Close(connection);
      connection_closed_here = true;
    }
    for (natsSubscription* sub : retired_subs) natsSubscription_Destroy(sub);
    retired_subs.clear();
    if (connection != nullptr) {
      std::unique_lock<std::mutex> lock(handoff->mu);
      bool seen = handoff->closed_cv.wait_for(lock, kAbandonWait,
                                              [this] { return handoff->connection_closed; });
      handoff->async = nullptr;
      // nats.c still owes the closed callback, which uses the Handoff: keep
      // it alive for good rather than risk a use after free.
      if (!seen) new std::shared_ptr<Handoff>(handoff);
    }
    if (seed.events != nullptr && !seed.adopted.load()) DiscardAdapterEvents(seed.events);
    seed.events = nullptr;
    for (uv_handle_t* handle : closing_handles) handle->data = nullptr;
    closing_handles.clear();
    if (async != nullptr) {
      async->data = nullptr;
      CloseHandle(async);
      async = nullptr;
    }
    if (drain_timer != nullptr) {
      drain_timer->data = nullptr;
      CloseHandle(drain_timer);
      drain_timer = nullptr;
    }
    if (watched_timer != nullptr) {
      watched_timer->data = nullptr;
      CloseHandle(watched_timer);
      watched_timer = nullptr;
    }
    state = State::kClosed;
  }

  uv_loop_t* const loop;
  const LoopThread loop_thread;
  const std::string urls;
  const NatsBrokerOptions options;
  const std::shared_ptr<Handoff> handoff;
  AdapterSeed seed;  // must outlive connection (nats.c keeps a pointer)
  std::vector<natsMsg*> spent;  // see DestroyLater
  size_t spent_bytes = 0;
  natsConnection* connection = nullptr;

  // Our handles, each freed in its close callback (CloseHandle).
  uv_async_t* async = nullptr;
  uv_timer_t* drain_timer = nullptr;  // while closing
  uv_timer_t* watched_timer = nullptr;  // CloseRetiredWatched every kWatchedSweepMs
  int open_handles = 0;
  std::vector<uv_handle_t*> closing_handles;

  State state = State::kCreated;
  std::unordered_map<SubscriptionId, Subscription> subscriptions;
  SubscriptionId next_id = 1;
  std::vector<SubscriptionId> resumed;  // un-paused with held messages
  uint64_t published = 0;
  uint64_t delivered = 0;
  uint64_t dropped_by_retired = 0;

  std::function<void()> on_closed;
  std::vector<natsSubscription*> retired_subs;  // destroyed once the connection is closed
  uint64_t close_deadline = 0;                  // uv_now() limit for the drain
  bool connection_closed_here = false;          // natsConnection_Close returned
};

// --- NatsBroker ------------------------------------------------------------------

StatusOr<std::unique_ptr<NatsBroker>> NatsBroker::Connect(uv_loop_t* loop, const std::string& urls,
                                                          NatsBrokerOptions options) {
  if (loop == nullptr) return Status::InvalidArgument("no loop");
  if (urls.find_first_not_of(" ,") == std::string::npos) {
    return Status::InvalidArgument("no NATS server URL given");
  }
  if (options.pending_msgs_limit <= 0 || options.pending_bytes_limit <= 0 ||
      options.reconnect_wait_ms < 0 || options.connect_timeout_ms <= 0) {
    return Status::InvalidArgument("bad NATS broker options");
  }
  natsLibuv_Init();
  natsLibuv_SetThreadLocalLoop(loop);
  auto impl = std::make_unique<Impl>(loop, urls, std::move(options));
  Status status = impl->Start();
  if (!status.ok()) return status;  // ~Impl closes what Start opened
  return std::unique_ptr<NatsBroker>(new NatsBroker(std::move(impl)));
}

NatsBroker::NatsBroker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NatsBroker::~NatsBroker() = default;

Status NatsBroker::Publish(BrokerMessage message) { return impl_->Publish(std::move(message)); }

StatusOr<SubscriptionId> NatsBroker::Subscribe(const std::string& subject,
                                               const std::string& queue_group,
                                               MessageHandler handler) {
  return impl_->Subscribe(subject, queue_group, std::move(handler));
}

void NatsBroker::Unsubscribe(SubscriptionId id) { impl_->Unsubscribe(id); }

void NatsBroker::SetPaused(SubscriptionId id, bool paused) { impl_->SetPaused(id, paused); }

std::string NatsBroker::NewInbox() {
  natsInbox* inbox = nullptr;
  WISP_CHECK(natsInbox_Create(&inbox) == NATS_OK);  // fails only without memory
  std::string result(inbox);
  natsInbox_Destroy(inbox);
  return result;
}

std::string NatsBroker::Describe() const {
  std::string url = ConnectedUrl(impl_->connection);
  return url.empty() ? impl_->urls : url;
}

BrokerStats NatsBroker::stats() const { return impl_->Stats(); }

size_t NatsBroker::max_payload() const {
  constexpr size_t kNatsDefaultMaxPayload = 1024 * 1024;
  const int64_t server = impl_->connection == nullptr
                             ? 0
                             : natsConnection_GetMaxPayload(impl_->connection);
  return server > 0 ? static_cast<size_t>(server) : kNatsDefaultMaxPayload;
}

void NatsBroker::Close(std::function<void()> on_closed) { impl_->Close(std::move(on_closed)); }

bool NatsBroker::IsConnected() const {
  return impl_->connection != nullptr && impl_->state == Impl::State::kRunning &&
         natsConnection_Status(impl_->connection) == NATS_CONN_STATUS_CONNECTED;
}

}  // namespace wisp::triggers
