// SHA-256 through OpenSSL's SHA256_* functions, linked statically: they pull in
// the digest alone (a few KB), where EVP's provider machinery as a shared
// library adds about 1.4 MB to the controller's resident memory.
#define OPENSSL_API_COMPAT 10101
#include "loader/artifact_store.h"

#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <system_error>

#include "runtime/base/ascii.h"

namespace wisp::loader {
namespace {

constexpr size_t kDigestHexLength = 64;
constexpr int kMaxTempAttempts = 16;

// Writes all of data to fd, retrying short writes and EINTR.
Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("write " + path, errno);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::OK();
}

// Makes a rename inside dir durable.
Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open " + dir, errno);
  Status status;
  if (::fsync(fd) != 0) status = Status::FromErrno("fsync " + dir, errno);
  ::close(fd);
  return status;
}

// Creates a fresh temporary file in dir (O_EXCL, so never someone else's).
Status CreateTemp(const std::string& dir, std::string_view digest, int* fd,
                  std::string* path) {
  static uint64_t counter = 0;
  for (int attempt = 0; attempt < kMaxTempAttempts; ++attempt) {
    *path = dir + "/.tmp-" + std::string(digest.substr(0, 16)) + "-" +
            std::to_string(::getpid()) + "-" + std::to_string(counter++);
    *fd = ::open(path->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (*fd >= 0) return Status::OK();
    if (errno != EEXIST) return Status::FromErrno("create " + *path, errno);
  }
  return Status::IOError("create temporary file in " + dir + ": too many collisions");
}

// Writes, syncs and seals (0444) the open temporary file; always closes fd.
Status FillTemp(int fd, std::string_view bytes, const std::string& path) {
  Status status = WriteAll(fd, bytes, path);
  if (status.ok() && ::fsync(fd) != 0) status = Status::FromErrno("fsync " + path, errno);
  if (status.ok() && ::fchmod(fd, 0444) != 0) {
    status = Status::FromErrno("chmod " + path, errno);
  }
  if (::close(fd) != 0 && status.ok()) status = Status::FromErrno("close " + path, errno);
  return status;
}

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

std::string Sha256Hex(std::string_view bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  const unsigned int len = SHA256_DIGEST_LENGTH;
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  SHA256_Update(&ctx, bytes.data(), bytes.size());
  SHA256_Final(digest, &ctx);
  std::string out;
  out.reserve(len * 2);
  AppendLowerHex(std::string_view(reinterpret_cast<const char*>(digest), len), &out);
  return out;
}

Status ArtifactStore::Init() {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return Status::IOError("create " + dir_ + ": " + ec.message());
  if (!std::filesystem::is_directory(dir_, ec)) {
    return Status::IOError(dir_ + ": not a directory");
  }
  return Status::OK();
}

Status ArtifactStore::Put(std::string_view bytes, std::string* sha256) {
  std::string digest = Sha256Hex(bytes);
  if (!IsValidDigest(digest)) return Status::Internal("SHA-256 computation failed");
  std::string final_path = PathFor(digest);
  if (IsRegularFile(final_path)) {
    *sha256 = std::move(digest);
    return Status::OK();
  }
  int fd = -1;
  std::string temp_path;
  WISP_RETURN_IF_ERROR(CreateTemp(dir_, digest, &fd, &temp_path));
  Status status = FillTemp(fd, bytes, temp_path);
  if (status.ok() && ::rename(temp_path.c_str(), final_path.c_str()) != 0) {
    status = Status::FromErrno("rename " + temp_path + " to " + final_path, errno);
  }
  if (!status.ok()) {
    ::unlink(temp_path.c_str());
    return status;
  }
  WISP_RETURN_IF_ERROR(SyncDir(dir_));
  *sha256 = std::move(digest);
  return Status::OK();
}

std::string ArtifactStore::PathFor(std::string_view sha256) const {
  return dir_ + "/" + std::string(sha256) + ".so";
}

bool ArtifactStore::Contains(std::string_view sha256) const {
  return IsValidDigest(sha256) && IsRegularFile(PathFor(sha256));
}

StatusOr<std::string> ArtifactStore::Read(std::string_view sha256) const {
  if (!IsValidDigest(sha256)) {
    return Status::InvalidArgument("not a SHA-256 digest: " + std::string(sha256));
  }
  const std::string path = PathFor(sha256);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::NotFound("no artifact " + std::string(sha256));
    return Status::FromErrno("open " + path, errno);
  }
  std::string bytes;
  char buf[64 * 1024];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Status::FromErrno("read " + path, err);
    }
    if (n == 0) break;
    bytes.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return bytes;
}

Status ArtifactStore::Remove(std::string_view sha256) {
  if (!IsValidDigest(sha256)) {
    return Status::InvalidArgument("not a SHA-256 digest: " + std::string(sha256));
  }
  std::string path = PathFor(sha256);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return Status::NotFound("no artifact " + std::string(sha256));
    return Status::FromErrno("unlink " + path, errno);
  }
  return Status::OK();
}

bool ArtifactStore::IsValidDigest(std::string_view sha256) {
  if (sha256.size() != kDigestHexLength) return false;
  for (char c : sha256) {
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (!hex) return false;
  }
  return true;
}

}  // namespace wisp::loader
