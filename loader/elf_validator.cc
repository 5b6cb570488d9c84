// The ELF checks are done by hand on <elf.h> structs. The input is hostile:
// every read goes through Image, which copies a struct out of the buffer only
// after checking that it lies entirely inside it, so a lying offset or size
// yields "truncated ELF file" instead of a wild read.
#include "loader/elf_validator.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>

namespace wisp::loader {
namespace {

constexpr uint64_t kMaxFileSize = 256ull << 20;  // 256 MiB

#if defined(__x86_64__)
constexpr uint16_t kHostMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr uint16_t kHostMachine = EM_AARCH64;
#elif defined(__riscv) && __riscv_xlen == 64
constexpr uint16_t kHostMachine = EM_RISCV;
#elif defined(__powerpc64__)
constexpr uint16_t kHostMachine = EM_PPC64;
#elif defined(__s390x__)
constexpr uint16_t kHostMachine = EM_S390;
#else
#error "wisp: unknown host architecture; add its EM_* value here"
#endif

std::string MachineName(uint16_t machine) {
  switch (machine) {
    case EM_X86_64: return "x86_64";
    case EM_AARCH64: return "aarch64";
    case EM_386: return "i386";
    case EM_ARM: return "arm";
    case EM_RISCV: return "riscv";
    case EM_PPC64: return "ppc64";
    case EM_S390: return "s390x";
    default: return "machine " + std::to_string(machine);
  }
}

Status Invalid(std::string_view msg) { return Status::InvalidArgument(msg); }
Status Truncated() { return Invalid("truncated ELF file"); }

// A bounds-checked view of the image.
class Image {
 public:
  explicit Image(std::string_view bytes) : bytes_(bytes) {}

  uint64_t size() const { return bytes_.size(); }

  // True if [offset, offset + len) lies inside the image (overflow-safe).
  bool Contains(uint64_t offset, uint64_t len) const {
    return offset <= size() && len <= size() - offset;
  }

  // Copies a T from offset, or nullopt if it does not fit.
  template <typename T>
  std::optional<T> Read(uint64_t offset) const {
    if (!Contains(offset, sizeof(T))) return std::nullopt;
    T value;
    std::memcpy(&value, bytes_.data() + offset, sizeof(T));
    return value;
  }

  std::string_view Slice(uint64_t offset, uint64_t len) const {
    return bytes_.substr(offset, len);  // callers check Contains first
  }

 private:
  std::string_view bytes_;
};

Status CheckIdent(const Image& image, std::string_view bytes) {
  if (bytes.size() < SELFMAG || std::memcmp(bytes.data(), ELFMAG, SELFMAG) != 0) {
    return Invalid("not an ELF file");
  }
  if (bytes.size() < EI_NIDENT) return Truncated();
  if (bytes[EI_CLASS] != ELFCLASS64) return Invalid("not a 64-bit ELF file");
  if (bytes[EI_DATA] != ELFDATA2LSB) return Invalid("not little-endian");
  if (!image.Contains(0, sizeof(Elf64_Ehdr))) return Truncated();
  return Status::OK();
}

Status CheckHeader(const Elf64_Ehdr& ehdr) {
  if (ehdr.e_machine != kHostMachine) {
    return Invalid("built for " + MachineName(ehdr.e_machine) + ", this host is " +
                   MachineName(kHostMachine));
  }
  if (ehdr.e_type != ET_DYN) {
    return Invalid("not a shared object (ELF type " + std::to_string(ehdr.e_type) + ")");
  }
  return Status::OK();
}

// The section header table: where it is and how many entries it has.
struct SectionTable {
  uint64_t offset = 0;
  uint64_t entsize = 0;
  uint64_t count = 0;

  uint64_t EntryOffset(uint64_t index) const { return offset + index * entsize; }
};

// Locates the section header table. count is 0 when there is none.
Status FindSectionTable(const Image& image, const Elf64_Ehdr& ehdr, SectionTable* table) {
  if (ehdr.e_shoff == 0) return Status::OK();
  if (ehdr.e_shentsize < sizeof(Elf64_Shdr)) return Invalid("malformed section header table");
  table->offset = ehdr.e_shoff;
  table->entsize = ehdr.e_shentsize;
  table->count = ehdr.e_shnum;
  if (table->count == 0) {  // extended numbering: the count is in section 0
    auto first = image.Read<Elf64_Shdr>(ehdr.e_shoff);
    if (!first) return Truncated();
    table->count = first->sh_size;
  }
  // The whole table must fit; dividing avoids overflow in count * entsize.
  if (!image.Contains(table->offset, 0) ||
      table->count > (image.size() - table->offset) / table->entsize) {
    return Truncated();
  }
  return Status::OK();
}

std::optional<Elf64_Shdr> ReadSection(const Image& image, const SectionTable& table,
                                      uint64_t index) {
  if (index >= table.count) return std::nullopt;
  return image.Read<Elf64_Shdr>(table.EntryOffset(index));
}

// The dynamic symbol table and its string table, as bounds-checked slices.
struct DynamicSymbols {
  std::string_view symbols;  // sh_entsize-sized entries
  uint64_t entsize = 0;
  std::string_view strings;
};

Status FindDynamicSymbols(const Image& image, const SectionTable& table, DynamicSymbols* out) {
  for (uint64_t i = 0; i < table.count; ++i) {
    auto shdr = ReadSection(image, table, i);
    if (!shdr) return Truncated();
    if (shdr->sh_type != SHT_DYNSYM) continue;
    auto strtab = ReadSection(image, table, shdr->sh_link);
    if (!strtab || strtab->sh_type != SHT_STRTAB) {
      return Invalid("malformed dynamic symbol table (bad string table link)");
    }
    if (shdr->sh_entsize < sizeof(Elf64_Sym)) {
      return Invalid("malformed dynamic symbol table (entry size " +
                     std::to_string(shdr->sh_entsize) + ")");
    }
    if (!image.Contains(shdr->sh_offset, shdr->sh_size) ||
        !image.Contains(strtab->sh_offset, strtab->sh_size)) {
      return Truncated();
    }
    out->symbols = image.Slice(shdr->sh_offset, shdr->sh_size);
    out->entsize = shdr->sh_entsize;
    out->strings = image.Slice(strtab->sh_offset, strtab->sh_size);
    return Status::OK();
  }
  return Invalid("has no dynamic symbol table");
}

// The NUL-terminated name at offset in the string table, or nullopt if the
// offset or the terminator lies outside it.
std::optional<std::string_view> SymbolName(std::string_view strings, uint32_t offset) {
  if (offset >= strings.size()) return std::nullopt;
  std::string_view rest = strings.substr(offset);
  size_t end = rest.find('\0');
  if (end == std::string_view::npos) return std::nullopt;
  return rest.substr(0, end);
}

// Why sym does not count as an exported function, or nullptr if it does.
const char* ExportProblem(const Elf64_Sym& sym) {
  if (sym.st_shndx == SHN_UNDEF) return "it is undefined";
  unsigned bind = ELF64_ST_BIND(sym.st_info);
  if (bind != STB_GLOBAL && bind != STB_WEAK) return "it is not global";
  if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC) return "it is not a function";
  unsigned visibility = ELF64_ST_VISIBILITY(sym.st_other);
  if (visibility != STV_DEFAULT && visibility != STV_PROTECTED) return "it is hidden";
  return nullptr;
}

// OK if the table holds name as an exported function. When only unusable
// entries of that name exist, the message says why the first one is unusable.
Status CheckExported(const DynamicSymbols& dyn, std::string_view name) {
  const char* problem = nullptr;
  uint64_t count = dyn.symbols.size() / dyn.entsize;
  for (uint64_t i = 0; i < count; ++i) {
    Elf64_Sym sym;
    std::memcpy(&sym, dyn.symbols.data() + i * dyn.entsize, sizeof(sym));
    auto sym_name = SymbolName(dyn.strings, sym.st_name);
    if (!sym_name || *sym_name != name) continue;
    const char* why = ExportProblem(sym);
    if (why == nullptr) return Status::OK();
    if (problem == nullptr) problem = why;
  }
  std::string msg = "does not export " + std::string(name);
  if (problem != nullptr) msg += std::string(" (") + problem + ")";
  return Invalid(msg);
}

Status ReadWholeFile(int fd, const std::string& path, uint64_t size, std::string* out) {
  out->resize(size);
  uint64_t done = 0;
  while (done < size) {
    ssize_t n = ::read(fd, out->data() + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("read " + path, errno);
    if (n == 0) break;  // the file shrank under us; validate what we have
    done += static_cast<uint64_t>(n);
  }
  out->resize(done);
  return Status::OK();
}

}  // namespace

Status ValidateSharedObject(std::string_view bytes) {
  Image image(bytes);
  WISP_RETURN_IF_ERROR(CheckIdent(image, bytes));
  Elf64_Ehdr ehdr = *image.Read<Elf64_Ehdr>(0);  // CheckIdent checked the size
  WISP_RETURN_IF_ERROR(CheckHeader(ehdr));
  SectionTable table;
  WISP_RETURN_IF_ERROR(FindSectionTable(image, ehdr, &table));
  DynamicSymbols dyn;
  WISP_RETURN_IF_ERROR(FindDynamicSymbols(image, table, &dyn));
  WISP_RETURN_IF_ERROR(CheckExported(dyn, "wisp_handle"));
  WISP_RETURN_IF_ERROR(CheckExported(dyn, "wisp_abi_version"));
  return Status::OK();
}

Status ValidateSharedObjectFile(const std::string& path) {
  // O_NONBLOCK so that opening a FIFO does not hang; it has no effect on the
  // regular files we go on to read.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return Status::NotFound(path + ": no such file");
    return Status::FromErrno("open " + path, err);
  }
  struct stat st;
  Status status;
  std::string bytes;
  if (::fstat(fd, &st) != 0) {
    status = Status::FromErrno("stat " + path, errno);
  } else if (!S_ISREG(st.st_mode)) {
    status = Status::InvalidArgument(path + ": not a regular file");
  } else if (static_cast<uint64_t>(st.st_size) > kMaxFileSize) {
    status = Status::InvalidArgument(path + ": " + std::to_string(st.st_size) +
                                     " bytes is over the 256 MiB limit");
  } else {
    status = ReadWholeFile(fd, path, static_cast<uint64_t>(st.st_size), &bytes);
  }
  ::close(fd);
  if (!status.ok()) return status;
  return ValidateSharedObject(bytes).WithContext(path);
}

}  // namespace wisp::loader
