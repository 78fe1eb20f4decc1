"""``lpips diff`` across build trees (issue 11 point 6) and the one settings comparison (issue 10).

Deltas are checked against the test's own subtraction of the values written; expected join messages and
settings differences are written out by hand.
"""

from __future__ import annotations

import copy

import pytest
from test_results import make_provenance, make_row, write_results
from typer.testing import CliRunner

from lpipscli.cli import app
from lpipscli.diff import diff_tables
from lpipscli.errors import UsageError
from lpipscli.results import read_results


def run_cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250", "NO_COLOR": "1"})


def tree_run(tmp_path, name, roots, shift, prov=None):
    """A results file with pairs a.png, b.png under each root; psnr = 30 + 2*i + 10*r + shift."""
    rows = [make_row(n, root, psnr=30.0 + 2 * i + 10 * r + shift, lpips=0.1)
            for r, root in enumerate(roots) for i, n in enumerate(("a.png", "b.png"))]
    return write_results(tmp_path / name, rows, prov or make_provenance())


def test_build_trees_join_by_last_folder_name(tmp_path):
    base = tree_run(tmp_path, "b.csv", ["v1/jpeg_q30", "v1/jpeg_q70"], 0.0)
    new = tree_run(tmp_path, "n.parquet", ["v2/jpeg_q70", "v2/jpeg_q30"], 0.5)  # other order on purpose
    result = diff_tables(read_results(base), read_results(new))
    assert result.join_on == ("dist_root", "ref")
    assert result.root_map == {"v1/jpeg_q30": "v2/jpeg_q30", "v1/jpeg_q70": "v2/jpeg_q70"}
    assert any("joined distorted roots by folder name" in w and "v1/jpeg_q30 -> v2/jpeg_q30" in w
               for w in result.warnings)
    assert result.counts == {"ok": 4, "failed": 0, "missing_in_new": 0, "extra_in_new": 0}
    # NEW's v2/jpeg_q30 was written second (r = 1): psnr = 30 + 2i + 10 + 0.5; BASE's first (r = 0)
    for row in result.rows:
        i = 0 if row["ref"].endswith("a.png") else 1
        r_base = 0 if row["dist_root"].endswith("q30") else 1
        r_new = 1 - r_base
        expected = (30.0 + 2 * i + 10 * r_new + 0.5) - (30.0 + 2 * i + 10 * r_base)
        assert row["delta_psnr"] == expected
        assert row["dist_root"].startswith("v2/")
    # the CLI says so on stderr (not as a warning) and exits 0
    cli = run_cli("diff", base, new)
    assert cli.exit_code == 0, cli.output
    assert "joined distorted roots by folder name" in cli.stderr


def test_unmatched_folder_names_need_an_explicit_map(tmp_path):
    base = tree_run(tmp_path, "b.csv", ["v1/q30", "v1/q70"], 0.0)
    new = tree_run(tmp_path, "n.csv", ["v2/jpeg_q30", "v2/jpeg_q70"], 1.0)
    with pytest.raises(UsageError, match="--map") as info:
        diff_tables(read_results(base), read_results(new))
    assert "\n" not in str(info.value)
    mapped = {"v1/q30": "v2/jpeg_q30", "v1/q70": "v2/jpeg_q70"}
    result = diff_tables(read_results(base), read_results(new), root_map=mapped)
    assert result.counts["ok"] == 4 and all(r["delta_psnr"] == 1.0 for r in result.rows)
    cli = run_cli("diff", base, new, "--map", "v1/q30=v2/jpeg_q30", "--map", "v1/q70=v2/jpeg_q70",
                  "--fail-if", "mean(delta_psnr) < 0")
    assert cli.exit_code == 0, cli.output
    assert "joined distorted roots as mapped" in cli.stderr
    # a root left out, an unknown root, a malformed item: exit 2, one line
    for args in (["--map", "v1/q30=v2/jpeg_q30"], ["--map", "v1/q31=v2/jpeg_q30", "--map", "v1/q70=v2/jpeg_q70"],
                 ["--map", "v1/q30"]):
        bad = run_cli("diff", base, new, *args)
        assert bad.exit_code == 2 and "--map" in bad.stderr and bad.stderr.count("\n") == 1, bad.stderr


def test_build_tree_join_still_refuses_settings_that_change_scores(tmp_path):
    prov = make_provenance()
    prov["metrics"]["lpips_alex"]["version"] = "0.0"
    base = tree_run(tmp_path, "b.csv", ["v1/jpeg_q30", "v1/jpeg_q70"], 0.0)
    new = tree_run(tmp_path, "n.csv", ["v2/jpeg_q30", "v2/jpeg_q70"], 0.0, prov)
    cli = run_cli("diff", base, new)
    assert cli.exit_code == 2 and "version" in cli.stderr and "--force" in cli.stderr


def _with_settings(**changes):
    prov = make_provenance()
    settings = {"metrics": {"lpips_alex": {"version": "0.1", "net": "alex"}, "psnr": {"data_range": 1.0}},
                "weights": [["alex backbone", "ab" * 32], ["alex head v0.1", "ef" * 32]],
                "decode": {"alpha": "drop", "resize": "none"}, "alignment": {}, "device": "cpu", "tf32": False}
    for path, value in changes.items():
        node = settings
        *head, last = path.split("__")
        for k in head:
            node = node[k]
        node[last] = value
    prov["settings"] = settings
    prov["settings_hash"] = str(hash(repr(sorted(changes.items()))))
    return prov


def test_settings_differences_on_the_settings_record():
    from lpipscli.diff import settings_differences

    same = _with_settings()
    assert settings_differences(same, copy.deepcopy(same)) == []
    alpha = _with_settings(decode__alpha="white")
    assert settings_differences(same, alpha) == ['settings.decode.alpha: "drop" in BASE, "white" in NEW']
    # a setting of a metric that is not compared does not count; for --resume (metrics None) it does
    version = _with_settings(metrics__lpips_alex={"version": "0.0", "net": "alex"})
    assert settings_differences(same, version, ["psnr"]) == []
    assert settings_differences(same, version, labels=("the file", "this run")) == [
        'settings.metrics.lpips_alex.version: "0.1" in the file, "0.0" in this run']
    weights = _with_settings(weights=[["alex backbone", "cd" * 32], ["alex head v0.1", "ef" * 32]])
    assert settings_differences(same, weights, ["psnr"]) == []
    assert settings_differences(same, weights, ["psnr", "lpips_alex"]) == [
        f'settings.weights.alex backbone: ["{"ab" * 32}"] in BASE, ["{"cd" * 32}"] in NEW']
    records = _with_settings(weights=[{"metric": "lpips_alex", "role": "x", "sha256": "00"}])
    assert settings_differences(same, records, ["psnr"]) == []
    # the device class: a note for lpips diff, a difference for --resume
    cuda = _with_settings(device="cuda")
    assert settings_differences(same, cuda, ["psnr"]) == []
    assert settings_differences(same, cuda) == ['settings.device: "cpu" in BASE, "cuda" in NEW']
    # equal hashes: nothing to compare
    twin = _with_settings(tf32=True)
    twin["settings_hash"] = same["settings_hash"]
    assert settings_differences(same, twin) == []


def test_settings_differences_reads_todays_provenance_layout():
    from lpipscli.diff import settings_differences

    base = make_provenance()
    new = make_provenance(alpha="black")
    assert settings_differences(base, new, ["psnr"]) == ['decode option alpha: "white" in BASE, "black" in NEW']
    new["metrics"].pop("lpips_alex")
    lines = settings_differences(base, new)  # --resume: a metric set that changed is a difference
    assert lines[0] == 'metrics: ["lpips_alex", "psnr"] in BASE, ["psnr"] in NEW'
    assert settings_differences(base, None) == []


def test_resume_refusal_names_the_settings_that_differ(tmp_path):
    """--resume compares settings records and names what changed (the comparison lpips diff uses)."""
    from lpipscli.resume import previous_rows

    columns = ("ref", "dist", "dist_root", "width", "height", "lpips_alex", "psnr", "status", "error")
    old = _with_settings()
    old["settings_hash"] = "0" * 64
    write_results(tmp_path / "r.csv", [make_row("a.png")], old, columns)
    now = _with_settings(decode__alpha="black")["settings"]
    with pytest.raises(UsageError, match="different settings") as info:
        previous_rows(str(tmp_path / "r.csv"), "csv", "1" * 64, columns, settings=now)
    message = str(info.value)
    assert "alpha" in message and "black" in message and "\n" not in message
    assert len(previous_rows(str(tmp_path / "r.csv"), "csv", "0" * 64, columns, settings=old["settings"])) == 1
