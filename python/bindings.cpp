// attnspec._core: the C++ core for Python. Arrays cross as numpy without copies where the layout
// allows; every heavy call releases the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <cmath>

#include "attnspec/common/error.h"
#include "attnspec/model/forward.h"
#include "attnspec/model/model.h"
#include "attnspec/run/analysis.h"
#include "attnspec/run/run.h"
#include "attnspec/spectra/metrics.h"
#include "attnspec/spectra/spectra.h"
#include "attnspec/tokenize/text.h"
#include "attnspec/tokenize/tokenizer.h"

namespace py = pybind11;
using namespace attnspec;

namespace {

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
  return d;
}

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
  m.def("supported_families", &supported_families);

  py::class_<Tokenizer, std::shared_ptr<Tokenizer>>(m, "Tokenizer")
      .def_static("load", [](const std::filesystem::path& dir) { return std::shared_ptr<Tokenizer>(Tokenizer::load(dir)); },
                  py::arg("dir"))
      .def_static("present", &Tokenizer::present, py::arg("dir"))
      .def("encode", [](const Tokenizer& t, const std::string& text) {
             py::gil_scoped_release release;
             return t.encode(text);
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
           }, py::arg("token_ids"));

  m.def("run_analyze", [](const std::filesystem::path& model, std::optional<std::filesystem::path> text,
                          std::optional<std::filesystem::path> token_ids, int ctx, const std::filesystem::path& out,
                          int max_windows, bool save_spectra, int threads, std::optional<std::filesystem::path> tokenizer,
                          int strip_gutenberg, bool allow_long_context, bool quiet, bool resume) {
          AnalyzeRequest rq;
          rq.model = model;
          if (text) rq.text = *text;
          if (token_ids) rq.token_ids = *token_ids;
          if (tokenizer) rq.tokenizer = *tokenizer;
          rq.ctx = ctx;
          rq.out = out;
          rq.max_windows = max_windows;
          rq.save_spectra = save_spectra;
          rq.threads = threads;
          rq.strip_gutenberg = strip_gutenberg;
          rq.allow_long_context = allow_long_context;
          rq.quiet = quiet;
          rq.resume = resume;
          std::string summary;
          {
            py::gil_scoped_release release;
            summary = run_analyze(rq).dump();
          }
          return summary;
        },
        py::arg("model"), py::arg("text") = py::none(), py::arg("token_ids") = py::none(), py::arg("ctx"), py::arg("out"),
        py::arg("max_windows") = 0, py::arg("save_spectra") = false, py::arg("threads") = 0,
        py::arg("tokenizer") = py::none(), py::arg("strip_gutenberg") = -1, py::arg("allow_long_context") = false,
        py::arg("quiet") = true, py::arg("resume") = false);
}
