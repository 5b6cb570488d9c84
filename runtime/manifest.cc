#include "runtime/manifest.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <set>

#include "runtime/deploy_params.h"
#include "runtime/duration.h"
#include "runtime/function_limits.h"
#include "runtime/schedule.h"
#include "triggers/broker.h"
#include "triggers/route.h"

namespace wisp::runtime {
namespace {

std::string Where(const Manifest& m, const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  return m.file + ":" + std::to_string(mark.line >= 0 ? mark.line + 1 : 0);
}

Status Bad(const Manifest& m, const YAML::Node& node, const std::string& field,
           const std::string& what) {
  return Status::InvalidArgument(Where(m, node) + ": " + field + ": " + what);
}

bool Scalar(const YAML::Node& node, std::string* out) {
  if (!node.IsScalar()) return false;
  *out = node.Scalar();
  return true;
}

Status ParseFunction(const Manifest& m, const YAML::Node& node, const std::string& field,
                     const std::string& base_dir, ManifestFunction* f) {
  if (!node.IsMap()) return Bad(m, node, field, "expected a mapping with name, path, ...");
  f->line = node.Mark().line + 1;
  std::set<std::string> seen;
  for (const auto& entry : node) {
    std::string key;
    if (!Scalar(entry.first, &key)) return Bad(m, entry.first, field, "keys must be plain words");
    const YAML::Node& value = entry.second;
    const std::string where = field + "." + key;
    if (!seen.insert(key).second) return Bad(m, entry.first, where, "given twice");
    std::string text;
    if (key == "subscribe") {
      std::vector<YAML::Node> items;
      if (value.IsSequence()) {
        for (const auto& item : value) items.push_back(item);
      } else {
        items.push_back(value);
      }
      for (const YAML::Node& item : items) {
        if (!Scalar(item, &text)) return Bad(m, item, where, "expected a subject");
        Status s = triggers::ValidateSubscribeSubject(text);
        if (!s.ok()) return Bad(m, item, where, s.message());
        f->subscribe.push_back(text);
      }
      continue;
    }
    if (key == "env") {
      if (!value.IsMap()) return Bad(m, value, where, "expected a mapping of KEY: value");
      for (const auto& pair : value) {
        std::string name;
        if (!Scalar(pair.first, &name) || !Scalar(pair.second, &text)) {
          return Bad(m, pair.first, where, "expected KEY: value with a plain value");
        }
        if (!f->env.emplace(name, text).second) {
          return Bad(m, pair.first, where + "." + name, "given twice");
        }
      }
      continue;
    }
    if (!Scalar(value, &text)) return Bad(m, value, where, "expected a single value");
    if (key == "name") {
      if (!triggers::IsValidFunctionName(text)) {
        return Bad(m, value, where, "'" + text + "' does not match ^[a-z0-9][a-z0-9_-]{0,62}$");
      }
      f->name = text;
    } else if (key == "path") {
      if (text.empty()) return Bad(m, value, where, "empty");
      f->path = text[0] == '/' ? text : base_dir + text;
    } else if (key == "durable") {
      if (text != "true" && text != "false") {
        return Bad(m, value, where, "expected true or false, got '" + text + "'");
      }
      f->durable = text == "true";
    } else if (key == "max_attempts") {
      uint32_t n = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (ec != std::errc() || end != text.data() + text.size() || n == 0 ||
          n > kMaxAttemptsLimit) {
        return Bad(m, value, where, "expected a number from 1 to " +
                                        std::to_string(kMaxAttemptsLimit) + ", got '" + text + "'");
      }
      f->max_attempts = n;
    } else if (key == "backoff" || key == "max_backoff") {
      uint64_t ms = 0;
      Status s = ParseDurationMs(text, &ms);
      if (!s.ok()) return Bad(m, value, where, s.message());
      if (ms == 0) return Bad(m, value, where, "must be above 0");
      (key == "backoff" ? f->backoff_ms : f->max_backoff_ms) = ms;
    } else if (key == "every") {
      uint64_t ms = 0;
      Status s = ParseDurationMs(text, &ms);
      if (!s.ok()) return Bad(m, value, where, s.message());
      if (ms < kMinEveryMs) return Bad(m, value, where, "must be at least 100ms");
      f->every_ms = ms;
    } else if (key == "cron") {
      StatusOr<CronExpr> expr = ParseCron(text);
      if (!expr.ok()) return Bad(m, value, where, expr.status().message());
      f->cron = text;
    } else if (key == "dead_letter") {
      Status s = triggers::ValidatePublishSubject(text);
      if (!s.ok()) return Bad(m, value, where, s.message());
      f->dead_letter = text;
    } else if (key == "timeout" || key == "idle") {
      uint64_t ms = 0;
      Status s = ParseDurationMs(text, &ms);
      if (!s.ok()) return Bad(m, value, where, s.message());
      if (key == "timeout" && ms == 0) return Bad(m, value, where, "must be above 0");
      (key == "timeout" ? f->timeout_ms : f->idle_ms) = ms;
    } else if (key == "max_workers") {
      uint32_t n = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (ec != std::errc() || end != text.data() + text.size() || n == 0 ||
          n > kMaxWorkersLimit) {
        return Bad(m, value, where, "expected a number from 1 to " + std::to_string(kMaxWorkersLimit) + ", got '" + text + "'");
      }
      f->max_workers = n;
    } else if (key == "version") {
      f->version = text;  // the controller checks semver
    } else if (key == "private") {
      if (text != "true" && text != "false") {
        return Bad(m, value, where, "expected true or false, got '" + text + "'");
      }
      f->is_private = text == "true";
    } else if (IsLimitKey(key)) {
      FunctionLimits checked;
      Status s = ApplyLimit(key, text, &checked);
      if (!s.ok()) return Bad(m, value, where, s.message());
      f->limits[key] = text;
    } else {
      return Bad(m, entry.first, where,
                 "unknown field (known: name, path, subscribe, timeout, idle, max_workers, "
                 "version, private, env, durable, max_attempts, backoff, max_backoff, "
                 "dead_letter, every, cron, " + std::string(kLimitKeys) + ")");
    }
  }
  if (f->path.empty()) return Bad(m, node, field + ".path", "missing: the function's .so file");
  if (f->name.empty()) {
    std::string stem = f->path.substr(f->path.rfind('/') + 1);
    if (stem.size() > 3 && stem.ends_with(".so")) stem.resize(stem.size() - 3);
    if (!triggers::IsValidFunctionName(stem)) {
      return Bad(m, node, field + ".name", "missing, and the file name '" + stem +
                                               "' is not a valid function name");
    }
    f->name = stem;
  }
  return Status::OK();
}

}  // namespace

Status ParseManifest(const std::string& text, const std::string& file, Manifest* out) {
  out->file = file;
  out->functions.clear();
  const size_t slash = file.rfind('/');
  const std::string base_dir = slash == std::string::npos ? "" : file.substr(0, slash + 1);
  YAML::Node root;
  // yaml-cpp reports errors by exception; they stop here.
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(file + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  try {
    if (!root.IsMap()) return Bad(*out, root, "(top)", "expected a mapping with 'functions'");
    for (const auto& entry : root) {
      std::string key;
      if (!Scalar(entry.first, &key) || key != "functions") {
        return Bad(*out, entry.first, key.empty() ? "(top)" : key, "unknown field (known: functions)");
      }
    }
    const YAML::Node functions = root["functions"];
    if (!functions.IsSequence() || functions.size() == 0) {
      return Bad(*out, functions, "functions", "expected a list of at least one function");
    }
    std::set<std::string> names;
    for (size_t i = 0; i < functions.size(); ++i) {
      ManifestFunction f;
      const std::string field = "functions[" + std::to_string(i) + "]";
      WISP_RETURN_IF_ERROR(ParseFunction(*out, functions[i], field, base_dir, &f));
      if (!names.insert(f.name).second) {
        return Bad(*out, functions[i], field + ".name", "'" + f.name + "' appears twice");
      }
      out->functions.push_back(std::move(f));
    }
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(file + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return Status::OK();
}

}  // namespace wisp::runtime
