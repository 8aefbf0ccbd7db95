#include "attnspec/io/hub.h"

#include <cstdlib>
#include <fstream>
#include <regex>

namespace attnspec {

bool looks_like_hub_id(const std::string& s) {
  static const std::regex id(R"(^([A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*$)");
  return !s.empty() && s.size() < 200 && std::regex_match(s, id) && !std::filesystem::exists(s);
}

std::filesystem::path hub_cache_dir() {
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v && *v ? v : "";
  };
  if (auto v = env("HF_HUB_CACHE"); !v.empty()) return v;
  if (auto v = env("HF_HOME"); !v.empty()) return std::filesystem::path(v) / "hub";
  if (auto v = env("XDG_CACHE_HOME"); !v.empty()) return std::filesystem::path(v) / "huggingface" / "hub";
  return std::filesystem::path(env("HOME")) / ".cache" / "huggingface" / "hub";
}

std::filesystem::path find_in_hub_cache(const std::string& repo_id, const std::string& revision) {
  namespace fs = std::filesystem;
  // huggingface_hub's layout: models--{org}--{name}/refs/{branch} holds the commit of the
  // snapshot folder models--{org}--{name}/snapshots/{commit}/.
  std::string folder = "models--" + repo_id;
  for (size_t at; (at = folder.find('/')) != std::string::npos;) folder.replace(at, 1, "--");
  const fs::path repo = hub_cache_dir() / folder;
  std::string commit = revision;
  if (std::ifstream ref(repo / "refs" / revision); ref) std::getline(ref, commit);
  const fs::path snapshot = repo / "snapshots" / commit;
  std::error_code ec;
  return fs::exists(snapshot / "config.json", ec) ? snapshot : fs::path();
}

}  // namespace attnspec
