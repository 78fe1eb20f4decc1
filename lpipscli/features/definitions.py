"""Named metric definitions: several deep-feature configurations in one run, each with its own column.

Two sources, both giving ``NAME -> settings``:

* a repeatable ``--define NAME=key=value,key=value,...`` string; list values are joined with ``+``
  (``layers=relu2_2+relu4_2``), booleans are ``true``/``false``;
* a TOML file (``--metrics-file``) with one table per definition::

      [metrics.vgg_h10]
      net = "vgg16"
      layers = ["relu2_2", "relu4_2"]
      select = "H-10"

      [metrics.rand_vgg]
      net = "vgg16"
      weights = "random"        # members = 20 and zero_mean_first = true by default (Amir & Weiss)

      [metrics.scnn]
      kind = "scnn"
      width = 1024

The name is the metric key, the output column, its gate name and its provenance key. Definitions on the same
backbone (same net, weights, seed, ensemble, first-layer and input normalisation) share one forward pass per
batch, and each reference's features are computed once per batch.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lpipscli.errors import UsageError

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")
KINDS = ("perceptual", "scnn")

_LIST_STR = "list[str]"
_LIST_FLOAT = "list[float]"
#: Every setting a definition may hold, with its type.
PERCEPTUAL_KEYS: dict[str, str] = {
    "kind": "str", "net": "str", "layers": _LIST_STR, "distance": "str", "layer_weights": _LIST_FLOAT,
    "weights": "str", "seed": "int", "members": "int", "zero_mean_first": "bool", "normalize": "str",
    "select": "str", "channel_weights": "str", "pe_file": "str", "style_weight": "float",
    "style_layers": _LIST_STR, "style_layer_weights": _LIST_FLOAT, "style_criterion": "str",
}
SCNN_KEYS: dict[str, str] = {
    "kind": "str", "patch_size": "int", "depth": "int", "width": "int", "window": "int", "stride": "int",
    "seed": "int", "members": "int", "zero_mean_first": "bool",
}
#: Ensemble size of random backbones when a definition does not say (Amir & Weiss: 20 networks).
RANDOM_MEMBERS = 20


@dataclass(frozen=True)
class Definition:
    """One named configuration, with every setting resolved (defaults filled in)."""

    name: str
    kind: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    def group_key(self) -> tuple:
        """Definitions with equal keys share one backbone forward pass."""
        s = self.settings
        if self.kind == "scnn":
            return ("scnn",) + tuple(sorted(s.items()))
        return ("perceptual", s["net"], s["weights"], s["seed"], s["members"], s["zero_mean_first"], s["normalize"])


def _coerce(name: str, key: str, value: Any, kind: str) -> Any:
    where = f"definition {name!r}: {key}"
    if kind in (_LIST_STR, _LIST_FLOAT):
        items = value.split("+") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise UsageError(f"{where} must be a list, got {value!r}")
        items = [str(i).strip() if kind == _LIST_STR else i for i in items]
        if kind == _LIST_FLOAT:
            return tuple(_coerce(name, key, i, "float") for i in items)
        return tuple(i for i in items if i)
    try:
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "yes", "on"):
                return True
            if str(value).lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
    except (TypeError, ValueError):
        raise UsageError(f"{where} must be {kind}, got {value!r}") from None
    return str(value)


def resolve(name: str, raw: Mapping[str, Any]) -> Definition:
    """Check a definition's name and settings and fill in every default."""
    from lpipscli.features.backbones import DEFAULT_LAYERS, NORMALIZATIONS, canonical_arch, resolve_layer
    from lpipscli.features.perceptual import DISTANCES, STYLE_CRITERIA
    from lpipscli.features.scnn import SCNN_DEFAULTS

    if not NAME_RE.match(name):
        raise UsageError(f"definition name {name!r} must start with a letter and use letters, digits, _ or -")
    kind = str(raw.get("kind", "perceptual"))
    if kind not in KINDS:
        raise UsageError(f"definition {name!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    allowed = PERCEPTUAL_KEYS if kind == "perceptual" else SCNN_KEYS
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise UsageError(f"definition {name!r}: unknown setting {', '.join(unknown)} (known: {', '.join(allowed)})")
    s = {key: _coerce(name, key, value, allowed[key]) for key, value in raw.items() if key != "kind"}
    if kind == "scnn":
        return Definition(name, kind, {**SCNN_DEFAULTS, **s})
    if "net" not in s:
        raise UsageError(f"definition {name!r}: net is required (e.g. net=vgg16)")
    s["net"] = canonical_arch(s["net"])
    s.setdefault("weights", "imagenet")
    if s["weights"] not in ("imagenet", "random"):
        raise UsageError(f"definition {name!r}: weights must be imagenet or random, got {s['weights']!r}")
    random_net = s["weights"] == "random"
    s.setdefault("seed", 0)
    s.setdefault("members", RANDOM_MEMBERS if random_net else 1)
    s.setdefault("zero_mean_first", random_net)
    s.setdefault("normalize", "imagenet")
    s.setdefault("layers", DEFAULT_LAYERS[s["net"]])
    s.setdefault("distance", "mse")
    s.setdefault("select", "all")
    s.setdefault("channel_weights", "uniform")
    s.setdefault("style_weight", 0.0)
    s.setdefault("style_criterion", "l1")
    if s["normalize"] not in NORMALIZATIONS:
        raise UsageError(f"definition {name!r}: normalize must be one of {', '.join(NORMALIZATIONS)}")
    if s["distance"] not in DISTANCES:
        raise UsageError(f"definition {name!r}: distance must be one of {', '.join(DISTANCES)}")
    if s["style_criterion"] not in STYLE_CRITERIA:
        raise UsageError(f"definition {name!r}: style_criterion must be one of {', '.join(STYLE_CRITERIA)}")
    if not s["layers"]:
        raise UsageError(f"definition {name!r}: layers is empty")
    if s["members"] < 1 or (not random_net and s["members"] != 1):
        raise UsageError(f"definition {name!r}: members must be 1 for trained weights and >= 1 for random ones")
    from lpipscli.features.pe import parse_selection

    parse_selection(s["select"])
    if s["channel_weights"] not in ("uniform", "pe"):
        raise UsageError(f"definition {name!r}: channel_weights must be uniform or pe")
    if s["channel_weights"] == "pe" and s["distance"] == "cosine":
        raise UsageError(f"definition {name!r}: channel weights do not apply to the cosine distance")
    s["nodes"] = tuple(resolve_layer(s["net"], layer) for layer in s["layers"])
    if "style_layers" in s:
        s["style_nodes"] = tuple(resolve_layer(s["net"], layer) for layer in s["style_layers"])
    for key, count in (("layer_weights", len(s["layers"])),
                       ("style_layer_weights", len(s.get("style_layers", s["layers"])))):
        if key in s and len(s[key]) != count:
            raise UsageError(f"definition {name!r}: {key} has {len(s[key])} values for {count} layers")
    if "pe_file" in s and s["members"] != 1:
        raise UsageError(f"definition {name!r}: pe_file describes one network; use it with members=1")
    return Definition(name, kind, s)


def parse_define(text: str) -> tuple[str, dict[str, str]]:
    """``"NAME=key=value,key=value"`` -> ``(NAME, {key: value})`` (values still text)."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise UsageError(f"--define needs NAME=key=value,...; got {text!r}")
    settings: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--define {name}: {item!r} is not key=value")
        if key.strip() in settings:
            raise UsageError(f"--define {name}: {key.strip()} given twice")
        settings[key.strip()] = value.strip()
    return name, settings


def load_metrics_file(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``[(NAME, settings)]`` from a TOML file of ``[metrics.NAME]`` tables, in file order."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    extra = sorted(set(data) - {"metrics"})
    if extra or not isinstance(data.get("metrics"), dict) or not data["metrics"]:
        raise UsageError(f"{path}: expected [metrics.NAME] tables only (found {', '.join(extra) or 'none'})")
    out = []
    for name, table in data["metrics"].items():
        if not isinstance(table, dict):
            raise UsageError(f"{path}: metrics.{name} must be a table")
        out.append((name, table))
    return out


def parse_definitions(define: Sequence[str] | None, metrics_file: Path | None) -> list[Definition]:
    """All definitions of a run (file first, then ``--define`` in order); names must be unique and must not
    shadow a registry metric."""
    raw: list[tuple[str, Mapping[str, Any]]] = []
    if metrics_file is not None:
        raw.extend(load_metrics_file(metrics_file))
    raw.extend(parse_define(text) for text in define or [])
    from lpipscli.metrics import REGISTRY

    seen: set[str] = set()
    out = []
    for name, settings in raw:
        if name in seen:
            raise UsageError(f"metric definition {name!r} is given twice")
        if name in REGISTRY:
            raise UsageError(f"metric definition {name!r} would shadow the built-in metric of that name")
        seen.add(name)
        out.append(resolve(name, settings))
    return out


def conventions(definition: Definition) -> dict[str, Any]:
    """Every setting of ``definition`` for the provenance (weights file, seed, K, layers, distance...)."""
    s = dict(definition.settings)
    if definition.kind == "scnn":
        from lpipscli.features.scnn import SCNN_DECISIONS

        return {"kind": "scnn", **s, **SCNN_DECISIONS}
    from lpipscli.features.backbones import IMAGENET_MEAN, IMAGENET_STD, RANDOM_INIT, ZERO_MEAN_FIRST
    from lpipscli.features.perceptual import GRAM_NORMALIZATION, NORM_EPS
    from lpipscli.weights import FEATURE_BACKBONES

    out: dict[str, Any] = {"kind": "perceptual", **s}
    out["input"] = "[0,1] RGB (gray replicated)"
    out["normalize_detail"] = {
        "imagenet": f"(x - {IMAGENET_MEAN}) / {IMAGENET_STD}",
        "lpips": "LPIPS v0.1 scaling: (2x - 1 - shift) / scale",
        "none": "x as is",
    }[s["normalize"]]
    if s["weights"] == "imagenet":
        info = FEATURE_BACKBONES[s["net"]]
        out["weights_file"] = info.filename
        out["weights_sha256_expected"] = info.sha256
    else:
        out["random_init"] = RANDOM_INIT
        out["zero_mean_first_detail"] = ZERO_MEAN_FIRST if s["zero_mean_first"] else "off"
        out["ensemble"] = f"mean of {s['members']} members, seeds {s['seed']}..{s['seed'] + s['members'] - 1}"
    out["distance_detail"] = {
        "mse": "1/(M H W) sum_m ||dphi_m||^2 (Tariq et al. Eq. 1)", "l1": "1/(M H W) sum_m |dphi_m|",
        "l2": f"unit-normalised over channels (+{NORM_EPS} on the norm), sum_m, spatial mean (LPIPS, no heads)",
        "cosine": "1 - cosine of the channel vectors, spatial mean",
    }[s["distance"]]
    out["layer_reduction"] = "sum over layers of layer_weight * distance (weights default 1)"
    if s["style_weight"]:
        out["gram_normalization"] = GRAM_NORMALIZATION
    if s["select"] != "all" or s["channel_weights"] != "uniform":
        if "pe_file" in s:
            out["pe_file_sha256"] = hashlib.sha256(Path(s["pe_file"]).read_bytes()).hexdigest()
        else:
            from lpipscli.features.pe import DECISIONS

            out["pe"] = {"computed": "per ensemble member at build time", **DECISIONS}
    return out


def _same(a, b) -> bool:
    import torch

    return a is b or (a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and torch.equal(a, b))


class _SharedFeatures:
    """One ensemble for a group of definitions, and the features of the last batch it saw."""

    def __init__(self, ensemble):
        self.ensemble = ensemble
        self.pe_cache: dict = {}
        self.forward_passes = 0
        self._inputs = None
        self._features = None

    def __call__(self, ref, dist):
        if self._inputs is not None and _same(self._inputs[0], ref) and _same(self._inputs[1], dist):
            return self._features
        self._inputs = self._features = None
        features = (self.ensemble(ref), self.ensemble(dist))
        self.forward_passes += 1
        self._inputs, self._features = (ref, dist), features
        return features


class _Run:
    """Per-run state: the definitions and one shared ensemble per (group, device, allow_unverified)."""

    def __init__(self, definitions: Sequence[Definition]):
        self.definitions = list(definitions)
        self.shared: dict[tuple, Any] = {}

    def _nodes(self, key: tuple) -> tuple[str, ...]:
        nodes: list[str] = []
        for d in self.definitions:
            if d.kind == "perceptual" and d.group_key() == key:
                nodes.extend(d.settings["nodes"])
                if d.settings["style_weight"]:
                    nodes.extend(d.settings.get("style_nodes", d.settings["nodes"]))
        return tuple(dict.fromkeys(nodes))

    def shared_features(self, definition: Definition, device, allow_unverified: bool) -> _SharedFeatures:
        from lpipscli.features.backbones import Ensemble

        key = (definition.group_key(), str(device), bool(allow_unverified))
        if key not in self.shared:
            s = definition.settings
            ensemble = Ensemble(
                s["net"], self._nodes(definition.group_key()), weights=s["weights"], seed=s["seed"],
                members=s["members"], zero_mean_first=s["zero_mean_first"], normalize=s["normalize"],
                allow_unverified=allow_unverified,
            ).to(device)
            self.shared[key] = _SharedFeatures(ensemble)
        return self.shared[key]

    def build(self, definition: Definition, device, *, allow_unverified: bool = False, **params):
        """The ``MetricSpec.build`` of ``definition``: ``(runner, weight_records)``."""
        if params:
            raise UsageError(f"{definition.name} takes no settings on the command line: edit its definition")
        if definition.kind == "scnn":
            return _scnn_runner(definition, str(device)), ()
        from lpipscli.features.pe import check_pe_weights, load_pe_file
        from lpipscli.features.perceptual import PerceptualHead, channel_plan, gather_features

        s = definition.settings
        shared = self.shared_features(definition, device, allow_unverified)
        pe = None
        if "pe_file" in s:
            pe, info = load_pe_file(s["pe_file"], s["net"], with_weights=True)
            records = shared.ensemble.records
            check_pe_weights(s["pe_file"], info, sha256=records[0].sha256 if records else None,
                             seed=s["seed"] if s["weights"] == "random" else None)
        index, cweights, _ = channel_plan(shared.ensemble, s["nodes"], select=s["select"],
                                          channel_weights=s["channel_weights"], pe=pe,
                                          pe_keys=dict(zip(s["nodes"], s["layers"], strict=True)),
                                          cache=shared.pe_cache)
        head = PerceptualHead(
            s["nodes"], distance=s["distance"], layer_weights=s.get("layer_weights"), channel_index=index,
            channel_weights=cweights, style_weight=s["style_weight"], style_nodes=s.get("style_nodes"),
            style_layer_weights=s.get("style_layer_weights"), style_criterion=s["style_criterion"],
        )

        def runner(ref, dist, ref_index, *, with_map: bool = False):
            ref_feats, dist_feats = shared(ref, dist)
            out_hw = tuple(dist.shape[-2:]) if with_map else None
            return head(gather_features(ref_feats, ref_index), dist_feats, out_hw=out_hw)

        runner.head = head
        runner.shared = shared
        return runner, shared.ensemble.records


@functools.lru_cache(maxsize=8)
def _scnn_module(settings: tuple, device: str):
    from lpipscli.features.scnn import SCNNDistance

    return SCNNDistance(**dict(settings)).to(device)


def _scnn_runner(definition: Definition, device: str):
    module = _scnn_module(tuple(sorted(definition.settings.items())), device)
    return module.runner


def _direct(run: _Run, definition: Definition, ref, dist, **_ignored):
    """``MetricSpec.fn`` of a definition: build once per device (cached in the run) and score pairs."""
    key = ("direct", str(ref.device))
    runners = run.shared.setdefault(key, {})
    if definition.name not in runners:
        runners[definition.name] = run.build(definition, ref.device, allow_unverified=False)[0]
    return runners[definition.name](ref, dist, None)


def _min_side(definition: Definition) -> int:
    from lpipscli.features.backbones import min_side

    s = definition.settings
    if definition.kind == "scnn":
        return s["patch_size"] // 2 + 1
    nodes = tuple(dict.fromkeys(s["nodes"] + s.get("style_nodes", ())))
    return min_side(s["net"], nodes)


def definition_specs(define: Sequence[str] | None, metrics_file: Path | None) -> list:
    """One :class:`~lpipscli.config.MetricSpec` per named definition (``--define`` / ``--metrics-file``).

    The specs of one call share a per-run feature cache: definitions on the same backbone run it once per
    batch (each reference once), and PE scores are computed once per network. ``conventions`` holds every
    setting (backbone, weights file and expected sha256 or seed, K, layers, distance, weights, normalisation,
    selection, PE decisions), so that it lands in the provenance; the loaded files' actual sha256 come back
    from ``build`` as weight records.

    Raises:
        UsageError: a malformed definition, an unknown setting, layer or backbone, a duplicate name or a
            name that shadows a built-in metric.
    """
    from lpipscli.config import MetricSpec

    definitions = parse_definitions(define, metrics_file)
    run = _Run(definitions)
    specs = []
    for d in definitions:
        s = d.settings
        if d.kind == "scnn":
            measures = (f"S-CNN distance (Amir & Weiss): P={s['patch_size']}, D={s['depth']}, C={s['width']}, "
                        f"W={s['window']}, S={s['stride']}, {s['members']} random network(s), seed {s['seed']}")
            cost = f"{s['depth']} x {s['width']}^2 MAC per pixel"
        else:
            source = f"random x{s['members']}" if s["weights"] == "random" else "ImageNet"
            selection = f", channels {s['select']}" if s["select"] != "all" else ""
            measures = (f"perceptual distance ({s['distance']}) on {s['net']} ({source}) "
                        f"layers {'+'.join(s['layers'])}{selection}")
            cost = "one backbone forward per image, shared by the definitions on that backbone"
        specs.append(MetricSpec(
            key=d.name, fn=functools.partial(_direct, run, d), measures=measures,
            value_range="[0, inf); 0 for identical images", higher_is_better=False, min_side=_min_side(d),
            needs_weights=d.kind == "perceptual" and s["weights"] == "imagenet", params={},
            conventions=conventions(d), build=functools.partial(run.build, d), differentiable=True, cost=cost,
        ))
    return specs
