#include "runtime/auth_token.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "runtime/base/ascii.h"
#include "runtime/base/random.h"

namespace wisp::runtime {
namespace {

constexpr size_t kTokenBytes = 32;  // 64 hex characters

bool IsToken(std::string_view text) {
  if (text.size() != 2 * kTokenBytes) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Status CreateToken(const std::string& path, std::string* token) {
  unsigned char bytes[kTokenBytes];
  FillRandom(bytes, sizeof(bytes));
  token->clear();
  AppendLowerHex(std::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)), token);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return Status::AlreadyExists(path + " exists");
    return Status::FromErrno("create " + path, errno);
  }
  const std::string line = *token + "\n";
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                  ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    return Status::FromErrno("write " + path, err);
  }
  return Status::OK();
}

}  // namespace

StatusOr<std::string> ReadToken(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open " + path, errno);
  char buf[2 * kTokenBytes + 2];
  const ssize_t n = ::read(fd, buf, sizeof(buf));
  ::close(fd);
  if (n < 0) return Status::IOError("read " + path);
  std::string_view text(buf, static_cast<size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  if (!IsToken(text)) return Status::Corruption(path + " does not hold a wisp token");
  return std::string(text);
}

StatusOr<std::string> LoadOrCreateToken(const std::string& data_dir) {
  const std::string path = data_dir + "/token";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return Status::FromErrno("stat " + path, errno);
    std::string token;
    Status s = CreateToken(path, &token);
    if (s.ok()) return token;
    if (s.code() != Status::Code::kAlreadyExists) return s;
    // Another controller created it first: read theirs.
  } else if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%03o", static_cast<unsigned>(st.st_mode & 0777));
    return Status::InvalidArgument(path + " may be read by other users (mode " + mode +
                                   "); chmod 600 it, or remove it to get a new token");
  }
  return ReadToken(path);
}

bool BearerMatches(std::string_view authorization, const std::string& token) {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size() ||
      !EqualsIgnoreCase(authorization.substr(0, kScheme.size()), kScheme)) {
    return false;
  }
  std::string_view given = authorization.substr(kScheme.size());
  while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
  while (!given.empty() && given.back() == ' ') given.remove_suffix(1);
  return given.size() == token.size() && !token.empty() &&
         CRYPTO_memcmp(given.data(), token.data(), token.size()) == 0;
}

}  // namespace wisp::runtime
