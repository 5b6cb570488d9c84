/* relay: runs the commands in its body, one per line, then describes what it
 * saw. Lets event tests drive emitting, failing and statuses:
 *   emit SUBJECT PAYLOAD   emit an event (with header x-relay: yes)
 *   status CODE            reply with that status
 *   fail                   return nonzero (after the lines before it ran)
 * The reply body is "trigger=http|event subject=S ce-id=I ce-source=S
 * ce-type=T attempt=N". */
#include <stdio.h>
#include <string.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

static const char* Header(const wisp_request* req, const char* name) {
  for (size_t i = 0; i < req->header_count; ++i) {
    if (strcmp(req->headers[i].name.data, name) == 0) return req->headers[i].value.data;
  }
  return "";
}

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  const char* p = (const char*)req->body;
  const char* end = p + req->body_len;
  int failed = 0;
  while (p < end && !failed) {
    const char* eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL) eol = end;
    char line[512];
    size_t len = (size_t)(eol - p);
    if (len >= sizeof(line)) len = sizeof(line) - 1;
    memcpy(line, p, len);
    line[len] = '\0';
    p = eol + 1;
    if (strncmp(line, "emit ", 5) == 0) {
      char* subject = line + 5;
      char* payload = strchr(subject, ' ');
      if (payload != NULL) *payload++ = '\0';
      else payload = "";
      const wisp_header h = {{"x-relay", 7}, {"yes", 3}};
      if (req->host->emit_event(ctx, subject, payload, strlen(payload), &h, 1) != WISP_OK) return 3;
    } else if (strncmp(line, "status ", 7) == 0) {
      int code = 0;
      sscanf(line + 7, "%d", &code);
      req->host->set_status(ctx, code);
    } else if (strcmp(line, "fail") == 0) {
      failed = 1;
    }
  }
  char out[1024];
  const int n = snprintf(out, sizeof(out),
                         "trigger=%s subject=%s ce-id=%s ce-source=%s ce-type=%s attempt=%u",
                         req->trigger == WISP_TRIGGER_EVENT ? "event" : "http", req->subject.data,
                         Header(req, "ce-id"), Header(req, "ce-source"), Header(req, "ce-type"),
                         req->attempt);
  req->host->write(ctx, out, n > 0 ? (size_t)n : 0);
  return failed;
}
