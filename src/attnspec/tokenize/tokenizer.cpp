// Loading a checkpoint's tokenizer files and running the `tokenizers` pipeline: added tokens,
// normalizer, added tokens on normalized text, pre-tokenizer, BPE or WordPiece model.
#include "attnspec/tokenize/tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "attnspec/common/error.h"
#include "attnspec/tokenize/added_tokens.h"
#include "attnspec/tokenize/bpe.h"
#include "attnspec/tokenize/file_tokenizers.h"
#include "attnspec/tokenize/pipeline.h"
#include "attnspec/tokenize/text.h"
#include "attnspec/tokenize/unicode.h"
#include "attnspec/tokenize/wordpiece.h"

namespace attnspec {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(path.string(), "cannot open the file");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

json parse_json_file(const fs::path& path) {
  const std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw input_error(path.string(), std::string("malformed JSON: ") + e.what());
  }
}

void check_text(std::string_view text) {
  // The regex engine and the BPE model rely on valid UTF-8.
  if (const size_t bad = unicode::first_invalid_utf8(text); bad != std::string::npos)
    throw InputError("text to tokenize: invalid UTF-8 at byte offset " + std::to_string(bad));
}

// The pipeline of a tokenizer.json (or of GPT-2's vocab.json + merges.txt).
class PipelineTokenizer final : public Tokenizer {
 public:
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<BpeModel> model;             // one of these two
  std::unique_ptr<WordPieceModel> wordpiece;
  AddedTokenMatcher raw_tokens;         // matched in the text as given
  AddedTokenMatcher normalized_tokens;  // matched in the normalized text
  std::vector<int32_t> prefix, suffix;
  std::string description;

  std::vector<int32_t> encode(std::string_view text) const override {
    check_text(text);
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 16);
    WordCache cache;
    std::vector<Piece> pieces;
    for (const auto& segment : raw_tokens.split(text)) {
      if (segment.id >= 0) {
        ids.push_back(segment.id);
        continue;
      }
      std::string normalized(text.substr(segment.begin, segment.end - segment.begin));
      if (normalizer) normalizer->normalize(normalized);
      const bool at_start = segment.begin == 0;
      if (normalized_tokens.empty()) {
        encode_plain(std::move(normalized), at_start, ids, cache, pieces);
        continue;
      }
      for (const auto& sub : normalized_tokens.split(normalized)) {
        if (sub.id >= 0) ids.push_back(sub.id);
        else
          encode_plain(normalized.substr(sub.begin, sub.end - sub.begin), at_start && sub.begin == 0,
                       ids, cache, pieces);
      }
    }
    return ids;
  }

  const std::vector<int32_t>& prefix_special() const override { return prefix; }
  const std::vector<int32_t>& suffix_special() const override { return suffix; }
  std::string describe() const override { return description; }

 private:
  void encode_plain(std::string text, bool at_start, std::vector<int32_t>& ids, WordCache& cache,
                    std::vector<Piece>& pieces) const {
    if (text.empty()) return;
    pieces.clear();
    pieces.push_back({std::move(text), at_start});
    if (pre_tokenizer) pre_tokenizer->split(pieces);
    if (wordpiece)
      for (const Piece& piece : pieces) wordpiece->tokenize(piece.text, ids, cache);
    else
      for (const Piece& piece : pieces) model->tokenize(piece.text, ids, cache);
  }

 public:
  std::optional<int32_t> model_token_id(std::string_view token) const {
    return wordpiece ? wordpiece->token_id(token) : model->token_id(token);
  }
  const Vocab& model_vocab() const { return wordpiece ? wordpiece->vocab() : model->vocab(); }
};

class SentencePieceTokenizer final : public Tokenizer {
 public:
  sentencepiece::SentencePieceProcessor processor;
  std::vector<int32_t> prefix, suffix;
  std::string description;

  std::vector<int32_t> encode(std::string_view text) const override {
    check_text(text);
    std::vector<int> ids;
    const auto status = processor.Encode(absl::string_view(text.data(), text.size()), &ids);
    if (!status.ok()) throw std::runtime_error("sentencepiece: " + status.ToString());
    return {ids.begin(), ids.end()};
  }
  const std::vector<int32_t>& prefix_special() const override { return prefix; }
  const std::vector<int32_t>& suffix_special() const override { return suffix; }
  std::string describe() const override { return description; }
};

// tokenizer_config.json beside the tokenizer files, or an empty object.
json read_config(const fs::path& dir) {
  const fs::path path = dir / "tokenizer_config.json";
  if (!fs::exists(path)) return json::object();
  json config = parse_json_file(path);
  if (!config.is_object()) throw input_error(path.string(), "expected a JSON object");
  return config;
}

// A special token named in tokenizer_config.json: a string or {"content": ...}.
std::optional<std::string> config_token(const json& config, const char* key) {
  if (!config.contains(key)) return std::nullopt;
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return std::nullopt;
}

std::vector<AddedToken> parse_added_tokens(const json& list, const std::string& path) {
  std::vector<AddedToken> tokens;
  if (list.is_null()) return tokens;
  if (!list.is_array()) throw input_error(path, "'added_tokens' is not a list");
  for (const json& t : list) {
    if (!t.is_object() || !t.contains("content") || !t["content"].is_string() || !t.contains("id") ||
        !t["id"].is_number_integer())
      throw input_error(path, "an entry of 'added_tokens' lacks its content or id");
    AddedToken token;
    token.content = t["content"].get<std::string>();
    token.id = t["id"].get<int32_t>();
    token.special = t.value("special", false);
    token.normalized = t.value("normalized", !token.special);
    token.lstrip = t.value("lstrip", false);
    token.rstrip = t.value("rstrip", false);
    token.single_word = t.value("single_word", false);
    tokens.push_back(std::move(token));
  }
  return tokens;
}

void build_added_matchers(PipelineTokenizer& tok, const std::vector<AddedToken>& added) {
  std::vector<AddedToken> raw, normalized;
  std::vector<std::string> raw_patterns, normalized_patterns;
  // `tokenizers` searches special tokens first, then the others; with leftmost-longest
  // matching the order only matters for identical contents.
  for (bool special : {true, false}) {
    for (const AddedToken& t : added) {
      if (t.special != special || t.content.empty()) continue;
      if (t.normalized) {
        std::string pattern = t.content;
        if (tok.normalizer) tok.normalizer->normalize(pattern);
        normalized.push_back(t);
        normalized_patterns.push_back(std::move(pattern));
      } else {
        raw.push_back(t);
        raw_patterns.push_back(t.content);
      }
    }
  }
  tok.raw_tokens = AddedTokenMatcher(std::move(raw), raw_patterns);
  tok.normalized_tokens = AddedTokenMatcher(std::move(normalized), normalized_patterns);
}

int32_t token_id_by_name(const PipelineTokenizer& tok, const std::vector<AddedToken>& added,
                         const std::string& name, const std::string& path) {
  for (const AddedToken& t : added)
    if (t.content == name) return t.id;
  if (auto id = tok.model_token_id(name)) return *id;
  throw input_error(path, "special token '" + name + "' is not in the vocabulary");
}

// What the post-processor puts around a single sequence, outermost processor last.
void parse_post_processor(const json& j, const std::string& path, std::vector<int32_t>& prefix,
                          std::vector<int32_t>& suffix) {
  const std::string type = j.value("type", std::string());
  if (type == "ByteLevel") return;
  if (type == "Sequence") {
    for (const json& p : j.value("processors", json::array())) parse_post_processor(p, path, prefix, suffix);
    return;
  }
  if (type == "TemplateProcessing") {
    const json& single = j.value("single", json::array());
    const json& specials = j.value("special_tokens", json::object());
    std::vector<int32_t> before, after;
    bool seen_sequence = false;
    for (const json& item : single) {
      if (item.contains("Sequence")) {
        seen_sequence = true;
        continue;
      }
      if (!item.contains("SpecialToken"))
        throw input_error(path, "TemplateProcessing item is neither a SpecialToken nor a Sequence");
      const std::string name = item["SpecialToken"].value("id", std::string());
      if (!specials.contains(name) || !specials[name].contains("ids"))
        throw input_error(path, "TemplateProcessing names the special token '" + name +
                                    "', which its special_tokens do not define");
      for (const json& id : specials[name]["ids"]) (seen_sequence ? after : before).push_back(id.get<int32_t>());
    }
    prefix.insert(prefix.begin(), before.begin(), before.end());
    suffix.insert(suffix.end(), after.begin(), after.end());
    return;
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    auto id_of = [&](const char* key) {
      if (!j.contains(key) || !j[key].is_array() || j[key].size() != 2)
        throw input_error(path, type + " lacks its '" + key + "' token");
      return j[key][1].get<int32_t>();
    };
    prefix.insert(prefix.begin(), id_of("cls"));
    suffix.push_back(id_of("sep"));
    return;
  }
  throw input_error(path, "unsupported post-processor type '" + type +
                              "' (supported: TemplateProcessing, Sequence, ByteLevel, "
                              "BertProcessing, RobertaProcessing)");
}

// BOS/EOS from tokenizer_config.json, for files whose tokenizer.json has no post-processor.
void specials_from_config(const json& config, const fs::path& dir,
                          const std::function<int32_t(const std::string&)>& id_of, bool bos_default,
                          std::vector<int32_t>& prefix, std::vector<int32_t>& suffix) {
  const std::string path = (dir / "tokenizer_config.json").string();
  auto flag = [&](const char* key, bool fallback) {
    if (!config.contains(key) || config[key].is_null()) return fallback;
    if (!config[key].is_boolean()) throw input_error(path, std::string("'") + key + "' is not a boolean");
    return config[key].get<bool>();
  };
  if (flag("add_bos_token", bos_default)) {
    if (auto bos = config_token(config, "bos_token")) prefix.push_back(id_of(*bos));
    else if (config.contains("add_bos_token"))
      throw input_error(path, "add_bos_token is true but bos_token is not set");
  }
  if (flag("add_eos_token", false)) {
    if (auto eos = config_token(config, "eos_token")) suffix.push_back(id_of(*eos));
    else throw input_error(path, "add_eos_token is true but eos_token is not set");
  }
}

std::vector<std::pair<std::string, std::string>> parse_merges(const json& list, const Vocab& vocab,
                                                              const std::string& path) {
  std::vector<std::pair<std::string, std::string>> merges;
  if (!list.is_array()) throw input_error(path, "the BPE model's 'merges' is not a list");
  merges.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const json& m = list[i];
    if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      continue;
    }
    if (!m.is_string()) throw input_error(path, "merge " + std::to_string(i + 1) + " is neither \"a b\" nor [\"a\", \"b\"]");
    const std::string& s = m.get_ref<const std::string&>();
    // "a b": split at the first space; if a token itself holds spaces, at the space that
    // leaves two vocabulary tokens.
    size_t split = s.find(' ');
    const bool ambiguous = split != std::string::npos && s.find(' ', split + 1) != std::string::npos;
    for (size_t at = split; ambiguous && at != std::string::npos; at = s.find(' ', at + 1)) {
      if (vocab.contains(std::string_view(s).substr(0, at)) && vocab.contains(std::string_view(s).substr(at + 1))) {
        split = at;
        break;
      }
    }
    if (split == std::string::npos)
      throw input_error(path, "merge " + std::to_string(i + 1) + " '" + s + "' is not two tokens separated by a space");
    merges.emplace_back(s.substr(0, split), s.substr(split + 1));
  }
  return merges;
}

Vocab parse_vocab(const json& j, const std::string& path) {
  if (!j.is_object()) throw input_error(path, "the BPE vocabulary is not a JSON object");
  Vocab vocab;
  vocab.reserve(j.size());
  for (const auto& [token, id] : j.items()) {
    if (!id.is_number_integer()) throw input_error(path, "the id of token '" + token + "' is not an integer");
    vocab.emplace(token, id.get<int32_t>());
  }
  return vocab;
}

size_t vocab_size(const Vocab& vocab, const std::vector<AddedToken>& added) {
  int32_t top = -1;
  for (const auto& [token, id] : vocab) top = std::max(top, id);
  for (const AddedToken& t : added) top = std::max(top, t.id);
  return static_cast<size_t>(top + 1);
}

// The normalizer, pre-tokenizer and added tokens of a tokenizer.json object (the model is the caller's).
void load_parts(PipelineTokenizer& tok, const json& j, const std::string& path, std::vector<AddedToken>& added) {
  tok.normalizer = make_normalizer(j.value("normalizer", json()), path);
  tok.pre_tokenizer = make_pre_tokenizer(j.value("pre_tokenizer", json()), path);
  added = parse_added_tokens(j.value("added_tokens", json()), path);
  build_added_matchers(tok, added);
}

// The post-processor (or, without one, BOS/EOS from tokenizer_config.json), then the size in the
// description.
void load_specials(PipelineTokenizer& tok, const json& j, const fs::path& dir, const std::string& path,
                   const std::vector<AddedToken>& added) {
  const json& post = j.value("post_processor", json());
  if (!post.is_null()) {
    parse_post_processor(post, path, tok.prefix, tok.suffix);
  } else {
    const json config = read_config(dir);
    specials_from_config(config, dir, [&](const std::string& name) {
      return token_id_by_name(tok, added, name, (dir / "tokenizer_config.json").string());
    }, false, tok.prefix, tok.suffix);
  }
  tok.description += ", " + std::to_string(vocab_size(tok.model_vocab(), added)) + " tokens (tokenizer.json)";
}

// The BPE model, normalizer, pre-tokenizer and added tokens of a tokenizer.json object.
std::unique_ptr<PipelineTokenizer> build_pipeline(const json& j, const std::string& path, std::vector<AddedToken>& added) {
  if (!j.is_object()) throw input_error(path, "expected a JSON object");
  if (!j.contains("model") || !j["model"].is_object()) throw input_error(path, "no 'model' object");
  const json& m = j["model"];
  const std::string type = m.value("type", std::string(m.contains("merges") ? "BPE" : ""));
  if (type != "BPE")
    throw input_error(path, "unsupported model type '" + type + "' (supported: BPE, WordPiece)");
  if (!m.contains("vocab") || !m.contains("merges"))
    throw input_error(path, "the BPE model lacks 'vocab' or 'merges'");

  auto tok = std::make_unique<PipelineTokenizer>();
  Vocab vocab = parse_vocab(m["vocab"], path);
  const auto merges = parse_merges(m["merges"], vocab, path);
  BpeOptions options;
  auto optional_string = [&](const char* key) {
    return m.contains(key) && m[key].is_string() ? m[key].get<std::string>() : std::string();
  };
  if (m.contains("unk_token") && m["unk_token"].is_string()) options.unk_token = m["unk_token"].get<std::string>();
  options.fuse_unk = m.value("fuse_unk", false);
  options.byte_fallback = m.value("byte_fallback", false);
  options.ignore_merges = m.value("ignore_merges", false);
  options.continuing_subword_prefix = optional_string("continuing_subword_prefix");
  options.end_of_word_suffix = optional_string("end_of_word_suffix");
  tok->model = std::make_unique<BpeModel>(std::move(vocab), merges, options, path);
  load_parts(*tok, j, path, added);
  const bool byte_level = tok->pre_tokenizer && is_byte_level(*tok->pre_tokenizer);
  tok->description = byte_level ? "byte-level BPE"
                     : options.byte_fallback ? "SentencePiece-style BPE with byte fallback"
                                             : "BPE";
  return tok;
}

// BERT's WordPiece: {"type": "WordPiece", "vocab", "unk_token", "continuing_subword_prefix",
// "max_input_chars_per_word"}. Truncation and padding settings are ignored: attnspec cuts its
// own windows.
std::unique_ptr<Tokenizer> load_wordpiece_json(const fs::path& dir, const json& j) {
  const std::string path = (dir / "tokenizer.json").string();
  const json& m = j["model"];
  if (!m.contains("vocab")) throw input_error(path, "the WordPiece model lacks 'vocab'");
  WordPieceOptions options;
  if (m.contains("unk_token") && !m["unk_token"].is_null()) options.unk_token = m["unk_token"].get<std::string>();
  if (m.contains("continuing_subword_prefix") && !m["continuing_subword_prefix"].is_null())
    options.continuing_subword_prefix = m["continuing_subword_prefix"].get<std::string>();
  if (m.contains("max_input_chars_per_word") && !m["max_input_chars_per_word"].is_null()) {
    if (!m["max_input_chars_per_word"].is_number_unsigned())
      throw input_error(path, "the WordPiece model's 'max_input_chars_per_word' is not a non-negative integer");
    options.max_input_chars_per_word = m["max_input_chars_per_word"].get<size_t>();
  }
  auto tok = std::make_unique<PipelineTokenizer>();
  tok->wordpiece = std::make_unique<WordPieceModel>(parse_vocab(m["vocab"], path), std::move(options), path);
  tok->description = "WordPiece";
  std::vector<AddedToken> added;
  load_parts(*tok, j, path, added);
  load_specials(*tok, j, dir, path, added);
  return tok;
}

std::unique_ptr<Tokenizer> load_tokenizer_json(const fs::path& dir) {
  const fs::path file = dir / "tokenizer.json";
  const std::string path = file.string();
  const json j = parse_json_file(file);
  if (j.is_object() && j.contains("model") && j["model"].is_object() && j["model"].value("type", std::string()) == "WordPiece")
    return load_wordpiece_json(dir, j);
  std::vector<AddedToken> added;
  auto tok = build_pipeline(j, path, added);
  load_specials(*tok, j, dir, path, added);
  return tok;
}

std::unique_ptr<Tokenizer> load_gpt2_files(const fs::path& dir) {
  const fs::path vocab_file = dir / "vocab.json";
  const fs::path merges_file = dir / "merges.txt";
  const json vocab_json = parse_json_file(vocab_file);
  Vocab vocab = parse_vocab(vocab_json, vocab_file.string());

  std::vector<std::pair<std::string, std::string>> merges;
  std::istringstream lines(read_file(merges_file));
  std::string line;
  for (size_t number = 1; std::getline(lines, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.starts_with("#version")) continue;
    if (line.empty() && lines.peek() == EOF) break;
    const size_t space = line.find(' ');
    if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
      throw input_error(merges_file.string(), "line " + std::to_string(number) + " is not two tokens separated by a space");
    merges.emplace_back(line.substr(0, space), line.substr(space + 1));
  }

  auto tok = std::make_unique<PipelineTokenizer>();
  std::vector<AddedToken> added;
  if (auto it = vocab.find(std::string_view("<|endoftext|>")); it != vocab.end())
    added.push_back({"<|endoftext|>", it->second, true, false, false, false, false});
  tok->model = std::make_unique<BpeModel>(std::move(vocab), merges, BpeOptions{}, merges_file.string());
  tok->pre_tokenizer = make_gpt2_pre_tokenizer();
  build_added_matchers(*tok, added);
  tok->description = "byte-level BPE, " + std::to_string(vocab_size(tok->model_vocab(), added)) +
                     " tokens (vocab.json + merges.txt)";
  return tok;
}

std::unique_ptr<Tokenizer> load_sentencepiece(const fs::path& dir) {
  const fs::path file = dir / "tokenizer.model";
  auto tok = std::make_unique<SentencePieceTokenizer>();
  const auto status = tok->processor.Load(file.string());
  if (!status.ok()) throw input_error(file.string(), "not a SentencePiece model: " + status.ToString());
  const json config = read_config(dir);
  const std::string config_path = (dir / "tokenizer_config.json").string();
  auto id_of = [&](const std::string& name) {
    const int id = tok->processor.PieceToId(name);
    if (id < 0 || tok->processor.IdToPiece(id) != name)
      throw input_error(config_path, "special token '" + name + "' is not in " + file.string());
    return static_cast<int32_t>(id);
  };
  // Llama/Mistral SentencePiece tokenizers add BOS unless told not to; the model's own BOS
  // stands in when the config names none.
  json effective = config;
  if (!config_token(config, "bos_token") && tok->processor.bos_id() >= 0)
    effective["bos_token"] = tok->processor.IdToPiece(tok->processor.bos_id());
  if (!config_token(config, "eos_token") && tok->processor.eos_id() >= 0)
    effective["eos_token"] = tok->processor.IdToPiece(tok->processor.eos_id());
  if (tok->processor.bos_id() < 0 && !config.contains("add_bos_token")) effective["add_bos_token"] = false;
  specials_from_config(effective, dir, id_of, true, tok->prefix, tok->suffix);
  tok->description = std::string("SentencePiece model, ") +
                     std::to_string(tok->processor.GetPieceSize()) + " tokens (tokenizer.model)";
  return tok;
}

// A BERT folder with vocab.txt and no tokenizer.json: the pipeline `transformers` builds for
// BertTokenizer from tokenizer_config.json (do_lower_case, tokenize_chinese_chars, strip_accents;
// BertNormalizer, BertPreTokenizer, WordPiece with "##" and 100 characters, [CLS] ... [SEP]).
std::unique_ptr<Tokenizer> load_vocab_txt(const fs::path& dir) {
  const fs::path file = dir / "vocab.txt";
  const std::string path = file.string();
  const json config = read_config(dir);
  const std::string config_path = (dir / "tokenizer_config.json").string();
  auto flag = [&](const char* key, bool fallback) {
    if (!config.contains(key) || config[key].is_null()) return fallback;
    if (!config[key].is_boolean()) throw input_error(config_path, std::string("'") + key + "' is not a boolean");
    return config[key].get<bool>();
  };
  auto name = [&](const char* key, const char* fallback) { return config_token(config, key).value_or(fallback); };
  const bool lowercase = flag("do_lower_case", true);
  json description = {{"type", "BertNormalizer"},
                      {"clean_text", true},
                      {"handle_chinese_chars", flag("tokenize_chinese_chars", true)},
                      {"strip_accents", flag("strip_accents", lowercase)},
                      {"lowercase", lowercase}};
  auto tok = std::make_unique<PipelineTokenizer>();
  tok->normalizer = make_normalizer(description, config_path);
  tok->pre_tokenizer = make_pre_tokenizer(json{{"type", "BertPreTokenizer"}}, path);
  WordPieceOptions options;
  options.unk_token = name("unk_token", "[UNK]");
  Vocab vocab = parse_vocab_txt(read_file(file));
  if (vocab.empty()) throw input_error(path, "holds no tokens");
  tok->wordpiece = std::make_unique<WordPieceModel>(std::move(vocab), options, path);
  // The special tokens that are in the vocabulary are matched whole in the raw text.
  std::vector<AddedToken> added;
  const std::pair<const char*, const char*> specials[] = {
      {"pad_token", "[PAD]"}, {"unk_token", "[UNK]"}, {"cls_token", "[CLS]"}, {"sep_token", "[SEP]"}, {"mask_token", "[MASK]"}};
  for (const auto& [key, fallback] : specials) {
    const std::string content = name(key, fallback);
    if (auto id = tok->wordpiece->token_id(content)) added.push_back({content, *id, true, false, false, false, false});
  }
  build_added_matchers(*tok, added);
  for (auto [key, fallback, list] : {std::tuple{"cls_token", "[CLS]", &tok->prefix}, {"sep_token", "[SEP]", &tok->suffix}}) {
    const std::string content = name(key, fallback);
    const auto id = tok->wordpiece->token_id(content);
    if (!id) throw input_error(path, std::string(key) + " '" + content + "' is not in the vocabulary");
    list->push_back(*id);
  }
  tok->description = "WordPiece, " + std::to_string(vocab_size(tok->model_vocab(), added)) + " tokens (vocab.txt)";
  return tok;
}

}  // namespace

std::unique_ptr<Tokenizer> bpe_tokenizer_from_json(const json& tokenizer_json, const std::string& where,
                                                   std::vector<int32_t> prefix, std::vector<int32_t> suffix,
                                                   const std::string& description) {
  try {
    std::vector<AddedToken> added;
    auto tok = build_pipeline(tokenizer_json, where, added);
    tok->prefix = std::move(prefix);
    tok->suffix = std::move(suffix);
    tok->description = description;
    return tok;
  } catch (const nlohmann::json::exception& e) {
    throw input_error(where, std::string("unexpected tokenizer value: ") + e.what());
  }
}

bool Tokenizer::present(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_regular_file(dir, ec)) return true;  // GGUF / llama2.c: load() says what is missing
  return fs::is_regular_file(dir / "tokenizer.json", ec) ||
         (fs::is_regular_file(dir / "vocab.json", ec) && fs::is_regular_file(dir / "merges.txt", ec)) ||
         fs::is_regular_file(dir / "tokenizer.model", ec) || fs::is_regular_file(dir / "vocab.txt", ec);
}

std::unique_ptr<Tokenizer> Tokenizer::load(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_regular_file(dir, ec)) return load_tokenizer_file(dir);
  if (!fs::is_directory(dir, ec)) throw input_error(dir.string(), "not a directory");
  // A field of the wrong JSON type anywhere in the files surfaces as nlohmann's type_error: bad
  // input like any other, named by file.
  const auto json_errors_are_input_errors = [&](const fs::path& file, auto&& load) -> std::unique_ptr<Tokenizer> {
    try {
      return load();
    } catch (const nlohmann::json::exception& e) {
      throw input_error(file.string(), std::string("unexpected JSON value: ") + e.what());
    }
  };
  if (fs::is_regular_file(dir / "tokenizer.json", ec))
    return json_errors_are_input_errors(dir / "tokenizer.json", [&] { return load_tokenizer_json(dir); });
  if (fs::is_regular_file(dir / "vocab.json", ec) && fs::is_regular_file(dir / "merges.txt", ec))
    return json_errors_are_input_errors(dir / "vocab.json", [&] { return load_gpt2_files(dir); });
  if (fs::is_regular_file(dir / "tokenizer.model", ec)) return load_sentencepiece(dir);
  if (fs::is_regular_file(dir / "vocab.txt", ec))
    return json_errors_are_input_errors(dir / "tokenizer_config.json", [&] { return load_vocab_txt(dir); });
  throw input_error(dir.string(), "no tokenizer files (tokenizer.json, vocab.json + merges.txt, tokenizer.model or vocab.txt)");
}

}  // namespace attnspec
