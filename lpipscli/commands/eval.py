"""`lpips eval`: agreement of metrics with human judgments (2AFC, JND, MOS). Thin: parse, then run.

Importing this module imports neither torch nor the metrics (``lpips --help`` stays fast).
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from lpipscli.commands.choices import Format, LpipsVersion
from lpipscli.errors import LpipsCliError

eval_app = typer.Typer(
    help="Score metrics against human judgments: BAPPS 2AFC and JND, MOS/DMOS lists (with bootstrap intervals).",
    no_args_is_help=True,
)


Metric = Annotated[list[str] | None, typer.Option(
    "--metric", "-m", help="Metric keys, comma-separated or repeated (see `lpips metrics`). "
    "Default: lpips_alex,ssim,psnr.")]
Output = Annotated[str | None, typer.Option(
    "--output", "-o", help="Per-item rows (.csv, .parquet, .jsonl; '-' = CSV on stdout).")]
Fmt = Annotated[Format | None, typer.Option("--format", help="Format of -o (default: from the extension).")]
SummaryJson = Annotated[Path | None, typer.Option(
    help="Write the scores, intervals, bootstrap settings and provenance as JSON.")]
Bootstrap = Annotated[int, typer.Option(
    "--bootstrap", help="Bootstrap resamples for the 95% percentile intervals (0: none).", min=0)]
Seed = Annotated[int, typer.Option(help="Seed of the bootstrap resampling (recorded in the summary).")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N (auto = CUDA when available).")]
Workers = Annotated[int | None, typer.Option(
    help="Decoding worker processes (default: CPU cores - 1, at most 8; 0 = decode in the main process).", min=0)]
BatchSize = Annotated[int, typer.Option(help="Most pairs per batch.", min=1)]
Version = Annotated[LpipsVersion, typer.Option("--lpips-version", help="LPIPS heads version.")]
Unverified = Annotated[bool, typer.Option(
    help="Use weight files whose sha256 does not match (custom backbones). Also LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS=1.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary table.")]
Define = Annotated[list[str] | None, typer.Option(
    "--define", help="A named deep-feature metric, repeatable: NAME=key=value,... (as in `lpips compare`).")]
MetricsFile = Annotated[Path | None, typer.Option(
    "--metrics-file", help="A TOML file of named definitions ([metrics.NAME] tables), as in `lpips compare`.")]


def _evaluate(run, define, metrics_file, *option_args, ensembles=None) -> None:
    """Register the named definitions for this evaluation, build its options and run it; errors exit."""
    from lpipscli.cli import _definitions

    with ExitStack() as run_scoped:
        try:
            defined = _definitions(run_scoped, define, metrics_file)
            run(_options(*option_args, ensembles=ensembles, defined=defined))
        except LpipsCliError as exc:
            raise _fail(str(exc), exc.exit_code) from None


def _fail(message: str, code: int) -> typer.Exit:
    sys.stderr.write(f"lpips: error: {message}\n")
    sys.stderr.flush()
    return typer.Exit(code)


def _options(metric, output, fmt, summary_json, bootstrap, seed, device, workers, batch_size, lpips_version,
             allow_unverified_weights, quiet, ensembles=None, defined=()):
    from lpipscli.analysis.eval_run import EvalOptions, parse_ensembles
    from lpipscli.cli import _parse_metrics

    ensemble_map = parse_ensembles(ensembles)
    members = {k for keys in ensemble_map.values() for k in keys}
    metrics = _parse_metrics(metric, None, defined) if (metric or defined or not ensemble_map) else ()
    params = {k: {"version": lpips_version.value} for k in (*metrics, *members) if k.startswith("lpips_")}
    return EvalOptions(
        metrics=metrics, device=device, workers=workers, batch_size=batch_size, metric_params=params,
        allow_unverified_weights=allow_unverified_weights, bootstrap=bootstrap, seed=seed, output=output,
        fmt=fmt.value if fmt else None, summary_json=summary_json, quiet=quiet, ensembles=ensemble_map,
    )


@eval_app.command("2afc")
def eval_2afc(
    root: Annotated[Path, typer.Argument(help="BAPPS 2AFC split folder (categories inside) or one category folder "
                                              "with ref/, p0/, p1/, judge/.", show_default=False)],
    metric: Metric = None,
    define: Define = None,
    metrics_file: MetricsFile = None,
    ensemble: Annotated[list[str] | None, typer.Option(
        "--ensemble", help="NAME=METRIC,METRIC,...: also score the members together, by majority vote of their "
        "choices (Amir & Weiss) and by their mean value (repeatable).")] = None,
    output: Output = None,
    fmt: Fmt = None,
    summary_json: SummaryJson = None,
    bootstrap: Bootstrap = 1000,
    seed: Seed = 0,
    device: Device = "auto",
    workers: Workers = None,
    batch_size: BatchSize = 16,
    lpips_version: Version = LpipsVersion.v01,
    allow_unverified_weights: Unverified = False,
    quiet: Quiet = False,
) -> None:
    """2AFC agreement: how often each metric picks the distortion people found closer to the reference.

    Per triplet the credit is judge (fraction of people preferring p1) when the metric prefers p1, 1 - judge when it
    prefers p0, and 0.5 on a tie; the score is the mean credit per category, and the unweighted mean over categories.
    """
    from lpipscli.analysis.eval_run import run_2afc

    _evaluate(lambda opts: run_2afc(root, opts), define, metrics_file, metric, output, fmt, summary_json, bootstrap,
              seed, device, workers, batch_size, lpips_version, allow_unverified_weights, quiet, ensembles=ensemble)


@eval_app.command("jnd")
def eval_jnd(
    root: Annotated[Path, typer.Argument(help="BAPPS JND split folder (categories inside) or one category folder "
                                              "with p0/, p1/, same/.", show_default=False)],
    metric: Metric = None,
    define: Define = None,
    metrics_file: MetricsFile = None,
    output: Output = None,
    fmt: Fmt = None,
    summary_json: SummaryJson = None,
    bootstrap: Bootstrap = 1000,
    seed: Seed = 0,
    device: Device = "auto",
    workers: Workers = None,
    batch_size: BatchSize = 16,
    lpips_version: Version = LpipsVersion.v01,
    allow_unverified_weights: Unverified = False,
    quiet: Quiet = False,
) -> None:
    """JND mAP: average precision of each metric's distance (p0 vs p1) at finding the pairs people called the same."""
    from lpipscli.analysis.eval_run import run_jnd

    _evaluate(lambda opts: run_jnd(root, opts), define, metrics_file, metric, output, fmt, summary_json, bootstrap,
              seed, device, workers, batch_size, lpips_version, allow_unverified_weights, quiet)


@eval_app.command("mos")
def eval_mos(
    table: Annotated[Path, typer.Argument(help="List of (reference, distorted, score) rows: .csv, .tsv, .parquet or "
                                               ".jsonl; relative paths are relative to the list.", show_default=False)],
    ref_col: Annotated[str, typer.Option(help="Column of reference paths.")] = "ref",
    dist_col: Annotated[str, typer.Option(help="Column of distorted paths.")] = "dist",
    score_col: Annotated[str, typer.Option(help="Column of subjective scores.")] = "mos",
    dmos: Annotated[bool, typer.Option(
        "--dmos", help="The scores are differential (higher = worse), so agreement still comes out positive.")] = False,
    metric: Metric = None,
    define: Define = None,
    metrics_file: MetricsFile = None,
    output: Output = None,
    fmt: Fmt = None,
    summary_json: SummaryJson = None,
    bootstrap: Bootstrap = 1000,
    seed: Seed = 0,
    device: Device = "auto",
    workers: Workers = None,
    batch_size: BatchSize = 16,
    lpips_version: Version = LpipsVersion.v01,
    allow_unverified_weights: Unverified = False,
    quiet: Quiet = False,
) -> None:
    """Correlation with MOS/DMOS: SROCC and KROCC on raw values, PLCC and RMSE after a 4-parameter logistic fit.

    The fit is the VQEG FR-TV Phase II 4-parameter logistic; distances are negated so that agreement is positive.
    """
    from lpipscli.analysis.eval_run import run_mos

    _evaluate(lambda opts: run_mos(table, opts, ref_col=ref_col, dist_col=dist_col, score_col=score_col,
                                   mos_higher_is_better=not dmos),
              define, metrics_file, metric, output, fmt, summary_json, bootstrap, seed, device, workers, batch_size,
              lpips_version, allow_unverified_weights, quiet)
