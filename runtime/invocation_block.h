// The storage form of invocation records: each batch the invocation log
// writes becomes one row of table invocation_blocks (in records.db), its records one
// serialized records.InvocationBlock (runtime/proto/records.proto). One row
// per batch instead of one per record costs the writer a fifth as much CPU,
// which is what keeps recording off the hot path's CPUs.
//
// The row's columns beside the blob summarize it for reads and retention:
// seq (the first record's; record i has seq + i), count, the oldest and
// newest started_at_us, and functions, every function named in the block as
// "\n<name>\n..." so that a read for one function skips the blocks without
// it (instr(functions, FunctionsKey(name)) > 0).
//
// Threading: a writer belongs to one thread at a time; the functions are
// pure.
#ifndef WISP_RUNTIME_INVOCATION_BLOCK_H_
#define WISP_RUNTIME_INVOCATION_BLOCK_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "records.pb.h"
#include "runtime/base/status.h"
#include "runtime/invocation_record.h"

struct sqlite3;
struct sqlite3_stmt;

namespace wisp::runtime {

// Builds one block, oldest record first, in format 1 (records.proto). Reuse
// it across blocks: Clear keeps its buffers.
class InvocationBlockWriter {
 public:
  void Clear();
  // Appends r (its seq is ignored).
  void Add(const InvocationRecord& r);

  size_t count() const { return count_; }
  const std::string& blob() const { return blob_; }  // the serialized InvocationBlock
  int64_t oldest_us() const { return oldest_us_; }   // min started_at_us; 0 when empty
  int64_t newest_us() const { return newest_us_; }   // max started_at_us; 0 when empty
  const std::string& functions() const { return functions_; }

 private:
  records::StoredInvocation scratch_;
  std::string trace_;  // scratch for a trace id's bytes
  InvocationRecord previous_;  // function, version, trigger and started_at_us of the last Add
  std::string blob_;
  std::string functions_;
  std::vector<std::string> names_;  // the distinct functions, for functions_
  size_t count_ = 0;
  int64_t oldest_us_ = 0;
  int64_t newest_us_ = 0;
};

// The blocks live in their own database file, records.db next to wisp.db,
// attached to the connections that use them as "records". Its pages are
// 64 KiB: a block then fits in one page instead of a chain of 4 KiB
// overflow pages, and writing and deleting blocks costs the machine a
// sixteenth of the page writes (with 4 KiB pages recording slowed the
// loop thread by about 2 us a request; the small tables of wisp.db keep
// small pages, which its readers hold in memory).
inline constexpr const char* kInsertInvocationBlockSql =
    "INSERT INTO records.invocation_blocks (seq, count, oldest_us, newest_us, functions, records)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

// The path of records.db for the wisp.db at db_path.
std::string RecordsDbPath(const std::string& db_path);

// Attaches records.db (of the wisp.db at db_path) to db as "records",
// making it with its table if it is new. IOError with the sqlite message.
// Call it outside a transaction.
[[nodiscard]] Status AttachRecordsDb(sqlite3* db, const std::string& db_path);

// The most records one block holds.
inline constexpr size_t kMaxBlockRecords = 4096;

// Binds block, its first record's seq first_seq, to a statement of
// kInsertInvocationBlockSql. The statement reads block's buffers when it
// steps: keep block unchanged until then.
void BindInvocationBlock(sqlite3_stmt* insert, int64_t first_seq,
                         const InvocationBlockWriter& block);

// What the functions column holds for name: match with instr().
std::string FunctionsKey(std::string_view name);

// Appends the records of blob to *out, oldest first, with seq first_seq + i.
// Corruption (and *out unchanged) when blob does not parse as an
// InvocationBlock of count records, is of a format newer than 1, or holds a
// trace that is not 16 bytes.
[[nodiscard]] Status DecodeInvocationBlock(std::string_view blob, int64_t first_seq,
                                           int64_t count, std::vector<InvocationRecord>* out);

}  // namespace wisp::runtime

#endif  // WISP_RUNTIME_INVOCATION_BLOCK_H_
