"""``lpips report``: one self-contained HTML page from a results file (no torch imported)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from lpipscli.errors import EXIT_GATE_FAILED, EXIT_OK, LpipsCliError, UsageError


def report(
    results: Annotated[Path, typer.Argument(
        help="A results file of compare or diff (.csv, .parquet, .jsonl), or an evaluation table (.json).",
        show_default=False)],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="The HTML file to write (default: RESULTS with the extension .html).")] = None,
    worst: Annotated[int, typer.Option(help="Worst pairs (frames, regressions) per metric shown in the gallery.",
                                       min=0)] = 8,
    fail_if: Annotated[list[str] | None, typer.Option(
        "--fail-if", help="Quality gate, repeatable, as in compare/summary: its verdict is shown, its threshold "
        "marked on the histograms, and a failing gate makes the exit status 1 (the page is written anyway).")] = None,
    allow_failed: Annotated[bool, typer.Option(help="Let gates pass although some pairs failed.")] = False,
    title: Annotated[str | None, typer.Option(help="Page title (default: 'lpips report: <file name>').")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not print the path written.")] = False,
) -> None:
    r"""Render a results file as one self-contained HTML page: summary, histograms, worst pairs with heatmaps,
    per-frame curves for video, gate verdicts, deltas for diff results.

    Needs matplotlib: pip install 'lpipscli\[report]'.
    """
    from lpipscli.report import build_report
    from lpipscli.sinks import check_writable, write_atomic

    out = output if output is not None else results.with_suffix(".html")
    try:
        if out.resolve() == results.resolve():
            raise UsageError(f"-o {out}: would overwrite the results file")
        check_writable(out, "-o")
        page = build_report(results, out_dir=out.parent, worst=worst, gates=fail_if or [], title=title,
                            allow_failed=allow_failed)
        write_atomic(out, page.html)
    except LpipsCliError as exc:
        sys.stderr.write(f"lpips: error: {exc}\n")
        raise typer.Exit(exc.exit_code) from None
    failed = [o for o in page.outcomes if not o.passed]
    if not quiet:
        for o in failed:
            sys.stderr.write(f"FAIL {o.gate_text} [{o.scope}]: {o.reason}\n")
        sys.stderr.write(f"lpips report: wrote {out} ({len(page.html.encode('utf-8')) / 1e6:.2f} MB)\n")
    raise typer.Exit(EXIT_GATE_FAILED if failed else EXIT_OK)
