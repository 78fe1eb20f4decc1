"""`lpips eval 2afc|jnd|mos` end to end through CliRunner, on sets built in tmp_path.

Expected scores come from the construction (a copy of the reference is always closer than a noisy
image), from hand computation, or from NumPy/SciPy code here on the arrays that were written (MSE of
uint8 arrays, the LPIPS repository's AP loop, scipy.stats), never from the module under test.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _helpers import smooth_image, voc_ap_loop
from PIL import Image
from scipy.stats import kendalltau, spearmanr
from skimage.metrics import peak_signal_noise_ratio
from typer.testing import CliRunner

from lpipscli.cli import app

TOLERANCES = {
    "credit": 1e-12,  # credits are sums of products of the judge values
    "psnr": 1e-6,  # dB, float64 path against skimage on 8-bit files
    "mse": 1e-12,  # float64 MSE of 8-bit values against NumPy
    "ap": 1e-12,
    "corr": 1e-10,
}
FAST = ["--workers", "0", "--device", "cpu", "--quiet"]


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _noisy(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, image.shape)
    return np.clip(image + noise, 0, 255).round().astype(np.uint8)


def _triplet(cat: Path, name: str, ref, p0, p1, judge: float) -> None:
    for d, image in (("ref", ref), ("p0", p0), ("p1", p1)):
        _save(cat / d / f"{name}.png", image)
    (cat / "judge").mkdir(parents=True, exist_ok=True)
    np.save(cat / "judge" / f"{name}.npy", np.array([judge], np.float32))


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def make_2afc_split(root: Path, size: int = 16) -> dict[str, np.ndarray]:
    """right: p0 = ref, p1 = ref + strong noise, people chose p0 (judge 0); wrong: the same, people chose p1;
    tie: one triplet whose p0 and p1 are the same file content (any metric ties, credit 0.5)."""
    arrays = {}
    for i in range(3):
        ref = smooth_image(size, size, 3, seed=i)
        noisy = _noisy(ref, 60.0, seed=10 + i)
        _triplet(root / "right", f"{i:03d}", ref, ref, noisy, 0.0)
        _triplet(root / "wrong", f"{i:03d}", ref, noisy if i == 2 else ref, ref if i == 2 else noisy,
                 0.0 if i == 2 else 1.0)  # one swapped: p1 = ref, judge 0 -> still wrong
        arrays[f"ref{i}"], arrays[f"noisy{i}"] = ref, noisy
    ref = smooth_image(size, size, 3, seed=9)
    same = _noisy(ref, 20.0, seed=99)
    _triplet(root / "tie", "000", ref, same, same, 0.375)
    return arrays


def test_2afc_perfectly_right_wrong_and_tied(tmp_path):
    arrays = make_2afc_split(tmp_path / "val")
    rows_path, summary_path = tmp_path / "rows.csv", tmp_path / "s.json"
    result = CliRunner().invoke(app, ["eval", "2afc", str(tmp_path / "val"), "-m", "psnr,ssim,mse", "-o",
                                      str(rows_path), "--summary-json", str(summary_path), "--bootstrap", "200",
                                      "--seed", "5", *FAST])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(summary_path.read_text())
    assert summary["categories"] == {"right": 3, "tie": 1, "wrong": 3}
    assert summary["bootstrap"]["resamples"] == 200 and summary["bootstrap"]["seed"] == 5
    for metric in ("psnr", "ssim", "mse"):
        block = summary["scores"][metric]
        per_cat = block["per_category"]
        assert per_cat["right"]["score"] == pytest.approx(1.0, abs=TOLERANCES["credit"])
        assert per_cat["wrong"]["score"] == pytest.approx(0.0, abs=TOLERANCES["credit"])
        assert per_cat["tie"]["score"] == pytest.approx(0.5, abs=TOLERANCES["credit"])
        assert per_cat["tie"]["n"] == 1 and per_cat["tie"]["ci"] is None  # one triplet: no interval
        assert per_cat["right"]["ci"] == [1.0, 1.0]
        assert block["mean_over_categories"]["score"] == pytest.approx(0.5, abs=TOLERANCES["credit"])
        low, high = block["mean_over_categories"]["ci"]
        assert low <= 0.5 <= high
        assert block["all_triplets"]["score"] == pytest.approx(3.5 / 7, abs=TOLERANCES["credit"])
    rows = _read_csv(rows_path)
    assert [(r["category"], r["key"]) for r in rows][:4] == [("right", "000"), ("right", "001"), ("right", "002"),
                                                              ("tie", "000")]
    first = rows[0]
    assert first["psnr_d0"] == "inf" and float(first["mse_d0"]) == 0.0 and float(first["ssim_d0"]) == 1.0
    expected = peak_signal_noise_ratio(arrays["ref0"], arrays["noisy0"], data_range=255)
    assert float(first["psnr_d1"]) == pytest.approx(expected, abs=TOLERANCES["psnr"])
    assert float(first["psnr_credit"]) == 1.0 and float(rows[3]["mse_credit"]) == 0.5


def test_2afc_missing_file_is_one_line_and_exit_2(tmp_path):
    make_2afc_split(tmp_path / "val")
    (tmp_path / "val" / "right" / "p1" / "001.png").unlink()
    result = CliRunner().invoke(app, ["eval", "2afc", str(tmp_path / "val"), "-m", "psnr", *FAST])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("lpips: error: ")
    assert f"1 missing in {tmp_path / 'val' / 'right' / 'p1'} (001.png)" in result.stderr


def test_2afc_ensemble_vote_and_usage_errors(tmp_path):
    make_2afc_split(tmp_path / "val")
    summary_path = tmp_path / "s.json"
    result = CliRunner().invoke(app, ["eval", "2afc", str(tmp_path / "val"), "--ensemble", "pix=psnr,ssim,mse",
                                      "--ensemble", "dist=mse,l1", "--summary-json", str(summary_path),
                                      "--bootstrap", "50", *FAST])
    assert result.exit_code == 0, result.stderr
    scores = json.loads(summary_path.read_text())["scores"]
    # only ensembles were asked for; members agree everywhere on this set, so the votes are the members' scores
    assert set(scores) == {"pix_vote", "dist_vote", "dist_mean"}  # no mean across directions
    for name in scores:
        assert scores[name]["per_category"]["right"]["score"] == 1.0
        assert scores[name]["per_category"]["tie"]["score"] == 0.5
    bad = CliRunner().invoke(app, ["eval", "2afc", str(tmp_path / "val"), "--ensemble", "solo=psnr", *FAST])
    assert bad.exit_code == 2 and "at least two members" in bad.stderr
    unknown = CliRunner().invoke(app, ["eval", "2afc", str(tmp_path / "val"), "-m", "nope", *FAST])
    assert unknown.exit_code == 2 and "unknown metric nope" in unknown.stderr


def _jnd_ap(ds, same):
    order = np.argsort(ds, kind="stable")
    s = same[order]
    tp, fp = np.cumsum(s), np.cumsum(1 - s)
    return voc_ap_loop(tp / (s.sum()), tp / (tp + fp))


def test_jnd_end_to_end_against_numpy(tmp_path):
    root = tmp_path / "jnd" / "val"
    sigmas = {"traditional": [2, 30, 8, 50, 15, 4], "cnn": [40, 3, 25]}
    same_votes = {"traditional": [3, 0, 2, 1, 1, 2], "cnn": [0, 3, 1]}  # of 3 people
    expected_mse = {}
    for cat, levels in sigmas.items():
        for i, sigma in enumerate(levels):
            p0 = smooth_image(16, 16, 3, seed=i)
            p1 = _noisy(p0, sigma, seed=100 + i)
            _save(root / cat / "p0" / f"{i}.png", p0)
            _save(root / cat / "p1" / f"{i}.png", p1)
            (root / cat / "same").mkdir(parents=True, exist_ok=True)
            np.save(root / cat / "same" / f"{i}.npy", np.array([same_votes[cat][i] / 3]))
            expected_mse[(cat, str(i))] = np.mean((p0 / 255.0 - p1 / 255.0) ** 2)
    rows_path, summary_path = tmp_path / "rows.jsonl", tmp_path / "s.json"
    result = CliRunner().invoke(app, ["eval", "jnd", str(root), "-m", "mse,psnr", "-o", str(rows_path),
                                      "--summary-json", str(summary_path), "--bootstrap", "100", *FAST])
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
    for row in rows:
        assert row["mse"] == pytest.approx(expected_mse[(row["category"], row["key"])], abs=TOLERANCES["mse"])
    scores = json.loads(summary_path.read_text())["scores"]
    for cat in sigmas:
        mse = np.array([expected_mse[(cat, str(i))] for i in range(len(sigmas[cat]))])
        same = np.array(same_votes[cat]) / 3
        expected = _jnd_ap(mse, same)
        assert scores["mse"]["per_category"][cat]["score"] == pytest.approx(expected, abs=TOLERANCES["ap"])
        # PSNR is a decreasing function of MSE: as a similarity it ranks the pairs the same way
        assert scores["psnr"]["per_category"][cat]["score"] == pytest.approx(expected, abs=TOLERANCES["ap"])
    mean = np.mean([scores["mse"]["per_category"][c]["score"] for c in sigmas])
    assert scores["mse"]["mean_over_categories"]["score"] == pytest.approx(mean, abs=TOLERANCES["ap"])
    low, high = scores["mse"]["mean_over_categories"]["ci"]
    assert low <= mean <= high


def test_mos_end_to_end_against_scipy(tmp_path):
    rows_in, expected_mse = [], []
    for r in range(2):
        ref = smooth_image(16, 16, 3, seed=r)
        _save(tmp_path / "refs" / f"r{r}.png", ref)
        for k, sigma in enumerate((3, 9, 20, 35, 60)):
            dist = _noisy(ref, sigma, seed=10 * r + k)
            _save(tmp_path / "dists" / f"r{r}_{k}.png", dist)
            mos = 5.0 - sigma / 15 + (0.3 if r else 0.0)  # decreasing in the noise, per reference offset
            rows_in.append((f"../refs/r{r}.png", f"../dists/r{r}_{k}.png", mos))
            expected_mse.append(np.mean((ref / 255.0 - dist / 255.0) ** 2))
    listing = tmp_path / "lists" / "set.csv"
    listing.parent.mkdir()
    listing.write_text("reference,distorted,score\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows_in))
    summary_path, out = tmp_path / "s.json", tmp_path / "rows.csv"
    args = ["eval", "mos", str(listing), "--ref-col", "reference", "--dist-col", "distorted", "--score-col",
            "score", "-m", "mse,psnr", "--summary-json", str(summary_path), "-o", str(out), "--bootstrap", "30",
            *FAST]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    scores = json.loads(summary_path.read_text())["scores"]
    mse = np.array(expected_mse)
    mos = np.array([c for _, _, c in rows_in])
    assert [float(r["mse"]) for r in _read_csv(out)] == pytest.approx(mse, abs=TOLERANCES["mse"])
    for metric in ("mse", "psnr"):  # PSNR = -10 log10(MSE): the same ranks, read as a similarity
        assert scores[metric]["srocc"] == pytest.approx(spearmanr(-mse, mos).statistic, abs=TOLERANCES["corr"])
        assert scores[metric]["krocc"] == pytest.approx(kendalltau(-mse, mos).statistic, abs=TOLERANCES["corr"])
        assert scores[metric]["srocc"] > 0.8 and scores[metric]["plcc"] > 0.8
        low, high = scores[metric]["ci"]["srocc"]
        assert low <= scores[metric]["srocc"] <= high
    # the same list read as DMOS (negated scores, --dmos): the same positive correlations
    listing.write_text("reference,distorted,score\n" + "".join(f"{a},{b},{-c}\n" for a, b, c in rows_in))
    result = CliRunner().invoke(app, [*args, "--dmos", "--bootstrap", "0"])
    assert result.exit_code == 0, result.stderr
    dmos = json.loads(summary_path.read_text())["scores"]
    assert dmos["mse"]["srocc"] == pytest.approx(scores["mse"]["srocc"], abs=TOLERANCES["corr"])


def test_2afc_lpips_with_seeded_weights(tmp_path, torch_home):
    root = tmp_path / "val"
    for i in range(2):
        ref = smooth_image(32, 32, 3, seed=i)
        _triplet(root / "cnn", f"{i}", ref, ref, _noisy(ref, 60.0, seed=i), 0.25)
    summary_path, out = tmp_path / "s.json", tmp_path / "rows.csv"
    result = CliRunner().invoke(app, ["eval", "2afc", str(root), "-m", "lpips_alex", "--ensemble",
                                      "both=lpips_alex,mse", "--allow-unverified-weights", "-o", str(out),
                                      "--summary-json", str(summary_path), "--bootstrap", "20", *FAST])
    assert result.exit_code == 0, result.stderr
    rows = _read_csv(out)
    for row in rows:
        assert float(row["lpips_alex_d0"]) == 0.0 and float(row["lpips_alex_d1"]) > 0.0
        assert float(row["lpips_alex_credit"]) == pytest.approx(0.75, abs=TOLERANCES["credit"])
    summary = json.loads(summary_path.read_text())
    assert summary["scores"]["lpips_alex"]["per_category"]["cnn"]["score"] == pytest.approx(0.75)
    assert summary["scores"]["both_mean"]["per_category"]["cnn"]["score"] == pytest.approx(0.75)
    weights = summary["provenance"]["weights"]
    assert weights and not weights[0]["verified"]  # seeded stand-ins, recorded as such


def test_each_reference_is_decoded_once(tmp_path, monkeypatch):
    import lpipscli.io.dataset as dataset
    from lpipscli.analysis.scoring import WorkItem, score_items

    calls: list[str] = []
    real = dataset.decode_image

    def counting(path, **kwargs):
        calls.append(Path(path).name)
        return real(path, **kwargs)

    monkeypatch.setattr(dataset, "decode_image", counting)
    items = []
    for i in range(3):
        ref = smooth_image(16, 16, 3, seed=i)
        _save(tmp_path / f"ref{i}.png", ref)
        _save(tmp_path / f"p0_{i}.png", _noisy(ref, 5, i))
        _save(tmp_path / f"p1_{i}.png", _noisy(ref, 50, i))
        items.append(WorkItem(str(i), tmp_path / f"ref{i}.png", (tmp_path / f"p0_{i}.png", tmp_path / f"p1_{i}.png")))
    values = score_items(items, ("mse",), device="cpu", workers=0)
    assert sorted(calls) == sorted([f"ref{i}.png" for i in range(3)] + [f"p{j}_{i}.png" for i in range(3)
                                                                       for j in range(2)])
    assert values["mse"].shape == (6,) and np.all(values["mse"][0::2] < values["mse"][1::2])


def test_eval_help_does_not_import_torch():
    code = ("import sys; from typer.testing import CliRunner; from lpipscli.cli import app; "
            "r = CliRunner().invoke(app, ['eval', 'mos', '--help']); "
            "assert r.exit_code == 0 and '--score-col' in r.stdout, r.output; "
            "assert 'torch' not in sys.modules and 'scipy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


@pytest.mark.parametrize("command", [["eval"], ["eval", "2afc"], ["eval", "jnd"], ["eval", "mos"]])
def test_eval_commands_have_help(command):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.stdout


def test_inf_values_in_json_and_parquet(tmp_path):
    make_2afc_split(tmp_path / "val")
    summary_path = tmp_path / "s.json"
    rows_path = tmp_path / "rows.parquet"
    result = CliRunner().invoke(app, ["eval", "2afc", str(tmp_path / "val" / "right"), "-m", "psnr",
                                      "--summary-json", str(summary_path), "--bootstrap", "0", "-o", str(rows_path),
                                      *FAST])
    assert result.exit_code == 0, result.stderr
    block = json.loads(summary_path.read_text())["scores"]["psnr"]
    assert block["per_category"]["right"] == {"score": 1.0, "n": 3, "n_nan": 0, "ci": None}
    assert not math.isnan(block["mean_over_categories"]["score"])
    import pyarrow.parquet as pq

    table = pq.read_table(rows_path)
    assert table.column("category").to_pylist() == ["right"] * 3
    assert table.column("psnr_d0").to_pylist() == [math.inf] * 3
    assert json.loads(table.schema.metadata[b"lpipscli"])["summary"]["task"] == "2afc"


def test_metric_that_cannot_score_the_images_stops_before_compute(tmp_path):
    make_2afc_split(tmp_path / "val")  # 16x16 images; ms_ssim needs 161x161
    result = CliRunner().invoke(app, ["eval", "2afc", str(tmp_path / "val"), "-m", "psnr,ms_ssim", *FAST])
    assert result.exit_code == 2
    assert "ms_ssim needs at least 161x161 px" in result.stderr and "nothing was computed" in result.stderr


def test_eval_scores_named_definitions_from_a_metrics_file(tmp_path, torch_home):
    """`lpips eval ... --metrics-file` (issue 15): named deep-feature definitions are metrics like any other."""
    from typer.testing import CliRunner

    from lpipscli.cli import app
    from lpipscli.metrics import REGISTRY

    rng = np.random.default_rng(0)
    root = tmp_path / "cat"
    for sub in ("ref", "p0", "p1", "judge"):
        (root / sub).mkdir(parents=True)
    for k in range(3):
        ref = (rng.random((48, 48, 3)) * 255).astype(np.uint8)
        near = np.clip(ref.astype(int) + rng.integers(-3, 4, ref.shape), 0, 255).astype(np.uint8)
        far = np.clip(ref.astype(int) + rng.integers(-90, 91, ref.shape), 0, 255).astype(np.uint8)
        Image.fromarray(ref).save(root / "ref" / f"{k}.png")
        Image.fromarray(near).save(root / "p0" / f"{k}.png")
        Image.fromarray(far).save(root / "p1" / f"{k}.png")
        np.save(root / "judge" / f"{k}.npy", np.array([0.0]))  # everyone found p0 closer
    toml = tmp_path / "defs.toml"
    toml.write_text('[metrics.rand_alex]\nnet = "alexnet"\nlayers = ["features.1", "features.4"]\n'
                    'weights = "random"\nmembers = 2\nseed = 1\n')
    out = tmp_path / "s.json"
    result = CliRunner().invoke(app, ["eval", "2afc", str(root), "--metrics-file", str(toml), "-m", "psnr",
                                      "--bootstrap", "0", "--summary-json", str(out), "-q"])
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())["scores"]
    assert set(scores) == {"psnr", "rand_alex"}
    for name in scores:  # both prefer the near copy p0, which everyone chose: full credit on every triplet
        assert scores[name]["per_category"]["cat"]["score"] == 1.0
    assert "rand_alex" not in REGISTRY
