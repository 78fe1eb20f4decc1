"""The README's promises: its quick-start command runs on what the repository ships, its metric table
lists every registered metric, and every command has help."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lpipscli.cli import app
from lpipscli.metrics import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _first_block_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_readme_starts_with_the_main_job_and_the_tests():
    first, second = _first_block_commands()[:2]
    assert "lpips compare sample_images/" in first
    assert "pytest" in second


def test_readme_quick_start_runs_on_the_shipped_sample_images(tmp_path, monkeypatch):
    first = _first_block_commands()[0]
    args = shlex.split(first[first.index("lpips compare") + len("lpips "):])
    for arg in args:
        if arg.startswith("sample_images/"):
            assert (ROOT / arg).is_dir(), f"the README's quick start needs {arg}, which the repository lacks"
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "quick.csv"), "--quiet"])
    assert result.exit_code == 0, result.stderr
    rows = (tmp_path / "quick.csv").read_text().splitlines()
    assert len(rows) == 1 + 8  # header + 4 photos x 2 distortions
    assert all(row.endswith(",ok,") for row in rows[1:])


def test_readme_metric_table_lists_every_metric():
    table = README[README.index("## Metrics"):README.index("## Video")]
    listed = set(re.findall(r"^\| `([a-z0-9_]+)`(?:, `([a-z0-9_]+)`)?", table, re.M))
    keys = {k for pair in listed for k in pair if k}
    assert keys == set(REGISTRY)


@pytest.mark.parametrize("command", [[], ["compare"], ["diff"], ["summary"], ["metrics"], ["weights"],
                                     ["weights", "download"]])
def test_every_command_has_help(command):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.stdout
