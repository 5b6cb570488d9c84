/* wisp function ABI, version 1.
 *
 * A wisp function is a shared object (.so) that exports plain C symbols. The
 * runtime loads it inside a worker subprocess, never inside the controller.
 * The ABI is versioned (WISP_ABI_VERSION) and sized: every struct the runtime
 * hands over starts with its own size, so fields can be appended in later
 * versions and a function built today keeps loading.
 *
 * Ownership: everything the runtime passes in (request, strings, headers, the
 * host table) is owned by the runtime. Request data is valid only for the
 * duration of the wisp_handle call that received it; the host table is valid
 * from wisp_init until wisp_fini returns.
 *
 * Threading: the runtime calls wisp_init, wisp_handle and wisp_fini from one
 * thread, one call at a time. Host functions may be called only from that
 * thread, and only during the call that received the context.
 *
 * Errors: functions return 0 on success and nonzero on failure. Host functions
 * return WISP_OK or a negative WISP_E_* code.
 */
#ifndef WISP_FUNCTION_H_
#define WISP_FUNCTION_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WISP_ABI_VERSION 1u

#if defined(__GNUC__) || defined(__clang__)
#define WISP_EXPORT __attribute__((visibility("default")))
#else
#define WISP_EXPORT
#endif

/* Host function results. */
#define WISP_OK 0
#define WISP_E_INVALID (-1)     /* a NULL or malformed argument */
#define WISP_E_LIMIT (-2)       /* a size or count limit would be exceeded */
#define WISP_E_UNSUPPORTED (-3) /* not offered by this runtime */
#define WISP_E_CALL (-4)        /* a call got no reply from the function called */

/* What triggered the invocation. */
#define WISP_TRIGGER_HTTP 1u
#define WISP_TRIGGER_EVENT 2u
#define WISP_TRIGGER_CALL 3u  /* another function's host->call */

/* Log levels for wisp_host.log. */
#define WISP_LOG_DEBUG 0
#define WISP_LOG_INFO 1
#define WISP_LOG_WARN 2
#define WISP_LOG_ERROR 3

/* A byte string. data is never NULL and is followed by a NUL byte that is
 * not counted in len, so it may be used as a C string when the content has
 * no embedded NUL. */
typedef struct wisp_str {
  const char* data;
  size_t len;
} wisp_str;

/* One header. HTTP header names are lower-cased by the runtime. */
typedef struct wisp_header {
  wisp_str name;
  wisp_str value;
} wisp_header;

/* One invocation; opaque, owned by the runtime. */
typedef struct wisp_ctx wisp_ctx;

/* Services the runtime offers to a function. */
typedef struct wisp_host {
  uint32_t size;        /* sizeof(wisp_host) as built by the runtime */
  uint32_t abi_version; /* WISP_ABI_VERSION of the runtime */
  /* Appends len bytes to the reply body; copies them. */
  int (*write)(wisp_ctx* ctx, const void* data, size_t len);
  /* Sets the reply status (200..599: a 1xx is not a final reply); the
   * default is 200. */
  int (*set_status)(wisp_ctx* ctx, int code);
  /* Adds a reply header; both strings are NUL-terminated and copied. */
  int (*set_header)(wisp_ctx* ctx, const char* name, const char* value);
  /* Emits an event on subject with a payload; copied. Events are published
   * only if the invocation succeeds, in the order they were emitted. */
  int (*emit)(wisp_ctx* ctx, const char* subject, const void* data, size_t len);
  /* Writes a log line for this function at a WISP_LOG_* level; copied. */
  int (*log)(wisp_ctx* ctx, int level, const char* msg, size_t len);
  /* Like emit, with headers (copied). CloudEvents attributes go in ce-*
   * headers (ce-type, ce-source, ...); the runtime fills ce-id, ce-time,
   * ce-specversion, ce-source and ce-type when they are absent. Appended in
   * ABI 1: call it only when host->size >= offsetof(wisp_host, emit_event)
   * + sizeof(host->emit_event) (WISP_HOST_HAS(host, emit_event)). */
  int (*emit_event)(wisp_ctx* ctx, const char* subject, const void* data, size_t len,
                    const wisp_header* headers, size_t header_count);
  /* Calls the function `name` with a request body (as POST /fn/<name>
   * would, trigger WISP_TRIGGER_CALL) and waits for its reply, at most
   * timeout_ms (0: the called function's own timeout). Sets *status and
   * *reply (owned by the runtime, valid until this invocation ends) and
   * returns WISP_OK when the function replied, whatever its status; returns
   * WISP_E_CALL when it did not, with *status saying why (404 not deployed,
   * 508 a cycle: the function is already waiting in this chain of calls,
   * 503 it has no room, 504 timed out, 502 it crashed or failed) and *reply
   * a JSON error body. Appended in ABI 1: WISP_HOST_HAS(host, call). */
  int (*call)(wisp_ctx* ctx, const char* name, const void* data, size_t len,
              uint32_t timeout_ms, int* status, wisp_str* reply);
} wisp_host;

/* Whether the runtime's host table has member (a field appended later). */
#define WISP_HOST_HAS(host, member) \
  ((host)->size >= offsetof(wisp_host, member) + sizeof((host)->member))

/* The request of one invocation. Read a field only when
 * offsetof(wisp_request, field) + sizeof(field) <= size. */
typedef struct wisp_request {
  uint32_t size;          /* sizeof(wisp_request) as built by the runtime */
  uint32_t trigger;       /* WISP_TRIGGER_HTTP, _EVENT or _CALL */
  const wisp_host* host;  /* the host table, same as given to wisp_init */
  wisp_str method;        /* HTTP method ("GET", "POST", ...); empty for events */
  wisp_str path;          /* path below /fn/<name>, always starting with '/' */
  wisp_str query;         /* raw query string without the '?'; may be empty */
  const wisp_header* headers; /* HTTP or event headers */
  size_t header_count;
  wisp_str subject;       /* event subject; empty for HTTP */
  const void* body;       /* request body or event payload; never NULL */
  size_t body_len;
  uint32_t attempt;       /* delivery attempt, 1 for the first */
  uint32_t reserved;      /* zero */
} wisp_request;

/* Required. Returns the WISP_ABI_VERSION the function was built against.
 * WISP_DEFINE_ABI_VERSION() below defines it. */
WISP_EXPORT uint32_t wisp_abi_version(void);

/* Optional. Called once after loading, before any wisp_handle. *state is
 * NULL on entry; whatever the function stores there is passed back to
 * wisp_handle and wisp_fini. Nonzero fails the load. */
WISP_EXPORT int wisp_init(const wisp_host* host, void** state);

/* Required. Handles one invocation: reads req, replies through req->host
 * with ctx. Returns 0 on success; nonzero fails the invocation (HTTP 500,
 * emitted events discarded). */
WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req);

/* Optional. Called once before unloading. */
WISP_EXPORT void wisp_fini(void* state);

/* Defines wisp_abi_version() for the ABI this header describes. */
#define WISP_DEFINE_ABI_VERSION() \
  WISP_EXPORT uint32_t wisp_abi_version(void) { return WISP_ABI_VERSION; }

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* WISP_FUNCTION_H_ */
