#include "loader/artifact_store.h"
#include "tests/loader/unprivileged.h"

#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace wisp::loader {
namespace {

using ::testing::HasSubstr;

constexpr char kAbcDigest[] =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr char kEmptyDigest[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  return names;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

class ArtifactStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/wisp_artifact_store_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/nested/artifacts";  // Init creates missing parents
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  std::string root_;
  std::string dir_;
};

TEST(ArtifactStoreSha256Test, KnownVectors) {
  EXPECT_EQ(Sha256Hex("abc"), kAbcDigest);
  EXPECT_EQ(Sha256Hex(""), kEmptyDigest);
}

TEST_F(ArtifactStoreTest, PutReturnsDigestAndStoresBytes) {
  ArtifactStore store(dir_);
  ASSERT_TRUE(store.Init().ok());
  std::string digest;
  Status status = store.Put("abc", &digest);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(digest, kAbcDigest);
  EXPECT_EQ(store.PathFor(digest), dir_ + "/" + kAbcDigest + ".so");
  EXPECT_TRUE(store.Contains(digest));
  EXPECT_EQ(ReadFile(store.PathFor(digest)), "abc");
}

TEST_F(ArtifactStoreTest, FileIsReadOnly) {
  ArtifactStore store(dir_);
  ASSERT_TRUE(store.Init().ok());
  std::string digest;
  ASSERT_TRUE(store.Put("abc", &digest).ok());
  struct stat st;
  ASSERT_EQ(::stat(store.PathFor(digest).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0444u);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST_F(ArtifactStoreTest, SameBytesAreStoredOnce) {
  ArtifactStore store(dir_);
  ASSERT_TRUE(store.Init().ok());
  std::string first, second, other;
  ASSERT_TRUE(store.Put("abc", &first).ok());
  struct stat before;
  ASSERT_EQ(::stat(store.PathFor(first).c_str(), &before), 0);
  ASSERT_TRUE(store.Put("abc", &second).ok());
  struct stat after;
  ASSERT_EQ(::stat(store.PathFor(second).c_str(), &after), 0);
  EXPECT_EQ(first, second);
  EXPECT_EQ(before.st_ino, after.st_ino) << "the file was rewritten";
  EXPECT_EQ(ListDir(dir_).size(), 1u);
  ASSERT_TRUE(store.Put("", &other).ok());
  EXPECT_EQ(other, kEmptyDigest);
  EXPECT_EQ(ListDir(dir_).size(), 2u) << "no temporary files are left behind";
}

TEST_F(ArtifactStoreTest, LargeArtifactRoundTrips) {
  ArtifactStore store(dir_);
  ASSERT_TRUE(store.Init().ok());
  std::string big(5 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131);
  std::string digest;
  ASSERT_TRUE(store.Put(big, &digest).ok());
  EXPECT_EQ(digest, Sha256Hex(big));
  EXPECT_EQ(ReadFile(store.PathFor(digest)), big);
}

TEST_F(ArtifactStoreTest, ContainsAndRemove) {
  ArtifactStore store(dir_);
  ASSERT_TRUE(store.Init().ok());
  EXPECT_FALSE(store.Contains(kAbcDigest));
  Status missing = store.Remove(kAbcDigest);
  EXPECT_EQ(missing.code(), Status::Code::kNotFound) << missing.ToString();
  std::string digest;
  ASSERT_TRUE(store.Put("abc", &digest).ok());
  EXPECT_TRUE(store.Contains(digest));
  Status removed = store.Remove(digest);
  EXPECT_TRUE(removed.ok()) << removed.ToString();
  EXPECT_FALSE(store.Contains(digest));
  EXPECT_EQ(store.Remove(digest).code(), Status::Code::kNotFound);
  EXPECT_EQ(store.Remove("../x").code(), Status::Code::kInvalidArgument);
  EXPECT_FALSE(store.Contains("../x"));
}

TEST_F(ArtifactStoreTest, InitFailsOnAFile) {
  std::string file = root_ + "/plain";
  std::ofstream(file) << "x";
  ArtifactStore store(file);
  Status status = store.Init();
  EXPECT_EQ(status.code(), Status::Code::kIOError) << status.ToString();
  EXPECT_THAT(status.message(), HasSubstr(file));
}

TEST_F(ArtifactStoreTest, PutFailsInAReadOnlyDirectory) {
  ArtifactStore store(dir_);
  ASSERT_TRUE(store.Init().ok());
  ASSERT_EQ(::chmod(dir_.c_str(), 0555), 0);
  EXPECT_TRUE(wisp::testing::RunUnprivileged([&]() -> std::string {
    std::string digest;
    Status status = store.Put("abc", &digest);
    if (status.code() != Status::Code::kIOError) return "want IOError, got " + status.ToString();
    if (store.Contains(kAbcDigest)) return "the artifact exists after a failed Put";
    return "";
  }));
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
}

struct DigestCase {
  const char* digest;
  bool valid;
};

class ArtifactStoreDigestTest : public ::testing::TestWithParam<DigestCase> {};

TEST_P(ArtifactStoreDigestTest, Checks) {
  EXPECT_EQ(ArtifactStore::IsValidDigest(GetParam().digest), GetParam().valid)
      << "digest: \"" << GetParam().digest << "\"";
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ArtifactStoreDigestTest,
    ::testing::Values(
        DigestCase{kAbcDigest, true}, DigestCase{kEmptyDigest, true},
        DigestCase{"../x", false}, DigestCase{"", false},
        DigestCase{"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", false},
        DigestCase{"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a", false},
        DigestCase{"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0", false},
        DigestCase{"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a/", false},
        DigestCase{"ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", false}));

}  // namespace
}  // namespace wisp::loader
