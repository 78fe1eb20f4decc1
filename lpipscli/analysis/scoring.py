"""The one place where evaluation meets the scoring engine.

:func:`score_items` takes work items ``(key, reference, [distorted...])`` and returns each metric's values;
everything else in :mod:`lpipscli.analysis` is engine-free. Today it builds a
:class:`~lpipscli.io.pairing.PairPlan` of :class:`~lpipscli.io.pairing.RefGroup` (one per item, so each
reference is decoded and featurised once for all its distorted images) and runs ``Engine.plan`` +
``Engine.execute``; when sources become a protocol of the engine, only this function changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lpipscli.errors import LpipsCliError


@dataclass(frozen=True)
class WorkItem:
    """One reference and the images compared with it (2AFC: p0 and p1; JND: p1 against p0; MOS: one)."""

    key: str
    ref: Path
    dists: tuple[Path, ...]


def score_items(
    items: Sequence[WorkItem],
    metrics: tuple[str, ...],
    *,
    device: str = "auto",
    workers: int | None = None,
    batch_size: int = 16,
    metric_params: Mapping[str, Mapping[str, Any]] | None = None,
    allow_unverified_weights: bool = False,
    on_progress: Callable[[int], None] | None = None,
    provenance: dict | None = None,
) -> dict[str, np.ndarray]:
    """Score every (reference, distorted) pair of ``items`` with every metric, through the engine.

    Args:
        items: the work, in output order.
        metrics: registry keys.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        workers: decoding worker processes (None: the engine's default).
        batch_size: most pairs per batch.
        metric_params: per-metric keyword settings (e.g. ``{"lpips_alex": {"version": "0.1"}}``).
        allow_unverified_weights: accept weight files whose sha256 does not match.
        on_progress: called with the number of pairs finished after each batch.
        provenance: when given, updated with the engine's provenance record (metrics, weights, versions).

    Returns:
        ``{metric: (P,) float64}`` with ``P = Σ len(item.dists)``: item by item, each item's distorted
        images in order (so 2AFC values reshape to ``(N, 2)``).

    Raises:
        LpipsCliError: a pair cannot be scored (undecodable file, size mismatch, too small); nothing is
            returned for a partial run.
        KeyboardInterrupt: the run was interrupted (Ctrl-C).
    """
    from lpipscli.config import RunConfig
    from lpipscli.engine import Engine
    from lpipscli.io.pairing import Pair, PairPlan, RefGroup

    if not items:
        raise LpipsCliError("nothing to score")
    config = RunConfig(ref=Path(items[0].ref), dists=(), metrics=tuple(metrics),
                       metric_params={k: dict(v) for k, v in (metric_params or {}).items()},
                       device=device, workers=workers, batch_size=batch_size,
                       allow_unverified_weights=allow_unverified_weights, on_error="fail")
    engine = Engine(config)
    offsets: dict[str, int] = {}
    groups = []
    position = 0
    for i, item in enumerate(items):
        pairs = []
        for j, dist in enumerate(item.dists):
            label = f"{i}:{j}"  # the row's dist_root: where its value goes
            offsets[label] = position
            position += 1
            pairs.append(Pair(key=item.key, ref_path=Path(item.ref), dist_path=Path(dist), dist_root=label))
        groups.append(RefGroup(item.key, Path(item.ref), tuple(pairs)))
    work = engine.plan(PairPlan(groups=groups))
    if work.failed:
        n = len(work.failed)
        raise LpipsCliError(work.failed[0][3] + (f" (and {n - 1} more pair(s) that cannot be scored)" if n > 1 else "")
                            + "; nothing was computed")
    # per-metric problems (an image too small for one metric) stop evaluation before any compute: a score
    # missing for some items would change what the agreement figures mean
    problems = getattr(work, "metric_problems", None) or {}
    if problems:
        raise LpipsCliError("; ".join(f"{reason} ({n} pair(s))" for n, reason in problems.values())
                            + "; nothing was computed (leave that metric out)")
    engine.build()
    if provenance is not None:
        provenance.update(engine.provenance())
    values = {key: np.full(position, np.nan) for key in metrics}

    def collect(rows: list[dict]) -> None:
        for row in rows:
            at = offsets[row["dist_root"]]
            for key in metrics:
                values[key][at] = row[key]

    result = engine.execute(work, collect, on_progress=on_progress)
    if result.interrupted:
        raise KeyboardInterrupt
    if result.first_error:
        raise LpipsCliError(result.first_error)
    return values
