#include "loader/elf_validator.h"
#include "tests/loader/unprivileged.h"

#include <elf.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace wisp::loader {
namespace {

using ::testing::HasSubstr;

const std::string kHello = WISP_EXAMPLES_DIR "/hello.so";
const std::string kNoHandle = WISP_TEST_FUNCTIONS_DIR "/no_handle.so";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// A copy of image with the header field at offset overwritten by value.
template <typename T>
std::string Patched(std::string image, size_t offset, T value) {
  std::memcpy(image.data() + offset, &value, sizeof(value));
  return image;
}

struct ImageCase {
  const char* name;
  std::function<std::string(const std::string& hello)> make;
  const char* want_error;  // nullptr: valid
};

class ElfValidatorImageTest : public ::testing::TestWithParam<ImageCase> {};

TEST_P(ElfValidatorImageTest, ReportsWhatIsWrong) {
  std::string hello = ReadFile(kHello);
  ASSERT_GT(hello.size(), 1000u) << "cannot read " << kHello;
  Status status = ValidateSharedObject(GetParam().make(hello));
  if (GetParam().want_error == nullptr) {
    EXPECT_TRUE(status.ok()) << status.ToString();
  } else {
    EXPECT_EQ(status.code(), Status::Code::kInvalidArgument) << status.ToString();
    EXPECT_EQ(status.message(), GetParam().want_error);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ElfValidatorImageTest,
    ::testing::Values(
        ImageCase{"RealExample", [](const std::string& h) { return h; }, nullptr},
        ImageCase{"Text", [](const std::string&) { return std::string("hello, I am text"); },
                  "not an ELF file"},
        ImageCase{"Empty", [](const std::string&) { return std::string(); },
                  "not an ELF file"},
        ImageCase{"MagicOnly", [](const std::string& h) { return h.substr(0, 4); },
                  "truncated ELF file"},
        ImageCase{"First100Bytes", [](const std::string& h) { return h.substr(0, 100); },
                  "truncated ELF file"},
        ImageCase{"First64Bytes", [](const std::string& h) { return h.substr(0, 64); },
                  "truncated ELF file"},
        ImageCase{"First32Bytes", [](const std::string& h) { return h.substr(0, 32); },
                  "truncated ELF file"},
        ImageCase{"Class32",
                  [](const std::string& h) { return Patched<uint8_t>(h, EI_CLASS, ELFCLASS32); },
                  "not a 64-bit ELF file"},
        ImageCase{"BigEndian",
                  [](const std::string& h) { return Patched<uint8_t>(h, EI_DATA, ELFDATA2MSB); },
                  "not little-endian"},
        ImageCase{"Aarch64",
                  [](const std::string& h) {
                    return Patched<uint16_t>(h, offsetof(Elf64_Ehdr, e_machine), EM_AARCH64);
                  },
                  "built for aarch64, this host is x86_64"},
        ImageCase{"UnknownMachine",
                  [](const std::string& h) {
                    return Patched<uint16_t>(h, offsetof(Elf64_Ehdr, e_machine), 4242);
                  },
                  "built for machine 4242, this host is x86_64"},
        ImageCase{"Executable",
                  [](const std::string& h) {
                    return Patched<uint16_t>(h, offsetof(Elf64_Ehdr, e_type), ET_EXEC);
                  },
                  "not a shared object (ELF type 2)"},
        ImageCase{"NoSectionHeaders",
                  [](const std::string& h) {
                    return Patched<uint64_t>(h, offsetof(Elf64_Ehdr, e_shoff), 0);
                  },
                  "has no dynamic symbol table"},
        ImageCase{"SectionTableBeyondEnd",
                  [](const std::string& h) {
                    return Patched<uint64_t>(h, offsetof(Elf64_Ehdr, e_shoff), ~0ull - 8);
                  },
                  "truncated ELF file"},
        ImageCase{"TruncatedTail",
                  [](const std::string& h) { return h.substr(0, h.size() - 1); },
                  "truncated ELF file"}),
    [](const ::testing::TestParamInfo<ImageCase>& info) { return info.param.name; });

#if !defined(__x86_64__)
#error "the Aarch64 case above assumes an x86_64 host"
#endif

TEST(ElfValidatorTest, RejectsModuleWithoutHandle) {
  Status status = ValidateSharedObject(ReadFile(kNoHandle));
  EXPECT_EQ(status.message(), "does not export wisp_handle");
}

TEST(ElfValidatorTest, AcceptsEveryTestFunctionThatExportsBoth) {
  for (const char* name : {"segv", "counter", "status", "bad_abi", "init_fail", "ctor_crash"}) {
    std::string path = std::string(WISP_TEST_FUNCTIONS_DIR "/") + name + ".so";
    Status status = ValidateSharedObjectFile(path);
    EXPECT_TRUE(status.ok()) << path << ": " << status.ToString();
  }
}

// Mutates random bytes of the ELF header and the section header table (where
// the offsets the validator follows live) and checks that it always returns.
TEST(ElfValidatorTest, SurvivesMutatedImages) {
  std::string hello = ReadFile(kHello);
  ASSERT_GE(hello.size(), sizeof(Elf64_Ehdr));
  Elf64_Ehdr ehdr;
  std::memcpy(&ehdr, hello.data(), sizeof(ehdr));
  size_t shoff = ehdr.e_shoff;
  size_t shsize = size_t{ehdr.e_shnum} * ehdr.e_shentsize;
  ASSERT_LE(shoff + shsize, hello.size());

  std::mt19937_64 rng(12345);  // fixed seed: failures reproduce
  int rejected = 0;
  constexpr int kRounds = 4000;
  for (int round = 0; round < kRounds; ++round) {
    std::string image = hello;
    int flips = 1 + static_cast<int>(rng() % 8);
    for (int i = 0; i < flips; ++i) {
      size_t at = (rng() % 2 == 0) ? rng() % sizeof(Elf64_Ehdr) : shoff + rng() % shsize;
      // Keep the ident mostly intact so the deeper checks get exercised.
      if (at < EI_NIDENT && rng() % 4 != 0) continue;
      image[at] = static_cast<char>(rng());
    }
    if (rng() % 8 == 0) image.resize(rng() % image.size());
    if (!ValidateSharedObject(image).ok()) ++rejected;
  }
  EXPECT_GT(rejected, 0);
}

TEST(ElfValidatorTest, SurvivesRandomBytesAfterValidHeader) {
  std::string hello = ReadFile(kHello);
  std::mt19937_64 rng(777);
  for (int round = 0; round < 1000; ++round) {
    std::string image = hello.substr(0, sizeof(Elf64_Ehdr));
    image.resize(sizeof(Elf64_Ehdr) + rng() % 4096);
    for (size_t i = sizeof(Elf64_Ehdr); i < image.size(); ++i) image[i] = static_cast<char>(rng());
    // Point the section table somewhere inside the random bytes.
    uint64_t shoff = sizeof(Elf64_Ehdr) + rng() % (image.size() - sizeof(Elf64_Ehdr) + 1);
    std::memcpy(image.data() + offsetof(Elf64_Ehdr, e_shoff), &shoff, sizeof(shoff));
    (void)ValidateSharedObject(image);
  }
}

TEST(ElfValidatorFileTest, ValidFile) {
  Status status = ValidateSharedObjectFile(kHello);
  EXPECT_TRUE(status.ok()) << status.ToString();
}

TEST(ElfValidatorFileTest, MissingPath) {
  Status status = ValidateSharedObjectFile("/nonexistent/wisp/x.so");
  EXPECT_EQ(status.code(), Status::Code::kNotFound);
  EXPECT_EQ(status.message(), "/nonexistent/wisp/x.so: no such file");
}

TEST(ElfValidatorFileTest, Directory) {
  Status status = ValidateSharedObjectFile(WISP_EXAMPLES_DIR);
  EXPECT_EQ(status.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(status.message(), std::string(WISP_EXAMPLES_DIR) + ": not a regular file");
}

TEST(ElfValidatorFileTest, ContentErrorNamesThePath) {
  std::string path = ::testing::TempDir() + "elf_validator_test_text.so";
  {
    std::ofstream out(path, std::ios::binary);
    out << "#!/bin/sh\necho not a library\n";
  }
  Status status = ValidateSharedObjectFile(path);
  EXPECT_EQ(status.message(), path + ": not an ELF file");
  ::unlink(path.c_str());
}

TEST(ElfValidatorFileTest, UnreadableFile) {
  std::string path = ::testing::TempDir() + "elf_validator_test_unreadable.so";
  { std::ofstream out(path, std::ios::binary); }
  ASSERT_EQ(::chmod(path.c_str(), 0), 0);
  EXPECT_TRUE(wisp::testing::RunUnprivileged([&]() -> std::string {
    Status status = ValidateSharedObjectFile(path);
    if (status.code() != Status::Code::kIOError) return "want IOError, got " + status.ToString();
    if (status.message().find(path) == std::string::npos) return "message lacks the path: " + status.message();
    return "";
  }));
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace wisp::loader
