#include "attnspec/io/hub.h"

#include <curl/curl.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "attnspec/common/error.h"

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

// ---- Download (libcurl): the hub's revision API for the file list, then each file --------------

namespace attnspec {
namespace {

struct Curl {
  CURL* handle = curl_easy_init();
  curl_slist* headers = nullptr;
  ~Curl() {
    curl_slist_free_all(headers);
    if (handle) curl_easy_cleanup(handle);
  }
};

size_t append_to_string(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

size_t append_to_file(char* data, size_t size, size_t count, void* out) {
  return std::fwrite(data, size, count, static_cast<std::FILE*>(out)) * size;
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// GET `url` into `sink` (a std::string or a FILE), following redirects (LFS files live on a CDN).
// Returns "" on success, else why it failed.
std::string http_get(const std::string& url, void* sink, bool to_file) {
  Curl c;
  if (!c.handle) return "libcurl could not start";
  if (const std::string token = env_or("HF_TOKEN", ""); !token.empty())
    c.headers = curl_slist_append(c.headers, ("Authorization: Bearer " + token).c_str());
  curl_easy_setopt(c.handle, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.handle, CURLOPT_HTTPHEADER, c.headers);
  curl_easy_setopt(c.handle, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c.handle, CURLOPT_USERAGENT, "attnspec/" ATTNSPEC_VERSION);
  curl_easy_setopt(c.handle, CURLOPT_CONNECTTIMEOUT, 20L);
  curl_easy_setopt(c.handle, CURLOPT_LOW_SPEED_LIMIT, 1L);  // a stalled transfer ends after a minute
  curl_easy_setopt(c.handle, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c.handle, CURLOPT_WRITEFUNCTION, to_file ? append_to_file : append_to_string);
  curl_easy_setopt(c.handle, CURLOPT_WRITEDATA, sink);
  if (const CURLcode rc = curl_easy_perform(c.handle); rc != CURLE_OK) return curl_easy_strerror(rc);
  long status = 0;
  curl_easy_getinfo(c.handle, CURLINFO_RESPONSE_CODE, &status);
  if (status == 401 || status == 403) return "HTTP " + std::to_string(status) + ": gated or private (set HF_TOKEN)";
  if (status == 404) return "HTTP 404: no such repository or file";
  if (status != 200) return "HTTP " + std::to_string(status);
  return "";
}

// The files of a snapshot attnspec reads: configs and tokenizers, weights, vocabularies.
bool wanted(const std::string& name) {
  auto ends = [&](const std::string& s) { return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0; };
  return name.find('/') == std::string::npos &&
         (ends(".json") || ends(".safetensors") || ends(".txt") || name == "tokenizer.model");
}

// Downloads repo_id at `revision` into the hub cache; returns the snapshot folder, or throws
// InputError starting with `how`.
std::filesystem::path download(const std::string& repo_id, const std::string& revision, const std::string& how) {
  namespace fs = std::filesystem;
  const std::string endpoint = env_or("HF_ENDPOINT", "https://huggingface.co");
  auto fail = [&](const std::string& why) { throw InputError(how + " (the download failed: " + why + ")"); };
  std::string listing;
  if (auto why = http_get(endpoint + "/api/models/" + repo_id + "/revision/" + revision, &listing, false); !why.empty())
    fail(why);
  const auto info = nlohmann::json::parse(listing, nullptr, false);
  if (!info.is_object() || !info.contains("sha") || !info["sha"].is_string() || !info.contains("siblings"))
    fail("the hub's answer for " + repo_id + " is not a model description");
  const std::string commit = info["sha"];
  std::string folder = "models--" + repo_id;
  for (size_t at; (at = folder.find('/')) != std::string::npos;) folder.replace(at, 1, "--");
  const fs::path repo = hub_cache_dir() / folder, snapshot = repo / "snapshots" / commit;
  std::error_code ec;
  fs::create_directories(snapshot, ec);
  fs::create_directories(repo / "refs", ec);
  if (ec) fail("cannot create " + snapshot.string() + ": " + ec.message());
  for (const auto& sibling : info["siblings"]) {
    const std::string name = sibling.value("rfilename", "");
    if (!wanted(name) || fs::exists(snapshot / name)) continue;
    // Written beside the snapshot and renamed: an interrupted download leaves no half file.
    const fs::path part = snapshot / (name + ".part");
    std::FILE* f = std::fopen(part.c_str(), "wb");
    if (!f) fail("cannot write " + part.string());
    const std::string why = http_get(endpoint + "/" + repo_id + "/resolve/" + commit + "/" + name, f, true);
    const bool closed = std::fclose(f) == 0;
    if (!why.empty() || !closed) {
      fs::remove(part, ec);
      fail(name + ": " + (why.empty() ? "write error" : why));
    }
    fs::rename(part, snapshot / name, ec);
    if (ec) fail("cannot write " + (snapshot / name).string() + ": " + ec.message());
  }
  std::ofstream(repo / "refs" / revision) << commit;
  if (!fs::exists(snapshot / "config.json")) fail(repo_id + " has no config.json");
  return snapshot;
}

}  // namespace

std::filesystem::path resolve_model(const std::string& arg) {
  if (std::filesystem::exists(arg) || !looks_like_hub_id(arg)) return arg;  // a path (errors come later)
  if (auto cached = find_in_hub_cache(arg); !cached.empty()) return cached;
  const std::string how = "'" + arg + "' is not a folder and the Hugging Face cache (" + hub_cache_dir().string() +
                          ") does not hold it; download it with `huggingface-cli download " + arg +
                          " --include config.json '*.safetensors' '*.json' '*.txt' tokenizer.model` on a machine "
                          "that is online, or pass a checkpoint folder";
  if (const std::string offline = env_or("HF_HUB_OFFLINE", ""); !offline.empty() && offline != "0")
    throw InputError(how + " (HF_HUB_OFFLINE is set)");
  return download(arg, "main", how);
}

}  // namespace attnspec
