// wisp new: a ready-to-build function folder; and building such a folder
// before `wisp deploy DIR` sends its .so.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "runtime/cli/api_call.h"
#include "runtime/cli/commands.h"
#include "scaffold_files.h"
#include "triggers/route.h"

namespace wisp::cli {
namespace {

std::string Fill(std::string_view text, const std::string& name, const std::string& source) {
  std::string out(text);
  for (const auto& [key, value] :
       {std::pair<std::string, std::string>{"@NAME@", name}, {"@SOURCE@", source},
        {"@VERSION@", WISP_VERSION}}) {
    for (size_t at = out.find(key); at != std::string::npos; at = out.find(key, at + value.size())) {
      out.replace(at, key.size(), value);
    }
  }
  return out;
}

bool MakeDirs(const std::string& path, std::string* error) {
  for (size_t at = 1; at != std::string::npos;) {
    at = path.find('/', at + 1);
    const std::string prefix = path.substr(0, at);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      *error = "cannot create " + prefix + ": " + std::strerror(errno);
      return false;
    }
  }
  return true;
}

bool WriteFile(const std::string& path, std::string_view text, bool executable,
               std::string* error) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    *error = "cannot write " + path;
    return false;
  }
  if (executable) ::chmod(path.c_str(), 0755);
  return true;
}

// Runs argv with the CLI's stdout and stderr; its exit status, or -1.
int RunProcess(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    ::dup2(STDERR_FILENO, STDOUT_FILENO);  // the CLI's own stdout stays for results
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "wisp: cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

int RunNew(const std::string& name, const std::string& lang, const std::string& parent) {
  if (!triggers::IsValidFunctionName(name)) {
    return Fail(kExitUsage, "invalid function name '" + name + "': names match ^[a-z0-9][a-z0-9_-]{0,62}$");
  }
  if (lang != "c" && lang != "cpp") return Fail(kExitUsage, "--lang must be c or cpp, got '" + lang + "'");
  const std::string dir = (parent.empty() ? std::string(".") : parent) + "/" + name;
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) return Fail(kExitUsage, dir + " already exists");
  const std::string source = name + (lang == "c" ? ".c" : ".cc");
  std::string error;
  const bool ok =
      MakeDirs(dir + "/wisp/functions/include/wisp", &error) && MakeDirs(dir + "/wisp/cmake", &error) &&
      WriteFile(dir + "/wisp/functions/include/wisp/function.h", scaffold::kFunctionH, false, &error) &&
      WriteFile(dir + "/wisp/functions/include/wisp/function.hpp", scaffold::kFunctionHpp, false, &error) &&
      WriteFile(dir + "/wisp/cmake/WispFunction.cmake", scaffold::kWispFunctionCmake, false, &error) &&
      WriteFile(dir + "/CMakeLists.txt", Fill(scaffold::kCMakeLists, name, source), false, &error) &&
      WriteFile(dir + "/" + source,
                Fill(lang == "c" ? scaffold::kSourceC : scaffold::kSourceCpp, name, source), false,
                &error) &&
      WriteFile(dir + "/test.sh", Fill(scaffold::kTestSh, name, source), true, &error);
  if (!ok) return Fail(kExitFailed, error);
  std::printf("created %s (%s): %s, CMakeLists.txt, test.sh, wisp/ (ABI headers, CMake helper)\n",
              dir.c_str(), lang == "c" ? "C" : "C++", source.c_str());
  std::printf("next:     wisp deploy %s && curl -d world localhost:8080/fn/%s\n", dir.c_str(),
              name.c_str());
  return kExitOk;
}

int BuildFunctionDir(const std::string& dir, const std::string& name, std::string* so_path) {
  const std::string build = dir + "/build";
  std::fprintf(stderr, "wisp: building %s\n", dir.c_str());
  if (RunProcess({"cmake", "-S", dir, "-B", build, "-DCMAKE_BUILD_TYPE=Release"}) != 0 ||
      RunProcess({"cmake", "--build", build}) != 0) {
    return Fail(kExitFailed, "building " + dir + " failed (see the output above)");
  }
  *so_path = build + "/" + name + ".so";
  if (::access(so_path->c_str(), R_OK) != 0) {
    return Fail(kExitFailed, "the build of " + dir + " made no " + *so_path +
                                 " (its CMakeLists.txt should call wisp_add_function(" + name +
                                 " ...))");
  }
  return kExitOk;
}

}  // namespace wisp::cli
