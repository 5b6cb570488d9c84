/* forbidden_syscalls: makes system calls a function has no reason to make,
 * each in a child process of its own (so one that succeeds changes nothing
 * here), and replies one line per call: "<name>: OK" or "<name>: <errno
 * name>". A thread and a fork are made too, which must keep working. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/keyctl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

static int call_ptrace(void) { return (int)ptrace(PTRACE_TRACEME, 0, NULL, NULL); }
static int call_unshare(void) { return unshare(CLONE_NEWUSER); }
static int call_clone_newuser(void) {
  long pid = syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | SIGCHLD), NULL, NULL, NULL, 0);
  if (pid == 0) _exit(0);
  return pid < 0 ? -1 : 0;
}
/* Too small a size: EINVAL when clone3 is there at all. */
static int call_clone3(void) { return (int)syscall(SYS_clone3, NULL, (size_t)0); }
static int call_mount(void) { return mount("none", ".", "tmpfs", 0, NULL); }
static int call_keyctl(void) {
  return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 1) < 0 ? -1 : 0;
}
static int call_init_module(void) { return (int)syscall(SYS_init_module, NULL, 0, ""); }
static int call_kexec_load(void) { return (int)syscall(SYS_kexec_load, 0, 0, NULL, 0); }
static int call_io_uring_setup(void) {
  char params[120];
  memset(params, 0, sizeof(params));
  long fd = syscall(SYS_io_uring_setup, 1, params);
  return fd < 0 ? -1 : 0;
}
static void* thread_main(void* arg) { return arg; }
static int call_thread(void) {
  pthread_t thread;
  int rc = pthread_create(&thread, NULL, thread_main, NULL);
  if (rc != 0) {
    errno = rc;
    return -1;
  }
  return pthread_join(thread, NULL);
}

struct probe {
  const char* name;
  int (*call)(void);
};

static const struct probe kProbes[] = {
    {"ptrace", call_ptrace},         {"unshare", call_unshare},
    {"clone_newuser", call_clone_newuser}, {"clone3", call_clone3},
    {"mount", call_mount},           {"keyctl", call_keyctl},
    {"init_module", call_init_module}, {"kexec_load", call_kexec_load},
    {"io_uring_setup", call_io_uring_setup}, {"thread", call_thread},
};

/* Runs call in a child; its exit status carries errno (0: the call worked). */
static int probe(int (*call)(void)) {
  pid_t child = fork();
  if (child < 0) return errno;
  if (child == 0) _exit(call() == 0 ? 0 : errno);
  int status = 0;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) return errno;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  char reply[1024];
  size_t len = 0;
  (void)state;
  for (size_t i = 0; i < sizeof(kProbes) / sizeof(kProbes[0]); ++i) {
    int err = probe(kProbes[i].call);
    const char* result = err == 0 ? "OK" : err == 255 ? "killed" : strerrorname_np(err);
    len += (size_t)snprintf(reply + len, sizeof(reply) - len, "%s: %s\n", kProbes[i].name,
                            result != NULL ? result : "?");
  }
  return req->host->write(ctx, reply, len);
}
