/* read_data_dir: tries to read what the controller keeps in its data dir
 * (DATA_DIR from its config map): the token, the database, the directory's
 * listing; and looks for an inherited descriptor that leads into it. Replies
 * one line per attempt, "<what>: <errno name>" or "<what>: READ", then its
 * working directory. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

static int Report(char* out, size_t room, const char* what, int ok) {
  return snprintf(out, room, "%s: %s\n", what, ok ? "READ" : strerrorname_np(errno));
}

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  const char* dir = getenv("DATA_DIR");
  if (dir == NULL) return 2;
  char reply[1024];
  size_t used = 0;
  char path[512];
  const char* files[] = {"token", "wisp.db"};
  for (int i = 0; i < 2; ++i) {
    snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
    int fd = open(path, O_RDONLY);
    char byte;
    int ok = fd >= 0 && read(fd, &byte, 1) >= 0;
    used += (size_t)Report(reply + used, sizeof(reply) - used, files[i], ok);
    if (fd >= 0) close(fd);
  }
  DIR* listing = opendir(dir);
  used += (size_t)Report(reply + used, sizeof(reply) - used, "listing", listing != NULL);
  if (listing != NULL) closedir(listing);
  /* Descriptors inherited from the controller that point into the data dir. */
  int leaked = 0;
  for (int fd = 0; fd < 1024; ++fd) {
    char link[64];
    char target[512];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    if (strncmp(target, dir, strlen(dir)) == 0) ++leaked;
  }
  used += (size_t)snprintf(reply + used, sizeof(reply) - used, "descriptors: %d\n", leaked);
  char cwd[512];
  if (getcwd(cwd, sizeof(cwd)) == NULL) strcpy(cwd, "?");
  used += (size_t)snprintf(reply + used, sizeof(reply) - used, "cwd: %s\n", cwd);
  return req->host->write(ctx, reply, used);
}
