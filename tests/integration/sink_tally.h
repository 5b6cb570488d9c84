// What a sink function's journal (one event id per line) holds after a
// crash test: read until every id arrived or a deadline passed.
#ifndef WISP_TESTS_INTEGRATION_SINK_TALLY_H_
#define WISP_TESTS_INTEGRATION_SINK_TALLY_H_

#include <chrono>
#include <fstream>
#include <map>
#include <string>
#include <thread>

namespace wisp::testing {

// How often each line appears in the file at path (empty if none).
inline std::map<std::string, int> CountLines(const std::string& path) {
  std::map<std::string, int> counts;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) ++counts[line];
  return counts;
}

struct SinkTally {
  std::map<std::string, int> seen;  // line -> times
  int missing = 0;                  // of the ids <prefix>0 .. <prefix>(events - 1)
  std::string first_missing;
  int duplicates = 0;               // lines beyond each id's first
};

// Polls path every 200 ms until it holds events distinct lines or timeout
// passed, then counts the ids prefix + 0 .. events - 1 it lacks and the
// repeated lines.
inline SinkTally WaitForSink(const std::string& path, int events, const std::string& prefix,
                             std::chrono::seconds timeout) {
  SinkTally tally;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    tally.seen = CountLines(path);
    if (tally.seen.size() >= static_cast<size_t>(events)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (int i = 0; i < events; ++i) {
    if (tally.seen.count(prefix + std::to_string(i)) == 0 && tally.missing++ == 0) {
      tally.first_missing = prefix + std::to_string(i);
    }
  }
  for (const auto& [id, count] : tally.seen) tally.duplicates += count - 1;
  return tally;
}

}  // namespace wisp::testing

#endif  // WISP_TESTS_INTEGRATION_SINK_TALLY_H_
