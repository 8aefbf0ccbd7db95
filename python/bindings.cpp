// attnspec._core: the C++ core for Python. Arrays cross as numpy without copies where the layout
// allows; every heavy call releases the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "attnspec/common/error.h"
#include "attnspec/io/hub.h"
#include "attnspec/model/forward.h"
#include "attnspec/model/model.h"
#include "attnspec/run/analysis.h"
#include "attnspec/run/extras.h"
#include "attnspec/run/external.h"
#include "attnspec/run/inputs.h"
#include "attnspec/run/outputs.h"
#include "attnspec/run/compress.h"
#include "attnspec/run/options.h"
#include "attnspec/run/plan.h"
#include "attnspec/run/run.h"
#include "attnspec/spectra/causal.h"
#include "attnspec/spectra/compression.h"
#include "attnspec/spectra/field_factors.h"
#include "attnspec/spectra/invariants.h"
#include "attnspec/spectra/metrics.h"
#include "attnspec/spectra/spectra.h"
#include "attnspec/tokenize/text.h"
#include "attnspec/tokenize/tokenizer.h"

namespace py = pybind11;
using namespace attnspec;

namespace {

// The text argument of Tokenizer.encode as UTF-8: a str, or bytes (encode() checks that they are
// UTF-8 and names the offset of the first invalid sequence). A str with a lone surrogate (e.g.
// from surrogateescape decoding) has no UTF-8 form: say which character and where, instead of
// pybind11's "incompatible function arguments".
std::string utf8_text(const py::handle& text) {
  PyObject* o = text.ptr();
  if (PyUnicode_Check(o)) {
    Py_ssize_t size = 0;
    if (const char* data = PyUnicode_AsUTF8AndSize(o, &size)) return std::string(data, static_cast<size_t>(size));
    PyErr_Clear();
    const Py_ssize_t n = PyUnicode_GetLength(o);
    for (Py_ssize_t i = 0; i < n; ++i) {
      const Py_UCS4 c = PyUnicode_ReadChar(o, i);
      if (c >= 0xD800 && c <= 0xDFFF) {
        char code[16];
        std::snprintf(code, sizeof code, "U+%04X", static_cast<unsigned>(c));
        throw InputError("text holds a lone surrogate " + std::string(code) + " at index " + std::to_string(i) +
                         "; it is not valid Unicode text and cannot be encoded as UTF-8");
      }
    }
    throw InputError("text cannot be encoded as UTF-8");
  }
  if (PyBytes_Check(o)) return std::string(PyBytes_AS_STRING(o), static_cast<size_t>(PyBytes_GET_SIZE(o)));
  throw py::type_error(std::string("text must be a str (or UTF-8 bytes), not ") + Py_TYPE(o)->tp_name);
}

py::array_t<double> to_numpy(const std::vector<double>& v) {
  py::array_t<double> a(v.size());
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

py::dict summary_dict(const SpectrumSummary& s) {
  py::dict d;
  for (size_t t = 0; t < kTaus.size(); ++t) d[("k" + std::to_string(int(std::lround(kTaus[t] * 100)))).c_str()] = s.k_tau[t];
  d["erank"] = s.effective_rank;
  d["participation_ratio"] = s.participation_ratio;
  d["stable_rank"] = s.stable_rank;
  d["variance"] = s.variance;
  return d;
}

// A 2-D array whose rows are contiguous (column stride = one element): Q/K rows as positions.
template <typename T>
std::pair<const T*, long> row_major_view(const py::array& a, const char* name) {
  if (a.ndim() != 2) throw py::value_error(std::string(name) + " must be a 2-D array [n, d_h]");
  if (a.strides(1) != static_cast<py::ssize_t>(sizeof(T)) || a.strides(0) % sizeof(T) != 0)
    throw py::value_error(std::string(name) + " needs contiguous rows");
  return {static_cast<const T*>(a.data()), static_cast<long>(a.strides(0) / sizeof(T))};
}

template <typename T>
std::vector<double> field_spectrum_typed(const py::array& q, const py::array& k, double scale) {
  auto [qp, ldq] = row_major_view<T>(q, "Q");
  auto [kp, ldk] = row_major_view<T>(k, "K");
  const int n = static_cast<int>(q.shape(0)), dh = static_cast<int>(q.shape(1));
  py::gil_scoped_release release;
  return energy_field_singular_values(qp, ldq, kp, ldk, n, dh, scale);
}

py::array_t<double> energy_field_spectrum(py::array q, py::array k, std::optional<double> scale) {
  if (q.ndim() != 2 || k.ndim() != 2 || q.shape(0) != k.shape(0) || q.shape(1) != k.shape(1))
    throw py::value_error("Q and K must both be [n, d_h] arrays of the same shape");
  if (q.shape(0) == 0 || q.shape(1) == 0) throw py::value_error("Q and K must not be empty");
  const double s = scale.value_or(1.0 / std::sqrt(static_cast<double>(q.shape(1))));
  const bool f32 = q.dtype().is(py::dtype::of<float>()) && k.dtype().is(py::dtype::of<float>());
  if (f32) {
    try {
      return to_numpy(field_spectrum_typed<float>(q, k, s));
    } catch (const py::value_error&) {  // strided float32: fall through to a float64 copy
    }
  }
  auto q64 = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(q);
  auto k64 = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(k);
  if (!q64 || !k64) throw py::type_error("Q and K must be numeric arrays");
  return to_numpy(field_spectrum_typed<double>(q64, k64, s));
}

py::array_t<double> interaction_spectrum(py::array wq, py::array wk) {
  // W_q, W_k: [d_h, d] blocks in the convention y = W x. Row-major [d_h, d] is exactly the
  // column-major d x d_h matrix W^T the core wants.
  auto q = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(wq);
  auto k = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(wk);
  if (!q || !k) throw py::type_error("W_q and W_k must be numeric arrays");
  if (q.ndim() != 2 || k.ndim() != 2 || q.shape(0) != k.shape(0) || q.shape(1) != k.shape(1))
    throw py::value_error("W_q and W_k must both be [d_h, d] arrays of the same shape");
  const int dh = static_cast<int>(q.shape(0)), d = static_cast<int>(q.shape(1));
  std::vector<double> s;
  {
    py::gil_scoped_release release;
    s = interaction_singular_values(q.data(), k.data(), d, dh);
  }
  return to_numpy(s);
}

py::dict config_dict(const ModelConfig& c) {
  py::dict d;
  d["family"] = c.family;
  d["layers"] = c.n_layers;
  d["d_model"] = c.d_model;
  d["heads"] = c.n_heads;
  d["kv_heads"] = c.n_kv_heads;
  d["head_dim"] = c.head_dim;
  d["d_ff"] = c.d_ff;
  d["vocab_size"] = c.vocab_size;
  d["max_positions"] = c.max_positions;
  d["parameters"] = c.parameter_count;
  d["softmax_scale"] = c.softmax_scale;
  d["sliding_window"] = c.sliding_window;
  d["positions"] = c.learned_positions ? std::string("learned") : c.rope_description;
  d["attention"] = c.causal ? "causal" : "bidirectional";
  d["attn_softcap"] = c.attn_softcap;  // 0: none
  d["final_softcap"] = c.final_softcap;  // 0: none
  d["tie_word_embeddings"] = c.tie_word_embeddings;
  return d;
}

}  // namespace

// ---- Beyond the paper: causal field, invariants, data side, compression (helpers) -------------
namespace {

using Array64 = py::array_t<double, py::array::c_style | py::array::forcecast>;

// Q and K as float64 row-major [n, d_h] arrays of the same shape.
std::pair<Array64, Array64> head_arrays(const py::array& q, const py::array& k) {
  auto q64 = Array64::ensure(q), k64 = Array64::ensure(k);
  if (!q64 || !k64) throw py::type_error("Q and K must be numeric arrays");
  if (q64.ndim() != 2 || k64.ndim() != 2 || q64.shape(0) != k64.shape(0) || q64.shape(1) != k64.shape(1))
    throw py::value_error("Q and K must both be [n, d_h] arrays of the same shape");
  if (q64.shape(0) == 0 || q64.shape(1) == 0) throw py::value_error("Q and K must not be empty");
  return {q64, k64};
}

double default_scale(const py::array& q, std::optional<double> scale) {
  return scale.value_or(1.0 / std::sqrt(static_cast<double>(q.shape(1))));
}

CausalMethod causal_method_of(const std::string& name) {
  if (name == "auto") return CausalMethod::Auto;
  if (name == "dense") return CausalMethod::Dense;
  if (name == "lanczos") return CausalMethod::Lanczos;
  throw py::value_error("method must be 'auto', 'dense' or 'lanczos'");
}

py::object k_or_none(int k) { return k < 0 ? py::object(py::none()) : py::object(py::int_(k)); }

// ---- Requests: Python keywords through the option table (run/options.h) ---------------------------

// The texts an option's Python value stands for: a bool is a flag (or, for an auto/yes/no choice,
// yes/no), a path is os.fspath'd, a number list gives one text per number.
std::vector<std::string> texts_of(const Option& o, const py::handle& v, bool top = true) {
  const bool sequence = !py::isinstance<py::str>(v) && !py::isinstance<py::bytes>(v) && py::hasattr(v, "__iter__") &&
                        !py::hasattr(v, "__fspath__");
  if (o.repeatable && top && sequence) {
    std::vector<std::string> out;
    for (const auto& x : v) out.push_back(texts_of(o, x, false).at(0));
    return out;
  }
  if (o.type == OptionType::Number) return {py::str(py::float_(py::reinterpret_borrow<py::object>(v)))};
  if (py::isinstance<py::bool_>(v)) {
    const bool on = v.cast<bool>();
    if (o.type == OptionType::Choice) return {on ? "yes" : "no"};
    return {on ? "true" : "false"};
  }
  if (o.type == OptionType::Path) return {py::str(py::module_::import("os").attr("fspath")(v))};
  return {py::str(v)};
}

// A Request from Python keywords named by the table (None: the default); Python's defaults where
// they differ from the command line's. finish_request checks the input and resolves the model.
Request request_from(Command command, const py::dict& kwargs) {
  Request rq;
  std::vector<std::string> given;
  const auto table = options_of(command);
  for (const auto& [key, value] : kwargs) {
    const std::string name = key.cast<std::string>();
    const auto o = std::find_if(table.begin(), table.end(), [&](const Option* x) { return x->python_keyword() == name; });
    if (o == table.end())
      throw py::type_error(std::string(command_name(command)) + "() got an unexpected keyword argument '" + name + "'");
    if (value.is_none()) continue;
    given.push_back((*o)->name);
    for (const auto& text : texts_of(**o, value)) set_option(**o, rq, text);
  }
  set_defaults(command, rq, given, /*python=*/true);
  py::gil_scoped_release release;  // a hub id may be downloaded
  finish_request(command, rq);
  return rq;
}

// The table for Python (python/attnspec/__init__.py builds analyze()'s and plan()'s signatures from
// it): per option its keyword, type, commands, help, Python default (typed) and choices.
py::list option_table() {
  static const char* types[] = {"path", "int", "flag", "choice", "number"};
  py::list out;
  for (const Option& o : options()) {
    py::dict d;
    d["name"] = o.name;
    d["keyword"] = o.python_keyword();
    d["type"] = types[int(o.type)];
    py::list commands;
    for (Command c : {kAnalyze, kPlan, kTokenize, kCompress})
      if (o.commands & c) commands.append(command_name(c));
    d["commands"] = commands;
    d["help"] = o.help;
    d["required"] = o.required;
    d["choices"] = py::cast(std::vector<std::string>(o.choices.begin(), o.choices.end()));
    d["repeatable"] = o.repeatable;
    d["min"] = o.min == kNoMinimum ? py::object(py::none()) : py::object(py::int_(o.min));
    const std::string fallback = o.python_fallback ? o.python_fallback : o.fallback;
    if (fallback.empty()) d["default"] = py::none();
    else if (o.type == OptionType::Int) d["default"] = std::stoi(fallback);
    else if (o.type == OptionType::Flag) d["default"] = fallback == "true";
    else if (o.repeatable) {
      py::list values;
      for (const auto& x : py::str(fallback).attr("split")())
        values.append(o.type == OptionType::Number ? py::object(py::float_(py::reinterpret_borrow<py::object>(x)))
                                                   : py::reinterpret_borrow<py::object>(x));
      d["default"] = py::tuple(values);
    } else d["default"] = fallback;
    out.append(d);
  }
  return out;
}

// W_Q^T W_K spectra cross as one [layers, heads, d_h] float64 array (cheap to share between
// processes), NaN after the last value of a shorter spectrum.
py::array_t<double> weight_spectra_array(const WeightSpectra& w, int layers, int dh) {
  py::array_t<double> a({layers, w.n_heads, dh});
  auto r = a.mutable_unchecked<3>();
  for (int l = 0; l < layers; ++l)
    for (int h = 0; h < w.n_heads; ++h) {
      const auto& s = w.at(l, h).sigma;
      if (int(s.size()) > dh) throw std::logic_error("a W_Q^T W_K spectrum longer than d_h");
      for (int t = 0; t < dh; ++t) r(l, h, t) = t < int(s.size()) ? s[t] : std::nan("");
    }
  return a;
}

// [layers, heads, d_h] NaN-padded singular values -> WeightSpectra. With `undefined_when_empty`, a
// head whose values are all NaN has none defined (the torch engine's latent attention).
WeightSpectra weight_spectra_from(const py::array& array, bool undefined_when_empty = false) {
  auto a = Array64::ensure(array);
  if (!a || a.ndim() != 3) throw py::value_error("weights must be a [layers, heads, d_h] float array");
  auto r = a.unchecked<3>();
  WeightSpectra w;
  w.n_heads = static_cast<int>(a.shape(1));
  for (py::ssize_t l = 0; l < a.shape(0); ++l)
    for (py::ssize_t h = 0; h < a.shape(1); ++h) {
      HeadSpectrum hs;
      for (py::ssize_t t = 0; t < a.shape(2) && !std::isnan(r(l, h, t)); ++t) hs.sigma.push_back(r(l, h, t));
      if (undefined_when_empty && hs.sigma.empty()) hs = undefined_spectrum();
      else hs.summary = summarize(hs.sigma);  // exactly as compute_weight_spectra summarises
      w.heads.push_back(std::move(hs));
    }
  return w;
}

}  // namespace


// ---- The torch engine (python/attnspec/torch.py): spectra of queries and keys captured in PyTorch ----
namespace {

// What a torch-engine run computes beyond E~, from analyze's keywords (field, causal_*) and
// whether the model soft-caps its logits.
AnalysisOptions external_options(const std::string& field, const std::string& causal_method, int dense_max,
                                 int max_values, bool capped) {
  AnalysisOptions o;
  o.field = parse_field_mode(field);
  o.causal.method = causal_method_of(causal_method);
  o.causal.dense_max = dense_max;
  o.causal.max_values = std::max(1, max_values);
  o.capped = capped;
  return o;
}

using ArrayF32 = py::array_t<float, py::array::c_style | py::array::forcecast>;

// A [count, c, c] float64 stack of Gram matrices.
Array64 gram_stack(const py::array& a, int count, int c, const char* name) {
  auto g = Array64::ensure(a);
  if (!g || g.ndim() != 3 || g.shape(0) != count || g.shape(1) != c || g.shape(2) != c)
    throw py::value_error(std::string(name) + " must be a [" + std::to_string(count) + ", " + std::to_string(c) + ", " +
                          std::to_string(c) + "] float64 array");
  return g;
}

// One window of a torch-engine run: layers are added as the forward pass reaches them, each reduced
// at once (nothing but the heads' spectra is kept), then written as heads.csv / spectra.jsonl rows.
class ExternalWindow {
 public:
  ExternalWindow(int window, int n, AnalysisOptions options) {
    result_.window = window;
    result_.n = n;
    result_.options = options;
  }

  void add_layer(int layer, const py::array& q_gram, const py::array& k_gram, double scale, int window, double softcap,
                 std::optional<py::array> q, std::optional<py::array> k) {
    const int H = static_cast<int>(q_gram.ndim() == 3 ? q_gram.shape(0) : 0);
    const int G = static_cast<int>(k_gram.ndim() == 3 ? k_gram.shape(0) : 0);
    const int dh = static_cast<int>(q_gram.ndim() == 3 ? q_gram.shape(1) : 0);
    auto gq = gram_stack(q_gram, H, dh, "q_gram");
    auto gk = gram_stack(k_gram, G, dh, "k_gram");
    ExternalLayer a;
    a.layer = layer;
    a.n = result_.n;
    a.n_heads = H;
    a.n_kv_heads = G;
    a.head_dim = dh;
    a.q_gram = gq.data();
    a.k_gram = gk.data();
    a.scale = scale;
    a.window = window;
    a.softcap = softcap;
    ArrayF32 qf, kf;
    if (q && k) {
      qf = ArrayF32::ensure(*q);
      kf = ArrayF32::ensure(*k);
      if (!qf || !kf || qf.ndim() != 3 || kf.ndim() != 3 || qf.shape(0) != H || kf.shape(0) != G ||
          qf.shape(1) != result_.n || kf.shape(1) != result_.n || qf.shape(2) != dh || kf.shape(2) != dh)
        throw py::value_error("q and k must be [H, n, d_h] and [G, n, d_h] arrays");
      a.q = qf.data();
      a.k = kf.data();
    }
    std::vector<HeadResult> heads;
    {
      py::gil_scoped_release release;
      heads = external_layer_heads(a, result_.options);
    }
    for (auto& h : heads) result_.heads.push_back(std::move(h));
  }

  // The model soft-caps its logits: the capped fields' columns are written (known once its layers ran).
  void set_capped(bool capped) { result_.options.capped = capped; }

  // (heads.csv rows, spectra.jsonl rows) with the W_Q^T W_K spectra `weights` ([layers, heads, d_h],
  // NaN-padded; a head whose values are all NaN has none defined).
  py::tuple rows(const py::array& weights, bool save_spectra) const {
    const WeightSpectra w = weight_spectra_from(weights, /*undefined_when_empty=*/true);
    const auto a = Array64::ensure(weights);
    for (const auto& h : result_.heads)
      if (h.layer >= a.shape(0) || h.head >= a.shape(1))
        throw py::value_error("weights do not cover layer " + std::to_string(h.layer) + " head " + std::to_string(h.head));
    return py::make_tuple(heads_csv_rows(result_, w), save_spectra ? spectra_jsonl_rows(result_, w) : std::string());
  }

  // [heads, values] of one spectrum kind ("field", "causal", "field_capped", "causal_capped") of one layer.
  py::array_t<double> spectra(int layer, const std::string& kind) const {
    std::vector<const std::vector<double>*> rows;
    for (const auto& h : result_.heads)
      if (h.layer == layer)
        rows.push_back(kind == "field" ? &h.field.sigma : kind == "causal" ? &h.extras.causal.sigma
                       : kind == "field_capped" ? &h.field_capped.sigma : &h.causal_capped.sigma);
    size_t width = 0;
    for (auto* v : rows) width = std::max(width, v->size());
    py::array_t<double> out({rows.size(), width});
    auto o = out.mutable_unchecked<2>();
    for (size_t i = 0; i < rows.size(); ++i)
      for (size_t t = 0; t < width; ++t) o(i, t) = t < rows[i]->size() ? (*rows[i])[t] : std::nan("");
    return out;
  }

 private:
  WindowResult result_;
};

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "attnspec C++ core";
  m.attr("__version__") = ATTNSPEC_VERSION;
  py::register_exception<InputError>(m, "InputError", PyExc_ValueError);
  py::register_exception<Interrupted>(m, "Interrupted", PyExc_KeyboardInterrupt);

  m.def("energy_field_spectrum", &energy_field_spectrum, py::arg("Q"), py::arg("K"), py::arg("scale") = py::none());
  m.def("interaction_spectrum", &interaction_spectrum, py::arg("W_q"), py::arg("W_k"));
  m.def("summarize", [](const std::vector<double>& sigma) { return summary_dict(summarize(sigma)); }, py::arg("sigma"));
  m.def("set_threads", &set_thread_count, py::arg("threads"));
  m.def("sgemm_gflops", [](int size, int threads, int repeats) {
          // The machine's float32 GEMM rate through the BLAS attnspec links (for benchmarks): the
          // best of `repeats` size^3 products with OpenBLAS's own threading.
          py::gil_scoped_release release;
          return sgemm_gflops(size, threads, repeats);
        }, py::arg("size") = 2048, py::arg("threads") = 1, py::arg("repeats") = 5);
  m.def("sgemm_tile_seconds", [](int m, int n, int k, int repeats) {
          py::gil_scoped_release release;
          return sgemm_tile_seconds(m, n, k, repeats);
        }, py::arg("m"), py::arg("n"), py::arg("k"), py::arg("repeats") = 5);
  m.def("supported_families", &supported_families);
  m.def("find_in_hub_cache", [](const std::string& repo_id, const std::string& revision) -> std::optional<std::string> {
          const auto p = find_in_hub_cache(repo_id, revision);
          if (p.empty()) return std::nullopt;
          return p.string();
        }, py::arg("repo_id"), py::arg("revision") = "main");
  m.def("looks_like_hub_id", &looks_like_hub_id, py::arg("s"));

  py::class_<Tokenizer, std::shared_ptr<Tokenizer>>(m, "Tokenizer")
      .def_static("load", [](const std::filesystem::path& dir) { return std::shared_ptr<Tokenizer>(Tokenizer::load(dir)); },
                  py::arg("dir"))
      .def_static("present", &Tokenizer::present, py::arg("dir"))
      .def("encode", [](const Tokenizer& t, const py::object& text) {
             const std::string utf8 = utf8_text(text);
             py::gil_scoped_release release;
             return t.encode(utf8);
           }, py::arg("text"))
      .def_property_readonly("prefix_special", &Tokenizer::prefix_special)
      .def_property_readonly("suffix_special", &Tokenizer::suffix_special)
      .def("describe", &Tokenizer::describe);

  m.def("read_text_file", [](const std::filesystem::path& p, int strip) {
          TextOptions o;
          o.strip_gutenberg = strip;
          return py::bytes(read_text_file(p, o)).attr("decode")("utf-8");
        }, py::arg("path"), py::arg("strip_gutenberg") = -1);
  m.def("strip_gutenberg", [](const std::string& text) { return strip_gutenberg(text); }, py::arg("text"));

  py::class_<Model, std::shared_ptr<Model>>(m, "Model")
      .def_static("load", [](const std::filesystem::path& p) { return std::shared_ptr<Model>(load_model(p)); }, py::arg("path"))
      .def_property_readonly("config", [](const Model& mdl) { return config_dict(mdl.config); })
      .def("capture", [](const Model& mdl, const std::vector<int32_t>& ids, std::optional<int> last_layer) {
             // Per layer: X [n, d], Q [H, n, d_h], K [G, n, d_h] as the attention consumes them (float32).
             const ModelConfig& c = mdl.config;
             const int n = static_cast<int>(ids.size()), dh = c.head_dim;
             struct Layer { std::vector<float> x, q, k; };
             std::vector<Layer> layers;
             {
               py::gil_scoped_release release;
               forward(mdl, ids, last_layer.value_or(c.n_layers - 1), [&](const LayerActivations& a) {
                 Layer L;
                 L.x.assign(a.x, a.x + size_t(n) * c.d_model);
                 L.q.resize(size_t(n) * c.n_heads * dh);
                 L.k.resize(size_t(n) * c.n_kv_heads * dh);
                 for (int i = 0; i < n; ++i)
                   for (int h = 0; h < c.n_heads; ++h)
                     for (int t = 0; t < dh; ++t)
                       L.q[(size_t(h) * n + i) * dh + t] = a.q[size_t(i) * c.n_heads * dh + h * dh + t];
                 for (int i = 0; i < n; ++i)
                   for (int g = 0; g < c.n_kv_heads; ++g)
                     for (int t = 0; t < dh; ++t)
                       L.k[(size_t(g) * n + i) * dh + t] = a.k[size_t(i) * c.n_kv_heads * dh + g * dh + t];
                 layers.push_back(std::move(L));
               });
             }
             py::list out;
             for (auto& L : layers) {
               py::dict d;
               auto arr = [](std::vector<float>& v, std::vector<py::ssize_t> shape) {
                 py::array_t<float> a(shape);
                 std::copy(v.begin(), v.end(), a.mutable_data());
                 return a;
               };
               d["X"] = arr(L.x, {n, c.d_model});
               d["Q"] = arr(L.q, {c.n_heads, n, dh});
               d["K"] = arr(L.k, {c.n_kv_heads, n, dh});
               out.append(d);
             }
             return out;
           }, py::arg("token_ids"), py::arg("last_layer") = py::none())
      .def("logits", [](const Model& mdl, const std::vector<int32_t>& ids) {
             // [n, vocab] float32 next-token logits of the whole model (forward_logits), handed to
             // numpy without a copy.
             auto logits = std::make_unique<std::vector<float>>();
             {
               py::gil_scoped_release release;
               *logits = forward_logits(mdl, ids);
             }
             const py::ssize_t n = static_cast<py::ssize_t>(ids.size()), vocab = mdl.lm_head.out;
             float* data = logits->data();
             py::capsule owner(logits.release(), [](void* p) { delete static_cast<std::vector<float>*>(p); });
             return py::array_t<float>({n, vocab}, data, owner);
           }, py::arg("token_ids"))
      .def("forward_profile", [](const Model& mdl, const std::vector<int32_t>& ids, std::optional<int> last_layer) {
             // One forward pass to the last layer as analyze runs it (the last layer up to its Q and
             // K), nothing measured: its stages' seconds and FLOPs (forward.h), for benchmarks.
             const ModelConfig& c = mdl.config;
             const int last = last_layer.value_or(c.n_layers - 1);
             ForwardTimes t;
             double total = 0;
             {
               py::gil_scoped_release release;
               const auto t0 = std::chrono::steady_clock::now();
               forward(mdl, ids, last, {}, &t);
               total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
             }
             const ForwardFlops f = forward_flops(c, static_cast<int>(ids.size()), last, /*whole_last=*/false);
             py::dict seconds, flops;
             seconds["total"] = total;
             for (auto [name, v] : {std::pair{"embed_and_widen", t.widen}, {"norm", t.norm}, {"qkv", t.qkv},
                                    {"rope", t.rope}, {"attention", t.attention}, {"out_proj", t.out_proj}, {"mlp", t.mlp}})
               seconds[name] = v;
             for (auto [name, v] : {std::pair{"qkv", f.qkv}, {"attention", f.attention}, {"out_proj", f.out_proj},
                                    {"mlp", f.mlp}, {"total", f.total()}})
               flops[name] = v;
             py::dict out;
             out["seconds"] = seconds;
             out["flops"] = flops;
             out["widened_bytes"] = t.widened_bytes;  // 0 when every weight was kept from an earlier call
             return out;
           }, py::arg("token_ids"), py::arg("last_layer") = py::none())
      .def("forward_flops", [](const Model& mdl, int n, std::optional<int> last_layer, bool whole) {
             // FLOPs per stage of a forward over n tokens (forward_flops in forward.h).
             const ForwardFlops f = forward_flops(mdl.config, n, last_layer.value_or(mdl.config.n_layers - 1), whole);
             py::dict out;
             for (auto [name, v] : {std::pair{"qkv", f.qkv}, {"attention", f.attention}, {"out_proj", f.out_proj},
                                    {"mlp", f.mlp}, {"head", f.head}, {"total", f.total()}})
               out[name] = v;
             return out;
           }, py::arg("n"), py::arg("last_layer") = py::none(), py::arg("whole") = false)
      .def("weight_spectra", [](const Model& mdl) {
             // [layers, heads, d_h] singular values of W_Q^(h)T W_K^(g).
             const ModelConfig& c = mdl.config;
             WeightSpectra w;
             {
               py::gil_scoped_release release;
               w = compute_weight_spectra(mdl, c.n_layers - 1);
             }
             py::array_t<double> a({c.n_layers, c.n_heads, c.head_dim});
             auto r = a.mutable_unchecked<3>();
             for (int l = 0; l < c.n_layers; ++l)
               for (int h = 0; h < c.n_heads; ++h) {
                 const auto& s = w.at(l, h).sigma;
                 for (int t = 0; t < c.head_dim; ++t) r(l, h, t) = t < int(s.size()) ? s[t] : 0.0;
               }
             return a;
           })
      .def("field_spectra", [](const Model& mdl, const std::vector<int32_t>& ids) {
             // [layers, heads, min(n, d_h)] singular values of E~ for one window.
             const ModelConfig& c = mdl.config;
             WindowResult w;
             {
               py::gil_scoped_release release;
               w = analyze_window(mdl, ids, 0, c.n_layers - 1);
             }
             const int r = static_cast<int>(std::min<size_t>(ids.size(), c.head_dim));
             py::array_t<double> a({c.n_layers, c.n_heads, r});
             auto v = a.mutable_unchecked<3>();
             for (const auto& h : w.heads)
               for (int t = 0; t < r; ++t) v(h.layer, h.head, t) = t < int(h.field.sigma.size()) ? h.field.sigma[t] : 0.0;
             return a;
           }, py::arg("token_ids"))
      .def("capped_field_spectra", [](const Model& mdl, const std::vector<int32_t>& ids, bool causal) {
             // [layers, heads, n] singular values of the soft-capped field (capped.h): unmasked
             // (causal = false, the E~ convention) or causal (the E~c convention).
             const ModelConfig& c = mdl.config;
             if (!(c.attn_softcap > 0)) throw InputError("this model does not soft-cap its attention logits");
             AnalysisOptions o;
             if (causal) o.field = FieldMode::Both;
             o.capped = true;
             WindowResult w;
             {
               py::gil_scoped_release release;
               w = analyze_window(mdl, ids, 0, c.n_layers - 1, o);
             }
             const int n = static_cast<int>(ids.size());
             py::array_t<double> a({c.n_layers, c.n_heads, n});
             auto v = a.mutable_unchecked<3>();
             for (const auto& h : w.heads) {
               const auto& s = causal ? h.causal_capped.sigma : h.field_capped.sigma;
               for (int t = 0; t < n; ++t) v(h.layer, h.head, t) = t < int(s.size()) ? s[t] : 0.0;
             }
             return a;
           }, py::arg("token_ids"), py::arg("causal") = false);

  m.def("options", &option_table, "The option table of analyze, plan and tokenize (one dict per option)");
  m.def("resolve_model", [](const std::string& model) {
          py::gil_scoped_release release;  // a hub id may be downloaded
          return resolve_model(model).string();
        }, py::arg("model"),
        "The folder or file --model names: a path as given, or a Hugging Face hub id from the cache or the hub");
  m.def("run_analyze", [](const py::kwargs& kwargs) {
          const Request rq = request_from(kAnalyze, kwargs);
          py::gil_scoped_release release;
          return run_analyze(rq).dump();
        }, "attnspec analyze in-process (keywords: the option table's); returns summary.json's content");
  m.def("run_compress", [](const py::kwargs& kwargs) {
          const Request rq = request_from(kCompress, kwargs);
          py::gil_scoped_release release;
          return run_compress(rq).dump();
        }, "attnspec compress in-process (keywords: the option table's); returns compress.json's content");
  m.def("run_plan", [](const py::kwargs& kwargs) {
          const Request rq = request_from(kPlan, kwargs);
          py::gil_scoped_release release;
          return run_plan(rq).dump();
        }, "attnspec plan in-process (keywords: the option table's); returns plan.json's content");

  // ---- Beyond the paper: causal field, invariants, data side, compression plan ----------------
  // Array-level functions on one head's Q, K ([n, d_h], any float dtype, computed in float64).
  m.def("causal_field_spectrum",
        [](py::array q, py::array k, std::optional<double> scale, std::optional<int> values, std::optional<int> window,
           const std::string& method, int dense_max, int max_values) {
          auto [q64, k64] = head_arrays(q, k);
          const int n = static_cast<int>(q64.shape(0)), dh = static_cast<int>(q64.shape(1));
          CausalOptions o;
          o.method = causal_method_of(method);
          o.dense_max = dense_max;
          o.max_values = std::max(1, max_values);
          o.values = values.value_or(0);
          if (o.values < 0) throw py::value_error("k must be positive");
          const double s = default_scale(q64, scale);
          CausalSpectrum cs;
          {
            py::gil_scoped_release release;
            const CausalFieldOperator op(q64.data(), dh, k64.data(), dh, n, dh, s, window.value_or(0));
            cs = causal_field_spectrum(op, o);
          }
          py::dict d;
          d["sigma"] = to_numpy(cs.sigma);
          d["method"] = cs.method;
          d["complete"] = cs.complete;
          d["krylov_dim"] = cs.krylov_dim;
          d["variance"] = cs.variance;
          d["unexplained"] = cs.variance > 0 ? cs.unexplained / cs.variance : 0.0;
          d["residual"] = cs.residual;
          d["k_tau_exact"] = cs.k_tau_exact;
          d["numerical_rank"] = cs.numerical_rank;
          py::dict kt, kl;
          for (size_t t = 0; t < kTaus.size(); ++t) {
            const std::string name = "k" + std::to_string(int(std::lround(kTaus[t] * 100)));
            kt[name.c_str()] = k_or_none(cs.k_tau[t]);
            kl[name.c_str()] = k_or_none(cs.k_tau_lower[t]);
          }
          d["k_tau"] = kt;
          d["k_tau_lower"] = kl;
          d["erank"] = cs.summary.effective_rank;
          d["participation_ratio"] = cs.summary.participation_ratio;
          d["stable_rank"] = cs.summary.stable_rank;
          return d;
        },
        py::arg("Q"), py::arg("K"), py::arg("scale") = py::none(), py::arg("k") = py::none(),
        py::arg("window") = py::none(), py::arg("method") = "auto", py::arg("dense_max") = CausalOptions{}.dense_max,
        py::arg("max_values") = CausalOptions{}.max_values);
  m.def("causal_field_matrix",
        [](py::array q, py::array k, std::optional<double> scale, std::optional<int> window) {
          auto [q64, k64] = head_arrays(q, k);
          const int n = static_cast<int>(q64.shape(0)), dh = static_cast<int>(q64.shape(1));
          const CausalFieldOperator op(q64.data(), dh, k64.data(), dh, n, dh, default_scale(q64, scale), window.value_or(0));
          const std::vector<double> a = op.materialise();  // column-major
          py::array_t<double> out({n, n});
          auto r = out.mutable_unchecked<2>();
          for (int i = 0; i < n; ++i)
            for (int j = 0; j < n; ++j) r(i, j) = a[size_t(j) * n + i];
          return out;
        },
        py::arg("Q"), py::arg("K"), py::arg("scale") = py::none(), py::arg("window") = py::none());
  m.def("energy_field_svd",
        [](py::array q, py::array k, std::optional<double> scale) {
          auto [q64, k64] = head_arrays(q, k);
          const int n = static_cast<int>(q64.shape(0)), dh = static_cast<int>(q64.shape(1));
          FieldFactors f;
          {
            py::gil_scoped_release release;
            f = field_factors(q64.data(), dh, k64.data(), dh, n, dh, default_scale(q64, scale));
          }
          py::array_t<double> left({n, f.r}), right({n, f.r});
          auto L = left.mutable_unchecked<2>();
          auto R = right.mutable_unchecked<2>();
          for (int t = 0; t < f.r; ++t)
            for (int i = 0; i < n; ++i) {
              L(i, t) = f.left[size_t(t) * n + i];
              R(i, t) = f.right[size_t(t) * n + i];
            }
          return py::make_tuple(left, to_numpy(f.sigma), right);
        },
        py::arg("Q"), py::arg("K"), py::arg("scale") = py::none());
  m.def("field_invariants",
        [](py::array q, py::array k, std::optional<double> scale) {
          auto [q64, k64] = head_arrays(q, k);
          const int n = static_cast<int>(q64.shape(0)), dh = static_cast<int>(q64.shape(1));
          FieldInvariants v;
          std::vector<double> leverage;
          {
            py::gil_scoped_release release;
            const FieldFactors f = field_factors(q64.data(), dh, k64.data(), dh, n, dh, default_scale(q64, scale));
            v = field_invariants(f);
            leverage = f.kc_leverage;
          }
          py::dict d;
          d["row_sum_residual"] = v.row_sum_residual;
          d["max_abs"] = v.max_abs;
          d["rank"] = v.rank;
          d["rank_tolerance"] = v.rank_tolerance;
          d["col_participation"] = v.col_participation;
          d["col_top1pct_share"] = v.col_top1pct_share;
          d["col_top_position"] = v.col_top_position;
          d["key_coherence"] = v.key_coherence;
          d["key_coherence_position"] = v.key_coherence_position;
          d["key_rank"] = v.key_rank;
          d["key_leverage"] = to_numpy(leverage);
          return d;
        },
        py::arg("Q"), py::arg("K"), py::arg("scale") = py::none());
  m.def("compression_curve",
        [](py::array q, py::array k, std::optional<double> scale, std::optional<int> window, py::object ranks,
           bool causal) {
          auto [q64, k64] = head_arrays(q, k);
          const int n = static_cast<int>(q64.shape(0)), dh = static_cast<int>(q64.shape(1));
          const int r = std::min(n, dh);
          std::vector<int> ks;
          if (ranks.is_none() || (py::isinstance<py::str>(ranks) && ranks.cast<std::string>() == "all"))
            ks = compression_ranks(r, false);
          else if (py::isinstance<py::str>(ranks) && ranks.cast<std::string>() == "geometric")
            ks = compression_ranks(r, true);
          else if (py::isinstance<py::str>(ranks))
            throw py::value_error("ranks must be 'all', 'geometric' or a list of ints");
          else
            ks = ranks.cast<std::vector<int>>();
          CompressionCurve c;
          std::vector<double> sigma;
          {
            py::gil_scoped_release release;
            const FieldFactors f = field_factors(q64.data(), dh, k64.data(), dh, n, dh, default_scale(q64, scale));
            c = compression_curve(f, window.value_or(0), ks, causal);
            sigma = f.sigma;
          }
          py::dict d;
          d["k"] = py::array_t<int>(c.k.size(), c.k.data());
          d["tv"] = to_numpy(c.tv);
          d["kl"] = to_numpy(c.kl);
          d["sigma"] = to_numpy(sigma);
          return d;
        },
        py::arg("Q"), py::arg("K"), py::arg("scale") = py::none(), py::arg("window") = py::none(),
        py::arg("ranks") = py::none(), py::arg("causal") = true);
  m.def("data_spectrum",
        [](py::array x, bool centre) {
          auto x64 = Array64::ensure(x);
          if (!x64 || x64.ndim() != 2 || x64.shape(0) == 0 || x64.shape(1) == 0)
            throw py::value_error("X must be a non-empty 2-D numeric array [n, d]");
          const int n = static_cast<int>(x64.shape(0)), d = static_cast<int>(x64.shape(1));
          std::vector<double> s;
          {
            py::gil_scoped_release release;
            s = data_singular_values(x64.data(), d, n, d, centre);
          }
          return to_numpy(s);
        },
        py::arg("X"), py::arg("centre") = true);
  m.def("head_summary_csv", &head_summary_csv, py::arg("heads_csv"));
  // ---- The torch engine (python/attnspec/torch.py) ----------------------------------------------
  m.def("read_input", [](const py::kwargs& kwargs) {
          const Request rq = request_from(kAnalyze, kwargs);
          PreparedInput p;
          {
            py::gil_scoped_release release;
            p = read_input(rq);
          }
          return py::make_tuple(p.windows.windows, p.description.dump());
        }, "The windows of analyze's input (text or token_ids, tokenizer, ctx, max_windows, strip_gutenberg) as "
           "lists of ids, and summary.json's input description (JSON), without a model to check them against");
  py::class_<ExternalWindow>(m, "ExternalWindow")
      .def(py::init([](int window, int n, const std::string& field, const std::string& causal_method, int dense_max,
                       int max_values, bool capped) {
             return ExternalWindow(window, n, external_options(field, causal_method, dense_max, max_values, capped));
           }),
           py::arg("window"), py::arg("n"), py::arg("field") = "unmasked", py::arg("causal_method") = "auto",
           py::arg("causal_dense_max") = CausalOptions{}.dense_max,
           py::arg("causal_max_values") = CausalOptions{}.max_values, py::arg("capped") = false)
      .def("add_layer", &ExternalWindow::add_layer, py::arg("layer"), py::arg("q_gram"), py::arg("k_gram"),
           py::arg("scale"), py::arg("window") = 0, py::arg("softcap") = 0.0, py::arg("q") = py::none(),
           py::arg("k") = py::none(),
           "Reduces one layer: q_gram [H, d_h, d_h] = Q_h^T Q_h, k_gram [G, d_h, d_h] = Kc_g^T Kc_g (float64); "
           "q [H, n, d_h], k [G, n, d_h] (float32) only for the causal or soft-capped fields")
      .def("set_capped", &ExternalWindow::set_capped, py::arg("capped"))
      .def("rows", &ExternalWindow::rows, py::arg("weights"), py::arg("save_spectra") = true)
      .def("spectra", &ExternalWindow::spectra, py::arg("layer"), py::arg("kind") = "field");
  m.def("external_weight_spectra", [](const py::array& q_gram, const py::array& k_gram, int d) {
          const int H = static_cast<int>(q_gram.ndim() == 3 ? q_gram.shape(0) : 0);
          const int G = static_cast<int>(k_gram.ndim() == 3 ? k_gram.shape(0) : 0);
          const int dh = static_cast<int>(q_gram.ndim() == 3 ? q_gram.shape(1) : 0);
          auto gq = gram_stack(q_gram, H, dh, "q_gram");
          auto gk = gram_stack(k_gram, G, dh, "k_gram");
          if (G <= 0 || H % G != 0) throw py::value_error("the query heads must be a multiple of the key heads");
          py::array_t<double> out({H, dh});
          auto o = out.mutable_unchecked<2>();
          std::vector<std::vector<double>> s(H);
          {
            py::gil_scoped_release release;
            for (int h = 0; h < H; ++h)
              s[h] = external_weight_spectrum(gq.data() + size_t(h) * dh * dh,
                                              gk.data() + size_t(h / (H / G)) * dh * dh, d, dh);
          }
          for (int h = 0; h < H; ++h)
            for (int t = 0; t < dh; ++t) o(h, t) = t < int(s[h].size()) ? s[h][t] : std::nan("");
          return out;
        }, py::arg("q_gram"), py::arg("k_gram"), py::arg("d"),
        "W_Q^(h)T W_K^(g) singular values [H, d_h] from the Gram matrices W_Q^(h) W_Q^(h)T [H, d_h, d_h] and "
        "W_K^(g) W_K^(g)T [G, d_h, d_h] of d-column head blocks");
  m.def("write_external_run", [](const std::filesystem::path& out, const std::string& heads_rows,
                                 const std::string& spectra_rows, bool save_spectra, const std::string& field,
                                 const std::string& causal_method, int dense_max, int max_values, bool capped,
                                 const std::string& summary) {
          const AnalysisOptions o = external_options(field, causal_method, dense_max, max_values, capped);
          py::gil_scoped_release release;
          return write_external_run(out, o, save_spectra, heads_rows, spectra_rows, nlohmann::json::parse(summary)).dump();
        }, py::arg("out"), py::arg("heads_rows"), py::arg("spectra_rows"), py::arg("save_spectra"), py::arg("field"),
        py::arg("causal_method"), py::arg("causal_dense_max"), py::arg("causal_max_values"), py::arg("capped"),
        py::arg("summary"),
        "Writes heads.csv, head_summary.csv, spectra.jsonl and summary.json (options, conventions and aggregates "
        "added to `summary`) into `out`; returns summary.json's content");


  // Sweeps (python/attnspec/sweep.py): `request` is a dict of analyze's keywords (the option table's,
  // as for run_analyze). Every call releases the GIL while the engine works.
  m.def("describe_run", [](const py::dict& request) {
          const Request rq = request_from(kAnalyze, request);
          RunDescription d;
          {
            py::gil_scoped_release release;
            d = describe_run(rq);
          }
          py::dict out;
          out["windows"] = d.windows;
          out["layers"] = d.layers;
          out["memory_bytes"] = d.memory_bytes;
          out["input"] = d.input.dump();
          return out;
        }, py::arg("request"));
  m.def("weight_spectra", [](const py::dict& request) {
          const Request rq = request_from(kAnalyze, request);
          WeightSpectra w;
          int layers = 0, dh = 0;
          {
            py::gil_scoped_release release;
            auto model = load_model(rq.model);
            const ModelConfig& c = model->config;
            if (rq.layers < 0 || rq.layers > c.n_layers)
              throw input_error((rq.model / "config.json").string(), "cannot analyze " + std::to_string(rq.layers) +
                                                                        " layers: the model has " + std::to_string(c.n_layers));
            layers = rq.layers > 0 ? rq.layers : c.n_layers;
            dh = c.head_dim;
            set_thread_count(rq.threads);
            w = compute_weight_spectra(*model, layers - 1);
          }
          return weight_spectra_array(w, layers, dh);
        }, py::arg("request"),
        "The model's W_Q^T W_K singular values as a [layers, heads, d_h] array (NaN-padded) for analyze_windows.");
  m.def("analyze_windows", [](const py::dict& request, int first, int last, std::optional<py::array> weights) {
          const Request rq = request_from(kAnalyze, request);
          std::optional<WeightSpectra> shared;
          if (weights) shared = weight_spectra_from(*weights);
          std::vector<WindowRows> rows;
          {
            py::gil_scoped_release release;
            rows = analyze_window_block(rq, first, last, shared ? &*shared : nullptr);
          }
          py::list out;
          for (const auto& r : rows)
            out.append(py::make_tuple(r.window, r.heads_csv, r.spectra_jsonl, r.layers_csv, r.layers_jsonl));
          return out;
        }, py::arg("request"), py::arg("first"), py::arg("last"), py::arg("weights") = py::none(),
        "Windows [first, last) of a run: a list of (window, heads_csv, spectra_jsonl, layers_csv, layers_jsonl) rows.");
  m.def("write_run", [](const py::dict& request, const py::list& rows) {
          const Request rq = request_from(kAnalyze, request);
          std::vector<WindowRows> all;
          for (const auto& item : rows) {
            const auto t = item.cast<py::tuple>();
            if (t.size() != 5) throw py::value_error("a row is (window, heads_csv, spectra_jsonl, layers_csv, layers_jsonl)");
            all.push_back({t[0].cast<int>(), t[1].cast<std::string>(), t[2].cast<std::string>(), t[3].cast<std::string>(),
                           t[4].cast<std::string>()});
          }
          std::string summary;
          {
            py::gil_scoped_release release;
            summary = write_run_from_rows(rq, all).dump();
          }
          return summary;
        }, py::arg("request"), py::arg("rows"),
        "Writes a run's files into request['out'] from the rows of all its windows; returns summary.json's content.");
  // The element types attnspec reads (GGML's numbering) and their dequantizers, for tests against
  // gguf-py and for users who want to look at a block format's values.
  m.def("tensor_types", [] {
          py::dict d;
          for (uint32_t id = 0; id < 64; ++id)
            if (const TypeLayout* t = type_layout(id))
              d[py::str(t->name)] = py::make_tuple(id, t->block, t->bytes);
          return d;
        }, "name -> (GGML type number, values per block, bytes per block) of every type attnspec reads");
  m.def("dequantize", [](uint32_t ggml_type, py::bytes data) {
          const TypeLayout* t = type_layout(ggml_type);
          if (!t) throw InputError("GGML type " + ggml_type_name(ggml_type) + " is not one attnspec reads (" + readable_types() + ")");
          const std::string_view bytes = data;
          if (bytes.size() % t->bytes != 0)
            throw InputError(std::to_string(bytes.size()) + " bytes are not whole " + t->name + " blocks of " +
                             std::to_string(t->bytes) + " bytes");
          const size_t blocks = bytes.size() / t->bytes;
          py::array_t<float> out(py::ssize_t(blocks * t->block));
          t->to_float(reinterpret_cast<const std::byte*>(bytes.data()), blocks, out.mutable_data());
          return out;
        }, py::arg("ggml_type"), py::arg("data"), "the float32 values of whole blocks of a GGML type");
}
