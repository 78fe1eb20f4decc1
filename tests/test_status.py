"""Row statuses (lpipscli.status) and the one grouping shared by compare, ``lpips summary`` and ``lpips diff``.

Expected counts are written out by hand from the rows each test makes; statistics come from numpy.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from test_results import COLUMNS, make_provenance, make_row, write_results
from typer.testing import CliRunner

from lpipscli.cli import app
from lpipscli.diff import diff_tables
from lpipscli.results import read_results
from lpipscli.sinks import open_sink


def run_cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250", "NO_COLOR": "1"})


def test_vocabulary_and_legacy_error():
    from lpipscli.status import FAILED, OK, is_failure, normalize

    assert normalize("error") == FAILED and normalize(" OK ") == OK and normalize("") == OK and normalize(None) == OK
    assert [is_failure(s) for s in ("ok", "partial", "failed", "error", "missing_in_new", "extra_in_new", "weird")] \
        == [False, True, True, True, True, False, True]


def test_row_status_and_error_entries_round_trip():
    from lpipscli.status import FAILED, PARTIAL, format_errors, metric_errors, row_status

    metrics = ("lpips_alex", "ssim", "psnr", "ms_ssim")
    assert row_status(metrics, {}) == ("ok", "")
    status, error = row_status(metrics, {"ms_ssim": "96x64 is too small; needs 161 px"})
    assert status == PARTIAL and error == "ms_ssim: 96x64 is too small; needs 161 px"
    assert metric_errors(error, metrics) == {"ms_ssim": "96x64 is too small; needs 161 px"}
    two = format_errors({"ssim": "a: b", "psnr": "c"})
    assert metric_errors(two, metrics) == {"ssim": "a: b", "psnr": "c"}
    assert row_status(metrics, dict.fromkeys(metrics, "x"))[0] == FAILED
    assert row_status(metrics, {}, fatal="out/a.png: cannot decode") == (FAILED, "out/a.png: cannot decode")


def test_group_counts_failures_per_metric_and_reason():
    from lpipscli.status import group_rows

    rows = [
        make_row("a.png", psnr=30.0, lpips=0.1),
        {**make_row("b.png", psnr=31.0), "lpips_alex": math.nan, "status": "partial",
         "error": "lpips_alex: out of memory for one 64x48 pair"},
        make_row("c.png", failed=True),  # legacy status "error", message names the file
        make_row("d.png", failed=True),
    ]
    g = group_rows(rows, ["lpips_alex", "psnr"])["enc"]
    assert g.failed == 3 and g.statuses == {"ok": 1, "partial": 1, "failed": 2}
    assert g.failed_per_metric == {"lpips_alex": 3, "psnr": 2}
    assert g.reasons == {"lpips_alex: out of memory for one 64x48 pair": 1, "cannot decode": 2}
    np.testing.assert_array_equal(g.values["psnr"], [30.0, 31.0, math.nan, math.nan])


def diff_file(tmp_path, fmt="csv"):
    """A diff results file with one ok row, one `failed` row and one `missing_in_new` row."""
    base = [make_row("a.png", psnr=30.0), make_row("b.png", psnr=32.0), make_row("c.png", psnr=34.0)]
    new = [make_row("a.png", psnr=30.5), make_row("b.png", failed=True)]
    b = read_results(write_results(tmp_path / "base.csv", base, make_provenance()))
    n = read_results(write_results(tmp_path / "new.csv", new, make_provenance()))
    result = diff_tables(b, n)
    assert sorted(r["status"] for r in result.rows) == ["failed", "missing_in_new", "ok"]
    path = tmp_path / f"d.{fmt}"
    sink = open_sink(str(path), None, result.columns, result.provenance)
    sink.write(result.output_rows())
    sink.close(result.summary())
    return path


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_summary_of_a_diff_file_counts_missing_and_failed_and_fails_gates(tmp_path, fmt):
    """Issue 10 defect 1: a missing_in_new row and a failed row are 2 failures; the gate fails (exit 1)."""
    path = diff_file(tmp_path, fmt)
    out = tmp_path / "s.json"
    result = run_cli("summary", path, "--fail-if", "mean(delta_psnr) > 100", "--summary-json", out)
    assert result.exit_code == 1, result.output
    block = json.loads(out.read_text())["per_dist_root"]["enc"]
    assert block["failed"] == 2 and block["missing"] == 1
    assert block["statuses"] == {"ok": 1, "failed": 1, "missing_in_new": 1}
    assert "2 pairs failed" in json.loads(out.read_text())["gates"][0]["reason"]
    assert run_cli("summary", path, "--fail-if", "mean(delta_psnr) > 100", "--allow-failed").exit_code == 0


# --------------------------------------------------------------------------------------------------
# issue 11 point 1: a results file records whether its run completed; gates over an incomplete one fail


def _corrupt_run(tmp_path, fmt):
    """`lpips compare ref/ bad/ -m psnr -o c.FMT` stopping at a corrupt file: exit 2, 3 of 4 rows written."""
    from _helpers import smooth_image
    from PIL import Image
    from test_cli_gates import corrupt_png_pixels

    for d in ("ref", "bad"):
        (tmp_path / d).mkdir()
    for i in range(4):
        img = smooth_image(32, 40, 3, seed=i)
        Image.fromarray(img).save(tmp_path / "ref" / f"k{i}.png")
        Image.fromarray(np.clip(img.astype(int) + 3, 0, 255).astype(np.uint8)).save(tmp_path / "bad" / f"k{i}.png")
    corrupt_png_pixels(tmp_path / "bad" / "k3.png")
    out = tmp_path / f"c.{fmt}"
    result = run_cli("compare", tmp_path / "ref", tmp_path / "bad", "-m", "psnr", "-o", out, "--workers", "0",
                     "-q", "--batch-size", "1")
    assert result.exit_code == 2, result.output
    return out


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_gate_over_an_incomplete_file_fails_unless_allowed(tmp_path, fmt):
    out = _corrupt_run(tmp_path, fmt)
    table = read_results(out)
    assert table.complete is False and len(table.rows) == 3
    assert table.expected_rows == 4 and table.missing_rows == 1
    result = run_cli("summary", out, "--fail-if", "mean(psnr) < 20", "--summary-json", tmp_path / "s.json")
    assert result.exit_code == 1, result.output
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["missing_pairs"] == 1 and data["expected_pairs"] == 4 and data["complete"] is False
    assert "1 of 4 planned items missing" in result.stderr and "stopped at an error" in result.stderr
    assert "incomplete" in data["gates"][0]["reason"] and data["gates"][0]["passed"] is False
    allowed = run_cli("summary", out, "--fail-if", "mean(psnr) < 20", "--allow-incomplete")
    assert allowed.exit_code == 0, allowed.output
    # lpips diff says how many items are missing and why, and its gates fail too
    full = tmp_path / f"full.{fmt}"
    (tmp_path / "bad" / "k3.png").unlink()
    from shutil import copy
    copy(tmp_path / "ref" / "k3.png", tmp_path / "bad" / "k3.png")
    assert run_cli("compare", tmp_path / "ref", tmp_path / "bad", "-m", "psnr", "-o", full, "-q",
                   "--workers", "0").exit_code == 0
    diff = run_cli("diff", full, out, "--fail-if", "mean(delta_psnr) < -1000", "--allow-failed")
    assert diff.exit_code == 1, diff.output
    assert "1 of 4 planned items missing" in diff.stderr and "not in NEW (its run did not finish)" in diff.stderr
    assert run_cli("diff", full, out, "--fail-if", "mean(delta_psnr) < -1000", "--allow-failed",
                   "--allow-incomplete").exit_code == 0


# --------------------------------------------------------------------------------------------------
# issue 11 point 2 (summary side): failures are counted per metric


def test_summary_counts_failures_per_metric(tmp_path):
    columns = COLUMNS
    rows = [make_row("a.png"), make_row("b.png"),
            {**make_row("c.png"), "lpips_alex": math.nan, "status": "partial",
             "error": "lpips_alex: 16x16 is too small for lpips_alex (needs 32 px)"},
            {**make_row("d.png"), "lpips_alex": math.nan, "status": "partial",
             "error": "lpips_alex: 16x16 is too small for lpips_alex (needs 32 px)"},
            make_row("e.png", failed=True)]
    path = write_results(tmp_path / "r.csv", rows, make_provenance(), columns)
    out = tmp_path / "s.json"
    result = run_cli("summary", path, "--summary-json", out)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["failed_per_metric"] == {"lpips_alex": 3, "psnr": 1}
    assert data["statuses"] == {"ok": 2, "partial": 2, "failed": 1}
    assert data["failure_reasons"] == {"lpips_alex: 16x16 is too small for lpips_alex (needs 32 px)": 2,
                                       "cannot decode": 1}
    block = data["per_dist_root"]["enc"]
    assert block["metrics"]["psnr"]["count"] - block["metrics"]["psnr"]["n_nan"] == 4
    assert "3 of 5 rows failed" in result.stderr
    # a psnr gate still fails: the group holds failed rows
    assert run_cli("summary", path, "--fail-if", "mean(psnr) < 0").exit_code == 1
