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
from lpipscli.status import (
    FAILED,
    OK,
    PARTIAL,
    format_errors,
    group_rows,
    is_failure,
    metric_errors,
    normalize,
    row_status,
)


def run_cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250", "NO_COLOR": "1"})


def test_vocabulary_and_legacy_error():
    assert normalize("error") == FAILED and normalize(" OK ") == OK and normalize("") == OK and normalize(None) == OK
    assert [is_failure(s) for s in ("ok", "partial", "failed", "error", "missing_in_new", "extra_in_new", "weird")] \
        == [False, True, True, True, True, False, True]


def test_row_status_and_error_entries_round_trip():
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
