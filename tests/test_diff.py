"""``lpips diff``: joins on the pair key, deltas, missing/extra pairs, provenance refusals, gates."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
from test_results import COLUMNS, VIDEO_COLUMNS, make_provenance, make_row, write_results

from lpipscli.diff import diff_tables
from lpipscli.errors import UsageError
from lpipscli.gates import evaluate_gates, parse_gates
from lpipscli.results import metric_columns, read_results
from lpipscli.sinks import open_sink

#: Written-down tolerances: deltas are one IEEE subtraction, compared with the test's own subtraction.
TOLERANCES = {"delta": 0.0, "gate_mean": 1e-12}


def table(tmp_path: Path, name: str, rows: list[dict], prov: dict | None = None, columns=COLUMNS):
    """Write with the real sink, read back with ``read_results``."""
    path = write_results(tmp_path / name, rows, prov if prov is not None else make_provenance(), columns)
    return read_results(path)


def by_key(result, *cols):
    return {tuple(r[c] for c in cols): r for r in result.rows}


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=TOLERANCES["delta"], rel=0)


@pytest.mark.parametrize(("fmt_base", "fmt_new"), [("csv", "csv"), ("parquet", "jsonl")])
def test_identical_files_give_zero_deltas(tmp_path, fmt_base, fmt_new):
    rng = np.random.default_rng(1)
    rows = [make_row(f"{i}.png", lpips=float(a), psnr=float(p))
            for i, (a, p) in enumerate(zip(rng.uniform(0, 1, 5), rng.uniform(20, 50, 5), strict=True))]
    result = diff_tables(table(tmp_path, f"b.{fmt_base}", rows), table(tmp_path, f"n.{fmt_new}", rows))
    assert result.join_on == ("dist_root", "ref")
    assert result.metrics == ["lpips_alex", "psnr"]
    assert result.counts == {"ok": 5, "missing_in_new": 0, "extra_in_new": 0, "failed": 0}
    for r in result.rows:
        assert r["delta_lpips_alex"] == 0.0 and r["delta_psnr"] == 0.0
    assert result.missing == [] and result.extra == [] and result.differences == []
    assert result.columns == ("ref", "dist_root", "lpips_alex_base", "lpips_alex_new", "delta_lpips_alex",
                              "psnr_base", "psnr_new", "delta_psnr", "status", "error")


def test_infinities_and_nan_in_deltas(tmp_path):
    inf, nan = math.inf, math.nan
    # (base psnr, new psnr, expected delta by the rule: new - base, inf - inf -> NaN, finite vs inf -> +/-inf)
    cases = {"a": (30.0, inf, inf), "b": (inf, 30.0, -inf), "c": (inf, inf, nan), "d": (-inf, inf, inf),
             "e": (25.0, 27.5, 2.5), "f": (nan, 10.0, nan)}
    base = table(tmp_path, "b.csv", [make_row(k, psnr=b) for k, (b, _, _) in cases.items()])
    new = table(tmp_path, "n.parquet", [make_row(k, psnr=n) for k, (_, n, _) in cases.items()])
    result = diff_tables(base, new)
    got = {r["ref"].split("/")[-1]: r["delta_psnr"] for r in result.rows}
    for k, (_, _, expected) in cases.items():
        assert same(got[k], expected), (k, got[k], expected)


def test_failed_pairs_get_status_failed(tmp_path):
    base = table(tmp_path, "b.csv", [make_row("a.png"), make_row("b.png", failed=True), make_row("c.png")])
    new = table(tmp_path, "n.csv", [make_row("a.png"), make_row("b.png"), make_row("c.png", failed=True)])
    result = diff_tables(base, new)
    status = {r["ref"]: r for r in result.rows}
    assert status["ref/a.png"]["status"] == "ok"
    assert status["ref/b.png"]["status"] == "failed" and "BASE" in status["ref/b.png"]["error"]
    assert status["ref/c.png"]["status"] == "failed" and "NEW" in status["ref/c.png"]["error"]
    assert math.isnan(status["ref/c.png"]["delta_psnr"])
    _, failed, _ = result.groups_for_gates()
    assert failed == {"enc": 2}


def test_missing_and_extra_pairs_are_counted_and_listed(tmp_path):
    base = table(tmp_path, "b.csv", [make_row(n) for n in ("a.png", "b.png", "c.png", "d.png")])
    new = table(tmp_path, "n.csv", [make_row(n) for n in ("e.png", "d.png", "c.png", "b.png")])
    result = diff_tables(base, new)
    assert [r["ref"] for r in result.missing] == ["ref/a.png"]
    assert [r["ref"] for r in result.extra] == ["ref/e.png"]
    assert result.counts == {"ok": 3, "missing_in_new": 1, "extra_in_new": 1, "failed": 0}
    statuses = {r["ref"]: r["status"] for r in result.rows}
    assert statuses == {"ref/a.png": "missing_in_new", "ref/b.png": "ok", "ref/c.png": "ok", "ref/d.png": "ok",
                        "ref/e.png": "extra_in_new"}
    missing = by_key(result, "ref")[("ref/a.png",)]
    assert missing["psnr_base"] == 30.0 and math.isnan(missing["psnr_new"]) and math.isnan(missing["delta_psnr"])
    assert any("missing in NEW" in w for w in result.warnings)
    _, failed, keys = result.groups_for_gates()
    assert failed == {"enc": 1}  # the vanished pair counts against gates
    assert sorted(keys["enc"]) == [f"ref/{n}" for n in ("a.png", "b.png", "c.png", "d.png", "e.png")]


def test_one_root_each_joins_on_ref(tmp_path):
    names = [f"{i}.png" for i in range(5)]
    base_vals = {n: 0.1 * (i + 1) for i, n in enumerate(names)}
    new_vals = {n: 0.1 * (i + 1) + 0.01 * i for i, n in enumerate(names)}
    base = table(tmp_path, "b.csv", [make_row(n, "enc_v1", lpips=base_vals[n]) for n in names])
    new = table(tmp_path, "n.csv", [make_row(n, "enc_v2", lpips=new_vals[n]) for n in reversed(names)])
    result = diff_tables(base, new)
    assert result.join_on == ("ref",)
    assert {r["dist_root"] for r in result.rows} == {"enc_v2"}
    for r in result.rows:
        n = r["ref"].split("/")[-1]
        assert same(r["delta_lpips_alex"], new_vals[n] - base_vals[n])
    groups, _, _ = result.groups_for_gates()
    assert list(groups) == ["enc_v2"]


def test_multi_root_joins_on_dist_root_and_ref(tmp_path):
    rng = np.random.default_rng(3)
    keys = [(root, f"{i}.png") for root in ("A", "B", "C") for i in range(4)]
    base_vals = {k: float(v) for k, v in zip(keys, rng.uniform(0, 1, len(keys)), strict=True)}
    new_vals = {k: float(v) for k, v in zip(keys, rng.uniform(0, 1, len(keys)), strict=True)}
    shuffled = [keys[i] for i in rng.permutation(len(keys))]
    base = table(tmp_path, "b.parquet", [make_row(n, root, lpips=base_vals[(root, n)]) for root, n in keys])
    new = table(tmp_path, "n.csv", [make_row(n, root, lpips=new_vals[(root, n)]) for root, n in shuffled])
    result = diff_tables(base, new)
    assert result.join_on == ("dist_root", "ref")
    assert len(result.rows) == len(keys) and result.counts["ok"] == len(keys)
    for r in result.rows:
        k = (r["dist_root"], r["ref"].split("/")[-1])
        assert same(r["delta_lpips_alex"], new_vals[k] - base_vals[k])
        assert r["lpips_alex_base"] == base_vals[k] and r["lpips_alex_new"] == new_vals[k]
    groups, _, _ = result.groups_for_gates(["delta_lpips_alex"])
    assert list(groups) == ["A", "B", "C"]


@pytest.mark.parametrize(("roots_base", "roots_new"), [(("A", "B"), ("A", "C")), (("A",), ("A", "B"))])
def test_mismatched_root_sets_are_refused(tmp_path, roots_base, roots_new):
    base = table(tmp_path, "b.csv", [make_row("x.png", r) for r in roots_base])
    new = table(tmp_path, "n.csv", [make_row("x.png", r) for r in roots_new])
    with pytest.raises(UsageError, match="dist_root") as info:
        diff_tables(base, new)
    assert "\n" not in str(info.value)


def _changed(kind: str) -> dict:
    prov = make_provenance()
    if kind == "version":
        prov["metrics"]["lpips_alex"]["version"] = "0.0"
    elif kind == "weights":
        prov["weights"][0]["sha256"] = "cd" * 32
    elif kind == "alpha":
        prov["options"]["alpha"] = "black"
    return prov


@pytest.mark.parametrize(("kind", "named"), [("version", "version"), ("weights", "alex backbone"),
                                             ("alpha", "alpha")])
def test_provenance_that_changes_scores_is_refused_unless_forced(tmp_path, kind, named):
    rows = [make_row("a.png"), make_row("b.png")]
    base = table(tmp_path, "b.csv", rows)
    new = table(tmp_path, "n.parquet", rows, _changed(kind))
    with pytest.raises(UsageError, match=named) as info:
        diff_tables(base, new)
    assert "--force" in str(info.value) and "\n" not in str(info.value)
    result = diff_tables(base, new, force=True)
    assert len(result.differences) == 1 and named in result.differences[0]
    assert any(named in w and "forced" in w for w in result.warnings)
    assert result.provenance["forced"] is True
    assert result.counts["ok"] == 2


def test_settings_of_a_metric_not_shared_do_not_matter(tmp_path):
    psnr_only = ("ref", "dist", "dist_root", "width", "height", "psnr", "status", "error")
    base = table(tmp_path, "b.csv", [make_row("a.png")])
    prov = _changed("version")
    prov["metrics"].pop("lpips_alex")
    prov["weights"] = []
    new = table(tmp_path, "n.csv", [make_row("a.png")], prov, psnr_only)
    result = diff_tables(base, new)
    assert result.metrics == ["psnr"]
    assert any("only in BASE" in w and "lpips_alex" in w for w in result.warnings)


def test_missing_provenance_is_a_warning(tmp_path):
    rows = [make_row("a.png")]
    base = table(tmp_path, "b.csv", rows)
    new_path = write_results(tmp_path / "n.csv", rows, _changed("version"))
    Path(str(new_path) + ".meta.json").unlink()
    result = diff_tables(base, read_results(new_path))
    assert any("no provenance" in w for w in result.warnings)
    assert result.counts["ok"] == 1


def test_refs_join_relative_to_the_recorded_reference_folder(tmp_path):
    base_rows = [make_row(n, ref_root="/ci/job1/ref") for n in ("a.png", "b.png")]
    new_rows = [make_row(n, ref_root="/ci/job2/ref") for n in ("b.png", "a.png")]
    base = table(tmp_path, "b.csv", base_rows, make_provenance(ref_root="/ci/job1/ref"))
    new = table(tmp_path, "n.csv", new_rows, make_provenance(ref_root="/ci/job2/ref"))
    result = diff_tables(base, new)
    assert result.counts["ok"] == 2 and result.missing == [] and result.extra == []


def test_video_rows_join_on_frame(tmp_path):
    base = table(tmp_path, "b.csv", [make_row("v.mp4", frame=k, psnr=30.0 + k) for k in range(4)],
                 columns=VIDEO_COLUMNS)
    new = table(tmp_path, "n.jsonl", [make_row("v.mp4", frame=k, psnr=31.0 + 2 * k) for k in (3, 2, 1)],
                columns=VIDEO_COLUMNS)
    result = diff_tables(base, new)
    assert result.join_on == ("dist_root", "ref", "frame")
    assert "frame" in result.columns
    deltas = {r["frame"]: r["delta_psnr"] for r in result.rows if r["status"] == "ok"}
    assert deltas == {k: (31.0 + 2 * k) - (30.0 + k) for k in (1, 2, 3)}
    assert [r["frame"] for r in result.missing] == [0]
    _, _, keys = result.groups_for_gates()
    assert keys["enc"][0] == "ref/v.mp4#0"
    images = table(tmp_path, "i.csv", [make_row("v.mp4")])
    with pytest.raises(UsageError, match="frame"):
        diff_tables(base, images)


def test_duplicate_pairs_are_refused(tmp_path):
    base = table(tmp_path, "b.csv", [make_row("a.png"), make_row("a.png")])
    new = table(tmp_path, "n.csv", [make_row("a.png")])
    with pytest.raises(UsageError, match="more than one row"):
        diff_tables(base, new)


def _regression(tmp_path, shift: float, drop_last: bool = False):
    rng = np.random.default_rng(7)
    base_vals = rng.uniform(0.05, 0.3, 8)
    new_vals = base_vals + shift + rng.normal(0, 1e-4, 8)
    names = [f"{i}.png" for i in range(8)]
    base = table(tmp_path, f"b{shift}.csv",
                 [make_row(n, lpips=float(v)) for n, v in zip(names, base_vals, strict=True)])
    kept = names[:-1] if drop_last else names
    new = table(tmp_path, f"n{shift}.parquet",
                [make_row(n, lpips=float(v)) for n, v in zip(kept, new_vals, strict=False)])
    result = diff_tables(base, new)
    expected_mean = float(np.mean((new_vals - base_vals)[: len(kept)]))
    gates = parse_gates(["mean(delta_lpips_alex) > 0.005"], result.gate_columns)
    groups, failed, keys = result.groups_for_gates()
    (outcome,) = evaluate_gates(gates, groups, failed=failed, keys=keys)
    return outcome, expected_mean


def test_delta_gate_fails_on_a_regression_and_passes_otherwise(tmp_path):
    bad, bad_mean = _regression(tmp_path, 0.01)
    assert bad.observed == pytest.approx(bad_mean, abs=TOLERANCES["gate_mean"])
    assert bad.passed is False  # the failure condition holds: mean delta 0.01 > 0.005
    good, good_mean = _regression(tmp_path, 0.001)
    assert good.observed == pytest.approx(good_mean, abs=TOLERANCES["gate_mean"])
    assert good.passed is True
    vanished, _ = _regression(tmp_path, 0.0, drop_last=True)
    assert vanished.passed is False and "failed" in vanished.reason  # a missing pair never passes silently


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_diff_output_round_trips_through_the_sinks(tmp_path, fmt):
    base = table(tmp_path, "b.csv", [make_row("a.png", psnr=math.inf), make_row("b.png", lpips=0.2)])
    new = table(tmp_path, "n.csv", [make_row("a.png", psnr=math.inf), make_row("c.png")])
    result = diff_tables(base, new)
    out = tmp_path / f"diff.{fmt}"
    sink = open_sink(str(out), None, result.columns, result.provenance)
    sink.write(result.output_rows())
    sink.close(result.summary())
    back = read_results(out)
    assert back.columns == list(result.columns)
    assert metric_columns(back) == [c for c in result.columns if c not in ("ref", "dist_root", "status", "error")]
    for got, expected in zip(back.rows, result.output_rows(), strict=True):
        for c in result.columns:
            assert got[c] == expected[c] or (isinstance(got[c], float) and same(got[c], expected[c])), c
    with pytest.raises(UsageError, match="output of lpips diff"):
        diff_tables(back, new)


def test_summary_counts_and_statistics(tmp_path):
    base = table(tmp_path, "b.csv", [make_row(n, lpips=v) for n, v in (("a", 0.1), ("b", 0.2), ("c", 0.3))])
    new = table(tmp_path, "n.csv", [make_row(n, lpips=v) for n, v in (("a", 0.15), ("b", 0.1))])
    summary = diff_tables(base, new).summary({"lpips_alex": False, "psnr": True})
    assert summary["counts"]["missing_in_new"] == 1 and summary["missing"] == ["ref/c"]
    stats = summary["per_dist_root"]["enc"]
    assert stats["failed"] == 1
    delta = stats["metrics"]["delta_lpips_alex"]
    assert delta["mean"] == pytest.approx(np.mean([0.15 - 0.1, 0.1 - 0.2]), abs=TOLERANCES["gate_mean"])
    assert delta["n_nan"] == 1 and delta["higher_is_better"] is False


def test_input_tables_are_not_modified(tmp_path):
    base = table(tmp_path, "b.csv", [make_row("a.png"), make_row("b.png", failed=True)])
    new = table(tmp_path, "n.csv", [make_row("a.png")])
    before = copy.deepcopy((base.rows, new.rows))
    diff_tables(base, new)
    assert repr((base.rows, new.rows)) == repr(before)
