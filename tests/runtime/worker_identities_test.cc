// Worker identities (runtime/worker_identities.h): the uid lock files say
// whether a user was released cleanly, so a user whose controller died
// holding it is swept before its next use. Users of their own need root;
// skipped otherwise.
#include "runtime/worker_identities.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>

namespace wisp::runtime {
namespace {

class WorkerIdentitiesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "users of their own need root";
    // A range of its own per test process, far from the controller's.
    options_.first_uid = 2000000000u + static_cast<uint32_t>(::getpid() % 100000) * 4;
    options_.count = 4;
    options_.data_dir = ::testing::TempDir() + "identities-" + std::to_string(::getpid());
    identities_ = std::make_unique<WorkerIdentities>(options_);
    Status s = identities_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE(identities_->separate_users());
  }

  void TearDown() override {
    identities_.reset();
    for (uint32_t i = 0; i < options_.count; ++i) ::unlink(LockPath(i).c_str());
  }

  std::string LockPath(uint32_t slot) const {
    return "/run/wisp/worker-uids/" + std::to_string(options_.first_uid + slot);
  }

  // The first byte of the lock file, or '\0' when it has none.
  char LockByte(uint32_t slot) const {
    char byte = '\0';
    const int fd = ::open(LockPath(slot).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      if (::read(fd, &byte, 1) != 1) byte = '\0';
      ::close(fd);
    }
    return byte;
  }

  // The lock file's size, or -1 when it cannot be read.
  long long LockSize(uint32_t slot) const {
    struct stat st {};
    return ::stat(LockPath(slot).c_str(), &st) == 0 ? static_cast<long long>(st.st_size) : -1;
  }

  WorkerIdentities::Options options_;
  std::unique_ptr<WorkerIdentities> identities_;
};

TEST_F(WorkerIdentitiesTest, AUserReleasedCleanlyIsNotSweptAgain) {
  proto::Sandbox first;
  StatusOr<int> slot = identities_->Acquire(FunctionLimits{}, &first);
  ASSERT_TRUE(slot.ok()) << slot.status().ToString();
  EXPECT_EQ(*slot, 0);
  EXPECT_EQ(first.uid(), options_.first_uid);
  EXPECT_FALSE(first.sweep_first()) << "a lock file made just now is not a dirty one";
  EXPECT_EQ(LockSize(0), 1) << "a user in use is marked in its lock file";
  EXPECT_EQ(LockByte(0), '1') << "and marked for controllers that read the older format";
  identities_->Release(*slot);
  EXPECT_EQ(LockSize(0), 0) << "a user released cleanly is marked clean";

  proto::Sandbox again;
  slot = identities_->Acquire(FunctionLimits{}, &again);
  ASSERT_TRUE(slot.ok()) << slot.status().ToString();
  EXPECT_EQ(*slot, 0);
  EXPECT_FALSE(again.sweep_first()) << "the user was released cleanly";
  identities_->Release(*slot);
}

TEST_F(WorkerIdentitiesTest, AUserLeftInUseByADeadControllerIsSweptFirst) {
  // What a controller that died holding slot 0 leaves: the lock file marked
  // in use (its flock went with the process).
  const int fd = ::open(LockPath(0).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 1), 0);
  ::close(fd);

  proto::Sandbox sandbox;
  StatusOr<int> slot = identities_->Acquire(FunctionLimits{}, &sandbox);
  ASSERT_TRUE(slot.ok()) << slot.status().ToString();
  ASSERT_EQ(*slot, 0);
  EXPECT_TRUE(sandbox.sweep_first()) << "a user left in use may still have processes";
  identities_->Release(*slot);
  EXPECT_EQ(LockSize(0), 0);
}

TEST_F(WorkerIdentitiesTest, AUserAnotherControllerHoldsIsSkipped) {
  // Another controller's worker holds slot 0: its flock.
  const int fd = ::open(LockPath(0).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);

  // Its directory is not made ahead either: slot 1's is, for its user.
  identities_->PrepareNextDir();

  proto::Sandbox sandbox;
  StatusOr<int> slot = identities_->Acquire(FunctionLimits{}, &sandbox);
  ::close(fd);
  ASSERT_TRUE(slot.ok()) << slot.status().ToString();
  EXPECT_EQ(*slot, 1) << "slot 0 is another controller's";
  EXPECT_EQ(sandbox.uid(), options_.first_uid + 1);
  const std::string dir = sandbox.work_dir();
  const std::string base_dir = dir.substr(0, dir.rfind('/'));
  struct stat st {};
  EXPECT_NE(::stat((base_dir + "/0").c_str(), &st), 0) << "slot 0's directory was made ahead";
  ASSERT_EQ(::stat((base_dir + "/1").c_str(), &st), 0) << "slot 1's directory was not made ahead";
  EXPECT_EQ(st.st_uid, options_.first_uid + 1);
  identities_->Release(*slot);
}

TEST_F(WorkerIdentitiesTest, TheNextFreeSlotsDirectoryIsMadeAheadForItsUser) {
  proto::Sandbox first;
  StatusOr<int> slot = identities_->Acquire(FunctionLimits{}, &first);
  ASSERT_TRUE(slot.ok()) << slot.status().ToString();
  ASSERT_EQ(*slot, 0);
  identities_->PrepareNextDir();
  // Slot 0 is taken: slot 1's directory is the one made.
  const std::string base = first.work_dir().substr(0, first.work_dir().rfind('/'));
  struct stat st {};
  ASSERT_EQ(::stat((base + "/1").c_str(), &st), 0) << base << "/1 was not made";
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, options_.first_uid + 1) << "owned by slot 1's user";
  EXPECT_EQ(st.st_gid, options_.first_uid + 1);
  EXPECT_NE(::stat((base + "/0").c_str(), &st), 0) << "slot 0's is the worker's to make";

  proto::Sandbox second;
  StatusOr<int> next = identities_->Acquire(FunctionLimits{}, &second);
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_EQ(second.work_dir(), base + "/1");
  identities_->Release(*next);
  identities_->Release(*slot);
}

TEST_F(WorkerIdentitiesTest, ARangeHoldingAUserOfTheSystemIsRefusedWithItsName) {
  // A user the system lists: daemon (uid 1 on Debian).
  const passwd* pw = ::getpwnam("daemon");
  if (pw == nullptr || pw->pw_uid == 0) GTEST_SKIP() << "no daemon user here";
  WorkerIdentities::Options options = options_;
  options.first_uid = pw->pw_uid;
  options.count = 2;
  options.data_dir = options_.data_dir + "-clash";
  WorkerIdentities clash(options);
  Status s = clash.Start();
  ASSERT_FALSE(s.ok()) << "a range holding uid " << pw->pw_uid << " (daemon) was accepted";
  EXPECT_EQ(Status::Code::kInvalidArgument, s.code()) << s.ToString();
  EXPECT_NE(s.ToString().find("uid " + std::to_string(pw->pw_uid) + " is the user daemon"),
            std::string::npos)
      << s.ToString();
}

}  // namespace
}  // namespace wisp::runtime
