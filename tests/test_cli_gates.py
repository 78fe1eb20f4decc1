"""End-to-end tests of the CI gates (issue 5) through the `lpips` command line.

Covers every exit code of ``compare`` with ``--fail-if`` (fail-if semantics: a gate FAILS when its
expression is true), failed pairs against gates and ``--allow-failed``, ``all:`` scope, row gates,
percentiles, ``--summary-json`` (content, infinities, strict JSON), ``--junit`` (parsed with ElementTree),
the GitHub step summary and annotations, ``lpips diff`` on two real runs and ``lpips summary`` re-gating
result files without recomputing.

Runs go through Typer's CliRunner in-process (stdout and stderr captured apart) on small PNGs written in
tmp_path. Expected values never come from lpipscli: per-pair scores from scikit-image on the arrays
written, statistics from numpy, verdicts from comparing those with the thresholds.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from _helpers import distort, smooth_image
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from typer.testing import CliRunner

from lpipscli.cli import app

TOLERANCES = {
    # |engine PSNR - skimage| in dB (8-bit PNGs, see test_cli)
    "psnr": 1e-6,
    # |engine SSIM - skimage| (gaussian 11/1.5, population moments)
    "ssim": 1e-5,
    # |engine MSE - numpy| on [0, 1] pixels (float64)
    "mse": 1e-12,
    # relative difference of a summary statistic and numpy's statistic of the values written (both float64)
    "stat": 1e-12,
    # how far a threshold is put from the independently computed statistic so that the verdict is certain
    # (much larger than the engine-vs-skimage tolerances above)
    "margin_psnr": 0.01,
    "margin_ssim": 1e-4,
}

SSIM_KW = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "channel_axis": 2}
SIZE = (40, 48)  # height, width
KEYS = ["k0", "k1", "k2", "k3", "k4", "k5"]


# --------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def cli(monkeypatch):
    """Invoke the app in-process; CI variables of the machine running the tests are removed."""
    for name in ("LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS", "GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def invoke(*args, env: dict | None = None):
        return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "250", "NO_COLOR": "1", **(env or {})})

    return invoke


def make_tree(base: Path, roots: dict[str, float], keys=KEYS, identical=("k0",)) -> dict[str, dict]:
    """A reference folder ``base/ref`` and one distorted folder per root (noise sigma ``roots[root]``).

    Keys in ``identical`` are byte copies of their reference (PSNR = inf). Returns
    ``{root: {key: (ref array, dist array)}}``.
    """
    (base / "ref").mkdir(parents=True, exist_ok=True)
    refs = {}
    for n, key in enumerate(keys):
        refs[key] = smooth_image(*SIZE, 3, seed=100 + n)
        Image.fromarray(refs[key]).save(base / "ref" / f"{key}.png")
    out: dict[str, dict] = {}
    for r, (root, sigma) in enumerate(roots.items()):
        (base / root).mkdir(parents=True, exist_ok=True)
        out[root] = {}
        for n, key in enumerate(keys):
            if key in identical:
                shutil.copy(base / "ref" / f"{key}.png", base / root / f"{key}.png")
                dist = refs[key]
            else:
                # sigma grows with n, so PSNR values are spread out (distinct worst pairs)
                dist = distort(refs[key], seed=1000 * r + n, sigma=sigma * (1 + 0.4 * n))
                Image.fromarray(dist).save(base / root / f"{key}.png")
            out[root][key] = (refs[key], dist)
    return out


def sk_psnr(ref: np.ndarray, dist: np.ndarray) -> float:
    if np.array_equal(ref, dist):
        return math.inf  # the definition: MSE = 0
    return float(peak_signal_noise_ratio(ref, dist, data_range=255))


def sk_ssim(ref: np.ndarray, dist: np.ndarray) -> float:
    return float(structural_similarity(ref, dist, data_range=255, **SSIM_KW))


def read_csv_rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def csv_values(path: Path, metric: str, root: str | None = None) -> dict[str, float]:
    """``{dist file name stem: value}`` read with the csv module (empty cell = NaN)."""
    out = {}
    for row in read_csv_rows(path):
        if root is None or row["dist_root"] == root:
            out[Path(row["dist"]).stem] = float(row[metric]) if row[metric] else math.nan
    return out


def _reject_constant(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def strict_json(path: Path) -> dict:
    """Parse JSON refusing NaN / Infinity / -Infinity tokens (which strict JSON parsers reject)."""
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)


def json_float(value) -> float:
    """A number from the summary JSON, where non-finite floats are the strings 'inf', '-inf', 'nan'."""
    if isinstance(value, str):
        return {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}[value]
    return float(value)


def close(a: float, b: float, rel: float = TOLERANCES["stat"]) -> bool:
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= rel * max(1.0, abs(b))


def percentile_with_infinities(values: np.ndarray, q: float) -> float:
    """numpy's linear percentile; when an interpolation neighbour is +inf the result is +inf (the limit),
    where numpy itself gives NaN."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    h = q / 100 * (x.size - 1)
    if h != math.floor(h) and math.isinf(x[math.ceil(h)]):
        return math.inf
    if math.isinf(x[math.floor(h)]):
        return float(x[math.floor(h)])
    with np.errstate(invalid="ignore"):
        return float(np.percentile(x, q))


def corrupt_png_pixels(path: Path) -> None:
    """Flip bytes inside the first IDAT chunk: the header probes fine, decoding fails (CRC)."""
    data = bytearray(path.read_bytes())
    at = data.index(b"IDAT") + 4
    for k in range(8, 16):
        data[at + k] ^= 0xFF
    path.write_bytes(bytes(data))


def gate_verdicts(summary: dict) -> list[tuple[str, str, bool]]:
    return [(g["scope"], g["gate"], g["passed"]) for g in summary["gates"]]


# --------------------------------------------------------------------------------------------------
# exit 0 / 1: fail-if semantics, statistics, percentiles, row gates


def test_fail_if_verdicts_follow_independent_statistics(tmp_path, cli):
    arrays = make_tree(tmp_path, {"out": 6.0})["out"]
    psnr = np.array([sk_psnr(*arrays[k]) for k in KEYS])
    ssim = np.array([sk_ssim(*arrays[k]) for k in KEYS])
    fin = psnr[np.isfinite(psnr)]
    mp, ms = TOLERANCES["margin_psnr"], TOLERANCES["margin_ssim"]
    p5 = percentile_with_infinities(psnr, 5)  # the identical pair's inf is the top value
    hmean_ssim = float(ssim.size / np.sum(1.0 / ssim))
    # (gate, passes?) -- a gate FAILS when its expression is true
    cases = [
        (f"mean(psnr) < {fin.mean() + mp}", False),
        (f"mean(psnr) < {fin.mean() - mp}", True),
        (f"p5(psnr) < {p5 + mp}", False),
        (f"p5(psnr) < {p5 - mp}", True),
        (f"p95(ssim) > {np.percentile(ssim, 95) - ms}", False),
        (f"p95(ssim) > {np.percentile(ssim, 95) + ms}", True),
        (f"median(ssim) >= {np.median(ssim) - ms}", False),
        (f"std(psnr) > {fin.std() - mp}", False),
        (f"std(psnr) > {fin.std() + mp}", True),
        (f"hmean(ssim) < {hmean_ssim + ms}", False),
        (f"min(psnr) <= {fin.min() - mp}", True),
        ("max(psnr) == inf", False),  # the identical pair's inf is counted, not 0 and not dropped
        ("max(psnr) < 1000", True),
        ("count(psnr) != 6", True),
        ("count(psnr) <= 6", False),
        (f"any(psnr < {fin.min() + mp})", False),
        (f"any(psnr < {fin.min() - mp})", True),
        (f"all(ssim > {ssim.min() - ms})", False),
        (f"all(ssim > {ssim.min() + ms})", True),
    ]
    args = [x for gate, _ in cases for x in ("--fail-if", gate)]
    summary = tmp_path / "s.json"
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr,ssim", "-o", tmp_path / "x.csv",
                 "--workers", "0", "--summary-json", summary, *args)
    assert result.exit_code == 1, result.stderr
    gates = strict_json(summary)["gates"]
    assert [g["gate"].replace(" ", "") for g in gates] == [c.replace(" ", "") for c, _ in cases]
    assert [g["passed"] for g in gates] == [passes for _, passes in cases]
    assert all(g["scope"] == str(tmp_path / "out") for g in gates)
    assert close(json_float(gates[0]["observed"]), float(fin.mean()), 1e-7)  # engine vs skimage
    assert gates[13]["observed"] == 6 and json_float(gates[11]["observed"]) == math.inf
    verdict_lines = [line.split()[0] for line in result.stderr.splitlines() if line[:5] in ("PASS ", "FAIL ")]
    assert verdict_lines == ["PASS" if passes else "FAIL" for _, passes in cases]  # one line per gate

    passing = [x for gate, passes in cases if passes for x in ("--fail-if", gate)]
    ok = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr,ssim", "-o", tmp_path / "y.csv",
             "--workers", "0", *passing)
    assert ok.exit_code == 0, ok.stderr
    assert "FAIL" not in ok.stderr


def test_quiet_prints_only_failed_gates(tmp_path, cli):
    make_tree(tmp_path, {"out": 6.0})
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", tmp_path / "x.csv", "-q",
                 "--fail-if", "count(psnr) < 6", "--fail-if", "count(psnr) == 6")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("FAIL count(psnr) == 6")


# --------------------------------------------------------------------------------------------------
# exit 2: malformed gate or unknown metric, before any compute


@pytest.mark.parametrize(("gate", "needles"), [
    ("mean(psnr) >", ["expected a number", "end of expression"]),
    ("mean(psnr > 30", ["')'", "'>'"]),
    ("avg(psnr) > 30", ["unknown statistic 'avg'", "column 1"]),
    ("mean(psnr) => 30", ["'=>'", "column 12"]),
    ("mean(psnr) > thirty", ["'thirty'"]),
    ("mean(psnr) > nan", ["NaN"]),
    ("p101(psnr) < 30", ["p101"]),
    ("any(psnr) < 30", ["any(METRIC OP NUMBER)"]),
    ("each: mean(psnr) < 30", ["'each'", "all:"]),
    ("mean(lpips_alx) > 0.1", ["unknown metric 'lpips_alx'", "column 6"]),
    ("mean(ssim) < 0.9", ["unknown metric 'ssim'"]),  # a metric this run does not compute
    ("mean(PSNR) < 30", ["'PSNR'", "did you mean 'psnr'"]),
])
def test_exit_2_bad_gate_before_any_compute(tmp_path, cli, monkeypatch, gate, needles):
    from lpipscli.engine import Engine

    def no_compute(*args, **kwargs):
        raise AssertionError("the run started although a gate is malformed")

    monkeypatch.setattr(Engine, "pair", no_compute)
    monkeypatch.setattr(Engine, "build", no_compute)
    make_tree(tmp_path, {"out": 6.0}, keys=["k0", "k1"])
    out, summary, junit = tmp_path / "x.csv", tmp_path / "s.json", tmp_path / "j.xml"
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", out,
                 "--fail-if", "mean(psnr) < 10", "--fail-if", gate, "--summary-json", summary, "--junit", junit)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lpips: error: gate ")
    assert repr(gate) in lines[0] or gate in lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert result.stdout == ""
    assert not out.exists() and not summary.exists() and not junit.exists()
    assert not (tmp_path / "x.csv.meta.json").exists()


def test_diff_and_summary_refuse_bad_gates_with_exit_2(tmp_path, cli):
    make_tree(tmp_path, {"out": 6.0}, keys=["k0", "k1"])
    assert cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", tmp_path / "x.csv").exit_code == 0
    bad_summary = cli("summary", tmp_path / "x.csv", "--fail-if", "mean(ssim) < 1", "--summary-json",
                      tmp_path / "s.json")
    assert bad_summary.exit_code == 2 and "unknown metric 'ssim'" in bad_summary.stderr
    assert not (tmp_path / "s.json").exists()
    bad_diff = cli("diff", tmp_path / "x.csv", tmp_path / "x.csv", "--fail-if", "mean(psnr) > 0", "-o",
                   tmp_path / "d.csv")
    # a diff has delta_psnr / psnr_base / psnr_new columns, not psnr
    assert bad_diff.exit_code == 2 and "unknown metric 'psnr'" in bad_diff.stderr
    assert "delta_psnr" in bad_diff.stderr
    assert not (tmp_path / "d.csv").exists()


# --------------------------------------------------------------------------------------------------
# exit 3: runtime failure


def test_exit_3_missing_weights_with_gates(tmp_path, cli, monkeypatch):
    empty = tmp_path / "empty_torch_home"
    empty.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(empty))
    make_tree(tmp_path, {"out": 6.0}, keys=["k0", "k1"])
    out, summary = tmp_path / "x.csv", tmp_path / "s.json"
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "--net", "alex", "-m", "psnr", "-o", out,
                 "--device", "cpu", "--fail-if", "mean(lpips_alex) > 0.5", "--summary-json", summary)
    assert result.exit_code == 3, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lpips: error: ") and "alexnet" in lines[0]
    assert not out.exists() and not summary.exists()  # no fake result, no passing summary


# --------------------------------------------------------------------------------------------------
# failed pairs count against gates unless --allow-failed


def test_failed_pairs_fail_every_gate_unless_allowed(tmp_path, cli):
    arrays = make_tree(tmp_path, {"out": 6.0})["out"]
    corrupt_png_pixels(tmp_path / "out" / "k3.png")
    lenient = ["--fail-if", "mean(psnr) < 0", "--fail-if", "all: min(ssim) < -1"]  # never true
    common = [tmp_path / "ref", tmp_path / "out", "-m", "psnr,ssim", "--on-error", "skip", "--workers", "0"]

    strict = cli("compare", *common, "-o", tmp_path / "a.csv", "--summary-json", tmp_path / "a.json", *lenient)
    assert strict.exit_code == 1, strict.stderr
    data = strict_json(tmp_path / "a.json")
    assert data["failed"] == 1 and data["scored"] == 5 and data["pairs"] == 6
    block = data["per_dist_root"][str(tmp_path / "out")]
    assert block["failed"] == 1
    assert block["metrics"]["psnr"]["count"] == 6 and block["metrics"]["psnr"]["n_nan"] == 1
    assert [g["passed"] for g in data["gates"]] == [False, False]
    assert all("failed" in g["reason"] for g in data["gates"])
    assert "1 pair(s) failed" in strict.stderr and "k3.png" in strict.stderr
    # the failed pair is a NaN row, never a 0 that would drag statistics
    psnr = np.array([sk_psnr(*arrays[k]) for k in KEYS if k != "k3"])
    fin = psnr[np.isfinite(psnr)]
    assert close(json_float(block["metrics"]["psnr"]["mean"]), float(fin.mean()), 1e-7)
    assert json_float(block["metrics"]["psnr"]["min"]) == pytest.approx(fin.min(), abs=TOLERANCES["psnr"])

    allowed = cli("compare", *common, "-o", tmp_path / "b.csv", "--summary-json", tmp_path / "b.json",
                  "--allow-failed", *lenient)
    assert allowed.exit_code == 0, allowed.stderr
    assert all(g["passed"] for g in strict_json(tmp_path / "b.json")["gates"])
    # allowing failures does not make a true condition pass
    still = cli("compare", *common, "-o", tmp_path / "c.csv", "--allow-failed", "--fail-if", "mean(psnr) > 0")
    assert still.exit_code == 1


def test_count_gate_counts_only_scored_pairs(tmp_path, cli):
    make_tree(tmp_path, {"out": 6.0})
    (tmp_path / "out" / "k2.png").write_bytes(b"")  # fails when probed
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", tmp_path / "x.csv",
                 "--on-error", "skip", "--allow-failed", "--summary-json", tmp_path / "s.json",
                 "--fail-if", "count(psnr) < 6")
    assert result.exit_code == 1  # 5 pairs have a value: the "at least 6 scored" requirement fails
    assert strict_json(tmp_path / "s.json")["gates"][0]["observed"] == 5


# --------------------------------------------------------------------------------------------------
# scopes: per distorted input, and all: across them


def test_each_and_all_scopes_with_two_inputs(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    arrays = make_tree(Path("."), {"mild": 2.0, "heavy": 20.0}, identical=())
    psnr = {root: np.array([sk_psnr(*arrays[root][k]) for k in KEYS]) for root in arrays}
    split = float(psnr["mild"].mean() + psnr["heavy"].mean()) / 2
    both = np.concatenate([psnr["mild"], psnr["heavy"]])
    mp = TOLERANCES["margin_psnr"]
    low_mean, low_p95 = float(both.mean()) - mp, float(np.percentile(both, 95)) - mp
    result = cli("compare", "ref", "mild", "heavy", "-m", "psnr", "-o", "x.csv", "--workers", "0",
                 "--summary-json", "s.json", "--junit", "j.xml",
                 "--fail-if", f"mean(psnr) < {split!r}",
                 "--fail-if", f"all: mean(psnr) < {low_mean!r}",
                 "--fail-if", f"all:p95(psnr) > {low_p95!r}")
    assert result.exit_code == 1, result.stderr
    data = strict_json(Path("s.json"))
    assert gate_verdicts(data) == [
        ("mild", f"mean(psnr) < {split!r}", True),
        ("heavy", f"mean(psnr) < {split!r}", False),
        ("(all inputs)", f"all:mean(psnr) < {low_mean!r}", True),
        ("(all inputs)", f"all:p95(psnr) > {low_p95!r}", False),
    ]
    assert close(data["gates"][2]["observed"], float(both.mean()), 1e-7)
    assert set(data["per_dist_root"]) == {"mild", "heavy"}
    root = ET.parse("j.xml").getroot()
    cases = root.findall(".//testcase")
    assert [c.get("classname") for c in cases] == ["mild", "heavy", "(all inputs)", "(all inputs)"]
    assert root.get("tests") == "4" and root.get("failures") == "2"
    assert [c.find("failure") is not None for c in cases] == [False, True, False, True]


# --------------------------------------------------------------------------------------------------
# --summary-json


def test_summary_json_statistics_worst_pairs_gates_and_provenance(tmp_path, cli):
    arrays = make_tree(tmp_path, {"out": 6.0})["out"]
    out, summary = tmp_path / "x.csv", tmp_path / "s.json"
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr,ssim,mse", "-o", out, "--workers",
                 "0", "--summary-json", summary, "--worst", "3", "--fail-if", "p5(psnr) < 1")
    assert result.exit_code == 0, result.stderr
    text = summary.read_text(encoding="utf-8")
    data = strict_json(summary)  # valid strict JSON although PSNR of the identical pair is inf
    assert "Infinity" not in text and "NaN" not in text
    assert data["pairs"] == 6 and data["failed"] == 0
    block = data["per_dist_root"][str(tmp_path / "out")]
    assert block["failed"] == 0

    # the values written agree with scikit-image...
    written = {m: csv_values(out, m) for m in ("psnr", "ssim", "mse")}
    for key in KEYS:
        assert abs(written["ssim"][key] - sk_ssim(*arrays[key])) <= TOLERANCES["ssim"]
        ref, dist = (a.astype(np.float64) / 255 for a in arrays[key])
        assert abs(written["mse"][key] - float(np.mean((ref - dist) ** 2))) <= TOLERANCES["mse"]
        expected = sk_psnr(*arrays[key])
        got = written["psnr"][key]
        assert got == expected if math.isinf(expected) else abs(got - expected) <= TOLERANCES["psnr"]

    # ... and the summary statistics are numpy's on those values
    for metric, higher_is_better in (("psnr", True), ("ssim", True), ("mse", False)):
        stats = block["metrics"][metric]
        v = np.array([written[metric][k] for k in KEYS])
        fin = v[np.isfinite(v)]
        n_inf = int(np.isinf(v).sum())
        assert stats["count"] == 6 and stats["finite"] == 6 - n_inf and stats["n_posinf"] == n_inf
        assert stats["n_nan"] == 0 and stats["excluded_from_mean"] == n_inf
        assert close(json_float(stats["mean"]), float(fin.mean()))
        assert close(json_float(stats["std"]), float(fin.std()))
        assert close(json_float(stats["min"]), float(v.min()))
        assert close(json_float(stats["max"]), float(v.max()))
        if (v > 0).all():
            assert close(json_float(stats["hmean"]), float(v.size / np.sum(1.0 / v)))  # 1/inf = 0
        else:
            assert stats["hmean"] is None  # not meaningful with a value <= 0 (MSE of the identical pair)
        for key, q in (("median", 50), ("p1", 1), ("p5", 5), ("p95", 95), ("p99", 99)):
            assert close(json_float(stats[key]), percentile_with_infinities(v, q)), (metric, key)
        # worst pairs: lowest first for higher-is-better metrics, highest first otherwise; named by their files
        order = sorted(KEYS, key=lambda k: written[metric][k], reverse=not higher_is_better)[:3]
        assert stats["higher_is_better"] is higher_is_better
        assert [w["pair"] for w in stats["worst"]] == [str(tmp_path / "out" / f"{k}.png") for k in order]
        assert [json_float(w["value"]) for w in stats["worst"]] == [written[metric][k] for k in order]
    psnr_stats = block["metrics"]["psnr"]
    assert psnr_stats["n_posinf"] == 1 and psnr_stats["max"] == "inf" and psnr_stats["p99"] == "inf"
    assert psnr_stats["finite"] == 5 and json_float(psnr_stats["min"]) > 0  # inf was never turned into 0

    (gate,) = data["gates"]
    assert gate["gate"] == "p5(psnr) < 1" and gate["passed"] is True and gate["scope"] == str(tmp_path / "out")
    assert close(json_float(gate["observed"]), json_float(psnr_stats["p5"]))
    prov = data["provenance"]
    assert set(prov["metrics"]) == {"psnr", "ssim", "mse"} and len(prov["settings_hash"]) == 64
    assert prov["inputs"] == {"ref": str(tmp_path / "ref"), "dists": [str(tmp_path / "out")]}
    assert prov["versions"]["lpipscli"] and prov["versions"]["numpy"] == np.__version__
    # written atomically: no temporary file left beside it
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["s.json", "x.csv", "x.csv.meta.json"]


def test_lossless_encode_passes_a_mean_psnr_gate(tmp_path, cli):
    """Issue 11 point 3: every PSNR is +inf, so mean(psnr) is +inf (numpy's mean of the values) and the gate
    'mean(psnr) < 40' passes; the opposite gate fails."""
    make_tree(tmp_path, {"out": 6.0}, keys=["k0", "k1"], identical=("k0", "k1"))
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", tmp_path / "x.csv",
                 "--summary-json", tmp_path / "s.json", "--fail-if", "mean(psnr) < 40")
    assert result.exit_code == 0, result.stderr
    values = np.array(list(csv_values(tmp_path / "x.csv", "psnr").values()))
    assert np.isposinf(values).all() and np.mean(values) == math.inf
    data = strict_json(tmp_path / "s.json")
    stats = data["per_dist_root"][str(tmp_path / "out")]["metrics"]["psnr"]
    assert stats["mean"] == "inf" and stats["std"] == 0 and stats["min"] == "inf" and stats["median"] == "inf"
    assert data["gates"][0]["observed"] == "inf" and data["gates"][0]["passed"] is True
    result = cli("summary", tmp_path / "x.csv", "--fail-if", "mean(psnr) > 40")
    assert result.exit_code == 1, result.stderr


# --------------------------------------------------------------------------------------------------
# --junit


def test_junit_one_case_per_gate_and_per_pair(tmp_path, cli):
    make_tree(tmp_path, {"out": 6.0})
    (tmp_path / "out" / "k4.png").write_text("not an image")
    junit = tmp_path / "report.xml"
    common = [tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", tmp_path / "x.csv", "--on-error", "skip",
              "--allow-failed", "--fail-if", "mean(psnr) < 0", "--fail-if", "max(psnr) == inf",
              "--fail-if", "all: count(psnr) < 1", "--junit", junit]
    result = cli("compare", *common)
    assert result.exit_code == 1
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        (str(tmp_path / "out"), "mean(psnr) < 0"), (str(tmp_path / "out"), "max(psnr) == inf"),
        ("(all inputs)", "all:count(psnr) < 1")]
    assert [c.find("failure") is not None for c in cases] == [False, True, False]
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "0")
    assert (root.get("tests"), root.get("failures")) == ("3", "1")
    assert "observed: inf" in cases[1].find("failure").text

    per_pair = cli("compare", *common, "--junit-per-pair")
    assert per_pair.exit_code == 1
    root = ET.parse(junit).getroot()
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["lpipscli", "lpipscli.pairs"]
    pair_cases = suites[1].findall("testcase")
    assert sorted(c.get("name") for c in pair_cases) == sorted(str(tmp_path / "out" / f"{k}.png") for k in KEYS)
    errors = [c for c in pair_cases if c.find("error") is not None]
    assert [c.get("name") for c in errors] == [str(tmp_path / "out" / "k4.png")]
    assert "text file" in errors[0].find("error").get("message")
    assert (suites[1].get("tests"), suites[1].get("errors")) == ("6", "1")
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("9", "1", "1")


# --------------------------------------------------------------------------------------------------
# GitHub: step summary and annotations


def test_github_step_summary_and_error_annotations(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    arrays = make_tree(Path("."), {"q10": 3.0, "q90": 20.0}, identical=())
    means = {root: float(np.mean([sk_psnr(*arrays[root][k]) for k in KEYS])) for root in arrays}
    gate = f"mean(psnr) < {(means['q10'] + means['q90']) / 2:.3f}"  # q90 fails it, q10 passes
    step = Path("step.md")
    step.write_text("# earlier step\n", encoding="utf-8")
    args = ["compare", "ref", "q10", "q90", "-m", "psnr,ssim", "-o", "-", "--workers", "0", "-q",
            "--fail-if", gate, "--fail-if", "all: min(ssim) < -1"]
    result = cli(*args, env={"GITHUB_STEP_SUMMARY": str(step.resolve()), "GITHUB_ACTIONS": "true"})
    assert result.exit_code == 1, result.stderr
    text = step.read_text(encoding="utf-8")
    assert text.startswith("# earlier step\n")  # appended, not overwritten
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| input |"))
    assert [c.strip() for c in lines[header].strip("|").split("|")][:2] == ["input", "count"]
    assert set(lines[header + 1].replace("|", "").replace(" ", "")) <= {"-", ":"}
    table_rows = [line for line in lines if line.startswith("| q10 |") or line.startswith("| q90 |")]
    assert len(table_rows) == 4  # two metrics x two inputs
    assert all(row.split("|")[2].strip() == "6" for row in table_rows)  # count column
    plain = [line.replace("\\", "") for line in lines if line.startswith("|")]  # Markdown escapes removed
    gate_rows = [line for line in plain if gate in line]
    assert len(gate_rows) == 2
    assert [("FAIL" in r, "q90" in r) for r in gate_rows] == [(False, False), (True, True)]
    assert any("all:min(ssim) < -1" in line and "pass" in line for line in plain)

    annotations = [line for line in result.stderr.splitlines() if line.startswith("::error")]
    assert len(annotations) == 1 and "q90" in annotations[0] and gate in annotations[0]
    assert "::error" not in result.stdout  # stdout holds the CSV only
    assert [r["status"] for r in csv.DictReader(io.StringIO(result.stdout))] == ["ok"] * 12

    not_actions = cli(*args, env={"GITHUB_STEP_SUMMARY": str(step.resolve())})
    assert not_actions.exit_code == 1 and "::error" not in not_actions.stderr  # not on GitHub Actions
    assert step.read_text(encoding="utf-8").count("### Quality gates") == 2  # appended again


# --------------------------------------------------------------------------------------------------
# lpips diff on two real runs


@pytest.fixture
def two_runs(tmp_path, cli, monkeypatch):
    """BASE (CSV, v1 without k5) and NEW (Parquet, v2 without k2), plus complete runs of both."""
    monkeypatch.chdir(tmp_path)
    arrays = make_tree(Path("."), {"v1": 3.0, "v2": 6.0}, identical=())
    shutil.copytree("v1", "v1_gap")
    shutil.copytree("v2", "v2_gap")
    Path("v1_gap/k5.png").unlink()
    Path("v2_gap/k2.png").unlink()
    for root, out in (("v1", "base_full.csv"), ("v2", "new_full.parquet"), ("v1_gap", "base.csv"),
                      ("v2_gap", "new.parquet")):
        result = cli("compare", "ref", root, "-m", "psnr,ssim", "-o", out, "--workers", "0", "-q",
                     "--allow-unmatched")
        assert result.exit_code == 0, result.stderr
    return arrays


def test_diff_csv_vs_parquet_missing_extra_and_deltas(tmp_path, cli, two_runs):
    import pyarrow.parquet as pq

    result = cli("diff", "base.csv", "new.parquet", "-o", "d.csv", "--summary-json", "d.json")
    assert result.exit_code == 0, result.stderr  # no gate: nothing to fail
    assert "missing" in result.stderr  # the user is told
    rows = {Path(r["ref"]).stem: r for r in read_csv_rows(tmp_path / "d.csv")}
    header = list(read_csv_rows(tmp_path / "d.csv")[0])
    for m in ("psnr", "ssim"):
        assert f"delta_{m}" in header and f"{m}_base" in header and f"{m}_new" in header
    assert {k: r["status"] for k, r in rows.items()} == {
        "k0": "ok", "k1": "ok", "k2": "missing_in_new", "k3": "ok", "k4": "ok", "k5": "extra_in_new"}
    base = csv_values(tmp_path / "base.csv", "psnr")
    new = {Path(r["dist"]).stem: r["psnr"] for r in pq.read_table(tmp_path / "new.parquet").to_pylist()}
    for key in ("k0", "k1", "k3", "k4"):
        assert float(rows[key]["delta_psnr"]) == new[key] - base[key]  # exactly one subtraction
        assert float(rows[key]["psnr_base"]) == base[key] and float(rows[key]["psnr_new"]) == new[key]
    assert rows["k2"]["delta_psnr"] == "" and rows["k2"]["psnr_new"] == ""
    assert rows["k5"]["delta_psnr"] == "" and float(rows["k5"]["psnr_new"]) == new["k5"]
    data = strict_json(tmp_path / "d.json")
    assert data["counts"] == {"ok": 4, "missing_in_new": 1, "extra_in_new": 1, "failed": 0}
    assert [Path(p).stem for p in data["missing"]] == ["k2"] and [Path(p).stem for p in data["extra"]] == ["k5"]

    # a vanished pair counts as failed: even a gate whose condition is false fails...
    gate = ["--fail-if", "mean(delta_psnr) < -1000"]
    assert cli("diff", "base.csv", "new.parquet", *gate).exit_code == 1
    # ... unless failures are allowed
    assert cli("diff", "base.csv", "new.parquet", *gate, "--allow-failed").exit_code == 0


def test_diff_gates_on_deltas(tmp_path, cli, two_runs):
    psnr = {root: np.array([sk_psnr(*two_runs[root][k]) for k in KEYS]) for root in ("v1", "v2")}
    delta = psnr["v2"] - psnr["v1"]  # v2 is noisier: negative
    assert (delta < 0).all()
    mp = TOLERANCES["margin_psnr"]
    regress = cli("diff", "base_full.csv", "new_full.parquet", "--summary-json", "r.json",
                  "--fail-if", f"mean(delta_psnr) < {delta.mean() + mp}", "--fail-if", "any(delta_ssim > 0)")
    assert regress.exit_code == 1, regress.stderr
    gates = strict_json(tmp_path / "r.json")["gates"]
    assert [g["passed"] for g in gates] == [False, True]
    assert close(json_float(gates[0]["observed"]), float(delta.mean()), 1e-6)
    ok = cli("diff", "base_full.csv", "new_full.parquet", "--fail-if", f"mean(delta_psnr) < {delta.mean() - mp}",
             "--fail-if", f"all: min(psnr_new) < {psnr['v2'].min() - mp}")
    assert ok.exit_code == 0, ok.stderr
    # the same files the other way round: improvements
    assert cli("diff", "new_full.parquet", "base_full.csv", "--fail-if", "max(delta_psnr) < 0").exit_code == 0


def test_diff_summary_json_carries_provenance(tmp_path, cli, two_runs):
    result = cli("diff", "base_full.csv", "new_full.parquet", "--summary-json", "d.json", "-q")
    assert result.exit_code == 0, result.stderr
    prov = strict_json(tmp_path / "d.json")["provenance"]
    assert prov["kind"] == "diff"
    assert prov["base"]["path"] == "base_full.csv" and prov["new"]["path"] == "new_full.parquet"
    assert prov["base"]["provenance"]["inputs"]["dists"] == ["v1"]


def test_diff_refuses_runs_with_another_lpips_version_unless_forced(tmp_path, cli, torch_home, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_tree(Path("."), {"out": 6.0}, keys=["k0", "k1"], identical=())
    for version, out in (("0.1", "v01.csv"), ("0.0", "v00.parquet")):
        result = cli("compare", "ref", "out", "--net", "alex", "--lpips-version", version, "-o", out,
                     "--device", "cpu", "--workers", "0", "-q", "--allow-unverified-weights")
        assert result.exit_code == 0, result.stderr
    refused = cli("diff", "v01.csv", "v00.parquet", "-o", "d.csv", "--fail-if", "mean(delta_lpips_alex) > 1")
    assert refused.exit_code == 2
    lines = refused.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lpips: error: ")
    assert "version" in lines[0] and "0.1" in lines[0] and "0.0" in lines[0] and "--force" in lines[0]
    assert not Path("d.csv").exists()
    forced = cli("diff", "v01.csv", "v00.parquet", "-o", "d.csv", "--force", "--fail-if",
                 "mean(delta_lpips_alex) > 1")
    assert forced.exit_code == 0, forced.stderr
    assert "scored differently (forced)" in forced.stderr
    rows = read_csv_rows(tmp_path / "d.csv")
    assert len(rows) == 2 and all(r["status"] == "ok" and r["delta_lpips_alex"] != "" for r in rows)


# --------------------------------------------------------------------------------------------------
# lpips summary: re-gate a results file without recomputing


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_summary_regates_a_results_file_like_compare(tmp_path, cli, fmt):
    make_tree(tmp_path, {"out": 6.0})
    (tmp_path / "out" / "k5.png").write_bytes(b"")  # a failed pair
    out = tmp_path / f"x.{fmt}"
    gates = ["--fail-if", "mean(psnr) < 20", "--fail-if", "max(psnr) == inf", "--fail-if", "all: p5(ssim) < 0",
             "--fail-if", "any(psnr < 10)"]
    verdicts = {}
    for allow in ([], ["--allow-failed"]):
        compared = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr,ssim", "-o", out, "--on-error",
                       "skip", "--workers", "0", "--worst", "2", "--summary-json", tmp_path / "c.json", *gates,
                       *allow)
        verdicts[bool(allow)] = (compared.exit_code, strict_json(tmp_path / "c.json"))
    assert verdicts[False][0] == 1 and verdicts[True][0] == 1
    assert not all(g["passed"] for g in verdicts[True][1]["gates"])
    assert any(g["passed"] for g in verdicts[True][1]["gates"])

    # nothing left to recompute from
    shutil.rmtree(tmp_path / "ref")
    shutil.rmtree(tmp_path / "out")
    for allow in (False, True):
        code, compare_json = verdicts[allow]
        result = cli("summary", out, "--worst", "2", "--summary-json", tmp_path / "s.json", *gates,
                     *(["--allow-failed"] if allow else []))
        assert result.exit_code == code, result.stderr
        data = strict_json(tmp_path / "s.json")
        assert [(g["scope"], g["gate"], g["passed"], g["observed"]) for g in data["gates"]] == [
            (g["scope"], g["gate"], g["passed"], g["observed"]) for g in compare_json["gates"]]
        root = str(tmp_path / "out")
        assert data["per_dist_root"][root]["failed"] == 1
        for metric in ("psnr", "ssim"):
            assert data["per_dist_root"][root]["metrics"][metric] == compare_json["per_dist_root"][root]["metrics"][
                metric]
        assert data["provenance"]["settings_hash"] == compare_json["provenance"]["settings_hash"]
