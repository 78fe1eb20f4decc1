"""Scaling out (issue 17): `--shard I/N`, `lpips merge`, torchrun ranks, Parquet dataset output.

The oracle everywhere is a single `compare` run on the same inputs (itself checked against the reference
packages by the metric and pipeline tests): the shards of a run, merged, must hold exactly its rows. Rows
are compared keyed by (dist_root, ref, dist, frame): a merged file lists them in a canonical order, a
single run in the order it scored them. PSNR and SSIM are float64 and do not depend on batch composition,
so the scores must be equal; the tolerance below only absorbs a last-bit difference.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _helpers import distort, read_video_rgb, smooth_image, write_ffv1_clip
from PIL import Image
from typer.testing import CliRunner

from lpipscli.cli import app
from lpipscli.results import read_results

#: relative tolerance on a score between a shard and the single run (same float64 code on the same pixels)
REL_TOL = 1e-12
METRICS = "psnr,ssim"
N_IMAGES = 9


def lpips(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200", "NO_COLOR": "1"})


def keyed(rows: list[dict]) -> dict[tuple, dict]:
    out = {}
    for row in rows:
        key = (row["dist_root"], row["ref"], row["dist"], row.get("frame"))
        assert key not in out, f"row {key} twice"
        out[key] = row
    return out


def assert_same_rows(got: list[dict], want: list[dict]) -> None:
    a, b = keyed(got), keyed(want)
    assert set(a) == set(b)
    for key, row in b.items():
        other = a[key]
        assert list(other) == list(row), key
        for column, value in row.items():
            if isinstance(value, float):
                if math.isnan(value):
                    assert math.isnan(other[column]), (key, column)
                else:
                    assert other[column] == pytest.approx(value, rel=REL_TOL, abs=0.0), (key, column)
            else:
                assert other[column] == value, (key, column)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """ref/ and two distorted folders (one with a file of another size: a failed row), in subfolders."""
    root = tmp_path_factory.mktemp("shard_images")
    for k in range(N_IMAGES):
        sub = f"s{k % 2}"
        ref = smooth_image(24, 32, 3, seed=k)
        for name, image in (("ref", ref), ("d1", distort(ref, seed=10 + k, sigma=6)),
                            ("d2", distort(ref, seed=20 + k, sigma=14))):
            if name == "d2" and k == 4:
                image = smooth_image(20, 32, 3, seed=k)  # size differs: a failed row (--on-error skip)
            folder = root / name / sub
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"img{k}.png")
    return root


def compare(images: Path, out, *extra):
    return lpips("compare", images / "ref", images / "d1", images / "d2", "-m", METRICS, "--workers", "0",
                 "--on-error", "skip", "-q", "-o", out, *extra)


@pytest.fixture(scope="module")
def single(images, tmp_path_factory) -> tuple[list[dict], dict]:
    out = tmp_path_factory.mktemp("single")
    result = compare(images, out / "single.parquet", "--allow-failed", "--summary-json", out / "s.json")
    assert result.exit_code == 0, result.output
    rows = read_results(out / "single.parquet").rows
    assert len(rows) == 2 * N_IMAGES and sum(r["status"] == "failed" for r in rows) == 1
    return rows, json.loads((out / "s.json").read_text())


# --------------------------------------------------------------------------------------------------
# the shard spec and the hash


def test_shard_spec_parsing_and_refusals():
    from lpipscli.errors import UsageError
    from lpipscli.shard import Shard, parse_shard

    assert parse_shard("0/4") == Shard(0, 4) and parse_shard("3/4") == Shard(3, 4) and parse_shard(None) is None
    for bad in ("4/4", "-1/4", "1", "a/b", "1/0", "1/2/3"):
        with pytest.raises(UsageError, match="I/N"):
            parse_shard(bad)


def test_hash_is_sha1_of_the_reference_key_balanced_and_stable():
    from lpipscli.io.pairing import RefGroup
    from lpipscli.shard import Shard, shard_groups

    keys = [f"set{k % 7}/img_{k:05d}" for k in range(4000)]
    groups = [RefGroup(k, Path(k), ()) for k in keys]
    for index in range(4):
        kept, _ = shard_groups(groups, Shard(index, 4))
        # independent formula: sha1 of the UTF-8 key, first 8 bytes big-endian, mod N
        want = [k for k in keys if int(hashlib.sha1(k.encode()).hexdigest()[:16], 16) % 4 == index]
        assert [g.key for g in kept] == want
        assert abs(len(kept) - 1000) < 100  # binomial sd ~27: balanced
    # stable when files are added: the old keys keep their shard
    more = [RefGroup(f"new/{k}", Path("x"), ()) for k in range(500)]
    kept, _ = shard_groups(groups + more, Shard(1, 4))
    before, _ = shard_groups(groups, Shard(1, 4))
    assert [g.key for g in kept if not g.key.startswith("new/")] == [g.key for g in before]


# --------------------------------------------------------------------------------------------------
# images: every shard, merged, equals the single run


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_every_shard_merged_equals_a_single_run(images, single, tmp_path, fmt):
    rows, summary = single
    parts = []
    for i in range(3):
        parts.append(tmp_path / "parts" / f"shard{i}.{fmt}")
        parts[-1].parent.mkdir(exist_ok=True)
        result = compare(images, parts[-1], "--shard", f"{i}/3", "--allow-failed")
        assert result.exit_code == 0, result.output
        prov = read_results(parts[-1]).provenance
        assert prov["shard"]["index"] == i and prov["shard"]["count"] == 3 and prov["shard"]["pairs_total"] == 18
    sizes = [len(read_results(p).rows) for p in parts]
    assert sum(sizes) == len(rows) and all(s % 2 == 0 for s in sizes)  # a reference's versions stay together
    # the settings hash leaves the shard out: shards of one run agree with the single run
    hashes = {read_results(p).provenance["settings_hash"] for p in parts}
    assert hashes == {read_results_single_hash(summary)}
    merged = tmp_path / "merged.jsonl"
    result = lpips("merge", merged, *parts, "--allow-failed", "--summary-json", tmp_path / "m.json", "-q")
    assert result.exit_code == 0, result.output
    assert_same_rows(read_results(merged).rows, rows)
    got = json.loads((tmp_path / "m.json").read_text())
    for key in ("pairs", "scored", "failed"):
        assert got[key] == summary[key]
    for root, block in summary["per_dist_root"].items():
        for metric, stats in block["metrics"].items():
            other = got["per_dist_root"][root]["metrics"][metric]
            assert other["mean"] == pytest.approx(stats["mean"], rel=1e-12)
            assert other["worst"] == stats["worst"]
        assert got["per_dist_root"][root]["failed"] == block["failed"]
    # gates and exit codes as a single run: a failed row without --allow-failed is exit 4, a gate exit 1
    assert lpips("merge", tmp_path / "m2.parquet", *parts, "-q").exit_code == 4
    junit = tmp_path / "j.xml"
    result = lpips("merge", tmp_path / "m3.parquet", tmp_path / "parts", "-q", "--allow-failed",
                   "--fail-if", "mean(psnr) < 30", "--junit", junit)
    assert result.exit_code == 1 and "FAIL" in result.output and "<testsuite" in junit.read_text()


def read_results_single_hash(summary: dict) -> str:
    return summary["provenance"]["settings_hash"]


def test_merge_refuses_missing_duplicated_and_foreign_shards(images, tmp_path):
    parts = [tmp_path / f"p{i}.parquet" for i in range(3)]
    for i, p in enumerate(parts):
        assert compare(images, p, "--shard", f"{i}/3").exit_code in (0, 4)
    result = lpips("merge", tmp_path / "m.parquet", parts[0], parts[2])
    assert result.exit_code == 2 and "shard(s) 1/3 missing" in result.output
    assert not (tmp_path / "m.parquet").exists()
    copy = tmp_path / "copy" / "p0.parquet"
    copy.parent.mkdir()
    shutil.copy(parts[0], copy)
    result = lpips("merge", tmp_path / "m.parquet", *parts, copy)
    assert result.exit_code == 2 and "shard 0/3 appears twice" in result.output
    other = tmp_path / "other" / "o1.parquet"
    other.parent.mkdir()
    assert compare(images, other, "--shard", "1/3", "--alpha", "white").exit_code in (0, 4)
    result = lpips("merge", tmp_path / "m.parquet", parts[0], other, parts[2])
    assert result.exit_code == 2 and "other settings" in result.output
    assert 'decode.alpha: "drop" in p0.parquet, "white" in o1.parquet' in result.output
    # a shard that lost a row (its file edited: the footer still says it is whole)
    import pyarrow.parquet as pq

    lossy = tmp_path / "lossy" / "p1.parquet"
    lossy.parent.mkdir()
    table = pq.read_table(parts[1])
    pq.write_table(table.slice(1), lossy)
    result = lpips("merge", tmp_path / "m.parquet", parts[0], lossy, parts[2])
    assert result.exit_code == 2
    assert f"holds {table.num_rows - 1} row(s), its plan had {table.num_rows}" in result.output
    two = tmp_path / "two" / "t.parquet"
    two.parent.mkdir()
    assert compare(images, two, "--shard", "1/2").exit_code in (0, 4)
    result = lpips("merge", tmp_path / "m.parquet", parts[0], two)
    assert result.exit_code == 2 and "split differently" in result.output


def test_a_shard_rerun_with_resume_completes(images, single, tmp_path):
    rows, _ = single
    parts = [tmp_path / f"p{i}.csv" for i in range(2)]
    for i, p in enumerate(parts):
        assert compare(images, p, "--shard", f"{i}/2").exit_code in (0, 4)
    # shard 1 was killed after its first rows: keep the header and 2 rows, mark the run unfinished
    lines = parts[1].read_text().splitlines(keepends=True)
    parts[1].write_text("".join(lines[:3]))
    meta = parts[1].with_name(parts[1].name + ".meta.json")
    data = json.loads(meta.read_text())
    data["complete"] = False
    meta.write_text(json.dumps(data))
    result = lpips("merge", tmp_path / "m.parquet", *parts)
    assert result.exit_code == 2 and "shard 1/2" in result.output and "--resume" in result.output
    # resuming with another shard is refused; with its own it completes
    result = compare(images, parts[1], "--shard", "0/2", "--resume")
    assert result.exit_code == 2 and "resume it with the same --shard" in result.output
    result = compare(images, parts[1], "--shard", "1/2", "--resume", "--allow-failed")
    assert result.exit_code == 0, result.output
    assert lpips("merge", tmp_path / "m.parquet", *parts, "--allow-failed", "-q").exit_code == 0
    assert_same_rows(read_results(tmp_path / "m.parquet").rows, rows)


def test_pair_list_shards(images, tmp_path):
    lines = ["ref,dist,group"] + [f"{images}/ref/s{k % 2}/img{k}.png,{images}/{d}/s{k % 2}/img{k}.png,{d}"
                                  for k in range(N_IMAGES) for d in ("d1", "d2") if (d, k) != ("d2", 4)]
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    base = ["compare", "--pairs", tmp_path / "pairs.csv", "-m", METRICS, "--workers", "0", "-q"]
    assert lpips(*base, "-o", tmp_path / "one.parquet").exit_code == 0
    (tmp_path / "parts").mkdir()
    for i in range(2):
        assert lpips(*base, "-o", tmp_path / "parts" / f"{i}.parquet", "--shard", f"{i}/2").exit_code == 0
    assert lpips("merge", tmp_path / "m.parquet", tmp_path / "parts", "-q").exit_code == 0
    assert_same_rows(read_results(tmp_path / "m.parquet").rows, read_results(tmp_path / "one.parquet").rows)


# --------------------------------------------------------------------------------------------------
# video: contiguous frame ranges


W, H, N_FRAMES, FPS = 32, 24, 10, 25.0


def write_clip(path: Path, frames: list[np.ndarray]) -> Path:
    return write_ffv1_clip(path, frames, FPS)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shard_clips")
    ref = [smooth_image(H, W, 3, seed=k) for k in range(N_FRAMES)]
    write_clip(root / "ref.mkv", ref)
    write_clip(root / "d1.mkv", [distort(f, seed=k, sigma=5 + k) for k, f in enumerate(ref)])
    write_clip(root / "d2.mkv", [distort(f, seed=50 + k, sigma=20) for k, f in enumerate(ref)])
    if len(read_video_rgb(root / "ref.mkv")) != N_FRAMES:
        pytest.skip("OpenCV cannot read back its FFV1 clip")
    return root


@pytest.mark.parametrize("selection", [(), ("--start", "1", "--step", "2")])
def test_video_shards_are_frame_ranges_and_merge_to_the_single_run(clips, tmp_path, selection):
    base = ["compare", clips / "ref.mkv", clips / "d1.mkv", clips / "d2.mkv", "-m", METRICS, "--workers", "0", "-q",
            *selection]
    assert lpips(*base, "-o", tmp_path / "one.parquet").exit_code == 0
    one = read_results(tmp_path / "one.parquet").rows
    frames = sorted({r["frame"] for r in one})
    ranges = []
    for i in range(3):
        out = tmp_path / "parts" / f"{i}.parquet"
        out.parent.mkdir(exist_ok=True)
        result = lpips(*base, "-o", out, "--shard", f"{i}/3")
        assert result.exit_code == 0, result.output
        table = read_results(out)
        ranges.append(sorted({r["frame"] for r in table.rows}))
        assert table.provenance["video"]["ref"]["frame_count"] == N_FRAMES  # checks made on the whole source
    # contiguous, in order, balanced (sizes differ by at most one), covering every selected frame once
    assert sum(ranges, []) == frames
    assert max(map(len, ranges)) - min(map(len, ranges)) <= 1
    assert lpips("merge", tmp_path / "m.csv", tmp_path / "parts", "-q").exit_code == 0
    assert_same_rows(read_results(tmp_path / "m.csv").rows, one)


def test_video_alignment_is_checked_on_the_whole_source_in_every_shard(clips, tmp_path):
    short = write_clip(tmp_path / "short.mkv", read_video_rgb(clips / "d1.mkv")[:7])
    result = lpips("compare", clips / "ref.mkv", short, "-m", METRICS, "--shard", "0/3", "-o", tmp_path / "x.csv")
    assert result.exit_code == 2 and "frame counts differ" in result.output


# --------------------------------------------------------------------------------------------------
# Parquet dataset folders


def test_dataset_folder_is_read_by_pyarrow_and_lpips_summary(images, single, tmp_path):
    import pyarrow as pa
    import pyarrow.dataset as ds

    rows, summary = single
    folder = tmp_path / "results"
    for i in range(2):
        result = compare(images, f"{folder}/", "--shard", f"{i}/2", "--allow-failed")
        assert result.exit_code == 0, result.output
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet"))
    assert len(files) == 4 and all(f.startswith("dist_root=") for f in files)
    # pyarrow.dataset with hive partitioning (dist_root is a string: give its type, as for any path-valued key)
    part = ds.partitioning(pa.schema([("dist_root", pa.string())]), flavor="hive")
    table = ds.dataset(folder, format="parquet", partitioning=part).to_table()
    got = table.to_pylist()
    want = {(r["dist_root"], r["dist"]): r for r in rows}
    assert {(r["dist_root"], r["dist"]) for r in got} == set(want)
    for r in got:
        w = want[(r["dist_root"], r["dist"])]
        assert r["status"] == w["status"]
        if w["status"] == "ok":
            assert r["psnr"] == pytest.approx(w["psnr"], rel=REL_TOL)
    # the default hive reader infers the same strings here
    assert ds.dataset(folder, format="parquet", partitioning="hive").to_table().num_rows == len(rows)
    # lpips summary (and everything using read_results) takes the folder
    assert_same_rows(read_results(folder).rows, rows)
    result = lpips("summary", folder, "--summary-json", tmp_path / "s.json", "-q", "--allow-failed")
    assert result.exit_code == 0, result.output
    got_summary = json.loads((tmp_path / "s.json").read_text())
    for root, block in summary["per_dist_root"].items():
        assert got_summary["per_dist_root"][root]["metrics"]["psnr"]["mean"] == pytest.approx(
            block["metrics"]["psnr"]["mean"], rel=1e-12)
    result = lpips("diff", single_path(tmp_path, images), folder, "-q", "--fail-if", "max(delta_psnr) > 0",
                   "--allow-failed")
    assert result.exit_code == 0, result.output  # same scores: every delta is 0
    # merged into another folder: one file per distorted input, the same rows
    result = lpips("merge", f"{tmp_path / 'merged'}/", folder, "-q", "--allow-failed")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "merged").glob("dist_root=*/part-00000-of-00001.parquet"))) == 2
    assert_same_rows(read_results(tmp_path / "merged").rows, rows)
    # a missing shard is named when the folder is read
    for piece in folder.glob("*/part-00001-of-00002.parquet"):
        piece.unlink()
    result = lpips("summary", folder)
    assert result.exit_code == 2 and "shard(s) 1/2 missing" in result.output


def single_path(tmp_path: Path, images: Path) -> Path:
    out = tmp_path / "single_for_diff.parquet"
    assert compare(images, out).exit_code in (0, 4)
    return out


def test_dataset_shard_resume_rewrites_only_what_is_missing(images, single, tmp_path):
    rows, _ = single
    folder = tmp_path / "results"
    for i in range(2):
        assert compare(images, f"{folder}/", "--shard", f"{i}/2").exit_code in (0, 4)
    victim = next(folder.glob("*/part-00000-of-00002.parquet"))
    victim.unlink()  # shard 0 lost one distorted input's file
    result = compare(images, folder, "--shard", "0/2", "--resume", "--allow-failed")
    assert result.exit_code == 0, result.output
    assert victim.is_file()
    assert_same_rows(read_results(folder).rows, rows)


# --------------------------------------------------------------------------------------------------
# torchrun


def test_torchrun_two_cpu_processes_equal_a_single_run(images, single, tmp_path):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    rows, summary = single
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS", None)
    out = tmp_path / "tr.parquet"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "lpipscli",
               "compare", images / "ref", images / "d1", images / "d2", "-m", METRICS, "--on-error", "skip", "-q",
               "--allow-failed", "--workers", "0", "-o", out, "--summary-json", tmp_path / "s.json",
               "--fail-if", "mean(psnr) < 0"]
    proc = subprocess.run([str(c) for c in command], cwd=Path(__file__).parents[1], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = read_results(out)
    assert_same_rows(table.rows, rows)
    assert table.provenance["merged"]["shards"] == 2
    assert not out.with_name(out.name + ".shards").exists()  # parts removed once merged
    got = json.loads((tmp_path / "s.json").read_text())
    assert got["pairs"] == summary["pairs"] and got["gates"] and all(g["passed"] for g in got["gates"])
