"""Beyond the paper: the causal energy field E~c, the data side, the invariants of arXiv 2605.02907,
the compression plan and the aggregation over windows and runs.

Oracles: numpy on materialised float64 matrices (E~c built from its definition, numpy SVD,
numpy softmax for TV/KL), Hugging Face transformers through hf_oracle (queries, keys, the
attention input X and the attention masks of tiny checkpoints of every family and of the real
TinyStories model)."""
from __future__ import annotations

import csv
import json
import subprocess

import numpy as np
import pandas as pd
import pytest

import attnspec
import hf_oracle
from conftest import shared_path

EPS_F32 = 2.0**-23


# ---------------------------------------------------------------------------------------------
# numpy references
# ---------------------------------------------------------------------------------------------


def visible_mask(n: int, window: int | None = None) -> np.ndarray:
    """Key j visible to query i: j <= i and (no window or i - j < window)."""
    i, j = np.indices((n, n))
    keep = j <= i
    if window:
        keep &= i - j < window
    return keep


def causal_field(Q, K, scale, visible) -> np.ndarray:
    """E~c from its definition: logits on the visible keys, each row centred over them, 0 elsewhere."""
    E = scale * np.asarray(Q, np.float64) @ np.asarray(K, np.float64).T
    Ec = np.where(visible, E, 0.0)
    mean = Ec.sum(axis=1, keepdims=True) / visible.sum(axis=1, keepdims=True)
    return np.where(visible, Ec - mean, 0.0)


def svals(A) -> np.ndarray:
    with hf_oracle.single_threaded_blas():
        return np.linalg.svd(A, compute_uv=False)


def log_softmax_masked(L, visible):
    x = np.where(visible, L, -np.inf)
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def compression_reference(Q, K, scale, visible, ks):
    """Mean TV and KL(P || P_k) of softmax(rank-k E~) against the model's attention, by numpy."""
    Q = np.asarray(Q, np.float64)
    K = np.asarray(K, np.float64)
    logp = log_softmax_masked(scale * Q @ K.T, visible)  # the model's own (uncentred) logits
    E = hf_oracle.energy_field(Q, K, scale)
    with hf_oracle.single_threaded_blas():
        U, S, Vt = np.linalg.svd(E)
    p = np.exp(logp)
    tv, kl = [], []
    for k in ks:
        logq = log_softmax_masked((U[:, :k] * S[:k]) @ Vt[:k], visible)
        with np.errstate(invalid="ignore"):  # -inf - -inf on masked entries, discarded by np.where
            d = np.where(visible, logp - logq, 0.0)
        tv.append(np.mean(0.5 * np.where(visible, np.abs(p - np.exp(logq)), 0).sum(axis=1)))
        kl.append(np.mean((p * d).sum(axis=1)))
    return np.array(tv), np.array(kl)


def random_head(n, dh, seed, key_offset=3.0):
    rng = np.random.default_rng(seed)
    Q = rng.standard_normal((n, dh))
    K = rng.standard_normal((n, dh)) + key_offset * rng.standard_normal(dh)
    return Q, K


def k_tau(sigma, tau):
    return hf_oracle.k_tau(sigma, tau)


TAUS = {"k50": 0.5, "k80": 0.8, "k90": 0.9, "k95": 0.95, "k99": 0.99}


# ---------------------------------------------------------------------------------------------
# Array level, against numpy
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [None, 1, 5, 30])
def test_causal_field_matrix_and_dense_spectrum(window):
    Q, K = random_head(90, 8, 1)
    s = 0.4
    ref = causal_field(Q, K, s, visible_mask(90, window))
    got = attnspec.causal_field_matrix(Q, K, scale=s, window=window)
    assert np.max(np.abs(got - ref)) < 1e-12 * max(1.0, np.max(np.abs(ref)))
    res = attnspec.causal_field_spectrum(Q, K, scale=s, window=window)
    assert res["method"] == "dense" and res["complete"] and res["k_tau_exact"]
    dense = svals(ref)
    assert np.max(np.abs(res["sigma"] - dense)) <= 1e-10 * max(dense[0], 1e-300)
    assert res["variance"] == pytest.approx(np.sum(ref**2), rel=1e-10, abs=1e-20)
    if window != 1:
        for name, tau in TAUS.items():
            assert res["k_tau"][name] == k_tau(dense, tau)
        assert res["erank"] == pytest.approx(hf_oracle.erank(dense), rel=1e-9)


def test_causal_field_without_window_is_the_oracles():
    Q, K = random_head(60, 6, 2)
    ours = attnspec.causal_field_spectrum(Q, K, scale=0.3)["sigma"]
    ref = hf_oracle.causal_field_singular_values(Q, K, 0.3)
    assert np.max(np.abs(ours - ref)) < 1e-10 * ref[0]


@pytest.mark.parametrize("n,dh,window", [(300, 8, None), (500, 16, 64), (600, 16, None)])
def test_lanczos_against_dense(n, dh, window):
    """The iterative method on n = 300..600: its stated bounds hold, and converged values are exact."""
    Q, K = random_head(n, dh, n)
    s = 1 / np.sqrt(dh)
    dense = svals(causal_field(Q, K, s, visible_mask(n, window)))
    total = np.sum(dense**2)
    for max_values in (48, 400):
        res = attnspec.causal_field_spectrum(Q, K, scale=s, window=window, method="lanczos", max_values=max_values)
        sig = res["sigma"]
        m = len(sig)
        assert res["method"] == "lanczos" and m <= max_values
        assert res["variance"] == pytest.approx(total, rel=1e-10)
        unexplained = res["unexplained"] * total
        assert unexplained >= total - np.sum(sig**2) - 1e-9 * total
        tol = 1e-10 * dense[0]
        assert np.all(sig <= dense[:m] + tol)  # Ritz values are lower bounds
        assert np.all(dense[:m] ** 2 <= sig**2 + unexplained + tol * dense[0])  # Weyl upper bounds
        upto = res["k_tau"]["k99"] or m
        for x in sig[:upto]:  # a true singular value within the stated residual of each
            assert np.min(np.abs(dense - x)) <= res["residual"] * sig[0] + tol
        for name, tau in TAUS.items():
            truth = k_tau(dense, tau)
            assert res["k_tau_lower"][name] <= truth
            if res["k_tau"][name] is not None:
                assert res["k_tau"][name] >= truth
        if res["k_tau_exact"] or (res["k_tau"]["k99"] is not None and res["residual"] <= 1e-10):
            assert {k: res["k_tau"][k] for k in TAUS} == {k: k_tau(dense, t) for k, t in TAUS.items()}
    # With room for enough steps the leading values converge to the dense ones.
    assert res["k_tau"]["k99"] is not None and res["residual"] <= 1e-10
    assert np.max(np.abs(sig[: res["k_tau"]["k90"]] - dense[: res["k_tau"]["k90"]])) < 1e-8 * dense[0]


def test_top_k_values_only():
    Q, K = random_head(700, 16, 3)
    res = attnspec.causal_field_spectrum(Q, K, k=4, method="lanczos")
    dense = svals(causal_field(Q, K, 0.25, visible_mask(700)))
    assert len(res["sigma"]) == 4
    assert np.max(np.abs(res["sigma"] - dense[:4])) < 1e-8 * dense[0]


def test_invariants_against_numpy():
    Q, K = random_head(240, 12, 4)
    s = 0.3
    inv = attnspec.field_invariants(Q, K, scale=s)
    E = hf_oracle.energy_field(Q, K, s)
    n = E.shape[0]
    assert inv["max_abs"] == pytest.approx(np.max(np.abs(E)), rel=1e-12)
    assert inv["row_sum_residual"] < 1e-12
    assert np.max(np.abs(E.sum(axis=1))) / np.max(np.abs(E)) < 1e-12
    sv = svals(E)
    assert inv["rank"] == int(np.sum(sv > n * EPS_F32 * sv[0])) == 12
    c = np.sum(E**2, axis=0)
    assert inv["col_participation"] == pytest.approx(c.sum() ** 2 / np.sum(c**2), rel=1e-9)
    top = int(np.ceil(n / 100))
    assert inv["col_top1pct_share"] == pytest.approx(np.sort(c)[::-1][:top].sum() / c.sum(), rel=1e-9)
    assert inv["col_top_position"] == int(np.argmax(c))
    Kc = K - K.mean(axis=0)
    U, _, _ = np.linalg.svd(Kc, full_matrices=False)
    lev = np.sum(U**2, axis=1)
    assert np.max(np.abs(inv["key_leverage"] - lev)) < 1e-10
    assert inv["key_coherence"] == pytest.approx(lev.max() * n / 12, rel=1e-9)
    assert inv["key_coherence_position"] == int(np.argmax(lev))


def test_invariants_known_answers():
    # A planted rank-3 field and one dominant key position.
    rng = np.random.default_rng(5)
    Q, K = random_head(200, 10, 5)
    Q = rng.standard_normal((200, 3)) @ rng.standard_normal((3, 10))
    K[77] += 300.0
    inv = attnspec.field_invariants(Q, K)
    assert inv["rank"] == 3
    assert inv["key_coherence_position"] == 77 and inv["key_coherence"] > 0.95 * 200 / 10
    assert inv["col_top_position"] == 77 and inv["col_top1pct_share"] > 0.9
    curve = attnspec.compression_curve(Q, K)
    assert curve["tv"][3] < 1e-9 and curve["tv"][2] > 1e-4  # rank 3 is the model's attention


@pytest.mark.parametrize("window", [None, 7])
def test_compression_curve_against_numpy(window):
    Q, K = random_head(64, 8, 6)
    s = 0.6
    got = attnspec.compression_curve(Q, K, scale=s, window=window)
    assert list(got["k"]) == list(range(9))
    tv, kl = compression_reference(Q, K, s, visible_mask(64, window), range(9))
    assert np.max(np.abs(got["tv"] - tv)) < 1e-10
    assert np.max(np.abs(got["kl"] - kl)) < 1e-10
    assert got["tv"][-1] < 1e-12 and got["kl"][-1] < 1e-12  # full rank: softmax ignores the centring
    geo = attnspec.compression_curve(Q, K, scale=s, window=window, ranks=[0, 3, 8])
    assert np.allclose(geo["tv"], got["tv"][[0, 3, 8]], atol=1e-12)


def test_energy_field_svd_and_data_spectrum():
    Q, K = random_head(50, 6, 7)
    left, sigma, right = attnspec.energy_field_svd(Q, K, scale=0.5)
    E = hf_oracle.energy_field(Q, K, 0.5)
    assert np.max(np.abs(left @ np.diag(sigma) @ right.T - E)) < 1e-12 * np.max(np.abs(E))
    X = np.random.default_rng(8).standard_normal((40, 12)) + 4.0
    assert np.allclose(attnspec.data_spectrum(X), svals(X - X.mean(axis=0)), rtol=1e-12, atol=1e-12)
    assert np.allclose(attnspec.data_spectrum(X, centre=False), svals(X), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Tiny checkpoints of every family, against transformers
# ---------------------------------------------------------------------------------------------

FAMILY_CASES = [("gpt2", "base"), ("llama", "gqa4"), ("qwen2", "base"), ("mistral", "base"), ("mistral", "head_dim32")]
N_TOKENS = 40


@pytest.mark.parametrize("family,variant", FAMILY_CASES)
def test_causal_field_against_transformers(checkpoints, family, variant, tmp_path):
    """E~c of every head through attnspec.analyze(field="both") vs E~c built from the oracle's
    tensors with the model's own attention mask (mistral: its sliding window)."""
    path = checkpoints(family, variant)
    ids = [int(t) for t in np.random.default_rng(7).integers(0, 512, size=N_TOKENS)]
    ref = hf_oracle.capture(path, ids)
    run = attnspec.analyze(path, token_ids=ids, ctx=N_TOKENS, out=tmp_path / "run", field="both",
                           invariants=True, data_side=True, threads=1)
    c = ref["config"]
    window = ref["sliding_window"][0]
    if family == "mistral":
        assert window and window < N_TOKENS
        assert np.array_equal(ref["visible"][0], visible_mask(N_TOKENS, window))  # the convention we follow
    heads = run.heads.set_index(["layer", "head"])
    for layer in range(c["n_layers"]):
        vis = ref["visible"][layer]
        for h in range(c["H"]):
            g = hf_oracle.kv_head_of(h, c["H"], c["G"])
            Q, K, s = ref["Q"][layer, h], ref["K"][layer, g], ref["scale"][layer]
            dense = svals(causal_field(Q, K, s, vis))
            if not window:
                assert np.allclose(dense, hf_oracle.causal_field_singular_values(Q, K, s), atol=1e-12 * dense[0])
            got = run.spectra[(0, layer, h)]["causal"]
            assert len(got) == N_TOKENS
            assert np.max(np.abs(got - dense)) < 1e-5 * dense[0], (layer, h)
            row = heads.loc[(layer, h)]
            assert row["causal_method"] == "dense" and row["causal_k_exact"] == 1
            # k90 equal unless the oracle itself sits on the 0.9 boundary (float32 forward differences)
            frac = hf_oracle.variance_fractions(dense)
            k = k_tau(dense, 0.9)
            if abs(frac[k - 1] - 0.9) > 1e-5 and (k == 1 or abs(frac[k - 2] - 0.9) > 1e-5):
                assert row["k90_causal"] == k, (layer, h)
            assert row["rank_field"] <= c["d_h"]  # the invariant; E~c has no such bound
            assert row["rank_causal"] > c["d_h"]
    # The data side: Xc per layer against the oracle's normalised attention input.
    for layer in range(c["n_layers"]):
        X = ref["X"][layer]
        want = svals(X - X.mean(axis=0))
        got = run.layers.query(f"layer == {layer}").iloc[0]
        assert got["sigma1_input"] == pytest.approx(want[0], rel=1e-4)
        frac = hf_oracle.variance_fractions(want)
        k = k_tau(want, 0.9)
        if abs(frac[k - 1] - 0.9) > 1e-4 and abs(frac[k - 2] - 0.9) > 1e-4:
            assert got["k90_input"] == k


def test_plan_sliding_window_against_transformers(checkpoints, tmp_path):
    """attnspec.plan on mistral (window 8 < 32 tokens): the curves follow the model's own mask."""
    path = checkpoints("mistral", "base")
    ids = [int(t) for t in np.random.default_rng(1).integers(0, 512, size=64)]
    result = attnspec.plan(path, token_ids=ids, ctx=32, tolerances=[0.1], out=tmp_path / "plan", threads=1)
    ref = hf_oracle.capture(path, ids[32:64])
    c = ref["config"]
    for layer, h in [(1, 3), (2, 6)]:
        g = hf_oracle.kv_head_of(h, c["H"], c["G"])
        tv, kl = compression_reference(ref["Q"][layer, h], ref["K"][layer, g], ref["scale"][layer],
                                       ref["visible"][layer], range(c["d_h"] + 1))
        got = result.curves.query(f"window == 1 and layer == {layer} and head == {h}").sort_values("k")
        assert np.max(np.abs(got["tv"].to_numpy() - tv)) < 1e-4
        assert np.max(np.abs(got["kl"].to_numpy() - kl)) < 1e-4 * max(1.0, kl.max())
    assert set(result.plan["k"]) <= set(range(c["d_h"] + 1))


# ---------------------------------------------------------------------------------------------
# The real TinyStories model, end to end through the CLI and the binding
# ---------------------------------------------------------------------------------------------

CTX = 256


@pytest.fixture(scope="module")
def stories():
    return shared_path("models", "stories260K-hf")


@pytest.fixture(scope="module")
def story_file():
    from pathlib import Path

    p = Path(__file__).resolve().parents[1] / "examples" / "stories260K_story.json"
    assert p.exists(), p
    return p


@pytest.fixture(scope="module")
def cli_run(stories, story_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("beyond") / "run"
    proc = subprocess.run(["attnspec", "analyze", "--model", str(stories), "--token-ids", str(story_file), "--ctx",
                           str(CTX), "--out", str(out), "--field", "both", "--data-side", "--invariants",
                           "--save-spectra", "--threads", "2", "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def cli_plan(stories, story_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("beyond") / "plan"
    proc = subprocess.run(["attnspec", "plan", "--model", str(stories), "--token-ids", str(story_file), "--ctx", str(CTX),
                           "--out", str(out), "--tolerance", "0.01", "--tolerance", "0.05", "--threads", "2", "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


def test_stories_cli_files(cli_run):
    names = {p.name for p in cli_run.iterdir()}
    assert names == {"heads.csv", "spectra.jsonl", "summary.json", "head_summary.csv", "layers.csv", "layers.jsonl"}
    rows = list(csv.DictReader((cli_run / "heads.csv").open()))
    assert len(rows) == 4 * 5 * 8
    header = list(rows[0])
    assert header[:9] == ["window", "layer", "head", "kv_head", "n", "k90_field", "k90_weights", "erank_field",
                          "erank_weights"]
    for col in ("k90_causal", "erank_causal", "k99_causal", "causal_method", "causal_unexplained", "k90_keys",
                "k90_queries", "k90_queries_centred", "row_sum_residual", "rank_field", "col_participation",
                "col_top1pct_share", "key_coherence"):
        assert col in header, col
    summary = json.loads((cli_run / "summary.json").read_text())
    assert summary["options"]["field"] == "both"
    assert "field_causal" in summary["conventions"] and "numerical_rank" in summary["conventions"]
    assert "k90_causal" in summary["aggregates"]
    layers = pd.read_csv(cli_run / "layers.csv")
    assert len(layers) == 4 * 5 and (layers["d"] == 64).all()


def test_stories_causal_field_and_invariants_against_transformers(stories, story_file, cli_run):
    ids = json.loads(story_file.read_text())
    w = 1
    ref = hf_oracle.capture(stories, ids[w * CTX:(w + 1) * CTX])
    c = ref["config"]
    heads = pd.read_csv(cli_run / "heads.csv").query(f"window == {w}").set_index(["layer", "head"])
    spectra = {(r["layer"], r["head"]): r for r in map(json.loads, (cli_run / "spectra.jsonl").open())
               if r["window"] == w}
    for layer in range(c["n_layers"]):
        for h in range(c["H"]):
            g = hf_oracle.kv_head_of(h, c["H"], c["G"])
            Q, K, s = ref["Q"][layer, h], ref["K"][layer, g], ref["scale"][layer]
            dense = hf_oracle.causal_field_singular_values(Q, K, s)
            got = np.array(spectra[(layer, h)]["causal"])
            assert np.max(np.abs(got - dense)) < 1e-5 * dense[0]
            row = heads.loc[(layer, h)]
            assert row["variance_causal"] == pytest.approx(np.sum(dense**2), rel=1e-4)
            E = hf_oracle.energy_field(Q, K, s)
            col = np.sum(E**2, axis=0)
            assert row["col_participation"] == pytest.approx(col.sum() ** 2 / np.sum(col**2), rel=1e-3)
            assert row["max_abs_field"] == pytest.approx(np.max(np.abs(E)), rel=1e-4)
            assert row["row_sum_residual"] < 1e-12
            Kc = K - K.mean(axis=0)
            lev = np.sum(np.linalg.svd(Kc, full_matrices=False)[0] ** 2, axis=1)
            assert row["key_coherence"] == pytest.approx(lev.max() * CTX / c["d_h"], rel=1e-3)
            Qs = svals(Q)
            assert row["sigma1_queries"] == pytest.approx(Qs[0], rel=1e-4)
            assert row["sigma1_keys"] == pytest.approx(svals(Kc)[0], rel=1e-4)


def test_stories_head_summary_and_aggregate(cli_run, tmp_path):
    heads = pd.read_csv(cli_run / "heads.csv")
    hs = pd.read_csv(cli_run / "head_summary.csv")
    assert len(hs) == 5 * 8 and (hs["windows"] == 4).all()
    for _, r in hs.iterrows():
        v = heads.query(f"layer == {r['layer']} and head == {r['head']}")
        for m in ("k90_field", "k90_causal"):
            x = v[m].to_numpy(float)
            assert r[f"{m}_median"] == pytest.approx(np.median(x))
            assert r[f"{m}_iqr"] == pytest.approx(np.percentile(x, 75) - np.percentile(x, 25))
            assert (r[f"{m}_min"], r[f"{m}_max"]) == (x.min(), x.max())
    agg = attnspec.aggregate([cli_run])
    assert np.allclose(agg[hs.columns].to_numpy(float), hs.to_numpy(float), equal_nan=True)
    two = attnspec.aggregate([cli_run, cli_run])
    assert (two["runs"] == 2).all() and (two["windows"] == 8).all()
    assert np.allclose(two["k90_causal_median"], hs["k90_causal_median"])


def test_stories_plan(stories, story_file, cli_plan):
    plan = pd.read_csv(cli_plan / "plan.csv")
    curves = pd.read_csv(cli_plan / "plan_curves.csv")
    assert sorted(plan["tolerance"].unique()) == [0.01, 0.05]
    assert len(plan) == 2 * 5 * 8
    assert len(curves) == 4 * 5 * 8 * 9  # windows x heads x ranks 0..8
    # plan.csv from the curves: worst window, smallest k after which TV stays <= EPS.
    worst = curves.groupby(["layer", "head", "k"])["tv"].max()
    for _, r in plan.iterrows():
        tv = worst.loc[(r["layer"], r["head"])]
        ok = tv <= r["tolerance"]
        k = min(kk for kk in tv.index if ok.loc[kk:].all())
        assert r["k"] == k
        assert r["flops_saved"] == pytest.approx(1 - k / 8)
        group = plan.query(f"tolerance == {r['tolerance']} and layer == {r['layer']} and kv_head == {r['kv_head']}")
        assert r["kv_group_rank"] == min(8, group["k"].sum())
        assert r["key_cache_saved"] == pytest.approx(1 - r["kv_group_rank"] / 8)
    assert (plan.query("tolerance == 0.05")["k"].to_numpy() <= plan.query("tolerance == 0.01")["k"].to_numpy()).all()
    # Window 0's curves against numpy on the oracle's tensors.
    ids = json.loads(story_file.read_text())[:CTX]
    ref = hf_oracle.capture(stories, ids)
    vis = visible_mask(CTX)
    for layer, h in [(0, 0), (2, 5), (4, 7)]:
        g = hf_oracle.kv_head_of(h, 8, 4)
        tv, kl = compression_reference(ref["Q"][layer, h], ref["K"][layer, g], ref["scale"][layer], vis, range(9))
        got = curves.query(f"window == 0 and layer == {layer} and head == {h}").sort_values("k")
        assert np.max(np.abs(got["tv"].to_numpy() - tv)) < 1e-4
        assert np.max(np.abs(got["kl"].to_numpy() - kl)) < 1e-3 * max(1.0, kl.max())
    summary = json.loads((cli_plan / "plan.json").read_text())
    assert [p["tolerance"] for p in summary["plan"]] == [0.01, 0.05]
    assert "aggregation" in summary["conventions"]


def test_stories_binding_matches_cli(stories, story_file, cli_run, cli_plan, tmp_path):
    ids = json.loads(story_file.read_text())
    run = attnspec.analyze(stories, token_ids=ids, ctx=CTX, out=tmp_path / "api", field="both", data_side=True,
                           invariants=True, threads=1)
    for name in ("heads.csv", "head_summary.csv", "layers.csv", "spectra.jsonl"):
        assert (tmp_path / "api" / name).read_bytes() == (cli_run / name).read_bytes(), name
    assert run.head_summary is not None and "causal" in run.spectra[(0, 0, 0)]
    p = attnspec.plan(stories, token_ids=ids, ctx=CTX, out=tmp_path / "plan", tolerances=[0.05, 0.01], threads=1)
    assert (tmp_path / "plan" / "plan.csv").read_bytes() == (cli_plan / "plan.csv").read_bytes()
    assert len(p.curves) == 4 * 5 * 8 * 9


def test_default_run_is_unchanged_and_bad_options(stories, story_file, cli_run, tmp_path):
    out = tmp_path / "plain"
    subprocess.run(["attnspec", "analyze", "--model", str(stories), "--token-ids", str(story_file), "--ctx", str(CTX),
                    "--out", str(out), "--quiet", "--max-windows", "2"], check=True)
    plain = pd.read_csv(out / "heads.csv")
    assert "k90_causal" not in plain and not (out / "layers.csv").exists()
    both = pd.read_csv(cli_run / "heads.csv")
    assert plain.equals(both[plain.columns].iloc[: len(plain)])  # the fixed columns do not move
    bad = subprocess.run(["attnspec", "analyze", "--model", str(stories), "--token-ids", str(story_file), "--ctx", "64",
                          "--out", str(tmp_path / "bad"), "--field", "masked"], capture_output=True, text=True)
    assert bad.returncode == 2
    bad = subprocess.run(["attnspec", "plan", "--model", str(stories), "--token-ids", str(story_file), "--ctx", "64",
                          "--out", str(tmp_path / "bad"), "--tolerance", "1.5"], capture_output=True, text=True)
    assert bad.returncode == 2 and "tolerance" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
