/* work_dir: reports its working directory as a worker finds it, then leaves
 * something behind in it. Replies "cwd: <path>\nmode: <octal>\nentries:
 * <n>\n" (n counts what is in it besides . and ..), then creates the file
 * left-behind and the directory left-dir there. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wisp/function.h>

WISP_DEFINE_ABI_VERSION()

WISP_EXPORT int wisp_handle(void* state, wisp_ctx* ctx, const wisp_request* req) {
  (void)state;
  char cwd[512];
  if (getcwd(cwd, sizeof(cwd)) == NULL) return 2;
  struct stat st;
  if (stat(".", &st) != 0) return 3;
  int entries = 0;
  DIR* dir = opendir(".");
  if (dir == NULL) return 4;
  for (struct dirent* e = readdir(dir); e != NULL; e = readdir(dir)) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) ++entries;
  }
  closedir(dir);
  FILE* f = fopen("left-behind", "w");
  if (f == NULL) return 5;
  fputs("from an earlier worker\n", f);
  fclose(f);
  if (mkdir("left-dir", 0755) != 0) return 6;
  char reply[700];
  int n = snprintf(reply, sizeof(reply), "cwd: %s\nmode: %o\nentries: %d\n", cwd,
                   (unsigned)(st.st_mode & 07777), entries);
  return req->host->write(ctx, reply, (size_t)n);
}
