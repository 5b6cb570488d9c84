// Checks a candidate function .so without running any of its code: used at
// deploy so a bad file is refused before it is stored.
// Pure functions; callable from any thread.
#ifndef WISP_LOADER_ELF_VALIDATOR_H_
#define WISP_LOADER_ELF_VALIDATOR_H_

#include <string>
#include <string_view>

#include "runtime/base/status.h"

namespace wisp::loader {

// Checks an in-memory image: ELF magic, 64-bit little-endian, this host's
// architecture, a shared object (ET_DYN), and the exported, defined function
// symbols wisp_abi_version and wisp_handle in its dynamic symbol table.
// Every offset is bounds-checked; arbitrary bytes get InvalidArgument with a
// message naming what is wrong ("not an ELF file", "built for aarch64, this
// host is x86_64", "does not export wisp_handle", ...).
Status ValidateSharedObject(std::string_view image);

// Reads path and validates it. Not a regular file, unreadable: InvalidArgument
// / IOError naming the path.
Status ValidateSharedObjectFile(const std::string& path);

}  // namespace wisp::loader

#endif  // WISP_LOADER_ELF_VALIDATOR_H_
