// A content-addressed store of function artifacts: <dir>/<sha256>.so.
// Files are written atomically (temporary file, fsync, rename) and made
// read-only; the same bytes are stored once.
// Threading: not thread-safe; the controller uses it from its loop thread.
#ifndef WISP_LOADER_ARTIFACT_STORE_H_
#define WISP_LOADER_ARTIFACT_STORE_H_

#include <string>
#include <string_view>

#include "runtime/base/status.h"

namespace wisp::loader {

// Lower-case hex SHA-256 of bytes (OpenSSL).
std::string Sha256Hex(std::string_view bytes);

class ArtifactStore {
 public:
  explicit ArtifactStore(std::string dir) : dir_(std::move(dir)) {}

  // Creates the directory if needed. IOError if it cannot.
  Status Init();

  // Stores bytes under their digest, returned in *sha256. Storing bytes that
  // are already present rewrites nothing. IOError on a failed write; no
  // partial file is ever visible under the final name.
  Status Put(std::string_view bytes, std::string* sha256);

  // The path of the artifact with this digest (whether or not it exists).
  // sha256 must be 64 lower-case hex digits (checked by IsValidDigest).
  std::string PathFor(std::string_view sha256) const;
  bool Contains(std::string_view sha256) const;
  // The artifact's bytes. NotFound if absent, InvalidArgument for a bad
  // digest, IOError if it cannot be read.
  StatusOr<std::string> Read(std::string_view sha256) const;
  // Removes the artifact; NotFound if absent.
  Status Remove(std::string_view sha256);

  static bool IsValidDigest(std::string_view sha256);

 private:
  std::string dir_;
};

}  // namespace wisp::loader

#endif  // WISP_LOADER_ARTIFACT_STORE_H_
