"""Builders of metric runners that keep state for a run (networks, reference features)."""

from __future__ import annotations


def lpips_runner(device, *, net: str, allow_unverified: bool = False, version: str = "0.1",
                 precision: str = "float32"):
    """Build the LPIPS module once for a run: ``(runner, weight records)``.

    ``precision="bf16"`` runs the backbone under bfloat16 autocast; normalisation, distances and heads stay
    float32 (``--precision``).
    """
    from lpipscli.metrics.lpips import LPIPS

    module = LPIPS(net, version, allow_unverified=allow_unverified, precision=precision).to(device)
    return module.runner, module.weight_records
