"""Robustness (issue 6): bad inputs, --on-error, Ctrl-C and SIGKILL mid-run, --resume, out-of-memory, fuzzing.

- A bad-input matrix built in tmp_path goes through the CLI in-process: one-line errors that name the file
  and the cause, exit 2 with ``--on-error fail``, ``status=error`` rows with ``--on-error skip``.
- The real CLI runs in a subprocess (``python -m lpipscli``) on 96 pairs of MS-SSIM at 170x170 (one batch
  of 2 pairs at a time), is interrupted with SIGINT or killed with SIGKILL once a first row is on disk, and
  is completed with ``--resume``; the result is compared with a clean run of the same command.
- Out-of-memory handling runs the Engine with a runner that raises ``torch.OutOfMemoryError``.
- Hypothesis writes corrupted PNG/JPEG files and runs the Engine on them with ``on_error="skip"``.

Expected scores come from scikit-image on the arrays written, or from the clean run of the same command.
"""

from __future__ import annotations

import builtins
import contextlib
import csv
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import MUTATION, distort, mutate, smooth_image
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio
from typer.testing import CliRunner

from lpipscli.cli import app
from lpipscli.config import RunConfig
from lpipscli.engine import Engine

TOLERANCES = {
    # |engine PSNR - skimage| in dB on 8-bit PNGs
    "psnr": 1e-6,
    # a resumed run against a clean run of the same command: same code, same batches, float64 MS-SSIM
    "resume_vs_clean": 1e-12,
    # the Engine with out-of-memory splits against the Engine without: per-pair scores do not depend on
    # batch composition (float64 PSNR/SSIM)
    "oom_split": 1e-12,
}

#: Subprocess timeouts (seconds): generous for a loaded 2-core machine; the normal path takes a few seconds.
STARTUP_TIMEOUT = 180
EXIT_TIMEOUT = 180
RUN_TIMEOUT = 300
N_SLOW_PAIRS = 96
SLOW_SIZE = 170  # MS-SSIM needs at least 161 px


# --------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def cli(monkeypatch):
    for name in ("LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS", "GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "250", "NO_COLOR": "1"})

    return invoke


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(array: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def corrupt_png_pixels(path: Path) -> None:
    """Flip bytes inside the first IDAT chunk: the header probes fine, decoding fails (CRC)."""
    data = bytearray(path.read_bytes())
    at = data.index(b"IDAT") + 4
    for k in range(8, 16):
        data[at + k] ^= 0xFF
    path.write_bytes(bytes(data))


def read_rows(path: Path) -> list[dict]:
    """Rows of a result file, read without lpipscli (csv module, pyarrow, json)."""
    if path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def as_float(value) -> float:
    if value is None or value == "":
        return math.nan
    return float(value)


def journal_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.journal.jsonl")


def sk_psnr(ref: np.ndarray, dist: np.ndarray) -> float:
    return math.inf if np.array_equal(ref, dist) else float(peak_signal_noise_ratio(ref, dist, data_range=255))


# --------------------------------------------------------------------------------------------------
# bad-input matrix through the CLI

GOOD_KEYS = ["a", "b c", "ç 日本"]  # names with spaces and non-ASCII characters must work
BAD_KEY = "z bad é"
H, W = 40, 48


def build_matrix_tree(tmp_path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    arrays = {}
    for n, key in enumerate([*GOOD_KEYS, BAD_KEY]):
        ref = smooth_image(H, W, 3, seed=10 + n)
        dist = distort(ref, seed=20 + n)
        for side, array in (("réf érence", ref), ("sortie 出力", dist)):
            (tmp_path / side).mkdir(exist_ok=True)
            Image.fromarray(array).save(tmp_path / side / f"{key}.png")
        arrays[key] = (ref, dist)
    return arrays


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(smooth_image(H, W, 3)).save(buf, "GIF")
    return buf.getvalue()


def _setup_case(case: str, ref_dir: Path, out_dir: Path, monkeypatch) -> tuple[Path, list[str], list[str]]:
    """Break the tree for ``case``; returns (the file the message must name, needles, extra CLI args)."""
    bad = out_dir / f"{BAD_KEY}.png"
    good_png = bad.read_bytes()
    if case == "zero_byte":
        bad.write_bytes(b"")
        return bad, ["empty"], []
    if case == "truncated_png":
        bad.write_bytes(good_png[: len(good_png) // 2])
        return bad, ["truncated"], []
    if case == "corrupt_png_data":
        corrupt_png_pixels(bad)
        return bad, ["CRC"], []
    if case == "truncated_jpeg":
        bad.unlink()
        bad = out_dir / f"{BAD_KEY}.jpg"
        data = jpeg_bytes(distort(smooth_image(H, W, 3, seed=13), seed=5, sigma=30))
        bad.write_bytes(data[: len(data) * 2 // 3])
        return bad, ["truncated"], []
    if case == "text_named_png":
        bad.write_text("width,height\n48,40\n", encoding="utf-8")
        return bad, ["text file"], []
    if case == "gif_named_png":
        bad.write_bytes(_gif())
        return bad, ["GIF", "supported formats"], []
    if case == "size_mismatch":
        Image.fromarray(smooth_image(30, W, 3)).save(bad)
        return bad, [f"{W}x30", f"{W}x{H}", "--resize dist-to-ref"], []
    if case == "over_max_pixels":
        big = smooth_image(60, 60, 3)
        Image.fromarray(big).save(ref_dir / f"{BAD_KEY}.png")
        Image.fromarray(distort(big)).save(bad)
        return ref_dir / f"{BAD_KEY}.png", ["60x60", "2500", "raise the limit with --max-pixels"], [
            "--max-pixels", "2500"]
    if case == "unreadable":
        # chmod 000 does not stop root; simulate the OS refusing to open this one file instead
        from lpipscli.io import decoding

        def guarded_open(file, *args, **kwargs):
            if str(file) == str(bad):
                raise PermissionError(13, "Permission denied", str(file))
            return builtins.open(file, *args, **kwargs)

        monkeypatch.setattr(decoding, "open", guarded_open, raising=False)
        return bad, ["permission denied"], []
    raise AssertionError(case)


PAIR_CASES = ["zero_byte", "truncated_png", "corrupt_png_data", "truncated_jpeg", "text_named_png", "gif_named_png",
              "size_mismatch", "over_max_pixels", "unreadable"]


@pytest.mark.parametrize("case", PAIR_CASES)
def test_bad_pair_fail_exits_2_and_skip_records_an_error_row(tmp_path, cli, monkeypatch, case):
    arrays = build_matrix_tree(tmp_path)
    ref_dir, out_dir = tmp_path / "réf érence", tmp_path / "sortie 出力"
    bad, needles, extra = _setup_case(case, ref_dir, out_dir, monkeypatch)
    common = [ref_dir, out_dir, "-m", "psnr", "--workers", "0", "--batch-size", "1", "-q", *extra]

    out = tmp_path / "fail.csv"
    failed = cli("compare", *common, "-o", out)
    assert failed.exit_code == 2, (failed.stdout, failed.stderr)
    lines = failed.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lpips: error: "), failed.stderr
    assert str(bad) in lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert failed.stdout == "" and "Traceback" not in failed.stderr
    if out.exists():  # a pair that failed while decoding: the rows computed before it were kept
        rows = read_rows(out)
        assert all(r["status"] == "ok" and Path(r["dist"]).stem in GOOD_KEYS for r in rows)

    out = tmp_path / "skip.csv"
    skipped = cli("compare", *common, "-o", out, "--on-error", "skip")
    assert skipped.exit_code == 4, skipped.stderr  # rows written, but a failed pair is never green
    assert "1 pair(s) failed" in skipped.stderr
    rows = {Path(r["dist"]).stem: r for r in read_rows(out)}
    assert sorted(rows) == sorted([*GOOD_KEYS, BAD_KEY])
    bad_row = rows[BAD_KEY]
    assert bad_row["status"] == "failed" and bad_row["psnr"] == ""  # no value, never a fake 0
    assert str(bad) in bad_row["error"] and "\n" not in bad_row["error"]
    for needle in needles:
        assert needle in bad_row["error"]
    for key in GOOD_KEYS:
        assert rows[key]["status"] == "ok" and rows[key]["error"] == ""
        assert abs(float(rows[key]["psnr"]) - sk_psnr(*arrays[key])) <= TOLERANCES["psnr"]
    meta = json.loads((tmp_path / "skip.csv.meta.json").read_text(encoding="utf-8"))
    assert meta["complete"] is True and meta["summary"]["failed"] == 1 and meta["summary"]["scored"] == 3


@pytest.mark.parametrize("case", ["missing_partner", "duplicate_stems", "symlink_loop"])
@pytest.mark.parametrize("on_error", ["fail", "skip"])
def test_inputs_that_cannot_be_paired_exit_2_in_both_modes(tmp_path, cli, case, on_error):
    build_matrix_tree(tmp_path)
    ref_dir, out_dir = tmp_path / "réf érence", tmp_path / "sortie 出力"
    if case == "missing_partner":
        (out_dir / f"{BAD_KEY}.png").unlink()
        needles = ["1 of 4", BAD_KEY, "--allow-unmatched"]
    elif case == "duplicate_stems":
        Image.fromarray(smooth_image(H, W, 3)).save(out_dir / "b c.jpg")
        needles = [str(out_dir), "b c.jpg", "b c.png", "ambiguous"]
    else:
        os.symlink(out_dir, out_dir / "loop")
        needles = ["symlink loop", str(out_dir / "loop")]
    out = tmp_path / "x.csv"
    result = cli("compare", ref_dir, out_dir, "-m", "psnr", "-o", out, "--on-error", on_error, "-q")
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lpips: error: ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not out.exists()  # nothing computed, nothing written


@pytest.mark.parametrize("case", ["parent_is_a_file", "output_is_a_folder", "read_only_folder",
                                  "summary_json_folder_missing", "junit_is_a_folder"])
def test_output_that_cannot_be_written_fails_before_compute(tmp_path, cli, monkeypatch, case):
    build_matrix_tree(tmp_path)

    def no_compute(*args, **kwargs):
        raise AssertionError("compute started although an output cannot be written")

    monkeypatch.setattr(Engine, "build", no_compute)
    (tmp_path / "a file.txt").write_text("x")
    (tmp_path / "a folder.csv").mkdir()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    out = tmp_path / "x.csv"
    extra: list = []
    if case == "parent_is_a_file":
        out, named = tmp_path / "a file.txt" / "x.csv", tmp_path / "a file.txt"
    elif case == "output_is_a_folder":
        out = named = tmp_path / "a folder.csv"
    elif case == "read_only_folder":
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: a read-only folder is still writable")
        out = named = locked / "x.csv"
    elif case == "summary_json_folder_missing":
        named = tmp_path / "no such folder" / "s.json"
        extra = ["--summary-json", named]
    else:
        named = tmp_path / "a folder.csv"
        extra = ["--junit", named]
    try:
        result = cli("compare", tmp_path / "réf érence", tmp_path / "sortie 出力", "-m", "psnr", "-o", out, *extra)
    finally:
        locked.chmod(0o755)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lpips: error: ") and str(named) in lines[0]
    if case != "output_is_a_folder":
        assert not (tmp_path / "x.csv").exists()


# --------------------------------------------------------------------------------------------------
# --on-error fail keeps what was computed; --resume completes it


def _five_pairs(tmp_path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    arrays = {}
    for n, key in enumerate(["a", "b", "c", "d", "e"]):
        ref = smooth_image(H, W, 3, seed=40 + n)
        dist = distort(ref, seed=50 + n)
        for side, array in (("ref", ref), ("out", dist)):
            (tmp_path / side).mkdir(exist_ok=True)
            Image.fromarray(array).save(tmp_path / side / f"{key}.png")
        arrays[key] = (ref, dist)
    return arrays


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_on_error_fail_keeps_rows_before_the_bad_pair_and_resume_completes(tmp_path, cli, fmt):
    arrays = _five_pairs(tmp_path)
    bad = tmp_path / "out" / "c.png"
    good_bytes = bad.read_bytes()
    corrupt_png_pixels(bad)  # probes fine, fails when decoded
    out = tmp_path / f"x.{fmt}"
    common = [tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", out, "--batch-size", "1", "--workers", "0",
              "-q"]
    result = cli("compare", *common)
    assert result.exit_code == 2
    assert str(bad) in result.stderr and "rows computed before it were written" in result.stderr
    rows = read_rows(out)  # readable by ordinary tools
    assert [Path(r["dist"]).stem for r in rows] == ["a", "b"]
    for row in rows:
        assert row["status"] == "ok"
        assert abs(as_float(row["psnr"]) - sk_psnr(*arrays[Path(row["dist"]).stem])) <= TOLERANCES["psnr"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp file, no journal

    bad.write_bytes(good_bytes)
    resumed = cli("compare", *common, "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    rows = read_rows(out)
    assert sorted(Path(r["dist"]).stem for r in rows) == ["a", "b", "c", "d", "e"]  # each exactly once
    for row in rows:
        assert abs(as_float(row["psnr"]) - sk_psnr(*arrays[Path(row["dist"]).stem])) <= TOLERANCES["psnr"]


def test_resume_of_a_complete_file_adds_nothing(tmp_path, cli):
    _five_pairs(tmp_path)
    out = tmp_path / "x.csv"
    args = ["compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", out, "--workers", "0", "-q"]
    assert cli(*args).exit_code == 0
    before = out.read_bytes()
    again = cli(*args, "--resume")
    assert again.exit_code == 0, again.stderr
    assert out.read_bytes() == before


def test_resume_refuses_another_metric_set_and_stdout(tmp_path, cli):
    _five_pairs(tmp_path)
    out = tmp_path / "x.csv"
    args = ["compare", tmp_path / "ref", tmp_path / "out", "-o", out, "--workers", "0", "-q"]
    assert cli(*args, "-m", "psnr").exit_code == 0
    before = out.read_bytes()
    refused = cli(*args, "-m", "psnr,ssim", "--resume")
    assert refused.exit_code == 2
    lines = refused.stderr.splitlines()
    assert len(lines) == 1 and "different settings" in lines[0] and str(out) in lines[0]
    assert out.read_bytes() == before
    to_stdout = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", "-", "--resume")
    assert to_stdout.exit_code == 2 and "--resume needs an output file" in to_stdout.stderr


def _simulate_kill_leaving_journal(monkeypatch) -> None:
    """Parquet: the process 'dies' after journaling every batch, before the file is renamed into place."""
    from lpipscli.sinks.parquet import ParquetSink

    def died(self, summary=None, *, complete=None):
        self.writer.close()
        self.journal.handle.close()

    monkeypatch.setattr(ParquetSink, "close", died)


@pytest.mark.parametrize(("fmt", "cut"), [("csv", "inside_a_row"), ("csv", "before_the_newline"),
                                          ("parquet", "inside_a_row")])
def test_resume_after_a_kill_in_the_middle_of_a_line(tmp_path, cli, monkeypatch, fmt, cut):
    arrays = _five_pairs(tmp_path)
    out = tmp_path / f"x.{fmt}"
    args = ["compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", out, "--workers", "0", "-q"]
    with monkeypatch.context() as patch:
        if fmt == "parquet":
            _simulate_kill_leaving_journal(patch)
        assert cli(*args).exit_code == 0
    text_file = out if fmt == "csv" else journal_of(out)
    data = text_file.read_bytes()
    # what a kill between two buffered writes leaves: the last row without its end
    text_file.write_bytes(data[:-20] if cut == "inside_a_row" else data[:-1])
    resumed = cli(*args, "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    rows = read_rows(out)
    assert sorted(Path(r["dist"]).stem for r in rows) == ["a", "b", "c", "d", "e"]
    for row in rows:
        assert abs(as_float(row["psnr"]) - sk_psnr(*arrays[Path(row["dist"]).stem])) <= TOLERANCES["psnr"]


def test_resume_with_an_explicit_format_and_another_extension(tmp_path, cli):
    arrays = _five_pairs(tmp_path)
    bad = tmp_path / "out" / "d.png"
    good_bytes = bad.read_bytes()
    corrupt_png_pixels(bad)
    out = tmp_path / "scores.txt"
    args = ["compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", out, "--format", "csv",
            "--batch-size", "1", "--workers", "0", "-q"]
    assert cli(*args).exit_code == 2  # stopped at d, after a, b, c
    bad.write_bytes(good_bytes)
    resumed = cli(*args, "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert sorted(Path(r["dist"]).stem for r in rows) == ["a", "b", "c", "d", "e"]
    for row in rows:
        assert abs(as_float(row["psnr"]) - sk_psnr(*arrays[Path(row["dist"]).stem])) <= TOLERANCES["psnr"]


@pytest.mark.parametrize("fmt", [
    "csv",
    "parquet",
])
def test_ctrl_c_exits_130_and_summary_says_the_file_is_incomplete(tmp_path, cli, monkeypatch, fmt):
    import threading

    from lpipscli.sinks.parquet import ParquetSink
    from lpipscli.sinks.text import CsvSink

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("the engine handles SIGINT only in the main thread")
    _five_pairs(tmp_path)
    sink_class = CsvSink if fmt == "csv" else ParquetSink
    original = sink_class.write

    def write_then_ctrl_c(self, rows):
        original(self, rows)
        signal.raise_signal(signal.SIGINT)  # Ctrl-C after the first batch is written

    monkeypatch.setattr(sink_class, "write", write_then_ctrl_c)
    out = tmp_path / f"x.{fmt}"
    safety_net = signal.signal(signal.SIGINT, lambda *_: None)  # a stray SIGINT must not stop pytest
    try:
        result = cli("compare", tmp_path / "ref", tmp_path / "out", "-m", "psnr", "-o", out, "--batch-size", "1",
                     "--workers", "0", "-q")
    finally:
        signal.signal(signal.SIGINT, safety_net)
    monkeypatch.undo()
    assert result.exit_code == 130, result.stderr
    assert "interrupted" in result.stderr
    rows = read_rows(out)
    assert [Path(r["dist"]).stem for r in rows] == ["a"]  # the batch in flight was finished and written
    summary = cli("summary", out, "--summary-json", tmp_path / "s.json", "--fail-if", "count(psnr) < 1")
    assert "did not finish" in summary.stderr
    assert json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))["complete"] is False


# --------------------------------------------------------------------------------------------------
# the real CLI in a subprocess: SIGINT and SIGKILL mid-run, then --resume


@pytest.fixture(scope="module")
def slow_set(tmp_path_factory) -> dict:
    """96 pairs of 170x170 PNGs and the MS-SSIM scores of a clean run of the real CLI (Parquet)."""
    base = tmp_path_factory.mktemp("slow_set")
    for n in range(N_SLOW_PAIRS):
        ref = smooth_image(SLOW_SIZE, SLOW_SIZE, 3, seed=n)
        for side, array in (("ref", ref), ("out", distort(ref, seed=5000 + n, sigma=6.0 + n % 7))):
            (base / side).mkdir(exist_ok=True)
            Image.fromarray(array).save(base / side / f"{n:03d}.png")
    clean = base / "clean.parquet"
    proc = subprocess.run(_lpips("compare", *_slow_args(base, clean)), env=_env(), cwd=base, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    scores = {r["dist"]: r["ms_ssim"] for r in read_rows(clean)}
    assert len(scores) == N_SLOW_PAIRS and all(0 < v <= 1 for v in scores.values())
    return {"base": base, "clean": clean, "scores": scores}


def _lpips(*args) -> list[str]:
    return [sys.executable, "-m", "lpipscli", *map(str, args)]


def _slow_args(base: Path, out: Path) -> list:
    return [base / "ref", base / "out", "-m", "ms_ssim", "-o", out, "--batch-size", "2", "--workers", "0", "-q"]


def _env() -> dict:
    env = dict(os.environ)
    for name in ("LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS", "GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS", "LPIPSCLI_DEBUG"):
        env.pop(name, None)
    return env


def _complete_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _interrupt_once_rows_exist(args: list, watch: Path, lines_needed: int, sig: int, log: Path,
                               group: bool = False) -> int:
    """Start the CLI, wait (polling) until ``watch`` holds ``lines_needed`` complete lines, send ``sig``.

    ``group``: the CLI runs in its own process group and the signal goes to the whole group, as Ctrl-C in a
    terminal does (decoding workers included).
    """
    with open(log, "w") as handle:
        proc = subprocess.Popen(_lpips("compare", *args), env=_env(), stdout=handle, stderr=handle,
                                start_new_session=group)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while _complete_lines(watch) < lines_needed:
                assert proc.poll() is None, f"the run ended (rc {proc.returncode}) before a row was written: " \
                    f"{log.read_text()}"
                assert time.monotonic() < deadline, "no row written within the timeout"
                time.sleep(0.02)
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
            return proc.wait(timeout=EXIT_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if group:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # decoding workers left behind by a failure


def _resume(args: list) -> subprocess.CompletedProcess:
    return subprocess.run(_lpips("compare", *args, "--resume"), env=_env(), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)


def _assert_complete_rows(rows: list[dict], clean: dict[str, float]) -> None:
    """Every row is whole (all columns, status ok) and scores what the clean run scored."""
    columns = ["ref", "dist", "dist_root", "width", "height", "ms_ssim", "status", "error"]
    for row in rows:
        assert list(row) == columns and None not in row.values(), row
        assert row["status"] == "ok" and row["error"] == ""
        assert int(row["width"]) == SLOW_SIZE
        assert abs(as_float(row["ms_ssim"]) - clean[row["dist"]]) <= TOLERANCES["resume_vs_clean"]


@pytest.mark.parametrize(("fmt", "workers", "group"), [("csv", "0", False), ("parquet", "1", True)])
def test_sigint_mid_run_exits_130_with_complete_rows_then_resume_completes(tmp_path, cli, slow_set, fmt, workers,
                                                                          group):
    """CSV: SIGINT to the CLI alone; Parquet: to its process group with a decoding worker, like Ctrl-C."""
    out = tmp_path / f"scores.{fmt}"
    args = [*_slow_args(slow_set["base"], out)[:-3], "--workers", workers, "-q"]
    watch, needed = (out, 2) if fmt == "csv" else (journal_of(out), 1)  # CSV: header + one row
    rc = _interrupt_once_rows_exist(args, watch, needed, signal.SIGINT, tmp_path / "log.txt", group=group)
    log = (tmp_path / "log.txt").read_text()
    assert rc == 130, log
    assert "interrupted" in log and "Traceback" not in log
    rows = read_rows(out)  # a readable file (Parquet: closed properly, not truncated)
    assert 1 <= len(rows) < N_SLOW_PAIRS, "the run was not interrupted mid-way"
    _assert_complete_rows(rows, slow_set["scores"])
    assert len({r["dist"] for r in rows}) == len(rows)
    assert not journal_of(out).exists() and not out.with_name(f".{out.name}.partial").exists()
    if fmt == "csv":
        assert json.loads(out.with_name(out.name + ".meta.json").read_text())["complete"] is False

    before = out.read_bytes()
    refused = cli("compare", *args[:2], "-m", "ms_ssim,psnr", *args[4:], "--resume")
    assert refused.exit_code == 2 and "different settings" in refused.stderr
    assert out.read_bytes() == before

    resumed = _resume(args)
    assert resumed.returncode == 0, resumed.stderr
    rows = read_rows(out)
    assert sorted(r["dist"] for r in rows) == sorted(slow_set["scores"])  # every pair exactly once
    _assert_complete_rows(rows, slow_set["scores"])
    if fmt == "csv":
        assert json.loads(out.with_name(out.name + ".meta.json").read_text())["complete"] is True


def test_sigkill_mid_run_keeps_journal_and_previous_file_then_resume_completes(tmp_path, cli, slow_set):
    out = tmp_path / "scores.parquet"
    shutil.copy(slow_set["clean"], out)  # the previous complete run of the same command
    previous = out.read_bytes()
    args = _slow_args(slow_set["base"], out)
    rc = _interrupt_once_rows_exist(args, journal_of(out), 1, signal.SIGKILL, tmp_path / "log.txt")
    assert rc == -signal.SIGKILL
    assert out.read_bytes() == previous  # the final name never holds a half-written file
    lines = journal_of(out).read_text(encoding="utf-8").splitlines(keepends=True)
    assert 1 <= len(lines) < N_SLOW_PAIRS
    assert all(line.endswith("\n") for line in lines)  # durable rows are whole rows
    _assert_complete_rows([json.loads(line) for line in lines], slow_set["scores"])

    journal_before = journal_of(out).read_bytes()
    refused = cli("compare", *args[:2], "-m", "ssim", *args[4:], "--resume")
    assert refused.exit_code == 2 and "different settings" in refused.stderr
    assert journal_of(out).read_bytes() == journal_before

    resumed = _resume(args)
    assert resumed.returncode == 0, resumed.stderr
    rows = read_rows(out)
    assert sorted(r["dist"] for r in rows) == sorted(slow_set["scores"])  # every pair exactly once
    _assert_complete_rows(rows, slow_set["scores"])
    assert not journal_of(out).exists() and not out.with_name(f".{out.name}.partial").exists()


# --------------------------------------------------------------------------------------------------
# out of memory: split the batch, then report the pair


def _engine(tmp_path: Path, **options) -> tuple[Engine, object]:
    engine = Engine(RunConfig(ref=tmp_path / "ref", dists=(tmp_path / "out",), metrics=("psnr", "ssim"),
                              workers=0, device="cpu", batch_size=8, **options))
    plan = engine.plan(engine.pair())
    engine.build()
    return engine, plan


def _execute(engine: Engine, plan) -> tuple[list[dict], object]:
    rows: list[dict] = []
    result = engine.execute(plan, rows.extend)
    return rows, result


OOM_ERRORS = {
    "cuda": lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    "cpu": lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory: "
                                "you tried to allocate 123456789 bytes."),
}


@pytest.mark.parametrize("kind", sorted(OOM_ERRORS))
def test_out_of_memory_batches_are_split_until_every_pair_is_scored(tmp_path, kind):
    _five_pairs(tmp_path)
    engine, plan = _engine(tmp_path)
    clean_rows, _ = _execute(engine, plan)
    assert len(plan.dataset) == 5 and engine.config.batch_size >= 5  # all five pairs in one batch

    sizes: list[int] = []
    for key, runner in list(engine.runners.items()):
        def flaky(ref, dist, index, runner=runner):
            sizes.append(int(dist.shape[0]))
            if dist.shape[0] > 1:
                raise OOM_ERRORS[kind]()
            return runner(ref, dist, index)

        engine.runners[key] = flaky
    rows, result = _execute(engine, plan)
    assert result.n_scored == 5 and result.n_failed == 0
    assert [r["dist"] for r in rows] == [r["dist"] for r in clean_rows]
    for row, clean in zip(rows, clean_rows, strict=True):
        assert row["status"] == "ok"
        for metric in ("psnr", "ssim"):
            assert abs(row[metric] - clean[metric]) <= TOLERANCES["oom_split"]
    assert max(sizes) == 5 and sizes.count(1) == 10  # tried whole, then halves, down to single pairs


def test_out_of_memory_for_a_single_pair_becomes_an_error_row(tmp_path):
    _five_pairs(tmp_path)
    for on_error in ("skip", "fail"):
        engine, plan = _engine(tmp_path, on_error=on_error)

        def always(ref, dist, index):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

        engine.runners["ssim"] = always
        rows, result = _execute(engine, plan)  # no exception: the run does not crash
        assert result.first_error is not None and "out of memory" in result.first_error
        assert "ssim" in result.first_error
        if on_error == "skip":  # per metric: ssim's cells fail, psnr still scores every pair
            assert len(rows) == 5 and result.n_partial == 5 and result.n_failed == 0
            for row in rows:
                assert row["status"] == "partial" and "out of memory" in row["error"]
                assert row["error"].startswith("ssim: ")
                assert math.isnan(row["ssim"]) and math.isfinite(row["psnr"]) and "\n" not in row["error"]
        else:
            assert rows == [] and result.n_partial == 5  # nothing fake written; the CLI exits 2


def test_other_runtime_errors_are_not_taken_for_out_of_memory(tmp_path):
    _five_pairs(tmp_path)
    engine, plan = _engine(tmp_path, on_error="skip")
    calls: list[int] = []

    def broken(ref, dist, index):
        calls.append(int(dist.shape[0]))
        raise RuntimeError("expected scalar type Float but found Double")

    engine.runners["psnr"] = broken
    with pytest.raises(RuntimeError, match="expected scalar type"):
        _execute(engine, plan)
    assert calls == [5]  # not retried in halves


# --------------------------------------------------------------------------------------------------
# fuzz: corrupted files through the engine


def _fuzz_sources() -> dict[str, tuple[bytes, str]]:
    image = distort(smooth_image(24, 32, 3, seed=3), seed=4)
    return {"png": (png_bytes(image), ".png"), "jpeg": (jpeg_bytes(image, 80), ".jpg")}


FUZZ_SOURCES = _fuzz_sources()
FUZZ_REF = png_bytes(distort(smooth_image(24, 32, 3, seed=3), seed=4))



@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    files=st.lists(st.tuples(st.sampled_from(sorted(FUZZ_SOURCES)), st.lists(MUTATION, min_size=1, max_size=3)),
                   min_size=1, max_size=3),
    corrupt_ref=st.booleans(),
)
def test_fuzz_corrupted_files_never_crash_the_engine(files, corrupt_ref):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "ref").mkdir()
        (root / "out").mkdir()
        names = {}
        for n, (source, mutations) in enumerate(files):
            data, ext = FUZZ_SOURCES[source]
            mutated = mutate(data, mutations)
            if corrupt_ref and n == 0:  # the reference of the first pair is the broken file
                (root / "ref" / f"f{n}.png").write_bytes(mutate(FUZZ_REF, mutations))
                (root / "out" / f"f{n}{ext}").write_bytes(data)
            else:
                (root / "ref" / f"f{n}.png").write_bytes(FUZZ_REF)
                (root / "out" / f"f{n}{ext}").write_bytes(mutated)
            names[str(root / "out" / f"f{n}{ext}")] = (root / "ref" / f"f{n}.png", root / "out" / f"f{n}{ext}")
        engine = Engine(RunConfig(ref=root / "ref", dists=(root / "out",), metrics=("psnr", "ssim"), workers=0,
                                  device="cpu", on_error="skip", batch_size=2, max_pixels=1_000_000))
        rows: list[dict] = []
        result = engine.execute(engine.plan(engine.pair()), rows.extend)
    assert sorted(r["dist"] for r in rows) == sorted(names)  # one row per pair, none lost, none twice
    assert result.n_scored + result.n_failed == len(files)
    for row in rows:
        event(f"row status {row['status']}")
        if row["status"] == "ok":
            assert row["error"] == ""
            assert not math.isnan(row["psnr"]) and row["psnr"] >= 0
            assert -1.0 <= row["ssim"] <= 1.0
        else:
            assert row["status"] == "failed"
            ref_path, dist_path = names[row["dist"]]
            assert str(dist_path) in row["error"] or str(ref_path) in row["error"]
            assert "\n" not in row["error"] and "Traceback" not in row["error"]
            assert math.isnan(row["psnr"]) and math.isnan(row["ssim"])
