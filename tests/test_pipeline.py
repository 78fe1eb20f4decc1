"""One pipeline: every source kind through the same engine loop; pair lists; the settings record; the
defects of the one-pipeline issue (each of these tests fails on the code before it)."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _helpers import distort, smooth_image, write_ffv1_clip
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from typer.testing import CliRunner

from lpipscli.cli import app

#: per-pair reference computations (scikit-image) against our rows
TOL = {"psnr": 1e-6, "ssim": 1e-5}
SSIM_KW = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "channel_axis": 2,
           "data_range": 255}


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.delenv("LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS", raising=False)
    runner = CliRunner()

    def invoke(*args, env=None):
        return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200", "NO_COLOR": "1", **(env or {})})

    return invoke


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def _check_against_reference(rows: list[dict], arrays: dict[str, tuple[np.ndarray, np.ndarray]], key_of) -> None:
    assert rows and len(rows) == len(arrays)
    for row in rows:
        ref, dist = arrays[key_of(row)]
        assert row["status"] == "ok", row
        assert abs(float(row["psnr"]) - peak_signal_noise_ratio(ref, dist, data_range=255)) <= TOL["psnr"]
        assert abs(float(row["ssim"]) - structural_similarity(ref, dist, **SSIM_KW)) <= TOL["ssim"]


def _images(root: Path, names: list[str], size=(32, 40), seed=0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    (root / "ref").mkdir(parents=True, exist_ok=True)
    (root / "out").mkdir(parents=True, exist_ok=True)
    arrays = {}
    for n, name in enumerate(names):
        ref = smooth_image(*size, 3, seed=seed + 3 * n)
        dist = distort(ref, seed=seed + 3 * n + 1)
        Image.fromarray(ref).save(root / "ref" / f"{name}.png")
        Image.fromarray(dist).save(root / "out" / f"{name}.png")
        arrays[name] = (ref, dist)
    return arrays


def _clip(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    return write_ffv1_clip(path, frames, fps)


# --------------------------------------------------------------------------------------------------
# every source kind, the same metrics, the same engine loop, checked per pair


def test_folder_source_rows_equal_per_pair_reference(tmp_path, cli):
    arrays = _images(tmp_path, ["a", "b", "c"])
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr,ssim", "-o", "-", "-q", "--workers", "1")
    assert result.exit_code == 0, result.stderr
    _check_against_reference(_rows(result.stdout), arrays, lambda r: Path(r["dist"]).stem)


def test_single_file_source_rows_equal_per_pair_reference(tmp_path, cli):
    arrays = _images(tmp_path, ["only"])
    result = cli("compare", tmp_path / "ref" / "only.png", tmp_path / "out" / "only.png", "-m", "psnr,ssim", "-q")
    assert result.exit_code == 0, result.stderr
    _check_against_reference(_rows(result.stdout), arrays, lambda r: Path(r["dist"]).stem)


@pytest.mark.parametrize("workers", ["0", "1"])
def test_video_source_rows_equal_per_frame_reference(tmp_path, cli, workers):
    frames = [smooth_image(32, 48, 3, seed=s) for s in range(6)]
    noisy = [distort(f, seed=10 + k) for k, f in enumerate(frames)]
    ref, dist = _clip(tmp_path / "r.mkv", frames), _clip(tmp_path / "d.mkv", noisy)
    result = cli("compare", ref, dist, "-m", "psnr,ssim", "-q", "--workers", workers)
    assert result.exit_code == 0, result.stderr
    rows = _rows(result.stdout)
    assert [int(r["frame"]) for r in rows] == list(range(6))
    _check_against_reference(rows, {k: (frames[k], noisy[k]) for k in range(6)}, lambda r: int(r["frame"]))


def test_video_decodes_in_the_main_process_unless_asked(tmp_path, cli, monkeypatch):
    """Video reads each source in its own thread; a worker process would only copy every frame once more."""
    import lpipscli.engine as engine_module

    used: list[int] = []
    real = engine_module.DataLoader

    def recording(*args, **kwargs):
        used.append(kwargs["num_workers"])
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_module, "DataLoader", recording)
    monkeypatch.setattr(engine_module, "default_workers", lambda: 2)
    frames = [smooth_image(32, 48, 3, seed=s) for s in range(2)]
    ref, dist = _clip(tmp_path / "r.mkv", frames), _clip(tmp_path / "d.mkv", frames)
    for asked in ((), ("--workers", "1"), ("--workers", "4")):
        result = cli("compare", ref, dist, "-m", "psnr", "-q", "-o", tmp_path / "v.csv", *asked)
        assert result.exit_code == 0, result.stderr
    _images(tmp_path / "images", ["a", "b", "c", "d", "e"])
    result = cli("compare", tmp_path / "images" / "ref", tmp_path / "images" / "out", "-m", "psnr", "-q",
                 "-o", tmp_path / "i.csv")
    assert result.exit_code == 0, result.stderr
    assert used == [0, 1, 1, 2]  # video: main process by default, one worker at most; images: one per spare core


def test_frame_folder_source_rows_equal_per_frame_reference(tmp_path, cli):
    frames = [smooth_image(24, 32, 3, seed=s) for s in range(4)]
    noisy = [distort(f, seed=20 + k) for k, f in enumerate(frames)]
    for name, seq in (("rf", frames), ("df", noisy)):
        (tmp_path / name).mkdir()
        for k, f in enumerate(seq):
            Image.fromarray(f).save(tmp_path / name / f"{k:05d}.png")
    result = cli("compare", tmp_path / "rf", tmp_path / "df", "--pair-by", "index", "-m", "psnr,ssim", "-q")
    assert result.exit_code == 0, result.stderr
    _check_against_reference(_rows(result.stdout), {k: (frames[k], noisy[k]) for k in range(4)},
                             lambda r: int(r["frame"]))


# --------------------------------------------------------------------------------------------------
# pair lists


def _pair_list(tmp_path: Path, rows: list[dict], name="pairs.csv") -> Path:
    path = tmp_path / name
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_pair_list_end_to_end_relative_paths_groups_and_shared_references(tmp_path, cli, monkeypatch):
    arrays = _images(tmp_path / "data", ["a", "b"])
    other = tmp_path / "data" / "gen"
    other.mkdir()
    arrays_gen = {}
    for name in ("a", "b"):
        img = distort(arrays[name][0], seed=99, sigma=20)
        Image.fromarray(img).save(other / f"sample_{name}.png")
        arrays_gen[f"sample_{name}"] = (arrays[name][0], img)
    listing = _pair_list(tmp_path / "data", [
        {"ref": "ref/a.png", "dist": "out/a.png", "group": "jpeg"},
        {"ref": "ref/b.png", "dist": "out/b.png", "group": "jpeg"},
        {"ref": "ref/a.png", "dist": "gen/sample_a.png", "group": "model"},
        {"ref": str(tmp_path / "data" / "ref" / "b.png"), "dist": "gen/sample_b.png", "group": "model"},
    ])
    monkeypatch.chdir(tmp_path)  # relative paths resolve against the list's folder, not the working folder
    out = tmp_path / "scores.csv"
    result = cli("compare", "--pairs", listing, "-m", "psnr,ssim", "-o", out, "-q")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    assert [r["dist_root"] for r in rows].count("jpeg") == 2 and [r["dist_root"] for r in rows].count("model") == 2
    _check_against_reference(rows, {**arrays, **arrays_gen}, lambda r: Path(r["dist"]).stem)
    meta = json.loads((tmp_path / "scores.csv.meta.json").read_text())
    assert meta["provenance"]["inputs"]["pairs"] == str(listing)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_pair_list_in_parquet_and_jsonl(tmp_path, cli, fmt):
    import pyarrow as pa

    arrays = _images(tmp_path, ["a", "b"])
    table = pa.table({"ref": ["ref/a.png", "ref/b.png"], "dist": ["out/a.png", "out/b.png"]})
    path = tmp_path / f"pairs.{fmt}"
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in table.to_pylist()))
    result = cli("compare", "--pairs", path, "-m", "psnr,ssim", "-q")
    assert result.exit_code == 0, result.stderr
    rows = _rows(result.stdout)
    assert {r["dist_root"] for r in rows} == {str(path)}
    _check_against_reference(rows, arrays, lambda r: Path(r["dist"]).stem)


@pytest.mark.parametrize("case, needle", [
    ("missing", "do not exist"),
    ("duplicate", "duplicate pair"),
    ("bad_column", "missing column(s) dist"),
    ("extra_column", "unknown column(s) score"),
])
def test_pair_list_errors_exit_2_and_compute_nothing(tmp_path, cli, case, needle):
    _images(tmp_path, ["a", "b"])
    rows = [{"ref": "ref/a.png", "dist": "out/a.png"}, {"ref": "ref/b.png", "dist": "out/b.png"}]
    if case == "missing":
        rows.append({"ref": "ref/a.png", "dist": "out/nope.png"})
    elif case == "duplicate":
        rows.append(dict(rows[0]))
    elif case == "bad_column":
        rows = [{"ref": r["ref"], "distorted": r["dist"]} for r in rows]
    else:
        rows = [{**r, "score": "1"} for r in rows]
    listing = _pair_list(tmp_path, rows)
    out = tmp_path / "x.csv"
    result = cli("compare", "--pairs", listing, "-m", "psnr", "-o", out)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and str(listing) in lines[0]
    assert not out.exists()
    if case == "missing":
        assert "nope.png" in lines[0]


def test_pairs_and_positional_inputs_are_exclusive(tmp_path, cli):
    _images(tmp_path, ["a"])
    listing = _pair_list(tmp_path, [{"ref": "ref/a.png", "dist": "out/a.png"}])
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "--pairs", listing, "-m", "psnr")
    assert result.exit_code == 2 and "--pairs replaces" in result.stderr


# --------------------------------------------------------------------------------------------------
# defects of the one-pipeline issue


def test_resume_refuses_a_changed_video_offset(tmp_path, cli):
    frames = [smooth_image(32, 48, 3, seed=s) for s in range(6)]
    ref = _clip(tmp_path / "r.mkv", frames)
    dist = _clip(tmp_path / "d.mkv", [distort(f, seed=k) for k, f in enumerate(frames)])
    out = tmp_path / "v.csv"
    first = cli("compare", ref, dist, "-m", "psnr", "-o", out, "-q", "--frames", "shortest", "--max-frames", "3")
    assert first.exit_code == 0, first.stderr
    before = out.read_bytes()
    again = cli("compare", ref, dist, "-m", "psnr", "-o", out, "-q", "--frames", "shortest", "--offset", "1",
                "--resume")
    assert again.exit_code == 2 and "different settings" in again.stderr and "alignment.offset" in again.stderr
    assert out.read_bytes() == before
    same = cli("compare", ref, dist, "-m", "psnr", "-o", out, "-q", "--frames", "shortest", "--resume")
    assert same.exit_code == 0, same.stderr
    rows = list(csv.DictReader(out.open()))
    assert sorted(int(r["frame"]) for r in rows) == list(range(6))  # every frame once


def test_max_pixels_applies_to_frame_folders(tmp_path, cli):
    for name in ("rf", "df"):
        (tmp_path / name).mkdir()
        for k in range(2):
            Image.fromarray(smooth_image(40, 40, 3, seed=k)).save(tmp_path / name / f"{k:05d}.png")
    result = cli("compare", tmp_path / "rf", tmp_path / "df", "--pair-by", "index", "-m", "psnr",
                 "--max-pixels", "1000")
    assert result.exit_code == 2 and "--max-pixels 1000" in result.stderr, result.stderr


def test_workers_on_video_are_not_ignored_silently(tmp_path, cli):
    frames = [smooth_image(32, 48, 3, seed=s) for s in range(3)]
    ref, dist = _clip(tmp_path / "r.mkv", frames), _clip(tmp_path / "d.mkv", frames)
    result = cli("compare", ref, dist, "-m", "psnr", "--workers", "3", "-o", tmp_path / "x.csv")
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stderr.split())
    assert "--workers 3" in text and "each source in its own thread" in text and "cannot speed them up" in text


def test_provenance_records_each_metrics_compute_dtype(tmp_path, cli):
    _images(tmp_path, ["a"])
    out = tmp_path / "x.csv"
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr,ssim,mmd", "-o", out, "-q")
    assert result.exit_code == 0, result.stderr
    prov = json.loads((tmp_path / "x.csv.meta.json").read_text())["provenance"]
    assert prov["dtype"] == {"psnr": "float64", "ssim": "float64", "mmd": "float32"}
    assert prov["settings"]["metrics"]["ssim"]["dtype"] == "float64"
    assert prov["settings"]["tf32"] is False


def test_tf32_is_off_unless_asked():
    import torch

    from lpipscli.config import RunConfig
    from lpipscli.engine import Engine

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    try:
        Engine(RunConfig(ref=Path("."), dists=(Path("."),), metrics=("psnr",), device="cpu"))
        assert torch.backends.cuda.matmul.allow_tf32 is False and torch.backends.cudnn.allow_tf32 is False
        Engine(RunConfig(ref=Path("."), dists=(Path("."),), metrics=("psnr",), device="cpu", tf32=True))
        assert torch.backends.cuda.matmul.allow_tf32 is True and torch.backends.cudnn.allow_tf32 is True
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def _imports_torch(*args: str) -> tuple[bool, str]:
    code = ("import sys\nfrom lpipscli.cli import app\nfrom typer.testing import CliRunner\n"
            f"r = CliRunner().invoke(app, {list(args)!r})\n"
            "print(r.exit_code, 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return out[1] == "True", out[0]


@pytest.mark.parametrize("args", [["metrics"], ["--help"], ["compare", "--help"]])
def test_metadata_commands_do_not_import_torch(args):
    imported, code = _imports_torch(*args)
    assert code == "0" and not imported


def test_compare_help_is_grouped_in_panels_with_defaults(cli):
    result = cli("compare", "--help")
    assert result.exit_code == 0
    for panel in ("Inputs", "Metrics", "Output", "Engine", "Video", "Heatmaps", "Quality gates", "Robustness"):
        assert f" {panel} " in result.stdout, panel
    text = " ".join(result.stdout.split())
    for default in ("[default: png]", "[default: fixed]", "[default: equal]", "[default: drop]"):
        assert default in text, default


def test_registry_holds_the_map_scales_once():
    from lpipscli.metrics import REGISTRY
    from lpipscli.sinks import heatmap

    with_maps = {k for k, s in REGISTRY.items() if s.map is not None}
    assert with_maps == {"lpips_alex", "lpips_vgg", "lpips_squeeze", "psnr", "psnr_y", "mse", "ssim", "ssim_y"}
    for key in with_maps:
        assert heatmap.map_spec(key) is REGISTRY[key].map


def test_per_metric_failure_keeps_the_other_metrics(tmp_path, cli):
    """A pair too small for ms_ssim only still gets psnr and ssim; the summary counts it per metric."""
    arrays = _images(tmp_path, ["small"], size=(64, 96))
    out, summary = tmp_path / "x.csv", tmp_path / "s.json"
    refused = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr,ssim,ms_ssim", "-o", out)
    assert refused.exit_code == 2 and "ms_ssim cannot score 1 pair(s)" in refused.stderr
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr,ssim,ms_ssim", "-o", out,
                 "--on-error", "skip", "--summary-json", summary, "-q")
    assert result.exit_code == 4, result.stderr
    (row,) = list(csv.DictReader(out.open()))
    ref, dist = arrays["small"]
    assert row["status"] == "partial" and row["ms_ssim"] == "" and row["error"].startswith("ms_ssim: ")
    assert abs(float(row["psnr"]) - peak_signal_noise_ratio(ref, dist, data_range=255)) <= TOL["psnr"]
    ok = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr,ssim,ms_ssim", "-o", tmp_path / "y.csv",
             "--on-error", "skip", "--allow-failed", "-q")
    assert ok.exit_code == 0, ok.stderr
    assert math.isfinite(float(row["ssim"]))


def test_compare_writes_the_report_after_the_run(tmp_path, cli):
    pytest.importorskip("matplotlib")
    _images(tmp_path, ["a", "b"])
    out, page = tmp_path / "x.parquet", tmp_path / "r.html"
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr,ssim", "-o", out, "--report", page,
                 "--heatmaps", tmp_path / "maps", "-q")
    assert result.exit_code == 0, result.stderr
    html = page.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html") and "psnr" in html and "ssim" in html
    assert "<script" not in html.lower() and "src=\"http" not in html  # self-contained: nothing fetched
    refused = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", "-", "--report", page)
    assert refused.exit_code == 2 and "--report" in refused.stderr


# --------------------------------------------------------------------------------------------------
# alpha policies through the whole run (the decoding functions are tested in test_alpha.py)


def _rgba_pair(tmp_path: Path) -> tuple[np.ndarray, np.ndarray, Path, Path]:
    rgb = smooth_image(40, 48, 3, seed=5)
    alpha = np.full((40, 48), 255, np.uint8)
    alpha[:, :16] = 0  # a transparent band whose colour an encoder may change freely
    alpha[:, 16:24] = 128
    (tmp_path / "ref").mkdir()
    (tmp_path / "out").mkdir()
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "ref" / "w.png")
    dist = distort(rgb, seed=6, sigma=4)
    dist[:, :16] = 0  # what the encoder left under the transparent band
    Image.fromarray(dist).save(tmp_path / "out" / "w.png")  # no alpha (like a JPEG)
    return np.dstack([rgb, alpha]), dist, tmp_path / "ref", tmp_path / "out"


def test_alpha_mismatch_is_warned_and_composite_both_treats_both_sides_alike(tmp_path, cli):
    rgba, dist, ref_dir, out_dir = _rgba_pair(tmp_path)
    dropped = cli("compare", ref_dir, out_dir, "-m", "psnr", "-o", tmp_path / "d.csv", "-q")
    assert dropped.exit_code == 0 and "alpha on one side only" in dropped.stderr and "drop" in dropped.stderr
    result = cli("compare", ref_dir, out_dir, "-m", "psnr,mse", "--alpha", "composite-both", "--alpha-color", "black",
                 "-o", tmp_path / "c.csv", "-q")
    assert result.exit_code == 0, result.stderr
    (row,) = list(csv.DictReader((tmp_path / "c.csv").open()))
    a = rgba[..., 3:4].astype(np.float64) / 255.0
    ref_c = rgba[..., :3] / 255.0 * a  # over black
    dist_c = dist / 255.0 * a  # the distorted side borrows the reference's alpha
    mse = np.mean((ref_c - dist_c) ** 2)
    assert abs(float(row["mse"]) - mse) <= 1e-6 * max(mse, 1e-12) + 1e-9
    assert abs(float(row["psnr"]) - 10 * np.log10(1 / mse)) <= 1e-4
    prov = json.loads((tmp_path / "c.csv.meta.json").read_text())["provenance"]
    assert prov["settings"]["decode"]["alpha"] == "composite-both"
    assert prov["settings"]["decode"]["alpha_color"] == [0.0, 0.0, 0.0]


def test_alpha_mask_scores_psnr_over_opaque_pixels_only(tmp_path, cli):
    rgba, dist, ref_dir, out_dir = _rgba_pair(tmp_path)
    result = cli("compare", ref_dir, out_dir, "-m", "psnr,ssim", "--alpha", "mask", "-o", tmp_path / "m.csv", "-q")
    assert result.exit_code == 0, result.stderr
    (row,) = list(csv.DictReader((tmp_path / "m.csv").open()))
    keep = rgba[..., 3] == 255  # opaque on both sides (the distorted side has no alpha: opaque)
    a = rgba[..., 3:4].astype(np.float64) / 255.0
    ref_c = rgba[..., :3] / 255.0 * a + (1 - a)  # composited over white, as composite-both
    dist_c = dist / 255.0 * a + (1 - a)
    mse = np.mean(((ref_c - dist_c) ** 2)[keep])
    assert abs(float(row["psnr"]) - 10 * np.log10(1 / mse)) <= 1e-4
    assert math.isfinite(float(row["ssim"]))  # ssim scores the composited images


# --------------------------------------------------------------------------------------------------
# named deep-feature definitions through compare (the distances themselves: tests/test_features_*.py)


def test_define_and_metrics_file_run_as_columns_sharing_one_pass(tmp_path, cli, torch_home):
    import torch

    from lpipscli.features.definitions import definition_specs

    arrays = _images(tmp_path, ["a", "b"], size=(48, 48))
    toml = tmp_path / "defs.toml"
    toml.write_text('[metrics.alex_mse]\nnet = "alexnet"\nlayers = ["features.1", "features.4"]\n'
                    'distance = "mse"\nweights = "random"\nmembers = 2\nseed = 3\n')
    define = "alex_l2=net=alexnet,layers=features.1+features.4,distance=l2,weights=random,members=2,seed=3"
    out = tmp_path / "d.csv"
    result = cli("compare", tmp_path / "ref", tmp_path / "out", "--define", define, "--metrics-file", toml,
                 "-m", "psnr", "-o", out, "-q", "--fail-if", "mean(alex_mse) < 0")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0])[5] == "psnr" and set(list(rows[0])[6:8]) == {"alex_l2", "alex_mse"}
    # the same definitions scored directly, pair by pair, give the same values
    specs = {s.key: s for s in definition_specs([define], toml)}
    for key in ("alex_l2", "alex_mse"):
        runner, _ = specs[key].build(torch.device("cpu"), allow_unverified=False)
        for row in rows:
            ref, dist = arrays[Path(row["dist"]).stem]
            r = torch.from_numpy(ref).permute(2, 0, 1)[None].float() / 255
            d = torch.from_numpy(dist).permute(2, 0, 1)[None].float() / 255
            with torch.inference_mode():
                expected = float(runner(r, d, None)[0])
            assert abs(float(row[key]) - expected) <= 1e-5 * max(1.0, abs(expected))
    prov = json.loads((tmp_path / "d.csv.meta.json").read_text())["provenance"]
    assert prov["settings"]["metrics"]["alex_mse"]["seed"] == 3
    from lpipscli.metrics import REGISTRY

    assert "alex_mse" not in REGISTRY  # run-scoped


def test_lpips_run_imports_neither_torchvision_nor_lpips(tmp_path, seeded_torch_home):
    _images(tmp_path, ["a"], size=(40, 40))
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom lpipscli.cli import app\n"
        f"r = CliRunner().invoke(app, ['compare', {str(tmp_path / 'ref')!r}, {str(tmp_path / 'out')!r}, "
        "'-m', 'lpips_alex', '-q', '--allow-unverified-weights'])\n"
        "print(r.exit_code, 'torchvision' in sys.modules, 'lpips' in sys.modules)\n"
    )
    env = {**__import__("os").environ, "TORCH_HOME": str(seeded_torch_home)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["0", "False", "False"], out.stdout + out.stderr


def test_bf16_precision_is_recorded_and_close_to_float32(tmp_path, cli, torch_home):
    _images(tmp_path, ["a", "b"], size=(48, 48))
    rows = {}
    for precision in ("float32", "bf16"):
        out = tmp_path / f"{precision}.csv"
        result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "lpips_alex", "-o", out, "-q",
                     "--precision", precision, "--allow-unverified-weights")
        assert result.exit_code == 0, result.stderr
        rows[precision] = {r["dist"]: float(r["lpips_alex"]) for r in csv.DictReader(out.open())}
        prov = json.loads((tmp_path / f"{precision}.csv.meta.json").read_text())["provenance"]
        assert prov["settings"]["metrics"]["lpips_alex"]["precision"] == precision
    for key, value in rows["float32"].items():
        assert abs(rows["bf16"][key] - value) <= 1e-3  # seeded weights: measured <= 4.4e-5 (metric tests)
