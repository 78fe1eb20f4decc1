"""`lpips report` (issue 16): the page's numbers against the input table, computed here independently.

Inputs are written by the tests themselves (CSV with the csv module, Parquet with pyarrow, JSON), except
the end-to-end test, which runs `lpips compare` on tiny PNGs first. Expected statistics use the definitions
written out below (type-7 percentiles on sorted values, means over finite values), never lpipscli.stats.
"""

from __future__ import annotations

import csv
import html
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _helpers import distort, smooth_image
from PIL import Image
from typer.testing import CliRunner

from lpipscli.cli import app
from lpipscli.errors import UsageError
from lpipscli.report import build_report, write_report
from lpipscli.report import model as report_model

pytest.importorskip("matplotlib")

TOLERANCES = {
    # numbers in the page are written with 17 significant digits in data-value: exact up to float repr
    "data_value_rel": 1e-12,
}

ROOTS = ("enc/a", "enc/b")


# ------------------------------------------------------------------------------------------ helpers


def type7(sorted_values: list[float], q: float) -> float:
    """Hyndman & Fan type 7 on sorted values, infinities taken as limits (the rule lpipscli documents)."""
    n = len(sorted_values)
    h = q / 100 * (n - 1)
    i = int(math.floor(h))
    j = min(i + 1, n - 1)
    g = h - i
    a, b = sorted_values[i], sorted_values[j]
    if g == 0 or a == b:
        return a
    if math.isinf(a) or math.isinf(b):
        return a if math.isinf(a) else b
    return a + g * (b - a)


def summary_cells(page: str) -> dict[tuple[str, str], dict[str, float]]:
    """``{(root, metric): {stat: value}}`` from the summary table's data attributes."""
    out = {}
    for m in re.finditer(r'<tr data-root="([^"]*)" data-metric="([^"]*)">(.*?)</tr>', page):
        cells = re.findall(r'data-stat="(\w+)" data-value="([^"]*)"', m.group(3))
        out[(html.unescape(m.group(1)), html.unescape(m.group(2)))] = {
            k: (None if v == "–" else float(v)) for k, v in cells}
    return out


def histograms(page: str) -> dict[tuple[str, str], tuple[list[float], list[int], str]]:
    out = {}
    for m in re.finditer(r'<figure class="hist plotbox" data-root="([^"]*)" data-metric="([^"]*)" '
                         r'data-edges="([^"]*)" data-counts="([^"]*)">(.*?)</figure>', page, re.S):
        out[(html.unescape(m.group(1)), m.group(2))] = (json.loads(html.unescape(m.group(3))),
                                                        json.loads(html.unescape(m.group(4))), m.group(5))
    return out


def cards(page: str) -> list[tuple[int, dict[str, int], str]]:
    """``[(row, {metric: rank}, card html)]`` of the gallery."""
    out = []
    for m in re.finditer(r'<article class="card" id="card-(\d+)" data-row="(\d+)">(.*?)</article>', page, re.S):
        ranks = {k: int(r) for k, r in re.findall(r'data-rank-metric="([^"]*)" data-rank="(\d+)"', m.group(3))}
        out.append((int(m.group(2)), ranks, m.group(3)))
    return out


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    if math.isinf(a) or math.isinf(b) or math.isnan(a) or math.isnan(b):
        return a == b or (math.isnan(a) and math.isnan(b))
    return math.isclose(a, b, rel_tol=TOLERANCES["data_value_rel"], abs_tol=1e-15)


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return path


@pytest.fixture
def image_rows(tmp_path) -> tuple[Path, list[dict]]:
    """A compare-like CSV (no provenance): 2 distorted inputs x 60 pairs, psnr with +inf and a failed pair."""
    rng = np.random.default_rng(7)
    rows = []
    for root in ROOTS:
        for k in range(60):
            psnr = float(rng.normal(30 if root == "enc/a" else 33, 2.0))
            ssim = float(rng.uniform(0.6, 0.99))
            rows.append({"ref": f"ref/{k:03d}.png", "dist": f"{root}/{k:03d}.png", "dist_root": root,
                         "psnr": psnr, "ssim": ssim, "status": "ok", "error": ""})
    rows[3]["psnr"] = math.inf  # identical images
    rows[10]["psnr"] = math.inf
    rows[70].update(psnr=None, ssim=None, status="error", error="cannot decode")  # in enc/b
    path = write_csv(tmp_path / "scores.csv", ["ref", "dist", "dist_root", "psnr", "ssim", "status", "error"], rows)
    return path, rows


def values_of(rows, root, metric) -> list[float]:
    return [math.nan if r[metric] is None else float(r[metric]) for r in rows if r["dist_root"] == root]


# ------------------------------------------------------------------------------------------ numbers


def test_directions_match_the_registry():
    from lpipscli.metrics import REGISTRY

    registered = {k: s.higher_is_better for k, s in REGISTRY.items()}
    assert registered == report_model.HIGHER_IS_BETTER


def test_summary_table_matches_the_input(image_rows, tmp_path):
    path, rows = image_rows
    page = build_report(path, out_dir=tmp_path).html
    cells = summary_cells(page)
    assert set(cells) == {(r, m) for r in ROOTS for m in ("psnr", "ssim")}
    for root in ROOTS:
        for metric in ("psnr", "ssim"):
            values = values_of(rows, root, metric)
            present = sorted(v for v in values if not math.isnan(v))
            finite = [v for v in present if math.isfinite(v)]
            got = cells[(root, metric)]
            assert got["count"] == len(values)
            assert got["n_nan"] == len(values) - len(present)
            assert close(got["mean"], sum(finite) / len(finite))
            mean = sum(finite) / len(finite)
            assert close(got["std"], math.sqrt(sum((v - mean) ** 2 for v in finite) / len(finite)))
            assert close(got["min"], present[0]) and close(got["max"], present[-1])
            for stat, q in (("median", 50), ("p5", 5), ("p95", 95)):
                assert close(got[stat], type7(present, q)), (root, metric, stat)
    # the +inf PSNR rows are real results: max is inf, the mean leaves them out
    assert cells[("enc/a", "psnr")]["max"] == math.inf


def test_histogram_counts_every_finite_value_once(image_rows, tmp_path):
    path, rows = image_rows
    page = build_report(path, out_dir=tmp_path).html
    hists = histograms(page)
    assert set(hists) == {(r, m) for r in ROOTS for m in ("psnr", "ssim")}
    for (root, metric), (edges, counts, svg) in hists.items():
        assert len(edges) == len(counts) + 1 and len(counts) <= report_model.MAX_BINS
        assert all(a < b for a, b in zip(edges, edges[1:], strict=False))
        finite = [v for v in values_of(rows, root, metric) if math.isfinite(v)]
        expected = [0] * len(counts)
        for v in finite:  # bins closed on the left, the last one closed on both sides
            k = next(i for i in range(len(counts)) if edges[i] <= v < edges[i + 1] or
                     (i == len(counts) - 1 and v == edges[-1]))
            expected[k] += 1
        assert counts == expected, (root, metric)
        assert svg.lstrip().startswith("<svg")
    # the two +inf values of enc/a psnr are counted apart, in the plot
    assert "+inf: 2" in hists[("enc/a", "psnr")][2]


def test_gallery_holds_the_worst_rows_of_each_metric(image_rows, tmp_path):
    path, rows = image_rows
    k = 5
    page = build_report(path, out_dir=tmp_path, worst=k).html
    got: dict[str, dict[int, int]] = {"psnr": {}, "ssim": {}}
    for row, ranks, _ in cards(page):
        for metric, rank in ranks.items():
            got[metric][rank] = row
    for metric in ("psnr", "ssim"):  # both higher-is-better: worst = lowest, NaN left out, stable
        scored = [(float(r[metric]), i) for i, r in enumerate(rows) if r[metric] is not None]
        expected = [i for _, i in sorted(scored, key=lambda t: t[0])[:k]]
        assert [got[metric][rank] for rank in range(1, k + 1)] == expected
    # every card shows the row's scores, and says that the images are missing rather than failing
    first_row, _, first = cards(page)[0]
    shown = dict(re.findall(r'<dd data-metric="(\w+)" data-value="([^"]*)"', first))
    assert close(float(shown["ssim"]), float(rows[first_row]["ssim"]))
    assert "not found: ref/" in first


def test_gates_verdicts_and_thresholds(image_rows, tmp_path):
    path, rows = image_rows
    report = build_report(path, out_dir=tmp_path, gates=["mean(psnr) < 30.5", "any(ssim < 0.61)"])
    verdicts = {(o.gate_text, o.scope): o.passed for o in report.outcomes}
    a_psnr = [v for v in values_of(rows, "enc/a", "psnr") if math.isfinite(v)]
    a_ssim = values_of(rows, "enc/a", "ssim")
    assert verdicts[("mean(psnr) < 30.5", "enc/a")] == (not sum(a_psnr) / len(a_psnr) < 30.5)
    assert verdicts[("any(ssim < 0.61)", "enc/a")] == (not any(v < 0.61 for v in a_ssim))
    # enc/b has a failed pair: every gate fails there unless failures are allowed
    assert not verdicts[("mean(psnr) < 30.5", "enc/b")] and not verdicts[("any(ssim < 0.61)", "enc/b")]
    page = report.html
    for o in report.outcomes:
        assert (f'data-gate="{html.escape(o.gate_text)}" data-scope="{html.escape(o.scope)}" '
                f'data-passed="{str(o.passed).lower()}"') in page
    hists = histograms(page)
    assert "gate mean(psnr) &lt; 30.5" in hists[("enc/a", "psnr")][2]
    assert "gate mean(psnr)" not in hists[("enc/a", "ssim")][2]
    assert "gate any(ssim &lt; 0.61)" in hists[("enc/b", "ssim")][2]
    allowed = build_report(path, out_dir=tmp_path, gates=["count(psnr) < 1"], allow_failed=True)
    assert all(o.passed for o in allowed.outcomes)


def test_failed_pairs_and_provenance_are_listed(image_rows, tmp_path):
    path, _ = image_rows
    page = build_report(path, out_dir=tmp_path).html
    assert "Failed pairs (1)" in page and "cannot decode" in page
    assert re.search(r'<section id="provenance"><h2>Provenance</h2>\s*<details>', page)
    assert "no provenance" in page  # the CSV has no sidecar: said in the warnings


def test_worst_indices_rank_as_stats_worst():
    from lpipscli.stats import worst

    rng = np.random.default_rng(1)
    values = rng.integers(0, 6, 300).astype(float)  # many ties
    values[[5, 50, 200]] = [math.inf, -math.inf, math.nan]
    for higher_is_better in (True, False):
        rows = [{"i": i, "v": v} for i, v in enumerate(values)]
        expected = [r["i"] for r in worst(rows, "v", 40, higher_is_better)]
        assert report_model.worst_indices(values, 40, higher_is_better) == expected


def test_names_are_shown_as_written(tmp_path):
    rows = [{"ref": f"r{k}.png", "dist": f"d{k}.png", "dist_root": "_out/$a$ <b>", "psnr": 30.0 + k,
             "status": "ok", "error": ""} for k in range(5)]
    path = write_csv(tmp_path / "odd.csv", list(rows[0]), rows)
    page = build_report(path, out_dir=tmp_path).html
    svg = histograms(page)[("_out/$a$ <b>", "psnr")][2]
    assert "_out/$a$ &lt;b&gt;" in svg  # no mathtext, escaped once
    assert "_out/$a$ <b>" not in page  # never unescaped


# ------------------------------------------------------------------------------------------ video


def test_decimate_keeps_every_bucket_extreme():
    rng = np.random.default_rng(3)
    y = rng.normal(size=10_007)
    y[5000], y[9999] = 40.0, -40.0
    y[rng.choice(y.size, 50, replace=False)] = np.nan
    keep = report_model.decimate(y, 400)
    assert keep.size <= 400 and np.all(np.diff(keep) > 0)
    assert {5000, 9999} <= set(keep.tolist())
    size = -(-y.size // 200)
    for start in range(0, y.size, size):
        chunk = y[start:start + size]
        assert start + int(np.nanargmin(chunk)) in keep and start + int(np.nanargmax(chunk)) in keep
    short = np.arange(30.0)
    assert report_model.decimate(short, 400).tolist() == list(range(30))


def test_video_report_curves_are_bounded_and_mark_the_worst_frames(tmp_path):
    rng = np.random.default_rng(11)
    n = 5000
    rows = []
    for root in ("a.mp4", "b.mp4"):
        for f in range(n):
            rows.append({"ref": "ref.mp4", "dist": root, "dist_root": root, "frame": f, "dist_frame": f,
                         "time": f / 25, "psnr": float(35 + 2 * np.sin(f / 50) + rng.normal(0, 0.3)),
                         "status": "ok", "error": ""})
    rows[1234]["psnr"] = 12.0  # a glitch in a.mp4
    rows[n + 4321]["psnr"] = 14.0  # and in b.mp4
    path = write_csv(tmp_path / "video.csv", list(rows[0]), rows)
    page = build_report(path, out_dir=tmp_path, worst=3).html
    curve = re.search(r'<figure class="curve plotbox" data-metric="psnr" data-points="(\d+)">(.*?)</figure>',
                      page, re.S)
    assert curve is not None
    assert int(curve.group(1)) <= 2 * report_model.MAX_CURVE_POINTS < 2 * n
    gallery = cards(page)
    assert [row for row, ranks, _ in sorted(gallery, key=lambda c: c[1]["psnr"])][:2] == [1234, n + 4321]
    for row, _, _ in gallery:  # each marked frame links to its card
        assert f'href="#card-{row}"' in curve.group(2)
    assert len(page.encode()) < 1_500_000


# ------------------------------------------------------------------------------------------ diff and eval


def test_diff_report_lists_regressions_worst_first(tmp_path):
    rng = np.random.default_rng(5)
    rows = []
    for k in range(40):
        base = float(rng.normal(30, 1))
        new = base + float(rng.normal(0, 1))
        rows.append({"ref": f"img{k}.png", "dist_root": "out", "psnr_base": base, "psnr_new": new,
                     "delta_psnr": new - base, "status": "ok", "error": ""})
    path = write_csv(tmp_path / "diff.csv", list(rows[0]), rows)
    report = build_report(path, out_dir=tmp_path, gates=["mean(delta_psnr) < -0.5"])
    assert report.source.kind == "diff" and report.source.metrics == ["delta_psnr"]
    page = report.html
    section = page[page.index('<section id="regressions">'):]
    listed = [int(i) for i in re.findall(r'<tr data-row="(\d+)">', section)]
    worse = sorted((r["delta_psnr"], i) for i, r in enumerate(rows) if r["delta_psnr"] < 0)
    assert listed == [i for _, i in worse][:25]
    deltas = [r["delta_psnr"] for r in rows]
    assert report.outcomes[0].passed == (not sum(deltas) / len(deltas) < -0.5)
    assert "no change" in histograms(page)[("out", "delta_psnr")][2]
    assert "shown without images" in page


def test_eval_table_with_confidence_intervals(tmp_path):
    table = {"dataset": "tiny", "metrics": [
        {"metric": "lpips_alex", "score": 0.71, "ci_low": 0.65, "ci_high": 0.77, "n": 120},
        {"metric": "psnr", "score": 0.52, "ci_low": None, "ci_high": None, "n": 120},
    ]}
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(table))
    report = build_report(path, out_dir=tmp_path)
    page = report.html
    assert report.source.kind == "eval"
    for row in table["metrics"]:
        cells = re.search(rf'<tr data-metric="{row["metric"]}">(.*?)</tr>', page).group(1)
        values = dict(re.findall(r'data-stat="(\w+)" data-value="([^"]*)"', cells))
        assert float(values["score"]) == row["score"]
        for key in ("ci_low", "ci_high"):
            assert values[key] == "–" if row[key] is None else float(values[key]) == row[key]
    assert '<figure class="forest plotbox"><svg' in page and "tiny" in page
    with pytest.raises(UsageError, match="evaluation table"):
        build_report(path, out_dir=tmp_path, gates=["mean(psnr) < 1"])
    (tmp_path / "bad.json").write_text(json.dumps([{"metric": "x"}]))
    with pytest.raises(UsageError, match="needs 'metric' and 'score'"):
        build_report(tmp_path / "bad.json", out_dir=tmp_path)


# ------------------------------------------------------------------------------------------ scale


def test_100k_rows_give_a_page_of_a_few_megabytes(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "img"
    folder.mkdir()
    files = []
    for k in range(12):  # real images, so that every gallery card embeds its thumbnails
        ref = smooth_image(240, 320, seed=k)
        Image.fromarray(ref).save(folder / f"r{k}.png")
        Image.fromarray(distort(ref, seed=k, sigma=20)).save(folder / f"d{k}.png")
        files.append((str(folder / f"r{k}.png"), str(folder / f"d{k}.png")))
    n = 100_000
    rng = np.random.default_rng(0)
    idx = np.arange(n) % len(files)
    table = pa.table({
        "ref": [files[i][0] for i in idx], "dist": [files[i][1] for i in idx],
        "dist_root": np.where(np.arange(n) % 2 == 0, "enc/a", "enc/b").tolist(),
        "width": np.full(n, 320), "height": np.full(n, 240),
        "psnr": rng.normal(31, 3, n), "ssim": rng.uniform(0.5, 1, n), "lpips_alex": rng.uniform(0, 0.6, n),
        "psnr_map": [files[i][1] for i in idx],  # any image stands in for a heatmap file here
        "status": ["ok"] * n, "error": [""] * n,
    })
    path = tmp_path / "big.parquet"
    pq.write_table(table, path)
    out = write_report(path, tmp_path / "big.html", worst=20)
    page = out.read_text(encoding="utf-8")
    size = len(page.encode("utf-8"))
    assert size < 8_000_000, size
    assert len(cards(page)) == report_model.MAX_CARDS  # 3 metrics x 20, capped
    assert all(len(counts) <= report_model.MAX_BINS for _, counts, _ in histograms(page).values())
    assert page.count('src="data:image/') >= 40


# ------------------------------------------------------------------------------------------ CLI


def test_cli_report_exit_codes(image_rows, tmp_path):
    path, _ = image_rows
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(path), "--fail-if", "mean(ssim) < 0.1", "--allow-failed", "-q"])
    assert result.exit_code == 0, result.output
    assert path.with_suffix(".html").is_file()
    result = runner.invoke(app, ["report", str(path), "-o", str(tmp_path / "r.html"), "--fail-if", "max(ssim) < 0.999",
                                 "--allow-failed"])
    assert result.exit_code == 1 and (tmp_path / "r.html").is_file()
    assert "FAIL max(ssim) < 0.999" in result.output
    result = runner.invoke(app, ["report", str(tmp_path / "none.csv"), "-o", str(tmp_path / "x.html")])
    assert result.exit_code == 2 and "no such file" in result.output
    result = runner.invoke(app, ["report", str(path), "--fail-if", "mean(nope) < 1"])
    assert result.exit_code == 2 and "lpips: error: gate" in result.output


def test_report_never_imports_torch(image_rows, tmp_path):
    path, _ = image_rows
    code = ("import sys\nfrom lpipscli.cli import app\n"
            "try:\n    app(['report', sys.argv[1], '-o', sys.argv[2], '-q'])\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\nprint('torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "r.html")], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_missing_matplotlib_names_the_extra(image_rows, tmp_path, monkeypatch):
    path, _ = image_rows
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(UsageError, match=re.escape("pip install 'lpipscli[report]'")):
        build_report(path, out_dir=tmp_path)


# ------------------------------------------------------------------------------------------ end to end


def test_compare_then_report_embeds_images_and_heatmaps(tmp_path, torch_home):
    ref_dir, dist_dir = tmp_path / "ref", tmp_path / "jpeg"
    ref_dir.mkdir()
    dist_dir.mkdir()
    for k in range(3):
        ref = smooth_image(48, 64, seed=k)
        Image.fromarray(ref).save(ref_dir / f"p{k}.png")
        Image.fromarray(distort(ref, seed=k, sigma=4 + 6 * k)).save(dist_dir / f"p{k}.png")
    scores = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, [
        "compare", str(ref_dir), str(dist_dir), "-m", "psnr,ssim,lpips_alex", "-o", str(scores),
        "--heatmaps", str(tmp_path / "maps"), "--allow-unverified-weights", "--workers", "0", "-q"])
    assert result.exit_code == 0, result.output
    out = write_report(scores, tmp_path / "r.html", worst=2)
    page = out.read_text(encoding="utf-8")
    with open(scores, newline="") as handle:
        rows = list(csv.DictReader(handle))
    cells = summary_cells(page)
    for metric in ("psnr", "ssim", "lpips_alex"):
        values = [float(r[metric]) for r in rows]
        assert close(cells[(str(dist_dir), metric)]["mean"], sum(values) / len(values))
    gallery = cards(page)
    assert gallery
    for row, ranks, card in gallery:
        assert card.count('src="data:image/') == 2 + sum(1 for m in ranks if m in ("psnr", "ssim", "lpips_alex"))
        for metric in ranks:
            map_file = rows[row][f"{metric}_map"]
            assert f'href="maps/{Path(map_file).relative_to(tmp_path / "maps").as_posix()}"' in card
    # self-contained: nothing to fetch, no script
    assert "<script" not in page and "<link" not in page
    assert not re.search(r'src="(?!data:)', page)
    assert not re.search(r'url\((?!#)', page)


def _data_uri_image(card: str, label: str) -> np.ndarray:
    import base64
    import io

    m = re.search(rf'<img src="data:image/(\w+);base64,([^"]+)"[^>]*alt="{label}"', card)
    assert m is not None and m.group(1) == "png", label
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(m.group(2)))).convert("RGB"))


def test_video_compare_then_report_shows_the_right_frames(tmp_path):
    import cv2
    from _helpers import read_video_rgb

    sigmas = [3.0, 6.0, 25.0, 4.0, 9.0, 5.0, 14.0, 2.0]
    ref_frames = [smooth_image(48, 64, seed=k) for k in range(len(sigmas))]
    dist_frames = [distort(f, seed=k, sigma=s) for k, (f, s) in enumerate(zip(ref_frames, sigmas, strict=True))]
    paths = {}
    for name, frames in (("ref", ref_frames), ("enc", dist_frames)):
        paths[name] = tmp_path / f"{name}.mkv"
        writer = cv2.VideoWriter(str(paths[name]), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"FFV1"), 25.0, (64, 48))
        if not writer.isOpened():
            pytest.skip("this OpenCV build cannot write FFV1 video")
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))
        writer.release()
    scores = tmp_path / "video.parquet"
    result = CliRunner().invoke(app, ["compare", str(paths["ref"]), str(paths["enc"]), "-m", "psnr", "-o", str(scores),
                                      "--heatmaps", str(tmp_path / "maps"), "--heatmap-every", "2", "-q"])
    assert result.exit_code == 0, result.output
    page = write_report(scores, tmp_path / "video.html", worst=2).read_text(encoding="utf-8")
    assert '<figure class="curve plotbox" data-metric="psnr"' in page
    by_rank = {ranks["psnr"]: (row, card) for row, ranks, card in cards(page)}
    assert set(by_rank) == {1, 2}
    ref_decoded, dist_decoded = read_video_rgb(paths["ref"]), read_video_rgb(paths["enc"])
    for rank, frame in ((1, 2), (2, 6)):  # the two noisiest frames, worst first
        _, card = by_rank[rank]
        assert f"enc.mkv#{frame}" in card
        assert np.array_equal(_data_uri_image(card, "reference"), ref_decoded[frame])
        assert np.array_equal(_data_uri_image(card, "distorted"), dist_decoded[frame])
        assert 'alt="psnr map"' in card  # frames 2 and 6 have maps (every 2nd frame)


def test_diff_report_shows_base_and_new_side_by_side(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths, as a user types them
    for name in ("ref", "v1", "v2"):
        Path(name).mkdir()
    for k in range(3):
        ref = smooth_image(48, 64, seed=k)
        Image.fromarray(ref).save(f"ref/p{k}.png")
        Image.fromarray(distort(ref, seed=k, sigma=5)).save(f"v1/p{k}.png")
        Image.fromarray(distort(ref, seed=k, sigma=20 if k == 1 else 5)).save(f"v2/p{k}.png")
    runner = CliRunner()
    for name in ("v1", "v2"):
        result = runner.invoke(app, ["compare", "ref", name, "-m", "psnr", "-o", f"{name}.csv", "--heatmaps",
                                     f"maps_{name}", "--workers", "0", "-q"])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["diff", "v1.csv", "v2.csv", "-o", "d.csv", "-q"])
    assert result.exit_code == 0, result.output
    page = write_report(Path("d.csv"), Path("d.html"), worst=1).read_text(encoding="utf-8")
    card = re.search(r'<article class="card" id="reg-psnr-(\d+)" data-row="\d+">(.*?)</article>', page, re.S)
    assert card is not None and "p1.png" in card.group(2)  # only p1 got worse
    for label in ("reference", "BASE distorted", "BASE psnr map", "NEW distorted", "NEW psnr map"):
        assert re.search(rf'<img src="data:image/\w+;base64,[^"]+"[^>]*alt="{label}"', card.group(2)), label
    assert "shown without images" not in page
