"""`lpips layers NET` and `lpips pe-rank`: inspect backbones and rank channels by Perceptual Efficacy.

Thin Typer commands; torch and torchvision are imported inside the bodies so that `lpips --help` stays light.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from lpipscli.errors import LpipsCliError


def _fail(exc: LpipsCliError) -> typer.Exit:
    sys.stderr.write(f"lpips: error: {exc}\n")
    sys.stderr.flush()
    return typer.Exit(exc.exit_code)


def layers(
    net: Annotated[str, typer.Argument(help="alexnet, vgg16, vgg19, squeezenet1_1, resnet50, shufflenet_v2_x1_0, "
                                            "googlenet (or alex, vgg, squeeze).", show_default=False)],
    side: Annotated[int, typer.Option(help="Input side used to report output sizes.", min=1)] = 224,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List a backbone's layers: torchvision node names, friendly aliases, channel counts (no weights needed)."""
    try:
        from lpipscli.features.backbones import LPIPS_TAPS, canonical_arch, layer_table

        arch = canonical_arch(net)
        rows = layer_table(arch, side)
    except LpipsCliError as exc:
        raise _fail(exc) from None
    taps = set(LPIPS_TAPS.get(arch, ()))
    for row in rows:
        row["lpips_tap"] = row["node"] in taps
    if as_json:
        import json

        typer.echo(json.dumps({"net": arch, "side": side, "layers": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{arch} layers (output sizes for {side}x{side} input; * = LPIPS tap)", title_justify="left")
    for col in ("node", "alias", "channels", "size"):
        table.add_column(col)
    for r in rows:
        size = f"{r['height']}x{r['width']}" if r["height"] is not None else "-"
        table.add_row(r["node"] + (" *" if r["lpips_tap"] else ""), r["alias"],
                      "-" if r["channels"] is None else str(r["channels"]), size)
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def pe_rank(
    net: Annotated[str, typer.Option("--net", help="Backbone (see `lpips layers`).")] = "vgg16",
    layer_names: Annotated[str, typer.Option(
        "--layers", help="Comma-separated layers: aliases (relu2_2), node names or module names.")] = "relu2_2,relu4_2",
    output: Annotated[Path, typer.Option("--output", "-o", help="JSON file to write.")] = Path("pe.json"),
    weights: Annotated[str, typer.Option(help="imagenet (the torchvision checkpoint) or random.")] = "imagenet",
    seed: Annotated[int, typer.Option(help="Seed of random weights.")] = 0,
    normalize: Annotated[str, typer.Option(help="Input normalisation: imagenet, lpips or none.")] = "imagenet",
    size: Annotated[int, typer.Option(help="Stimulus side in pixels (DECISION, recorded).", min=8)] = 224,
    ppd: Annotated[float, typer.Option(help="Pixels per degree of visual angle (DECISION, recorded).")] = 60.0,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Also draw each layer's tuning curves and PE distribution into this folder "
        "(needs matplotlib).")] = None,
    allow_unverified_weights: Annotated[bool, typer.Option(
        help="Accept a checkpoint whose sha256 does not match the pinned value.")] = False,
) -> None:
    """Rank every channel of the given layers by Perceptual Efficacy (Tariq et al. 2020): mu1, mu2, PE."""
    import json

    try:
        from lpipscli.errors import OutputError
        from lpipscli.features import pe

        names = [n.strip() for n in layer_names.split(",") if n.strip()]
        if plot is not None:
            try:
                import matplotlib  # noqa: F401
            except ImportError:
                from lpipscli.errors import UsageError

                raise UsageError("--plot needs matplotlib, which is not installed: "
                                 "pip install 'lpipscli[report]'") from None
        result = pe.rank(net, names, weights=weights, seed=seed, normalize=normalize, device=device,
                         allow_unverified=allow_unverified_weights, size=size, ppd=ppd)
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps(result, indent=1))
        except OSError as exc:
            raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from None
        written = pe.plot(result, plot) if plot is not None else []
    except LpipsCliError as exc:
        raise _fail(exc) from None
    for layer, entry in result["layers"].items():
        top = max(range(entry["channels"]), key=lambda m: entry["pe"][m])
        sys.stderr.write(f"{layer} ({entry['node']}): {entry['channels']} channels, top PE channel {top} "
                         f"({entry['pe'][top]:.4g})\n")
    typer.echo(f"wrote {output}" + (f" and {len(written)} plot(s) in {plot}" if written else ""))


def register(app: typer.Typer) -> None:
    """Add `layers` and `pe-rank` to the `lpips` app."""
    app.command("layers")(layers)
    app.command("pe-rank")(pe_rank)
