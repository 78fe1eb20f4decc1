"""Tests for the `lpips` command line: exit codes, columns, output formats, provenance, listings.

Most tests run the Typer app in-process through CliRunner (stdout and stderr are captured apart);
a few run the real entry points in a subprocess. Inputs are small PNGs written in tmp_path, and
expected scores come from scikit-image on the arrays that were written.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _helpers import distort, smooth_image
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from typer.testing import CliRunner

from lpipscli.cli import app

TOLERANCES = {
    # |CSV/JSONL/Parquet value - skimage| (dB); values are written at full float precision
    "psnr": 1e-6,
    "ssim": 1e-5,
    # the same LPIPS run selected as --net alex and as --metric lpips_alex
    "same_run": 0.0,
}

BACKBONE_FILE = "alexnet-owt-7be5be79.pth"
SSIM_KW = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "channel_axis": 2}
BASE = ["ref", "dist", "dist_root", "width", "height"]
TAIL = ["status", "error"]


# --------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def cli(monkeypatch):
    """Invoke the app in-process; wide, plain terminal for rich tables; no inherited override."""
    monkeypatch.delenv("LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS", raising=False)
    runner = CliRunner()

    def invoke(*args: str, env: dict | None = None):
        return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "250", "NO_COLOR": "1", **(env or {})})

    return invoke


def make_pairs(ref_dir: Path, out_dir: Path, keys, size=(40, 40), seed=0) -> dict:
    arrays = {}
    ref_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    for n, key in enumerate(keys):
        ref = smooth_image(*size, 3, seed=seed + 5 * n)
        dist = distort(ref, seed=seed + 5 * n + 1)
        (ref_dir / key).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / key).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ref).save(ref_dir / f"{key}.png")
        Image.fromarray(dist).save(out_dir / f"{key}.png")
        arrays[key] = (ref, dist)
    return arrays


def read_csv(text: str) -> tuple[list[str], list[dict]]:
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)


def assert_one_error_line(result, code: int, *needles: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lpips: error: ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert result.stdout == ""
    return lines[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def head_file(version: str, net: str) -> Path:
    spec = importlib.util.find_spec("lpips")
    return Path(next(iter(spec.submodule_search_locations))) / "weights" / f"v{version}" / f"{net}.pth"


# --------------------------------------------------------------------------------------------------
# compare: outputs


def test_csv_columns_values_and_sidecar(tmp_path, cli):
    arrays = make_pairs(tmp_path / "ref", tmp_path / "out", ["a", "b"])
    out = tmp_path / "x.csv"
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr,ssim", "-o", out, "--workers", "0")
    assert result.exit_code == 0, result.stderr
    header, rows = read_csv(out.read_text())
    assert header == BASE + ["psnr", "ssim"] + TAIL
    assert [Path(r["dist"]).stem for r in rows] == ["a", "b"]
    for row in rows:
        ref, dist = arrays[Path(row["dist"]).stem]
        assert row["dist_root"] == str(tmp_path / "out")
        assert (row["width"], row["height"], row["status"], row["error"]) == ("40", "40", "ok", "")
        assert abs(float(row["psnr"]) - peak_signal_noise_ratio(ref, dist, data_range=255)) <= TOLERANCES["psnr"]
        expected_ssim = structural_similarity(ref, dist, data_range=255, **SSIM_KW)
        assert abs(float(row["ssim"]) - expected_ssim) <= TOLERANCES["ssim"]
    meta = json.loads((tmp_path / "x.csv.meta.json").read_text())
    assert meta["complete"] is True
    prov = meta["provenance"]
    assert prov["versions"]["torch"] == torch.__version__.split("+")[0]
    assert set(prov["metrics"]) == {"psnr", "ssim"}
    assert prov["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert "psnr" in result.stderr and "ssim" in result.stderr  # the summary table
    assert result.stdout == ""


def test_quiet_success_prints_nothing(tmp_path, cli):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a"])
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", tmp_path / "x.csv", "-q")
    assert result.exit_code == 0
    assert result.stderr == "" and result.stdout == ""


def test_dash_writes_csv_to_stdout(tmp_path, cli):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a", "b", "c"])
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", "-", "--workers", "0")
    assert result.exit_code == 0, result.stderr
    header, rows = read_csv(result.stdout)
    assert header == BASE + ["psnr"] + TAIL
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    assert "ref,dist" not in result.stderr
    assert not list(tmp_path.glob("*.meta.json")) and not Path("-.meta.json").exists()


def test_single_file_pair(tmp_path, cli):
    ref = smooth_image(40, 40, 3, seed=1)
    dist = distort(ref, seed=2)
    Image.fromarray(ref).save(tmp_path / "original.png")
    Image.fromarray(dist).save(tmp_path / "encoded q30.png")
    result = cli("compare", tmp_path / "original.png", tmp_path / "encoded q30.png", "-m", "psnr", "-o", "-")
    assert result.exit_code == 0, result.stderr
    _, rows = read_csv(result.stdout)
    assert len(rows) == 1
    assert rows[0]["ref"] == str(tmp_path / "original.png")
    assert rows[0]["dist"] == str(tmp_path / "encoded q30.png")
    assert abs(float(rows[0]["psnr"]) - peak_signal_noise_ratio(ref, dist, data_range=255)) <= TOLERANCES["psnr"]


def test_names_with_spaces_and_non_ascii(tmp_path, cli):
    make_pairs(tmp_path / "réf érence", tmp_path / "sortie 出力", ["ça va 1", "日本/画像 2"])
    out = tmp_path / "scores é.csv"
    result = cli("compare", tmp_path / "réf érence", tmp_path / "sortie 出力", "-m", "psnr", "-o", out)
    assert result.exit_code == 0, result.stderr
    _, rows = read_csv(out.read_text(encoding="utf-8"))
    assert sorted(r["dist"] for r in rows) == sorted(
        str(tmp_path / "sortie 出力" / name) for name in ("ça va 1.png", "日本/画像 2.png"))
    assert all(r["status"] == "ok" and r["dist_root"] == str(tmp_path / "sortie 出力") for r in rows)


def test_jsonl_inf_for_identical_images_and_null_for_failed(tmp_path, cli):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a", "b"])
    shutil.copy(tmp_path / "ref" / "a.png", tmp_path / "out" / "a.png")  # identical pair
    (tmp_path / "ref" / "c.png").write_bytes((tmp_path / "ref" / "a.png").read_bytes())
    (tmp_path / "out" / "c.png").write_bytes(b"not an image")
    out = tmp_path / "x.jsonl"
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr,ssim", "-o", out, "--on-error", "skip")
    assert result.exit_code == 4, result.stderr  # a failed pair: rows written, the run is not green
    lines = out.read_text(encoding="utf-8").splitlines()
    rows = {Path(r["dist"]).stem: r for r in map(json.loads, lines)}
    assert list(rows["a"]) == BASE + ["psnr", "ssim"] + TAIL
    assert rows["a"]["psnr"] == "inf" and rows["a"]["ssim"] == 1.0
    assert isinstance(rows["b"]["psnr"], float) and math.isfinite(rows["b"]["psnr"])
    assert rows["c"]["status"] == "failed" and rows["c"]["psnr"] is None and "c.png" in rows["c"]["error"]
    meta = json.loads((tmp_path / "x.jsonl.meta.json").read_text())
    assert meta["complete"] is True and "versions" in meta["provenance"]


def test_csv_writes_inf_for_identical_images(tmp_path, cli):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a"])
    shutil.copy(tmp_path / "ref" / "a.png", tmp_path / "out" / "a.png")
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", "-")
    assert result.exit_code == 0
    assert read_csv(result.stdout)[1][0]["psnr"] == "inf"


def test_parquet_with_provenance_and_weight_hashes(tmp_path, cli, torch_home):
    pq = pytest.importorskip("pyarrow.parquet")
    arrays = make_pairs(tmp_path / "ref", tmp_path / "out", ["a", "b"])
    out = tmp_path / "scores.parquet"
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "lpips_alex,ssim,psnr", "-o", out,
                 "--device", "cpu", "--workers", "0", "--allow-unverified-weights")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "ref", "scores.parquet"]  # no partial file left
    table = pq.read_table(out)
    assert table.column_names == BASE + ["lpips_alex", "ssim", "psnr"] + TAIL
    rows = table.to_pylist()
    assert len(rows) == 2 and all(r["lpips_alex"] > 0 for r in rows)
    for row in rows:
        ref, dist = arrays[Path(row["dist"]).stem]
        assert abs(row["psnr"] - peak_signal_noise_ratio(ref, dist, data_range=255)) <= TOLERANCES["psnr"]
    prov = json.loads(pq.read_schema(out).metadata[b"lpipscli"])
    assert prov["versions"]["torch"] == torch.__version__.split("+")[0]
    assert prov["versions"]["lpipscli"]
    assert prov["device"] == "cpu"
    assert prov["metrics"]["lpips_alex"]["version"] == "0.1"
    assert prov["options"]["alpha"] == "drop" and prov["options"]["resize"] == "none"
    weights = {Path(w["path"]).name: w for w in prov["weights"]}
    backbone = torch_home / "hub" / "checkpoints" / BACKBONE_FILE
    assert weights[BACKBONE_FILE]["sha256"] == sha256(backbone)
    assert weights[BACKBONE_FILE]["verified"] is False  # seeded stand-in, allowed on purpose
    head = head_file("0.1", "alex")
    assert weights["alex.pth"]["sha256"] == sha256(head)
    assert weights["alex.pth"]["verified"] is True
    assert "lpips: warning:" in result.stderr and "unverified" in result.stderr  # the run says so


def test_provenance_records_ssim_conventions(tmp_path, cli):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a"])
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "ssim,psnr", "-o", tmp_path / "x.csv")
    assert result.exit_code == 0
    settings = json.loads((tmp_path / "x.csv.meta.json").read_text())["provenance"]["metrics"]
    assert settings["ssim"].get("sigma") == 1.5 and settings["ssim"].get("kernel_size") == 11
    assert settings["psnr"].get("data_range") == 1.0


def test_lpips_version_is_recorded(tmp_path, cli, torch_home):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a"])
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "--net", "alex", "--lpips-version", "0.0",
                 "-o", tmp_path / "x.csv", "--allow-unverified-weights", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    prov = json.loads((tmp_path / "x.csv.meta.json").read_text())["provenance"]
    assert prov["metrics"]["lpips_alex"]["version"] == "0.0"
    assert any(w["sha256"] == sha256(head_file("0.0", "alex")) for w in prov["weights"])


def test_net_alex_equals_metric_lpips_alex(tmp_path, cli, torch_home):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a", "b"])
    common = [tmp_path / "ref", tmp_path / "out", "-o", "-", "--device", "cpu", "--workers", "0"]
    by_net = cli("compare", *common, "--net", "alex", env={"LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS": "1"})
    by_metric = cli("compare", *common, "--metric", "lpips_alex", "--allow-unverified-weights")
    assert by_net.exit_code == 0 and by_metric.exit_code == 0, (by_net.stderr, by_metric.stderr)
    header_net, rows_net = read_csv(by_net.stdout)
    header_metric, rows_metric = read_csv(by_metric.stdout)
    assert header_net == header_metric == BASE + ["lpips_alex"] + TAIL
    assert len(rows_net) == 2
    for a, b in zip(rows_net, rows_metric, strict=True):
        assert a["dist"] == b["dist"]
        assert abs(float(a["lpips_alex"]) - float(b["lpips_alex"])) <= TOLERANCES["same_run"]


def test_several_dist_roots_in_one_run(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for root in ["q10", "q30", "q70"]:
        make_pairs(Path("ref"), Path(root), ["a", "sub/b"])
    result = cli("compare", "ref", "q10", "q30", "q70", "-m", "psnr", "-o", "sweep.csv")
    assert result.exit_code == 0, result.stderr
    _, rows = read_csv(Path("sweep.csv").read_text())
    assert sorted((r["dist_root"], r["dist"]) for r in rows) == sorted(
        (root, os.path.join(root, name)) for root in ("q10", "q30", "q70") for name in ("a.png", "sub/b.png"))
    assert all(r["ref"] in ("ref/a.png", "ref/sub/b.png") for r in rows)
    for root in ("q10", "q30", "q70"):
        assert root in result.stderr  # one summary row per dist root


def test_allow_unmatched_scores_what_pairs(tmp_path, cli):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a", "b"])
    Image.fromarray(smooth_image(40, 40)).save(tmp_path / "ref" / "lonely.png")
    Image.fromarray(smooth_image(40, 40)).save(tmp_path / "out" / "stray.png")
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", tmp_path / "x.csv",
                 "--allow-unmatched")
    assert result.exit_code == 0, result.stderr
    _, rows = read_csv((tmp_path / "x.csv").read_text())
    assert sorted(Path(r["dist"]).stem for r in rows) == ["a", "b"]
    meta = json.loads((tmp_path / "x.csv.meta.json").read_text())
    unmatched = meta["summary"]["unmatched"]
    assert unmatched["unmatched_ref"] == {str(tmp_path / "out"): 1}
    assert unmatched["unmatched_dist"] == {str(tmp_path / "out"): 1}


def test_resize_dist_to_ref_adds_the_column(tmp_path, cli):
    Image.fromarray(smooth_image(40, 40)).save(tmp_path / "r.png")
    Image.fromarray(smooth_image(36, 44)).save(tmp_path / "d.png")
    result = cli("compare", tmp_path / "r.png", tmp_path / "d.png", "-m", "psnr", "-o", "-",
                 "--resize", "dist-to-ref")
    assert result.exit_code == 0, result.stderr
    header, rows = read_csv(result.stdout)
    assert header == BASE + ["psnr", "resized_from"] + TAIL
    assert rows[0]["resized_from"] == "44x36" and rows[0]["status"] == "ok"


# --------------------------------------------------------------------------------------------------
# compare: errors and exit codes


def test_exit_2_unmatched(tmp_path, cli):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a", "b"])
    (tmp_path / "out" / "b.png").unlink()
    out = tmp_path / "x.csv"
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", out)
    assert_one_error_line(result, 2, "1 of 2", "--allow-unmatched")
    assert not out.exists()  # nothing computed, nothing written


def test_exit_2_missing_reference(tmp_path, cli):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a"])
    result = cli("compare", tmp_path / "nope", tmp_path / "out", "-m", "psnr", "-o", "-")
    assert_one_error_line(result, 2, str(tmp_path / "nope"))


def test_jsonl_to_stdout_with_format(tmp_path, cli):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a", "b"])
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", "-", "--format", "jsonl")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["dist"]).name for r in rows] == ["a.png", "b.png"]


def test_exit_2_unknown_metric(tmp_path, cli):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a"])
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr,nosuch", "-o", "-")
    assert_one_error_line(result, 2, "nosuch")


def test_exit_2_size_mismatch_names_both_sizes(tmp_path, cli):
    Image.fromarray(smooth_image(40, 48)).save(tmp_path / "r.png")
    Image.fromarray(smooth_image(36, 44)).save(tmp_path / "d.png")
    result = cli("compare", tmp_path / "r.png", tmp_path / "d.png", "-m", "psnr", "-o", "-")
    assert_one_error_line(result, 2, "48x40", "44x36")


def test_exit_2_file_that_is_not_an_image(tmp_path, cli):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a", "b"])
    (tmp_path / "out" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", "-")
    assert_one_error_line(result, 2, str(tmp_path / "out" / "b.png"))


def test_exit_2_corrupt_pixel_data_keeps_rows_before_it(tmp_path, cli):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a", "b", "c"])
    path = tmp_path / "out" / "c.png"
    data = bytearray(path.read_bytes())
    at = data.index(b"IDAT") + 4
    data[at + 8:at + 16] = bytes(b ^ 0xFF for b in data[at + 8:at + 16])  # header fine, pixels corrupt
    path.write_bytes(bytes(data))
    out = tmp_path / "x.csv"
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", out, "--batch-size", "1",
                 "--workers", "0", "-q")
    assert_one_error_line(result, 2, str(path))
    _, rows = read_csv(out.read_text())
    assert [Path(r["dist"]).stem for r in rows] == ["a", "b"]


def test_sidecar_not_complete_when_the_run_stopped_at_an_error(tmp_path, cli):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a", "b"])
    path = tmp_path / "out" / "b.png"
    data = bytearray(path.read_bytes())
    at = data.index(b"IDAT") + 4
    data[at + 8:at + 16] = bytes(b ^ 0xFF for b in data[at + 8:at + 16])
    path.write_bytes(bytes(data))
    out = tmp_path / "x.csv"
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", out, "--batch-size", "1")
    assert result.exit_code == 2
    assert json.loads((tmp_path / "x.csv.meta.json").read_text())["complete"] is False


@pytest.mark.parametrize("target", ["missing_folder/x.csv", "x.txt"])
def test_exit_2_bad_output_path(tmp_path, cli, target):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a"])
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", tmp_path / target)
    assert_one_error_line(result, 2, str(tmp_path / target))


def test_exit_3_missing_weights_names_file_and_folder(tmp_path, cli, monkeypatch):
    empty = tmp_path / "empty_torch_home"
    empty.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(empty))
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a"])
    out = tmp_path / "x.csv"
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "--net", "alex", "-o", out, "--device", "cpu")
    assert_one_error_line(result, 3, BACKBONE_FILE, str(empty / "hub" / "checkpoints"), "psnr")
    assert not out.exists()


def test_exit_3_unverified_weights_without_override(tmp_path, cli, torch_home):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a"])
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "--net", "alex", "-o", "-", "--device", "cpu")
    assert_one_error_line(result, 3, BACKBONE_FILE, "--allow-unverified-weights")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_exit_3_cuda_requested_without_cuda(tmp_path, cli):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a"])
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", "-", "--device", "cuda")
    assert_one_error_line(result, 3, "cuda")


# --------------------------------------------------------------------------------------------------
# listings


def test_metrics_lists_every_key_with_range_and_direction(cli):
    from lpipscli.metrics import REGISTRY

    listed = cli("metrics", "--json")
    assert listed.exit_code == 0
    rows = {r["key"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == set(REGISTRY)
    # directions written down independently of the registry
    expected = {"psnr": "higher", "ssim": "higher", "lpips_alex": "lower", "lpips_vgg": "lower",
                "lpips_squeeze": "lower"}
    for key, better in expected.items():
        assert rows[key]["better"] == better
    assert rows["lpips_alex"]["needs_weights"] is True and rows["psnr"]["needs_weights"] is False
    assert rows["lpips_alex"]["min_side"] == 31 and rows["ssim"]["min_side"] == 11
    assert all(r["range"] and r["measures"] for r in rows.values())
    table = cli("metrics")
    assert table.exit_code == 0
    for key, row in rows.items():
        assert key in table.stdout and row["range"] in table.stdout
    assert "higher" in table.stdout and "lower" in table.stdout


def test_weights_lists_files_presence_and_verification(tmp_path, cli, monkeypatch, torch_home):
    listed = cli("weights", "--json")
    assert listed.exit_code == 0
    rows = {r["path"]: r for r in json.loads(listed.stdout)}
    backbone = torch_home / "hub" / "checkpoints" / BACKBONE_FILE
    assert rows[str(backbone)]["present"] is True and rows[str(backbone)]["verified"] is False
    head = rows[str(head_file("0.1", "alex"))]
    assert head["present"] is True and head["verified"] is True
    table = cli("weights")
    assert table.exit_code == 0 and BACKBONE_FILE in table.stdout

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(empty))
    listed = cli("weights", "--json")
    backbones = [r for r in json.loads(listed.stdout) if r["path"].startswith(str(empty))]
    assert {Path(r["path"]).name for r in backbones} == {
        BACKBONE_FILE, "vgg16-397923af.pth", "squeezenet1_1-b8a52dc0.pth",
        # the feature backbones of --define (deep-feature distances)
        "vgg19-dcbb9e9d.pth", "resnet50-0676ba61.pth", "shufflenetv2_x1-5666bf0f80.pth", "googlenet-1378be20.pth"}
    assert all(r["present"] is False and r["verified"] is False for r in backbones)
    table = cli("weights")
    assert "NO" in table.stdout and str(empty) in table.stdout


# --------------------------------------------------------------------------------------------------
# real entry points (subprocess)


def _console_script() -> list[str]:
    sibling = Path(sys.executable).with_name("lpips")
    return [str(sibling)] if sibling.is_file() else [sys.executable, "-m", "lpipscli"]


def _run(args: list, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS", None)
    return subprocess.run([str(a) for a in args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=120)


def test_python_m_lpipscli_help(tmp_path):
    proc = _run([sys.executable, "-m", "lpipscli", "--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "compare" in proc.stdout and "metrics" in proc.stdout and "weights" in proc.stdout


def test_console_script_exit_codes(tmp_path):
    make_pairs(tmp_path / "ref", tmp_path / "out", ["a", "b"])
    ok = _run([*_console_script(), "compare", "ref", "out", "-m", "psnr", "-o", "-", "-q"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert read_csv(ok.stdout)[0] == BASE + ["psnr"] + TAIL and ok.stderr == ""

    (tmp_path / "out" / "b.png").unlink()
    bad = _run([*_console_script(), "compare", "ref", "out", "-m", "psnr", "-o", "-"], tmp_path)
    assert bad.returncode == 2
    assert len(bad.stderr.splitlines()) == 1 and bad.stderr.startswith("lpips: error: ")
    assert bad.stdout == ""


def test_no_arguments_shows_help_not_a_traceback(cli):
    result = cli()
    assert result.exit_code in (0, 2)
    assert "compare" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr

