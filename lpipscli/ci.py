"""CI outputs shared by `compare`, `diff` and `summary`: gates, summary JSON, JUnit, GitHub step summary.

Pure evaluation lives in :mod:`lpipscli.gates` and rendering in :mod:`lpipscli.reports`; this module
decides what to write where and returns the exit code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.markup import escape

from lpipscli.errors import EXIT_GATE_FAILED, EXIT_OK, OutputError
from lpipscli.gates import Gate, GateOutcome, evaluate_gates
from lpipscli.reports import github_annotations, github_step_summary, junit_xml
from lpipscli.sinks import check_writable, json_safe, write_atomic, write_json_atomic
from lpipscli.stats import worst


def check_output_path(path: Path | None, option: str) -> None:
    """Fail before compute when a report file cannot be written (``None``: no such report)."""
    if path is not None:
        check_writable(path, option)


def worst_rows(
    groups: Mapping[str, Mapping[str, Any]], keys: Mapping[str, Sequence[Any]], direction: Mapping[str, bool], k: int
) -> dict[str, dict[str, list[dict]]]:
    """``{dist_root: {metric: [k worst {"pair": name, "value": v}]}}`` (failed pairs excluded)."""
    out: dict[str, dict[str, list[dict]]] = {}
    for root, columns in groups.items():
        names = keys.get(root, [])
        out[root] = {}
        for metric, values in columns.items():
            rows = [{"pair": n, "value": float(v)} for n, v in zip(names, values, strict=False)]
            out[root][metric] = worst(rows, "value", k, direction.get(metric, False)) if k else []
    return out


def finish(
    *,
    summary: dict[str, Any],
    gates: list[Gate],
    groups: Mapping[str, Mapping[str, Any]],
    failed: Mapping[str, int],
    keys: Mapping[str, Sequence[str]],
    allow_failed: bool,
    summary_json: Path | None = None,
    junit: Path | None = None,
    per_pair: list[tuple[str, str, str]] | None = None,
    console=None,
    quiet: bool = False,
    incomplete: Sequence[str] = (),
    allow_incomplete: bool = False,
) -> tuple[int, list[GateOutcome]]:
    """Evaluate gates, write the requested reports, print verdicts; return (exit code, outcomes).

    ``incomplete``: one line per results file whose run did not finish; unless ``allow_incomplete``, every
    gate then fails (a partial file never passes), and the reason says why.
    """
    outcomes = evaluate_gates(gates, groups, failed=failed, allow_failed=allow_failed, keys=keys) if gates else []
    if incomplete:
        why = "; ".join(incomplete)
        if allow_incomplete:
            outcomes = [replace(o, reason=f"{o.reason}; incomplete results allowed ({why})") for o in outcomes]
        else:
            outcomes = [replace(o, passed=False, reason=f"{o.reason}; the gate fails because the results are "
                                f"incomplete ({why}) unless --allow-incomplete") for o in outcomes]
    summary["allow_incomplete"] = bool(allow_incomplete)
    summary["gates"] = [
        {"scope": o.scope, "gate": o.gate_text, "observed": o.observed, "passed": o.passed, "reason": o.reason}
        for o in outcomes
    ]
    if summary_json is not None:
        write_json_atomic(summary_json, json_safe(summary))
    if junit is not None:
        write_atomic(junit, junit_xml(outcomes, per_pair=per_pair))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        tables: dict[str, dict[str, dict]] = {}
        for root, block in summary.get("per_dist_root", {}).items():
            for metric, stats in block["metrics"].items():
                tables.setdefault(metric, {})[root] = stats
        try:
            with open(step_summary, "a", encoding="utf-8") as handle:
                handle.write(github_step_summary(tables, outcomes, failed=dict(failed)) + "\n")
        except OSError as exc:
            raise OutputError(f"GITHUB_STEP_SUMMARY {step_summary}: cannot append: {exc.strerror}") from None
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for line in github_annotations(outcomes):
            sys.stderr.write(line + "\n")
    if outcomes and console is not None:
        for o in outcomes:
            if o.passed and quiet:
                continue
            mark = "[green]PASS[/]" if o.passed else "[red]FAIL[/]"
            console.print(f"{mark} {escape(f'{o.gate_text} [{o.scope}]: {o.reason}')}", highlight=False,
                          soft_wrap=True)
    code = EXIT_GATE_FAILED if any(not o.passed for o in outcomes) else EXIT_OK
    return code, outcomes
