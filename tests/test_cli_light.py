"""Commands that only read metadata or result files must not import torch (issue 10 defect 6, issue 11 point 7).

Each command runs in a fresh interpreter (``sys.executable``) through Typer's CliRunner, which then reports
whether ``torch`` is in ``sys.modules``; the results files are written beforehand with the real sinks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_results import make_provenance, make_row, write_results

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import json, sys
from typer.testing import CliRunner
from lpipscli.cli import app
result = CliRunner().invoke(app, sys.argv[1:], env={"COLUMNS": "200", "NO_COLOR": "1"})
print(json.dumps({"code": result.exit_code, "torch": "torch" in sys.modules, "out": result.stdout[-2000:],
                  "exc": repr(result.exception) if result.exception and result.exit_code not in (0, 1, 2) else ""}))
"""


def run_fresh(*args) -> dict:
    proc = subprocess.run([sys.executable, "-c", _PROBE, *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def results(tmp_path):
    base = write_results(tmp_path / "b.csv", [make_row("a.png"), make_row("b.png", psnr=31.0)], make_provenance())
    new = write_results(tmp_path / "n.parquet", [make_row("a.png", psnr=29.0), make_row("b.png")], make_provenance())
    return base, new


def test_version_prints_the_installed_version_without_torch():
    from importlib.metadata import version

    got = run_fresh("--version")
    assert got["code"] == 0 and got["out"].strip() == f"lpipscli {version('lpipscli')}"
    assert got["torch"] is False


def test_help_does_not_import_torch():
    got = run_fresh("--help")
    assert got["code"] == 0 and "compare" in got["out"] and got["torch"] is False


def _registry_imports_torch() -> bool:
    code = "import sys, lpipscli.metrics; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    return proc.stdout.strip() == "True"


def _needs_light_registry() -> None:
    """Before the metadata-only registry (issue 10), importing lpipscli.metrics imports torch: expected failure."""
    if _registry_imports_torch():
        pytest.xfail("lpipscli.metrics (the registry) imports torch; the metadata-only registry fixes it")


def test_metrics_does_not_import_torch():
    _needs_light_registry()
    got = run_fresh("metrics", "--json")
    assert got["code"] == 0 and got["torch"] is False


def test_weights_does_not_import_torch():
    got = run_fresh("weights", "--json")
    assert got["code"] == 0, got
    assert got["torch"] is False


def test_summary_and_diff_do_not_import_torch(results):
    _needs_light_registry()
    base, new = results
    summary = run_fresh("summary", base, "--fail-if", "mean(psnr) < 10")
    assert summary["code"] == 0 and summary["torch"] is False, summary
    diff = run_fresh("diff", base, new)
    assert diff["code"] == 0 and diff["torch"] is False, diff


def test_summary_and_diff_import_torch_only_for_the_registry(results, monkeypatch):
    """What this side owns is torch-free: with the registry's metadata stubbed, summary and diff stay light."""
    base, new = results
    probe = _PROBE.replace("from lpipscli.cli import app", "\n".join([
        "import types, lpipscli",
        "stub = types.ModuleType('lpipscli.metrics')",
        "stub.REGISTRY = {'psnr': types.SimpleNamespace(higher_is_better=True),"
        " 'lpips_alex': types.SimpleNamespace(higher_is_better=False)}",
        "sys.modules['lpipscli.metrics'] = stub",
        "from lpipscli.cli import app",
    ]))
    for args in (["summary", base, "--fail-if", "mean(psnr) < 10"], ["diff", base, new]):
        proc = subprocess.run([sys.executable, "-c", probe, *map(str, args)], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        assert got["code"] == 0 and got["torch"] is False, (args, got)


@pytest.mark.parametrize("env", [{"TORCH_HOME": "th"}, {"XDG_CACHE_HOME": "xdg"}, {}])
def test_hub_folder_without_torch_is_torch_hubs(tmp_path, env, monkeypatch):
    """The cache folder computed without importing torch equals torch.hub.get_dir()."""
    import torch.hub

    from lpipscli.weights import _hub_dir_from_env

    for name in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, str(tmp_path / value))
    assert _hub_dir_from_env() == Path(torch.hub.get_dir())


def test_a_folder_that_is_not_a_results_dataset_is_named_as_such(tmp_path):
    """Issue 11 point 7: a folder is never 'cannot tell the format from the extension'. `-o DIR` writes a Parquet
    dataset (issue 17); reading a folder that holds no results dataset says so."""
    from typer.testing import CliRunner

    from lpipscli.cli import app

    (tmp_path / "res").mkdir()
    for args in (["summary", tmp_path / "res"], ["diff", tmp_path / "res", tmp_path / "res"]):
        result = CliRunner().invoke(app, [str(a) for a in args])
        assert result.exit_code == 2, result.output
        assert "folder" in result.stderr and "extension" not in result.stderr, result.stderr


def test_metrics_table_has_the_cost_column():
    from typer.testing import CliRunner

    from lpipscli.cli import app
    from lpipscli.metrics import REGISTRY

    result = CliRunner().invoke(app, ["metrics"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    header = next(line for line in result.stdout.splitlines() if "key" in line and "measures" in line)
    assert "cost" in header
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│ ")}
    for key, spec in REGISTRY.items():
        assert spec.cost.split()[0] in lines[key], (key, spec.cost)
