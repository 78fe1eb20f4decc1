"""Shared helpers for the benchmark scripts: data location, seeded weights, peak-memory (PSS) measurement."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"

# Whole-process timings run lpipscli as an installed package runs: from cached bytecode (pip compiles it at
# install time, an editable install at its first import). A shell that sets PYTHONDONTWRITEBYTECODE would
# otherwise make every timed process compile every lpipscli module it imports (~0.15 s here).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def torch_home_with_weights(nets=("alex",)) -> tuple[str, bool]:
    """A TORCH_HOME holding the backbones: the real cache when it has them, else a temporary seeded one.

    Returns the folder and whether the weights are real. Seeded weights cost the same compute, so timings
    hold either way; only the LPIPS values differ. A temporary folder is removed when the script exits.
    """
    from lpipscli import weights
    from lpipscli.testing import write_seeded_backbones

    if all(weights.backbone_path(n).is_file() for n in nets):
        return os.environ.get("TORCH_HOME", ""), True
    home = tempfile.mkdtemp(prefix="lpipscli-bench-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    write_seeded_backbones(Path(home), nets)
    return home, False


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


def _tree_pss_kib(root: int) -> int:
    """Proportional set size of a process and all its descendants, in KiB (Linux /proc).

    PSS splits pages shared between processes (forked DataLoader workers share most of the parent's
    memory) among them, so the sum over the tree counts each page once.
    """
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def run_polled(cmd: list[str], env: dict | None, poll) -> tuple[float, str]:
    """Run ``cmd`` and call ``poll(pid)`` every 50 ms until it ends; return (wall seconds, stdout).

    A failing command prints its stderr and ends the script.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            poll(proc.pid)
            time.sleep(0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    thread.join()
    if proc.returncode != 0:
        sys.stderr.write(err)
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    return wall, out


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Run ``cmd``; return (wall seconds, peak memory (PSS) of its process tree in MiB, stdout)."""
    peak = 0

    def poll(pid: int) -> None:
        nonlocal peak
        peak = max(peak, _tree_pss_kib(pid))

    wall, out = run_polled(cmd, env, poll)
    return wall, peak / 1024, out
