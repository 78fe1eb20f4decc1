"""`torchrun --nproc-per-node G -m lpipscli compare ...`: one rank per process, rank 0 merges.

Each rank runs an ordinary `compare` on shard ``RANK/WORLD_SIZE`` (see :mod:`lpipscli.shard`), on device
``cuda:LOCAL_RANK`` when CUDA is there and ``--device`` is ``auto`` or ``cuda`` (``LOCAL_RANK`` modulo the
GPU count, so extra ranks share GPUs; ``--device cpu`` or ``cuda:N`` are kept as given), else on the CPU,
with the decoding workers of its share of the cores (``--workers`` overrides). It writes its own part:

- ``-o results/`` (a Parquet dataset): straight into the folder, one file per rank and distorted input;
- ``-o FILE``: ``FILE.shards/part-<RANK>-of-<WORLD>.<ext>``, removed once merged into ``FILE``.

The ranks then meet (``all_gather_object`` over a gloo process group: a few bytes of control traffic,
so gloo on CPU and GPU alike), and rank 0 merges the parts with :func:`lpipscli.merge.merge_results`
and writes the summary, the gates, the summary JSON and JUnit, exactly as a single process would; the
other ranks exit 0. A rank that fails makes rank 0 fail, naming it. ``--resume`` resumes every rank's
part.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

from lpipscli.errors import EXIT_INTERRUPTED, EXIT_USAGE, LpipsCliError, UsageError


def torchrun_env() -> tuple[int, int, int] | None:
    """``(RANK, WORLD_SIZE, LOCAL_RANK)`` when launched by torchrun with more than one process, else None."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ["RANK"]) if world > 1 else 0
        local = int(os.environ.get("LOCAL_RANK", rank))
    except (KeyError, ValueError):
        return None
    if world <= 1:
        return None
    return rank, world, local


def part_path(output: str, fmt: str, shard) -> str:
    """Where a rank writes its part of ``output`` (the dataset folder itself for ``fmt="dataset"``)."""
    if fmt == "dataset":
        return output
    target = Path(output)
    return str(target.with_name(target.name + ".shards") / f"part-{shard.label}{target.suffix or '.' + fmt}")


def _rank_workers(config, world: int) -> int | None:
    if config.workers is not None:
        return config.workers
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    return max(0, min(8, cores // max(1, local_world) - 1))


def run_distributed(config, output: str, fmt: str | None, quiet: bool, reports, resume: bool) -> int:
    """One torchrun rank of `lpips compare` (see the module docstring); returns this process's exit code.

    Raises:
        UsageError: stdout output, torch.distributed missing.
        LpipsCliError: on rank 0, the first rank's failure (with that rank named).
    """
    import torch
    import torch.distributed as dist

    from lpipscli.merge import merge_results
    from lpipscli.run import Reports, run_compare
    from lpipscli.shard import Shard
    from lpipscli.sinks import format_for

    rank, world, local = torchrun_env()
    if output == "-":
        raise UsageError("torchrun: give -o FILE or -o FOLDER/ (each rank writes its part, rank 0 merges them)")
    if not dist.is_available():
        raise UsageError("torchrun: this torch build has no torch.distributed")
    fmt = format_for(output, fmt)
    device = config.device
    if device in ("auto", "cuda") and torch.cuda.is_available():
        device = f"cuda:{local % torch.cuda.device_count()}"  # more ranks than GPUs share them round-robin
    shard = Shard(rank, world)
    part = part_path(output, fmt, shard)
    rank_config = replace(config, shard=shard, device=device, workers=_rank_workers(config, world))
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    try:
        code, error = 0, None
        try:
            if fmt != "dataset":
                Path(part).parent.mkdir(parents=True, exist_ok=True)
            silent = Reports(fail_if=[], allow_failed=True, summary_json=None, worst=reports.worst, junit=None,
                             junit_per_pair=False)
            code = run_compare(rank_config, part, None if fmt == "dataset" else fmt, True, silent, resume)
        except LpipsCliError as exc:
            code, error = exc.exit_code, str(exc)
        outcomes: list = [None] * world
        dist.all_gather_object(outcomes, (code, error))  # also the barrier: every part is written
    finally:
        dist.destroy_process_group()
    if rank != 0:
        return 0
    for r, (c, e) in enumerate(outcomes):
        if e is not None or c == EXIT_INTERRUPTED:
            if fmt != "dataset" and Path(part).parent.is_dir() and not any(Path(part).parent.iterdir()):
                Path(part).parent.rmdir()  # refused before any row was written
            advice = "" if c == EXIT_USAGE else " (rerun with --resume to continue every rank's part)"
            error = LpipsCliError(f"rank {r} (shard {r}/{world}): {e or 'interrupted'}; nothing was merged{advice}")
            error.exit_code = c
            raise error
    if fmt == "dataset":
        return merge_results(None, [Path(output)], None, reports, quiet=quiet)
    parts = Path(part).parent
    code = merge_results(output, [parts], fmt, reports, quiet=quiet)
    shutil.rmtree(parts, ignore_errors=True)
    return code
