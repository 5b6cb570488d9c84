#include "runtime/invocation_block.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <sqlite3.h>

#include <algorithm>
#include <climits>

#include "runtime/base/ascii.h"

namespace wisp::runtime {

using google::protobuf::io::CodedOutputStream;
using google::protobuf::internal::WireFormatLite;

constexpr uint32_t kBlockFormat = 1;

void InvocationBlockWriter::Clear() {
  blob_.clear();
  functions_.clear();
  names_.clear();
  count_ = 0;
  oldest_us_ = 0;
  newest_us_ = 0;
}

void InvocationBlockWriter::Add(const InvocationRecord& r) {
  if (count_ == 0) {
    // The block's field 2 (format) first; readers take it from anywhere.
    uint8_t format[1 + 5];
    uint8_t* end = CodedOutputStream::WriteTagToArray(
        WireFormatLite::MakeTag(records::InvocationBlock::kFormatFieldNumber,
                                WireFormatLite::WIRETYPE_VARINT),
        format);
    end = CodedOutputStream::WriteVarint32ToArray(kBlockFormat, end);
    blob_.append(reinterpret_cast<const char*>(format), static_cast<size_t>(end - format));
  }
  // One message reused for every record: its strings keep their capacity,
  // so a record costs no allocation once the first few are through.
  records::StoredInvocation& e = scratch_;
  e.Clear();
  e.set_id(r.id);
  if (count_ == 0 || r.function != previous_.function) {
    e.set_function(r.function);
    previous_.function = r.function;
  }
  if (count_ == 0 || r.version != previous_.version) {
    e.set_version(r.version);
    previous_.version = r.version;
  }
  if (count_ == 0 || r.trigger != previous_.trigger) {
    e.set_trigger(r.trigger);
    previous_.trigger = r.trigger;
  }
  const int64_t previous_started = count_ == 0 ? 0 : previous_.started_at_us;
  // Modular: no overflow whatever the two times are.
  e.set_started_at_delta_us(static_cast<int64_t>(static_cast<uint64_t>(r.started_at_us) -
                                                 static_cast<uint64_t>(previous_started)));
  previous_.started_at_us = r.started_at_us;
  e.set_duration_us(r.duration_us);
  e.set_cold(r.cold);
  e.set_status(r.status);
  e.set_error_code(r.error_code);
  e.set_error(r.error);
  trace_.clear();
  if (r.trace_id.view().size() == 32 && AppendLowerHexBytes(r.trace_id.view(), &trace_)) {
    e.set_trace(trace_);
  } else {
    e.set_trace_id(r.trace_id.view().data(), r.trace_id.view().size());
  }
  // The block's field 1 (records), one element: tag, length, message.
  const size_t size = e.ByteSizeLong();
  uint8_t head[1 + 5];  // a one-byte tag and a varint32 of at most 5 bytes
  uint8_t* end = CodedOutputStream::WriteTagToArray(
      WireFormatLite::MakeTag(records::InvocationBlock::kRecordsFieldNumber,
                              WireFormatLite::WIRETYPE_LENGTH_DELIMITED),
      head);
  end = CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(size), end);
  blob_.append(reinterpret_cast<const char*>(head), static_cast<size_t>(end - head));
  const size_t at = blob_.size();
  blob_.resize(at + size);
  e.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(blob_.data() + at));

  if (count_ == 0) {
    oldest_us_ = newest_us_ = r.started_at_us;
  } else {
    oldest_us_ = std::min(oldest_us_, r.started_at_us);
    newest_us_ = std::max(newest_us_, r.started_at_us);
  }
  ++count_;
  // Records of one function come in runs: the last name first.
  if (names_.empty() || names_.back() != r.function) {
    auto known = std::find(names_.begin(), names_.end(), r.function);
    if (known == names_.end()) {
      names_.push_back(r.function);
      if (functions_.empty()) functions_ = "\n";
      functions_ += r.function;
      functions_ += '\n';
    } else {
      std::rotate(known, known + 1, names_.end());  // now the last
    }
  }
}

void BindInvocationBlock(sqlite3_stmt* insert, int64_t first_seq,
                         const InvocationBlockWriter& block) {
  sqlite3_bind_int64(insert, 1, first_seq);
  sqlite3_bind_int64(insert, 2, static_cast<int64_t>(block.count()));
  sqlite3_bind_int64(insert, 3, block.oldest_us());
  sqlite3_bind_int64(insert, 4, block.newest_us());
  sqlite3_bind_text(insert, 5, block.functions().data(), static_cast<int>(block.functions().size()),
                    SQLITE_STATIC);
  sqlite3_bind_blob(insert, 6, block.blob().data(), static_cast<int>(block.blob().size()),
                    SQLITE_STATIC);
}

std::string RecordsDbPath(const std::string& db_path) {
  const size_t slash = db_path.rfind('/');
  return (slash == std::string::npos ? std::string() : db_path.substr(0, slash + 1)) + "records.db";
}

Status AttachRecordsDb(sqlite3* db, const std::string& db_path) {
  const std::string path = RecordsDbPath(db_path);
  auto fail = [&](const char* what, sqlite3* on) {
    return Status::IOError(std::string(what) + " " + path + ": " +
                           (on != nullptr ? sqlite3_errmsg(on) : "out of memory"));
  };
  {
    // ATTACH opens with the connection's flags, which do not create files:
    // a records.db that went missing is made here, empty.
    sqlite3* create = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &create,
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    Status s = rc == SQLITE_OK ? Status::OK() : fail("create", create);
    sqlite3_close_v2(create);
    WISP_RETURN_IF_ERROR(s);
  }
  sqlite3_stmt* attach = nullptr;
  if (sqlite3_prepare_v2(db, "ATTACH DATABASE ?1 AS records", -1, &attach, nullptr) != SQLITE_OK) {
    return fail("attach", db);
  }
  sqlite3_bind_text(attach, 1, path.c_str(), static_cast<int>(path.size()), SQLITE_TRANSIENT);
  const int rc = sqlite3_step(attach);
  sqlite3_finalize(attach);
  if (rc != SQLITE_DONE) return fail("attach", db);
  // page_size takes effect only on a new file, before WAL is set.
  if (sqlite3_exec(db, "PRAGMA records.page_size = 65536;", nullptr, nullptr, nullptr) !=
      SQLITE_OK) {
    return fail("configure", db);
  }
  {
    // journal_mode answers with the mode it is in, which is not an error.
    sqlite3_stmt* wal = nullptr;
    std::string mode;
    if (sqlite3_prepare_v2(db, "PRAGMA records.journal_mode = WAL", -1, &wal, nullptr) ==
            SQLITE_OK &&
        sqlite3_step(wal) == SQLITE_ROW && sqlite3_column_text(wal, 0) != nullptr) {
      mode = reinterpret_cast<const char*>(sqlite3_column_text(wal, 0));
    }
    sqlite3_finalize(wal);
    if (mode != "wal") {
      return Status::IOError("cannot put " + path + " in WAL mode (it is in '" + mode + "' mode)");
    }
  }
  if (sqlite3_exec(db,
                   "PRAGMA records.synchronous = NORMAL;"
                   "CREATE TABLE IF NOT EXISTS records.invocation_blocks ("
                   "  seq INTEGER PRIMARY KEY,"
                   "  count INTEGER NOT NULL,"
                   "  oldest_us INTEGER NOT NULL,"
                   "  newest_us INTEGER NOT NULL,"
                   "  functions TEXT NOT NULL,"
                   // No index: one would cost every commit another 64 KiB
                   // page; retention's scans, every 10 s, cost less.
                   "  records BLOB NOT NULL);",
                   nullptr, nullptr, nullptr) != SQLITE_OK) {
    return fail("make the tables of", db);
  }
  return Status::OK();
}

std::string FunctionsKey(std::string_view name) {
  std::string key;
  key.reserve(name.size() + 2);
  key += '\n';
  key += name;
  key += '\n';
  return key;
}

Status DecodeInvocationBlock(std::string_view blob, int64_t first_seq, int64_t count,
                             std::vector<InvocationRecord>* out) {
  records::InvocationBlock block;
  if (blob.size() > static_cast<size_t>(INT_MAX) ||
      !block.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
    return Status::Corruption("invocation block at seq " + std::to_string(first_seq) +
                              " does not parse (" + std::to_string(blob.size()) + " bytes)");
  }
  if (block.records_size() != count) {
    return Status::Corruption("invocation block at seq " + std::to_string(first_seq) + " holds " +
                              std::to_string(block.records_size()) + " records, its row says " +
                              std::to_string(count));
  }
  if (block.format() > kBlockFormat) {
    return Status::Corruption("invocation block at seq " + std::to_string(first_seq) +
                              " has format " + std::to_string(block.format()) +
                              ", newer than this wisp reads (" + std::to_string(kBlockFormat) +
                              ")");
  }
  const bool compact = block.format() == 1;
  out->reserve(out->size() + static_cast<size_t>(block.records_size()));
  int64_t seq = first_seq;
  const size_t first = out->size();
  std::string trace;
  for (records::StoredInvocation& e : *block.mutable_records()) {
    out->emplace_back();
    InvocationRecord& r = out->back();
    const InvocationRecord* previous = out->size() - 1 > first ? &(*out)[out->size() - 2] : nullptr;
    r.seq = seq++;
    r.id = std::move(*e.mutable_id());
    if (compact && previous != nullptr) {
      r.function = e.has_function() ? std::move(*e.mutable_function()) : previous->function;
      r.version = e.has_version() ? std::move(*e.mutable_version()) : previous->version;
      r.trigger = e.has_trigger() ? std::move(*e.mutable_trigger()) : previous->trigger;
    } else {
      r.function = std::move(*e.mutable_function());
      r.version = std::move(*e.mutable_version());
      r.trigger = std::move(*e.mutable_trigger());
    }
    r.started_at_us = !compact ? e.started_at_us()
                      : previous == nullptr
                          ? e.started_at_delta_us()
                          : static_cast<int64_t>(static_cast<uint64_t>(previous->started_at_us) +
                                                 static_cast<uint64_t>(e.started_at_delta_us()));
    r.duration_us = e.duration_us();
    r.cold = e.cold();
    r.status = e.status();
    r.error_code = std::move(*e.mutable_error_code());
    r.error = std::move(*e.mutable_error());
    if (compact && !e.trace().empty()) {
      if (e.trace().size() != 16) {
        out->resize(first);
        return Status::Corruption("invocation block at seq " + std::to_string(first_seq) +
                                  " holds a trace of " + std::to_string(e.trace().size()) +
                                  " bytes, not 16");
      }
      trace.clear();
      AppendLowerHex(e.trace(), &trace);
      r.trace_id.assign(trace);
    } else {
      r.trace_id.assign(e.trace_id());
    }
  }
  return Status::OK();
}

}  // namespace wisp::runtime
