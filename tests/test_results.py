"""Reading result files back: every format the sinks write, typed values, provenance, gate groups."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lpipscli.errors import UsageError
from lpipscli.gates import evaluate_gates, parse_gates
from lpipscli.results import groups_for_gates, metric_columns, read_results
from lpipscli.sinks import open_sink

#: Written-down tolerances: result files store floats exactly (repr / float64), so round trips are exact.
TOLERANCES = {"round_trip": 0.0, "gate_mean": 1e-12}

COLUMNS = ("ref", "dist", "dist_root", "width", "height", "lpips_alex", "psnr", "status", "error")
VIDEO_COLUMNS = ("ref", "dist", "dist_root", "frame", "time", "width", "height", "lpips_alex", "psnr",
                 "status", "error")
FORMATS = ("csv", "parquet", "jsonl")


def make_provenance(*, version: str = "0.1", alpha: str = "white", ref_root: str = "ref") -> dict:
    """A provenance with the keys ``Engine.provenance()`` writes (values made up, JSON-safe)."""
    sha = "ab" * 32
    return {
        "tool": "lpipscli",
        "created": "2025-01-01T00:00:00+00:00",
        "versions": {"lpipscli": "0.1.0", "torch": "2.5.0"},
        "device": "cpu",
        "dtype": "float32",
        "metrics": {"lpips_alex": {"version": version}, "psnr": {}},
        "options": {"alpha": alpha, "resize": "none", "resize_method": "bicubic, antialiased"},
        "weights": [
            {"role": "alex backbone", "path": "x.pth", "sha256": sha, "expected_sha256": sha, "verified": True},
        ],
        "inputs": {"ref": ref_root, "dists": ["enc"]},
        "settings_hash": "0" * 64,
    }


def make_row(name: str, root: str = "enc", *, lpips: float = 0.1, psnr: float = 30.0, failed: bool = False,
             frame: int | None = None, ref_root: str = "ref") -> dict:
    row = {"ref": f"{ref_root}/{name}", "dist": f"{root}/{name}", "dist_root": root, "width": 64, "height": 48,
           "lpips_alex": math.nan if failed else lpips, "psnr": math.nan if failed else psnr,
           "status": "error" if failed else "ok", "error": f"{root}/{name}: cannot decode" if failed else ""}
    if frame is not None:
        row["frame"] = frame
        row["time"] = frame / 25.0
    return row


def write_results(path: Path, rows: list[dict], provenance: dict, columns: tuple[str, ...] = COLUMNS) -> Path:
    """Write ``rows`` with the real sink for ``path``'s extension."""
    sink = open_sink(str(path), None, columns, provenance)
    sink.write(rows)
    sink.close({"pairs": len(rows)})
    return path


def assert_same_value(got, expected, where: str) -> None:
    if isinstance(expected, float):
        assert isinstance(got, float), where
        if math.isnan(expected):
            assert math.isnan(got), where
        else:
            assert got == pytest.approx(expected, abs=TOLERANCES["round_trip"], rel=0), where
    else:
        assert type(got) is type(expected), where
        assert got == expected, where


SAMPLE_ROWS = [
    make_row("a.png", lpips=0.1 + 0.2, psnr=math.inf),
    make_row("b.png", lpips=1e-300, psnr=-math.inf),
    make_row("c.png", failed=True),
    make_row("d, with comma \"quoted\".png", lpips=0.0, psnr=12.345678901234567),
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_through_every_sink(tmp_path, fmt):
    prov = make_provenance()
    path = write_results(tmp_path / f"scores.{fmt}", SAMPLE_ROWS, prov)
    table = read_results(path)
    assert table.columns == list(COLUMNS)
    assert table.path == str(path)
    assert len(table.rows) == len(SAMPLE_ROWS)
    for i, (got, expected) in enumerate(zip(table.rows, SAMPLE_ROWS, strict=True)):
        assert set(got) == set(COLUMNS)
        for c in COLUMNS:
            assert_same_value(got[c], expected[c], f"{fmt} row {i} column {c}")
    assert table.provenance == prov
    assert table.kinds["width"] == "int" and table.kinds["psnr"] == "float" and table.kinds["ref"] == "str"
    assert metric_columns(table) == ["lpips_alex", "psnr"]
    if fmt != "parquet":
        assert table.complete is True


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_video_rows(tmp_path, fmt):
    rows = [make_row("clip.mp4", frame=k, lpips=0.01 * k, psnr=40.0 - k) for k in range(3)]
    rows.append(make_row("clip.mp4", frame=3, failed=True))
    path = write_results(tmp_path / f"video.{fmt}", rows, make_provenance(), VIDEO_COLUMNS)
    table = read_results(path)
    for i, (got, expected) in enumerate(zip(table.rows, rows, strict=True)):
        for c in VIDEO_COLUMNS:
            assert_same_value(got[c], expected[c], f"{fmt} row {i} column {c}")
    assert "time" not in metric_columns(table) and "frame" not in metric_columns(table)


def test_csv_without_sidecar_has_no_provenance(tmp_path):
    path = write_results(tmp_path / "s.csv", SAMPLE_ROWS, make_provenance())
    Path(str(path) + ".meta.json").unlink()
    table = read_results(path)
    assert table.provenance is None
    assert any("no provenance" in w for w in table.warnings)
    assert metric_columns(table) == ["lpips_alex", "psnr"]  # float columns that are not fixed
    assert math.isinf(table.rows[0]["psnr"]) and math.isnan(table.rows[2]["psnr"])


def test_text_column_of_unknown_name_stays_text(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("ref,dist_root,note,psnr\nr/a.png,enc,hello,31.5\nr/b.png,enc,,inf\n")
    table = read_results(path)
    assert table.rows[0]["note"] == "hello" and table.rows[1]["note"] == ""
    assert metric_columns(table) == ["psnr"]
    with pytest.raises(UsageError, match="note"):
        metric_columns(table, known_keys=["note"])


def test_interrupted_run_is_flagged(tmp_path):
    path = tmp_path / "s.jsonl"
    sink = open_sink(str(path), None, COLUMNS, make_provenance())
    sink.write(SAMPLE_ROWS[:2])
    sink.close(None)  # no summary: the run did not finish
    table = read_results(path)
    assert table.complete is False
    assert any("did not finish" in w for w in table.warnings)
    assert len(table.rows) == 2


@pytest.mark.parametrize(("name", "content", "match"), [
    ("s.txt", "x", "extension"),
    ("s.csv", None, "no such file"),
    ("s.csv", "", "empty"),
    ("s.csv", "ref,dist_root,psnr\nr/a.png,enc,1.0\nr/b.png,enc\n", "line 3"),
    ("s.csv", "ref,dist_root,width,psnr\nr/a.png,enc,wide,1.0\n", "width"),
    ("s.jsonl", '{"ref": "a", "psnr": 1.0}\n{"ref": \n', "line 2"),
    ("s.parquet", "not a parquet file", "Parquet"),
])
def test_unreadable_files_are_usage_errors(tmp_path, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=match) as info:
        read_results(path)
    assert "\n" not in str(info.value)


def test_metric_cell_with_text_is_refused_when_provenance_names_the_metric(tmp_path):
    path = write_results(tmp_path / "s.csv", SAMPLE_ROWS[:1], make_provenance())
    text = path.read_text().replace("0.30000000000000004", "oops")
    path.write_text(text)
    with pytest.raises(UsageError, match="lpips_alex"):
        read_results(path)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_groups_for_gates_feed_evaluate_gates(tmp_path, fmt):
    rng = np.random.default_rng(0)
    clean = {f"{i}.png": float(v) for i, v in enumerate(rng.uniform(25, 40, 6))}
    rows = [make_row(n, "good", psnr=v) for n, v in clean.items()]
    rows += [make_row(n, "broken", psnr=v) for n, v in clean.items()]
    rows.append(make_row("x.png", "broken", failed=True))
    table = read_results(write_results(tmp_path / f"s.{fmt}", rows, make_provenance()))
    groups, failed, keys = groups_for_gates(table, metric_columns(table))
    assert list(groups) == ["good", "broken"]
    assert failed == {"good": 0, "broken": 1}
    assert keys["broken"][-1] == "broken/x.png"
    assert groups["broken"]["psnr"].shape == (7,) and math.isnan(groups["broken"]["psnr"][-1])

    expected_mean = sum(clean.values()) / len(clean)
    gates = parse_gates(["mean(psnr) < 20", "mean(psnr) > 20"], metric_columns(table))
    outcomes = {(o.scope, o.gate_text): o for o in evaluate_gates(gates, groups, failed=failed, keys=keys)}
    good_low, good_high = outcomes[("good", "mean(psnr) < 20")], outcomes[("good", "mean(psnr) > 20")]
    assert good_low.observed == pytest.approx(expected_mean, abs=TOLERANCES["gate_mean"])
    # gates are failure conditions: "mean(psnr) < 20" does not hold, so it passes; "> 20" holds, so it fails
    assert good_low.passed is True and good_high.passed is False
    # a group with a failed pair never passes unless failures are allowed
    assert outcomes[("broken", "mean(psnr) < 20")].passed is False
    allowed = evaluate_gates(gates[:1], groups, failed=failed, keys=keys, allow_failed=True)
    assert [o.passed for o in allowed] == [True, True]


def test_groups_for_gates_unknown_column(tmp_path):
    table = read_results(write_results(tmp_path / "s.csv", SAMPLE_ROWS, make_provenance()))
    with pytest.raises(UsageError, match="ssim"):
        groups_for_gates(table, ["ssim"])


def test_sidecar_provenance_is_the_json_written(tmp_path):
    prov = make_provenance(alpha="black")
    path = write_results(tmp_path / "s.jsonl", SAMPLE_ROWS, prov)
    sidecar = json.loads(Path(str(path) + ".meta.json").read_text())
    assert read_results(path).provenance == sidecar["provenance"] == prov
