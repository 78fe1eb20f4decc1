"""The report in a real browser (issue 16): headless Chromium loads the page, takes screenshots, logs its console
and its network requests.

Checks: no console message at all (the page has no script, so any message is a fault), no request other than
the page itself (``--log-net-log``: requests whose network isolation key is the page's ``file://`` origin), and
the plots and the gallery are visible: hiding them with one CSS rule changes many pixels of the screenshot,
and those pixels are not blank. A control page with a console error and an external image proves that both
detectors fire. Skipped when no Chromium binary is found (CI installs Debian's ``chromium``; the binary can
also be named with LPIPSCLI_CHROMIUM).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _helpers import distort, smooth_image
from PIL import Image
from typer.testing import CliRunner

from lpipscli.cli import app

pytest.importorskip("matplotlib")

CHROMIUM = os.environ.get("LPIPSCLI_CHROMIUM") or next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
     if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")

WINDOW = (1280, 3200)
THRESHOLDS = {
    # pixels that must change when the plots (or the gallery images) are hidden
    "changed_pixels": 20_000,
    # standard deviation of the grey levels of those pixels in the normal screenshot (blank would be ~0)
    "region_std": 20.0,
}
_CONSOLE = re.compile(r":CONSOLE[:(\]]")


def _launch(page: Path, shot: Path, profile: Path, *, dark: bool = False, netlog: Path | None = None):
    args = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-extensions",
            f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
            f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={shot}"]
    if dark:
        args.append("--force-dark-mode")
    if netlog is not None:
        args.append(f"--log-net-log={netlog}")
    return subprocess.Popen([*args, page.resolve().as_uri()], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _finish(proc) -> str:
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("chromium did not finish within 120 s")
    return out + err


def console_messages(log: str) -> list[str]:
    return [line for line in log.splitlines() if _CONSOLE.search(line)]


def page_requests(netlog: Path) -> list[str]:
    """URLs the page itself asked for (not Chromium's own background traffic), ``file:`` and ``data:`` excluded."""
    events = json.loads(netlog.read_text(encoding="utf-8")).get("events", [])
    urls = set()
    for event in events:
        params = event.get("params") or {}
        url = params.get("url", "")
        if "file://" in str(params.get("network_isolation_key", "")) and not url.startswith(("file:", "data:")):
            urls.add(url)
    return sorted(urls)


def grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float64)


@pytest.fixture(scope="module")
def report_page(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    ref_dir, dist_dir = root / "ref", root / "noisy"
    ref_dir.mkdir()
    dist_dir.mkdir()
    for k in range(3):
        ref = smooth_image(96, 128, seed=k)
        Image.fromarray(ref).save(ref_dir / f"p{k}.png")
        Image.fromarray(distort(ref, seed=k, sigma=5 + 5 * k)).save(dist_dir / f"p{k}.png")
    scores = root / "scores.parquet"
    result = CliRunner().invoke(app, ["compare", str(ref_dir), str(dist_dir), "-m", "psnr,ssim", "-o", str(scores),
                                      "--heatmaps", str(root / "maps"), "--workers", "0", "-q"])
    assert result.exit_code == 0, result.output
    out = root / "report.html"
    result = CliRunner().invoke(app, ["report", str(scores), "-o", str(out), "--fail-if", "mean(psnr) < 20", "-q"])
    assert result.exit_code == 0, result.output
    return out


def _variant(page: Path, name: str, css: str) -> Path:
    text = page.read_text(encoding="utf-8").replace("</head>", f"<style>{css}</style></head>", 1)
    path = page.with_name(name)
    path.write_text(text, encoding="utf-8")
    return path


def test_detectors_fire_on_a_faulty_page(tmp_path):
    page = tmp_path / "faulty.html"
    page.write_text('<!DOCTYPE html><html><body><h1>x</h1><script>console.error("boom")</script>'
                    '<img src="http://localhost:9/missing.png"></body></html>')
    proc = _launch(page, tmp_path / "faulty.png", tmp_path / "profile", netlog=tmp_path / "net.json")
    log = _finish(proc)
    assert any("boom" in line for line in console_messages(log)), log[-2000:]
    assert "http://localhost:9/missing.png" in page_requests(tmp_path / "net.json")


def test_report_renders_in_chromium(report_page, tmp_path):
    hidden_plots = _variant(report_page, "no-plots.html", "svg.plot{visibility:hidden}")
    hidden_gallery = _variant(report_page, "no-gallery.html", ".card img{visibility:hidden}")
    shots = {k: tmp_path / f"{k}.png" for k in ("page", "no_plots", "no_gallery", "dark")}
    procs = [
        _launch(report_page, shots["page"], tmp_path / "p1", netlog=tmp_path / "net.json"),
        _launch(hidden_plots, shots["no_plots"], tmp_path / "p2"),
        _launch(hidden_gallery, shots["no_gallery"], tmp_path / "p3"),
        _launch(report_page, shots["dark"], tmp_path / "p4", dark=True),
    ]
    logs = [_finish(p) for p in procs]
    assert console_messages(logs[0]) == [], console_messages(logs[0])
    assert page_requests(tmp_path / "net.json") == []

    page = grey(shots["page"])
    assert page.shape == (WINDOW[1], WINDOW[0])
    for variant in ("no_plots", "no_gallery"):
        changed = np.abs(page - grey(shots[variant])) > 8
        assert changed.sum() > THRESHOLDS["changed_pixels"], (variant, int(changed.sum()))
        assert page[changed].std() > THRESHOLDS["region_std"], variant
    # plots sit above the gallery
    rows_plots = np.flatnonzero((np.abs(page - grey(shots["no_plots"])) > 8).any(axis=1))
    rows_gallery = np.flatnonzero((np.abs(page - grey(shots["no_gallery"])) > 8).any(axis=1))
    assert rows_plots.min() < rows_gallery.min()

    # light and dark: the page background follows prefers-color-scheme
    dark = grey(shots["dark"])
    assert page[5:40, 5:40].mean() > 230 and dark[5:40, 5:40].mean() < 40
    assert np.abs(dark - page).mean() > 50
