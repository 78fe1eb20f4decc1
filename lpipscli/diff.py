"""``lpips diff``: join two result files on the pair key and compute per-pair deltas (new - base).

Join rule:

- both files have the same set of ``dist_root`` values: the key is ``(dist_root, ref[, frame])``;
- otherwise, when each file has exactly one ``dist_root`` (``enc_v1/`` vs ``enc_v2/``): ``(ref[, frame])``;
- otherwise the join is ambiguous and refused (:class:`~lpipscli.errors.UsageError`).

``frame`` is part of the key when the files hold video rows (both must, or neither). ``ref`` is compared as a
path relative to the reference input recorded in each file's provenance (``inputs.ref``) when both files
have one, so result files written from different working folders still join; otherwise as written.

Every pair appears once in the output: ``ok`` (in both, both scored), ``failed`` (in both, either side has
status ``error``), ``missing_in_new`` (only in BASE) or ``extra_in_new`` (only in NEW). Nothing is dropped.

Deltas follow IEEE arithmetic: ``delta = new - base``; NaN on either side gives NaN, ``inf - inf`` gives NaN,
a finite value against an infinity gives ``+inf`` or ``-inf``.

Files whose provenance says they were scored differently (a shared metric's settings, such as the LPIPS
``version``; the sha256 of a shared metric's weight files; the decode options) are refused unless
``force=True``, in which case the differences are kept in ``DiffResult.differences`` and ``warnings``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lpipscli.errors import UsageError
from lpipscli.results import ResultTable, metric_columns
from lpipscli.status import (
    DIFF_STATUSES,
    EXTRA_IN_NEW,
    FAILED,
    MISSING_IN_NEW,
    OK,
    Group,
    gate_inputs,
    group_rows,
    is_failure,
    totals,
)

__all__ = [
    "DECODE_OPTIONS",
    "parse_root_map",
    "settings_differences",
    "STATUSES",
    "VERSION_KEYS",
    "DiffResult",
    "diff_tables",
    "diff_columns",
    "provenance_differences",
]

#: Row statuses of a diff, in this order (:data:`lpipscli.status.DIFF_STATUSES`).
STATUSES = DIFF_STATUSES
#: Keys of ``provenance["options"]`` that change scores when they differ (compared when both files have them).
DECODE_OPTIONS = ("alpha", "resize", "resize_method", "range", "gray_vs_rgb")
#: Top-level settings-record sections ``lpips diff`` reports as a note, not as a refusal (``--resume`` refuses).
NOTE_SETTINGS = ("device",)
#: Packages whose differing versions are reported as a warning (scores may move in the last digits).
VERSION_KEYS = ("lpipscli", "torch", "torchvision", "lpips")

_ABSENT = object()


@dataclass
class DiffResult:
    """Per-pair deltas between two result files.

    Attributes:
        columns: output columns, for :func:`lpipscli.sinks.open_sink`: ``ref``, ``dist_root``, ``frame``
            (video only), then per shared metric ``<m>_base``, ``<m>_new``, ``delta_<m>``, then ``status``
            and ``error``.
        rows: one dict per pair: every column of ``columns`` (NaN where a side has no value);
            :meth:`output_rows` gives the rows a sink writes.
        metrics: the metric keys present in both files, in BASE's order.
        join_on: the key columns used: ``("dist_root", "ref"[, "frame"])`` or ``("ref"[, "frame"])``.
        missing: the rows of pairs only in BASE (status ``missing_in_new``), in BASE's order.
        extra: the rows of pairs only in NEW (status ``extra_in_new``), in NEW's order.
        warnings: one line each: missing provenance, metrics in one file only, forced differences,
            version or device differences, incomplete runs.
        differences: the score-changing provenance differences (non-empty only with ``force=True``).
        provenance: provenance for the output file (both inputs' provenance, the join, the differences).
        base_path: BASE's file name.
        new_path: NEW's file name.
        root_map: ``{BASE dist_root: NEW dist_root}`` when the distorted roots differ and were joined by
            folder name or by an explicit mapping (empty otherwise).
        incomplete: one line per input file whose run did not finish (how many items are missing, why).
    """

    columns: tuple[str, ...]
    rows: list[dict]
    metrics: list[str]
    join_on: tuple[str, ...]
    missing: list[dict] = field(default_factory=list)
    extra: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    base_path: str = ""
    new_path: str = ""
    root_map: dict[str, str] = field(default_factory=dict)
    incomplete: list[str] = field(default_factory=list)

    @property
    def delta_columns(self) -> list[str]:
        """``delta_<m>`` for each shared metric."""
        return [f"delta_{m}" for m in self.metrics]

    @property
    def gate_columns(self) -> list[str]:
        """Every column a gate may name: ``delta_<m>``, then ``<m>_base`` and ``<m>_new``."""
        return self.delta_columns + [c for m in self.metrics for c in (f"{m}_base", f"{m}_new")]

    @property
    def counts(self) -> dict[str, int]:
        """Rows per status (every status of :data:`STATUSES`, zeros included)."""
        out = dict.fromkeys(STATUSES, 0)
        for row in self.rows:
            out[row["status"]] += 1
        return out

    def groups_for_gates(
        self, columns: Iterable[str] | None = None
    ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, int], dict[str, list[str]]]:
        """The rows in the shape :func:`lpipscli.gates.evaluate_gates` takes.

        Args:
            columns: the columns to include; default :attr:`gate_columns`.

        Returns:
            ``(groups, failed, keys)``: ``groups = {dist_root: {column: float64 array}}`` with one value
            per row of that root (NaN where there is no delta), roots in order of first appearance;
            ``failed = {dist_root: n}`` counting ``missing_in_new`` and ``failed`` rows (a pair only in NEW
            whose NEW side failed is ``failed``), so a gate never passes on pairs that vanished or broke;
            ``keys = {dist_root: [pair names]}`` (``ref``, ``ref#frame`` for video), aligned with the arrays.

        Raises:
            UsageError: a column that is not a delta, base or new column.
        """
        return gate_inputs(self.groups(columns))

    def groups(self, columns: Iterable[str] | None = None) -> dict[str, Group]:
        """The rows grouped per ``dist_root`` (:func:`lpipscli.status.group_rows`) over ``columns`` (default
        :attr:`gate_columns`).

        Raises:
            UsageError: a column that is not a delta, base or new column.
        """
        columns = self.gate_columns if columns is None else list(columns)
        unknown = [c for c in columns if c not in self.gate_columns]
        if unknown:
            raise UsageError(f"diff has no column {', '.join(map(repr, unknown))} "
                             f"(columns: {', '.join(self.gate_columns) or 'none'})")
        owner = {c: m for m in self.metrics for c in (f"delta_{m}", f"{m}_base", f"{m}_new")}
        return group_rows(self.rows, columns, metric_of=lambda c: owner.get(c, c), name_of=_pair_name)

    def summary(self, direction: Mapping[str, bool | None] | None = None) -> dict[str, Any]:
        """A summary in the shape of a compare summary, over :attr:`gate_columns`.

        Args:
            direction: ``{metric key: higher_is_better}`` (e.g. from ``REGISTRY``); a delta column gets its
                metric's direction (a positive ``delta_psnr`` is an improvement, a positive
                ``delta_lpips_alex`` a regression).

        Returns:
            ``{"pairs", "counts", "failed", "failure_reasons", "missing", "extra", "join_on", "root_map",
            "incomplete", "warnings", "per_dist_root"}``;
            ``per_dist_root`` is :func:`lpipscli.summary.per_root` of :meth:`groups`.
        """
        from lpipscli.summary import per_root

        direction = direction or {}
        cols = {}
        for m in self.metrics:
            for c in (f"delta_{m}", f"{m}_base", f"{m}_new"):
                cols[c] = direction.get(m)
        groups = self.groups()
        count = totals(groups)
        return {
            "pairs": len(self.rows),
            "counts": self.counts,
            "failed": count["failed"],
            "failure_reasons": count["failure_reasons"],
            "missing": [_pair_name(r) for r in self.missing],
            "extra": [_pair_name(r) for r in self.extra],
            "join_on": list(self.join_on),
            "root_map": dict(self.root_map),
            "incomplete": list(self.incomplete),
            "warnings": list(self.warnings),
            "per_dist_root": per_root(groups, cols),
        }

    def output_rows(self) -> list[dict]:
        """The rows with exactly :attr:`columns` as keys (what a sink writes)."""
        return [{c: r[c] for c in self.columns} for r in self.rows]


def _pair_name(row: Mapping[str, Any]) -> str:
    frame = row.get("frame")
    return f"{row['ref']}#{frame}" if frame is not None else str(row["ref"])


def diff_columns(metrics: Iterable[str], *, video: bool = False) -> tuple[str, ...]:
    """The output columns of a diff over ``metrics`` (see :attr:`DiffResult.columns`)."""
    head = ("ref", "dist_root", "frame") if video else ("ref", "dist_root")
    body = tuple(c for m in metrics for c in (f"{m}_base", f"{m}_new", f"delta_{m}"))
    return head + body + ("status", "error")


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(not set)"
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _short_sha(values: set[str]) -> str:
    return ", ".join(sorted(f"{v[:12]}..." if len(v) > 12 else v for v in values)) or "(none)"


def _metric_tokens(key: str) -> set[str]:
    """Words that name what distinguishes a metric in weight roles (``lpips_alex`` -> ``{"alex"}``)."""
    parts = key.lower().split("_")
    return set(parts[1:]) if len(parts) > 1 else set(parts)


def _role_metrics(role: str, keys: Iterable[str]) -> set[str]:
    words = set(str(role).lower().replace("-", " ").replace("_", " ").split())
    return {k for k in keys if _metric_tokens(k) <= words}


def _weights_by_role(prov: Mapping[str, Any]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    records = prov.get("weights")
    if isinstance(records, list):
        for rec in records:
            if isinstance(rec, Mapping) and "role" in rec:
                out.setdefault(str(rec["role"]), set()).add(str(rec.get("sha256", "")))
    return out


def provenance_differences(
    base: Mapping[str, Any], new: Mapping[str, Any], metrics: Iterable[str]
) -> tuple[list[str], list[str]]:
    """What differs between two provenances, for the metrics both files hold.

    Args:
        base: BASE's provenance (``Engine.provenance()``).
        new: NEW's provenance.
        metrics: the shared metric keys.

    Returns:
        ``(differences, notes)``: ``differences`` change scores (a shared metric's settings, the sha256 of
        weight files of a shared metric's role, the decode options of :data:`DECODE_OPTIONS`, the compute
        dtype); ``notes`` are worth a warning only (package versions, device, weight roles recorded on one
        side only).
    """
    metrics = list(metrics)
    diffs: list[str] = []
    notes: list[str] = []

    bm, nm = base.get("metrics") or {}, new.get("metrics") or {}
    for m in metrics:
        pb, pn = bm.get(m), nm.get(m)
        if not isinstance(pb, Mapping) or not isinstance(pn, Mapping):
            continue
        for k in sorted(set(pb) | set(pn)):
            vb, vn = pb.get(k, _ABSENT), pn.get(k, _ABSENT)
            if vb != vn:
                diffs.append(f"{m} setting {k}: {_show(vb)} in BASE, {_show(vn)} in NEW")

    all_keys = set(metrics) | set(bm) | set(nm)
    wb, wn = _weights_by_role(base), _weights_by_role(new)
    for role in sorted(set(wb) | set(wn)):
        owners = _role_metrics(role, all_keys)
        if owners and not owners & set(metrics):
            continue  # weights of a metric only one file holds
        if role in wb and role in wn:
            if wb[role] != wn[role]:
                diffs.append(f"weights {role!r}: sha256 {_short_sha(wb[role])} in BASE, "
                             f"{_short_sha(wn[role])} in NEW")
        else:
            side = "BASE" if role in wb else "NEW"
            notes.append(f"weights {role!r} recorded only in {side}")

    ob, on = base.get("options") or {}, new.get("options") or {}
    if isinstance(ob, Mapping) and isinstance(on, Mapping):
        for k in DECODE_OPTIONS:
            if k in ob and k in on and ob[k] != on[k]:
                diffs.append(f"decode option {k}: {_show(ob[k])} in BASE, {_show(on[k])} in NEW")
    if "dtype" in base and "dtype" in new and base["dtype"] != new["dtype"]:
        diffs.append(f"compute dtype: {_show(base['dtype'])} in BASE, {_show(new['dtype'])} in NEW")

    vb, vn = base.get("versions") or {}, new.get("versions") or {}
    if isinstance(vb, Mapping) and isinstance(vn, Mapping):
        changed = [f"{k} {vb.get(k)} -> {vn.get(k)}" for k in VERSION_KEYS
                   if k in vb and k in vn and vb[k] != vn[k]]
        if changed:
            notes.append(f"versions differ ({', '.join(changed)}); scores may differ in the last digits")
    if "device" in base and "device" in new and base["device"] != new["device"]:
        notes.append(f"scored on different devices ({base['device']} vs {new['device']}); "
                     f"scores may differ in the last digits")
    return diffs, notes


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for k in value:
            _flatten(value[k], f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = value


def _metric_path(path: str, keys: set[str]) -> str | None:
    """The metric key a flattened settings path belongs to (a path segment that is a metric key), else None."""
    for part in path.split("."):
        if part in keys:
            return part
    return None


def settings_differences(
    base_prov: Mapping[str, Any] | None,
    new_prov: Mapping[str, Any] | None,
    metrics: Iterable[str] | None = None,
    *,
    labels: tuple[str, str] = ("BASE", "NEW"),
) -> list[str]:
    """What differs, between two runs' provenances, in the settings that change scores: one line each.

    The one comparison used by ``lpips diff`` (and meant for ``--resume``). Two layouts are read:

    - the settings record (``provenance["settings"]``, :mod:`lpipscli.settings`, hashed into
      ``provenance["settings_hash"]``): when both sides have one, equal hashes mean no difference; otherwise
      the records are compared key by key (nested keys joined with ``.``, weights per role, other lists
      whole). With ``metrics``, settings and weights of other metrics are left out, and the ``device``
      class (:data:`NOTE_SETTINGS`) is not a difference (``lpips diff`` notes it);
    - older files (no ``settings``): each compared metric's parameters, the sha256 of the weight files of a
      compared metric's role, the decode options of :data:`DECODE_OPTIONS` and the compute ``dtype``.

    Args:
        base_prov: the first run's provenance (BASE, or the existing file for ``--resume``); ``None``: unknown.
        new_prov: the second run's provenance (NEW, or this run).
        metrics: the metric keys compared (``lpips diff``: the shared ones); a setting that belongs to another
            metric is ignored. ``None``: every setting counts (``--resume``).
        labels: how the two sides are named in the lines.

    Returns:
        The differences, e.g. ``"settings.decode.alpha: \"drop\" in BASE, \"white\" in NEW"``; empty when
        none (or when a provenance is missing: the caller says that it could not check).
    """
    if not isinstance(base_prov, Mapping) or not isinstance(new_prov, Mapping):
        return []
    lb, ln = labels
    sb, sn = base_prov.get("settings"), new_prov.get("settings")
    if isinstance(sb, Mapping) and isinstance(sn, Mapping):
        hb, hn = base_prov.get("settings_hash"), new_prov.get("settings_hash")
        if hb and hn and hb == hn:
            return []
        all_keys = set(_metric_keys(base_prov)) | set(_metric_keys(new_prov))
        shared = None if metrics is None else set(metrics)
        fb: dict[str, Any] = {}
        fn: dict[str, Any] = {}
        _flatten(_settings_view(sb, shared, all_keys), "", fb)
        _flatten(_settings_view(sn, shared, all_keys), "", fn)
        out = []
        for path in sorted(set(fb) | set(fn)):
            owner = _metric_path(path, all_keys)
            if shared is not None and owner is not None and owner not in shared:
                continue
            if shared is not None and path.split(".", 1)[0] in NOTE_SETTINGS:
                continue  # lpips diff: reported as a note (scores may differ in the last digits)
            vb, vn = fb.get(path, _ABSENT), fn.get(path, _ABSENT)
            if vb != vn:
                out.append(f"settings.{path}: {_show(vb)} in {lb}, {_show(vn)} in {ln}")
        return out
    if metrics is None:
        metrics = list(dict.fromkeys([*_metric_keys(base_prov), *_metric_keys(new_prov)]))
        mb, mn = set(_metric_keys(base_prov)), set(_metric_keys(new_prov))
        extra = [f"metrics: {_show(sorted(mb))} in {lb}, {_show(sorted(mn))} in {ln}"] if mb != mn else []
    else:
        extra = []
    diffs, _ = provenance_differences(base_prov, new_prov, metrics)
    if labels != ("BASE", "NEW"):
        diffs = [d.replace(" in BASE", f" in {lb}").replace(" in NEW", f" in {ln}") for d in diffs]
    return extra + diffs


def _metric_keys(prov: Mapping[str, Any]) -> list[str]:
    settings = prov.get("settings")
    for source in (settings.get("metrics") if isinstance(settings, Mapping) else None, prov.get("metrics")):
        if isinstance(source, Mapping):
            return list(source)
        if isinstance(source, (list, tuple)):
            return [str(m) for m in source]
    return []


def _settings_view(settings: Mapping[str, Any], shared: set[str] | None, keys: set[str]) -> dict[str, Any]:
    """The settings record with ``weights`` as ``{role: [sha256, ...]}`` (records ``[role, sha256]`` or
    ``{"role", "sha256"[, "metric"]}``); with ``shared``, weights whose role or ``metric`` names only other
    metrics are left out."""
    out = dict(settings)
    weights = settings.get("weights")
    if isinstance(weights, (list, tuple)):
        by_role: dict[str, list[str]] = {}
        for rec in weights:
            if isinstance(rec, Mapping):
                role, sha, metric = str(rec.get("role", "")), str(rec.get("sha256", "")), rec.get("metric")
            elif isinstance(rec, (list, tuple)) and len(rec) == 2:
                (role, sha), metric = map(str, rec), None
            else:
                role, sha, metric = json.dumps(rec, sort_keys=True, default=str), "", None
            if shared is not None:
                owners = {metric} if metric is not None else _role_metrics(role, keys)
                if owners and not owners & shared:
                    continue
            by_role.setdefault(role, []).append(sha)
        out["weights"] = {role: sorted(shas) for role, shas in by_role.items()}
    return out


def _ref_normalizer(table: ResultTable, use_inputs: bool):
    """Maps a row's ``ref`` to the text compared in the join (``/`` and ``\\`` both separate folders)."""
    root = None
    if use_inputs:
        root = str(((table.provenance or {}).get("inputs") or {}).get("ref") or "") or None
    if root is None:
        return lambda ref: ref
    root = root.rstrip("/\\") or root
    n = len(root)

    def norm(ref: str) -> str:
        if ref == root:  # a single reference file (a video)
            return ref.replace("\\", "/").rsplit("/", 1)[-1]
        if ref.startswith(root) and ref[n:n + 1] in ("/", "\\"):
            return ref[n + 1:].replace("\\", "/").lstrip("/")
        return ref
    return norm


def _has_inputs_ref(table: ResultTable) -> bool:
    prov = table.provenance
    return isinstance(prov, Mapping) and isinstance(prov.get("inputs"), Mapping) and bool(prov["inputs"].get("ref"))


def _index(table: ResultTable, label: str, key_of) -> dict[tuple, dict]:
    out: dict[tuple, dict] = {}
    for row in table.rows:
        key = key_of(row)
        if key in out:
            shown = " / ".join(str(k) for k in key)
            raise UsageError(f"{label} {table.path} has more than one row for pair {shown}; cannot join on it")
        out[key] = row
    return out


def _is_failed(row: Mapping[str, Any]) -> bool:
    return is_failure(row.get("status"))


def _value(row: Mapping[str, Any] | None, m: str) -> float:
    if row is None:
        return math.nan
    v = row.get(m)
    return math.nan if v is None else float(v)


def diff_tables(base: ResultTable, new: ResultTable, *, force: bool = False,
                root_map: Mapping[str, str] | None = None) -> DiffResult:
    """Joins two result tables on the pair key and computes ``delta_<m> = new - base`` per shared metric.

    Args:
        base: the reference run (e.g. ``read_results("base.parquet")``).
        new: the run compared with it.
        force: diff even when the provenances say the scores were computed differently (the differences
            are recorded in ``warnings`` and ``differences``).
        root_map: ``{BASE dist_root: NEW dist_root}`` (``--map``) for runs whose distorted roots differ; roots
            not named join with the NEW root of the same name.

    Returns:
        A :class:`DiffResult` (rows: BASE's pairs in BASE's order, then pairs only in NEW in NEW's order).

    Raises:
        UsageError: the join is ambiguous (dist_root sets differ and are not one root each), one file has
            video frames and the other not, a pair appears twice in one file, no metric is shared, a file
            is itself a diff, or the provenances differ in a way that changes scores (without ``force``).
    """
    for label, t in (("BASE", base), ("NEW", new)):
        if isinstance(t.provenance, Mapping) and t.provenance.get("kind") == "diff":
            raise UsageError(f"{label} {t.path} is the output of lpips diff; diff takes two lpips compare results")
    warnings: list[str] = []
    for t in (base, new):
        warnings.extend(w for w in t.warnings if "no provenance" not in w and "provenance in its metadata" not in w)

    # metrics
    mb, mn = metric_columns(base), metric_columns(new)
    metrics = [m for m in mb if m in mn]
    if not metrics:
        raise UsageError(f"BASE {base.path} ({', '.join(mb) or 'no metrics'}) and NEW {new.path} "
                         f"({', '.join(mn) or 'no metrics'}) have no metric in common")
    only_b, only_n = [m for m in mb if m not in mn], [m for m in mn if m not in mb]
    if only_b:
        warnings.append(f"metric(s) only in BASE, not compared: {', '.join(only_b)}")
    if only_n:
        warnings.append(f"metric(s) only in NEW, not compared: {', '.join(only_n)}")

    # provenance
    differences: list[str] = []
    if base.provenance is None or new.provenance is None:
        which = " and ".join(f"{label} {t.path}" for label, t in (("BASE", base), ("NEW", new))
                             if t.provenance is None)
        warnings.append(f"{which} has no provenance: cannot check that both were scored with the same settings")
    else:
        differences = settings_differences(base.provenance, new.provenance, metrics)
        _, notes = provenance_differences(base.provenance, new.provenance, metrics)
        if differences and not force:
            raise UsageError(f"BASE {base.path} and NEW {new.path} were scored differently: "
                             f"{'; '.join(differences)}; their deltas would mix setting changes with image "
                             f"changes (--force diffs them anyway)")
        warnings.extend(f"scored differently (forced): {d}" for d in differences)
        warnings.extend(notes)

    # join key
    video_b, video_n = "frame" in base.columns, "frame" in new.columns
    if video_b != video_n:
        with_frames = "BASE" if video_b else "NEW"
        raise UsageError(f"{with_frames} has per-frame (video) rows and the other file does not; "
                         f"cannot join them")
    video = video_b
    roots_b, roots_n = base.dist_roots, new.dist_roots
    by_root, root_map, how = _join_roots(roots_b, roots_n, root_map)
    if how:
        warnings.append(how)
    join_on = (("dist_root",) if by_root else ()) + ("ref",) + (("frame",) if video else ())
    use_inputs = _has_inputs_ref(base) and _has_inputs_ref(new)
    norm_b, norm_n = _ref_normalizer(base, use_inputs), _ref_normalizer(new, use_inputs)

    def key_fn(norm):
        def key(row: Mapping[str, Any]) -> tuple:
            root = str(row.get("dist_root", ""))
            parts: tuple = (root_map.get(root, root),) if by_root else ()
            parts += (norm(str(row.get("ref", ""))),)
            if video:
                parts += (row.get("frame"),)
            return parts
        return key

    index_b = _index(base, "BASE", key_fn(norm_b))
    index_n = _index(new, "NEW", key_fn(norm_n))
    incomplete = [line for line in (_incomplete_line("BASE", base), _incomplete_line("NEW", new)) if line]
    warnings.extend(incomplete)
    why_missing = "not in NEW" + (" (its run did not finish)" if new.complete is False else "")
    new_root = roots_n[0] if roots_n else ""  # used when joining on ref alone (one root each)

    columns = diff_columns(metrics, video=video)
    rows: list[dict] = []
    missing: list[dict] = []
    extra: list[dict] = []

    def make(b: dict | None, n: dict | None) -> dict:
        src = n if n is not None else b
        if not by_root:
            root = new_root
        elif n is not None:
            root = str(n.get("dist_root", ""))
        else:
            root = str(b.get("dist_root", ""))
            root = root_map.get(root, root)  # reported under NEW's name of the root
        row: dict[str, Any] = {"ref": str(src.get("ref", "")), "dist_root": root}
        if video:
            row["frame"] = src.get("frame")
        for m in metrics:
            vb, vn = _value(b, m), _value(n, m)
            row[f"{m}_base"], row[f"{m}_new"] = vb, vn
            row[f"delta_{m}"] = vn - vb  # IEEE: NaN stays NaN, inf - inf is NaN, finite vs inf is +/-inf
        failed_b, failed_n = b is not None and _is_failed(b), n is not None and _is_failed(n)
        errors = []
        if failed_b:
            errors.append(f"BASE: {b.get('error') or 'failed'}")
        if failed_n:
            errors.append(f"NEW: {n.get('error') or 'failed'}")
        if b is not None and n is not None and not errors:
            for m in metrics:  # a shared metric without a value on one side (not flagged by its status)
                for side, v in (("BASE", row[f"{m}_base"]), ("NEW", row[f"{m}_new"])):
                    if math.isnan(v):
                        errors.append(f"{side}: {m}: no value")
        if n is None:
            status = MISSING_IN_NEW
            errors = [why_missing] + errors
        elif b is None:
            status = FAILED if failed_n else EXTRA_IN_NEW  # a new pair that broke is a failure
            if failed_n:
                errors.append("not in BASE")
        elif errors:
            status = FAILED
        else:
            status = OK
        row["status"] = status
        row["error"] = "; ".join(errors)
        return row

    for key, b in index_b.items():
        row = make(b, index_n.get(key))
        rows.append(row)
        if row["status"] == MISSING_IN_NEW:
            missing.append(row)
    for key, n in index_n.items():
        if key not in index_b:
            row = make(None, n)
            rows.append(row)
            extra.append(row)

    if missing:
        warnings.append(f"{len(missing)} pair(s) of BASE are missing in NEW ({why_missing}; they count as failed "
                        f"in gates)")
    if extra:
        warnings.append(f"{len(extra)} pair(s) of NEW are not in BASE (no delta)")

    params = (new.provenance or {}).get("metrics") or (base.provenance or {}).get("metrics") or {}
    provenance = {
        "tool": "lpipscli",
        "kind": "diff",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "metrics": {m: params.get(m, {}) if isinstance(params, Mapping) else {} for m in metrics},
        "join_on": list(join_on),
        "root_map": dict(root_map),
        "forced": bool(force and differences),
        "differences": list(differences),
        "counts": None,
        "base": {"path": base.path, "provenance": base.provenance},
        "new": {"path": new.path, "provenance": new.provenance},
    }
    result = DiffResult(columns=columns, rows=rows, metrics=metrics, join_on=join_on, missing=missing,
                        extra=extra, warnings=warnings, differences=differences, provenance=provenance,
                        base_path=base.path, new_path=new.path, root_map=dict(root_map), incomplete=incomplete)
    provenance["counts"] = result.counts
    return result


def _list(roots: list[str]) -> str:
    shown = ", ".join(repr(r) for r in roots[:4])
    more = f", ... ({len(roots) - 4} more)" if len(roots) > 4 else ""
    return f"[{shown}{more}]" if roots else "(none: no rows)"


def _last_folder(root: str) -> str:
    """The last folder name of a root as written (``/`` and ``\\`` both separate folders)."""
    return str(root).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _join_roots(roots_b: list[str], roots_n: list[str],
                given: Mapping[str, str] | None) -> tuple[bool, dict[str, str], str]:
    """How BASE's distorted roots meet NEW's: ``(join on dist_root?, {BASE root: NEW root}, a line to say)``.

    Rules, in order: an explicit mapping (every BASE root must end up at a NEW root); the same set of roots;
    one root each (join on ref alone); roots whose last folder names match one to one (``v1/jpeg_q30`` with
    ``v2/jpeg_q30``). Anything else is refused.
    """
    set_b, set_n = set(roots_b), set(roots_n)
    if given:
        unknown_b = [r for r in given if r not in set_b]
        unknown_n = [r for r in given.values() if r not in set_n]
        if unknown_b or unknown_n:
            parts = []
            if unknown_b:
                parts.append(f"BASE has no dist_root {_list(unknown_b)} (it has {_list(roots_b)})")
            if unknown_n:
                parts.append(f"NEW has no dist_root {_list(unknown_n)} (it has {_list(roots_n)})")
            raise UsageError(f"--map: {'; '.join(parts)}")
        mapped = {r: given.get(r, r) for r in roots_b}
        targets = list(mapped.values())
        dup = sorted({t for t in targets if targets.count(t) > 1})
        if dup:
            raise UsageError(f"--map: more than one BASE dist_root maps to {_list(dup)}")
        unmapped = [r for r in roots_b if mapped[r] not in set_n]
        if unmapped:
            raise UsageError(f"--map: BASE dist_root {_list(unmapped)} has no partner in NEW ({_list(roots_n)}); "
                             f"add --map BASE_ROOT=NEW_ROOT for it")
        shown = ", ".join(f"{b} -> {n}" for b, n in mapped.items() if b != n)
        return True, {b: n for b, n in mapped.items() if b != n}, f"joined distorted roots as mapped: {shown}"
    if set_b == set_n:
        return True, {}, ""
    if len(roots_b) == 1 and len(roots_n) == 1:
        return False, {}, ""
    names_b = [_last_folder(r) for r in roots_b]
    names_n = [_last_folder(r) for r in roots_n]
    if (len(set(names_b)) == len(names_b) and len(set(names_n)) == len(names_n)
            and set(names_b) == set(names_n)):
        by_name = {_last_folder(r): r for r in roots_n}
        mapping = {r: by_name[_last_folder(r)] for r in roots_b}
        shown = ", ".join(f"{b} -> {n}" for b, n in mapping.items())
        return True, {b: n for b, n in mapping.items() if b != n}, f"joined distorted roots by folder name: {shown}"
    raise UsageError(
        f"cannot join: BASE has dist_root {_list(roots_b)} and NEW has {_list(roots_n)}; files join on "
        f"(dist_root, ref) when both hold the same distorted inputs or inputs whose last folder names match one "
        f"to one, on ref when each holds exactly one, or as mapped with --map BASE_ROOT=NEW_ROOT (repeatable)"
    )


def _incomplete_line(label: str, table: ResultTable) -> str:
    """``"NEW x.csv: its run did not finish (...): 3 of 10 planned items missing"``, or ``""``."""
    if table.complete is not False:
        return ""
    return f"{label} {table.path}: {table.incomplete_text()}"


def parse_root_map(items: Iterable[str]) -> dict[str, str]:
    """``["v1/jpeg_q30=v2/jpeg_q30", ...]`` (``--map``) -> ``{"v1/jpeg_q30": "v2/jpeg_q30"}``.

    Raises:
        UsageError: an item without ``=`` or with an empty side, or one BASE root given twice.
    """
    out: dict[str, str] = {}
    for item in items:
        base, sep, new = str(item).partition("=")
        if not sep or not base or not new:
            raise UsageError(f"--map {item!r}: expected BASE_ROOT=NEW_ROOT (the dist_root values of the two files)")
        if base in out and out[base] != new:
            raise UsageError(f"--map: {base!r} is mapped twice ({out[base]!r} and {new!r})")
        out[base] = new
    return out
