/* thread_bomb: starts threads that sleep forever until pthread_create
 * refuses one. Replies "refused after <n> threads: <error>". */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

static void* Sleep(void* arg) {
  (void)arg;
  for (;;) pause();
  return NULL;
}

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  int threads = 0;
  int error = 0;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  for (int i = 0; i < 100000; ++i) {
    pthread_t thread;
    error = pthread_create(&thread, &attr, Sleep, NULL);
    if (error != 0) break;
    pthread_detach(thread);
    ++threads;
  }
  pthread_attr_destroy(&attr);
  char reply[96];
  int len = snprintf(reply, sizeof(reply), "refused after %d threads: %s", threads,
                     error == 0 ? "never" : strerrorname_np(error));
  return req->host->write(ctx, reply, (size_t)len);
}
