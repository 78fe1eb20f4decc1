"""Quality gates for CI: parse ``--fail-if`` expressions such as ``mean(lpips_alex) > 0.1`` and evaluate them.

An expression is a **failure condition**: the gate FAILS when the expression is true and PASSES when it
is false. ``--fail-if "mean(lpips_alex) > 0.10"`` fails a run whose mean LPIPS is above 0.10;
``--fail-if "p5(psnr) < 30"`` fails one whose 5th-percentile PSNR is below 30.

Grammar (whitespace between tokens is ignored; keywords are case-insensitive, metric names are not)::

    gate       := [ "all" ":" ] ( stat_gate | row_gate )
    stat_gate  := STAT "(" METRIC ")" OP NUMBER
    row_gate   := ( "any" | "all" ) "(" METRIC OP NUMBER ")"
    STAT       := mean | median | min | max | std | hmean | count | pN      (pN: N in [0, 100], e.g. p5, p99.9)
    OP         := < | <= | > | >= | == | !=
    NUMBER     := int | decimal | exponent (1e-3) | inf | -inf            (NaN is refused)
    METRIC     := a known column name (no whitespace and none of  ( ) < > = ! : , )

Verdicts:

- ``STAT(METRIC) OP NUMBER`` fails when ``STAT OP NUMBER`` is true and passes when it is false. An
  undefined statistic fails too, because nothing could be checked.
- ``any(METRIC OP NUMBER)`` fails when at least one row matches the condition; passes when none does.
- ``all(METRIC OP NUMBER)`` fails when every row with a value matches; passes when at least one does not.
- ``any``/``all`` over zero rows with a value fail (nothing was checked).
- A group in which pairs failed (decode or scoring errors) fails every gate unless failures are
  explicitly allowed, whatever its values say.

Scope: without a prefix a gate is evaluated once per distorted input (``scope == "each"``); the prefix
``all:`` evaluates it once over the rows of all distorted inputs together (``scope == "all"``).

Statistics follow :mod:`lpipscli.stats`: NaN rows (pairs without a value) are left out; ``mean`` and
``std`` use finite values only (when every value is the same infinity, ``mean`` is that infinity and
``std`` is 0, so a lossless encode passes ``mean(psnr) < 40``); ``min``/``max``/``median``/``pN`` keep
infinities; ``hmean`` needs every value ``> 0``; ``count`` counts non-NaN rows; ``any``/``all`` test each non-NaN row.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lpipscli.errors import UsageError
from lpipscli.stats import _hmean, _percentile_sorted, mean_std, to_array

__all__ = [
    "ALL_INPUTS",
    "OPS",
    "SCOPE_ALL",
    "SCOPE_EACH",
    "STATS",
    "Gate",
    "GateOutcome",
    "GateResult",
    "evaluate_gate",
    "evaluate_gates",
    "parse_gate",
    "parse_gates",
]

SCOPE_EACH = "each"
SCOPE_ALL = "all"
#: The label :func:`evaluate_gates` gives outcomes of ``all:`` gates (and of gates with no inputs).
ALL_INPUTS = "(all inputs)"

#: Comparison operators, as written in a gate.
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
#: Named statistics (besides ``pN`` percentiles and the row quantifiers ``any``/``all``).
STATS = ("mean", "median", "min", "max", "std", "hmean", "count")
_QUANTIFIERS = ("any", "all")

_WS = re.compile(r"\s*")
_SCOPE = re.compile(r"([A-Za-z_]\w*)\s*:")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_PCT = re.compile(r"p(\d+(?:\.\d+)?)")
_METRIC = re.compile(r"[^\s()<>=!:,]+")
_OPRUN = re.compile(r"[<>=!]+")
_NUMRUN = re.compile(r"[+\-]?[\w.]+(?:(?<=[eE])[+\-]\w+)?")
_NUMBER = re.compile(r"[+\-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+\-]?\d+)?|inf(?:inity)?|nan)", re.IGNORECASE)
_DELIMS = "()<>=!:,"


def _format_number(x: float) -> str:
    """Shortest text that parses back to exactly ``x`` (integers without ``.0``)."""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x.is_integer() and abs(x) < 2**53:
        return str(int(x))
    return repr(x)


def _canonical_stat(word: str) -> str | None:
    """Lower-cased stat name, ``pN`` normalised (``p05`` -> ``p5``, ``p99.90`` -> ``p99.9``); else None."""
    w = word.lower()
    if w in STATS or w in _QUANTIFIERS:
        return w
    m = _PCT.fullmatch(w)
    if m:
        q = float(m.group(1))
        if 0.0 <= q <= 100.0:
            return "p" + np.format_float_positional(q, trim="-")  # shortest exact text, no exponent
    return None


@dataclass(frozen=True)
class Gate:
    """One parsed quality gate: a failure condition (``--fail-if``).

    The gate fails when its condition holds (``STAT(METRIC) OP NUMBER`` is true; for ``any`` at least
    one row matches ``METRIC OP NUMBER``; for ``all`` every row with a value matches) and passes
    otherwise; see :func:`evaluate_gate`.

    Attributes:
        scope: ``"each"`` (evaluated per distorted input, the default) or ``"all"`` (``all:`` prefix,
            all distorted inputs together).
        stat: ``mean``, ``median``, ``min``, ``max``, ``std``, ``hmean``, ``count``, ``pN`` (canonical:
            ``p5``, ``p99.9``), or the row quantifiers ``any`` / ``all``.
        metric: the column name.
        op: one of ``< <= > >= == !=``; the comparison that makes the gate fail when it is true.
        threshold: the number compared with (may be ``inf``; never NaN).
        text: the expression as the user wrote it (not part of equality; defaults to ``str(gate)``).

    ``str(gate)`` is the canonical text and ``parse_gate(str(gate), ...) == gate``.
    """

    scope: str
    stat: str
    metric: str
    op: str
    threshold: float
    text: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.scope not in (SCOPE_EACH, SCOPE_ALL):
            raise ValueError(f"scope must be {SCOPE_EACH!r} or {SCOPE_ALL!r}, got {self.scope!r}")
        stat = _canonical_stat(self.stat)
        if stat is None:
            raise ValueError(f"unknown stat {self.stat!r}")
        if self.op not in OPS:
            raise ValueError(f"unknown operator {self.op!r}")
        if not _METRIC.fullmatch(self.metric):
            raise ValueError(f"metric name {self.metric!r} cannot appear in a gate (whitespace or ()<>=!:,)")
        threshold = float(self.threshold)
        if math.isnan(threshold):
            raise ValueError("threshold must not be NaN")
        object.__setattr__(self, "stat", stat)
        object.__setattr__(self, "threshold", threshold)
        if not self.text:
            object.__setattr__(self, "text", str(self))

    @property
    def is_row_gate(self) -> bool:
        """Whether this is ``any(...)`` / ``all(...)`` over rows rather than a statistic."""
        return self.stat in _QUANTIFIERS

    @property
    def q(self) -> float | None:
        """The percentile of a ``pN`` gate, else ``None``."""
        return float(self.stat[1:]) if self.stat.startswith("p") else None

    @property
    def condition(self) -> str:
        """``"METRIC OP NUMBER"`` for row gates, ``"STAT(METRIC) OP NUMBER"`` otherwise (no scope)."""
        num = _format_number(self.threshold)
        if self.is_row_gate:
            return f"{self.metric} {self.op} {num}"
        return f"{self.stat}({self.metric}) {self.op} {num}"

    def __str__(self) -> str:
        prefix = "all:" if self.scope == SCOPE_ALL else ""
        if self.is_row_gate:
            return f"{prefix}{self.stat}({self.condition})"
        return prefix + self.condition


@dataclass(frozen=True)
class GateResult:
    """What :func:`evaluate_gate` found for one gate (a failure condition) on one set of values.

    Attributes:
        gate: the gate evaluated.
        observed: the statistic's value (``int`` for ``count``; for ``any``/``all`` the number of rows
            that match the failure condition); ``None`` when the statistic is undefined.
        passed: True when the failure condition did not hold; False when it held, when the statistic
            is undefined or there were no rows to check, and when pairs failed and failures are not
            allowed.
        reason: one line for humans, e.g. ``"mean(psnr) = 27.4 < 28 (over 4 finite values)"`` for a
            failed ``mean(psnr) < 28`` or ``"mean(psnr) = 29.9, not < 28 (over 4 finite values)"`` for a
            passed one.
        failed: the number of failed pairs the caller reported for this group.
    """

    gate: Gate
    observed: float | int | None
    passed: bool
    reason: str
    failed: int = 0


@dataclass(frozen=True)
class GateOutcome:
    """One gate's verdict on one scope: the unit the report renderers take.

    Attributes:
        scope: the distorted input's name, or :data:`ALL_INPUTS` for ``all:`` gates.
        gate_text: the gate's canonical text (``str(gate)``).
        observed: as in :class:`GateResult`.
        passed: True when the gate passed (its failure condition did not hold and nothing else failed
            it), as in :class:`GateResult`.
        reason: one human line.
    """

    scope: str
    gate_text: str
    observed: float | int | None
    passed: bool
    reason: str


# --------------------------------------------------------------------------------------------- parsing


class _Parser:
    def __init__(self, text: str, known: Sequence[str]):
        self.text = text
        self.known = known
        self.pos = 0

    def fail(self, detail: str, pos: int | None = None, hint: str = "") -> UsageError:
        pos = self.pos if pos is None else pos
        where = f"at column {pos + 1}"
        if pos >= len(self.text.rstrip()):
            where = f"at column {pos + 1} (end of expression)"
        return UsageError(f"gate {self.text!r}: {detail} {where}{hint}")

    def skip(self) -> None:
        self.pos = _WS.match(self.text, self.pos).end()

    def token_here(self) -> str:
        """The token at the cursor, for messages."""
        if self.pos >= len(self.text):
            return "nothing"
        ops = _OPRUN.match(self.text, self.pos)
        if ops:
            return repr(ops.group())
        ch = self.text[self.pos]
        if ch in _DELIMS:
            return repr(ch)
        m = _METRIC.match(self.text, self.pos)
        return repr(m.group()) if m else repr(ch)

    def expect(self, ch: str, what: str) -> None:
        self.skip()
        if self.text.startswith(ch, self.pos):
            self.pos += 1
            return
        raise self.fail(f"expected {what}, got {self.token_here()}")

    def parse(self) -> Gate:
        self.skip()
        if self.pos >= len(self.text):
            raise UsageError(f"gate {self.text!r}: empty expression; expected e.g. 'mean(psnr) > 30'")
        scope = SCOPE_EACH
        m = _SCOPE.match(self.text, self.pos)
        if m:
            if m.group(1).lower() != SCOPE_ALL:
                raise self.fail(f"unknown scope {m.group(1)!r}", None, "; the only scope prefix is 'all:'")
            scope = SCOPE_ALL
            self.pos = m.end()
            self.skip()
        start = self.pos
        m = _WORD.match(self.text, self.pos)
        if not m:
            raise self.fail(
                f"expected a statistic ({', '.join(STATS)}, pN) or any/all, got {self.token_here()}"
            )
        word = m.group()
        stat = _canonical_stat(word)
        if stat is None:
            pm = _PCT.fullmatch(word.lower())
            if pm:
                raise self.fail(f"percentile {word!r} is outside p0..p100", start)
            names = [*STATS, *_QUANTIFIERS, "p5", "p95"]
            close = difflib.get_close_matches(word.lower(), names, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.fail(
                f"unknown statistic {word!r}{hint}", start,
                f"; use one of {', '.join(STATS)}, pN (e.g. p95, p99.9), any(...), all(...)",
            )
        self.pos = m.end()
        self.expect("(", "'('")
        metric = self.metric()
        if stat in _QUANTIFIERS:
            op = self.op(f"; {stat}(...) takes a condition: {stat}(METRIC OP NUMBER)")
            threshold = self.number()
            self.expect(")", "')'")
        else:
            self.expect(")", "')'")
            op = self.op("")
            threshold = self.number()
        self.skip()
        if self.pos < len(self.text):
            raise self.fail(f"unexpected {self.token_here()} after the end of the gate")
        return Gate(scope, stat, metric, op, threshold, text=self.text)

    def metric(self) -> str:
        self.skip()
        m = _METRIC.match(self.text, self.pos)
        if not m:
            raise self.fail(f"expected a metric name, got {self.token_here()}")
        name = m.group()
        if name not in self.known:
            close = difflib.get_close_matches(name, list(self.known), n=1, cutoff=0.6)
            if not close:  # case slips: PSNR for psnr
                close = [k for k in self.known if k.lower() == name.lower()][:1]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = sorted(self.known)
            listing = ", ".join(known[:30]) + (f", ... ({len(known) - 30} more)" if len(known) > 30 else "")
            raise self.fail(f"unknown metric {name!r}{hint}", None, f"; known: {listing or '(none)'}")
        self.pos = m.end()
        return name

    def op(self, hint: str) -> str:
        self.skip()
        m = _OPRUN.match(self.text, self.pos)
        if not m:
            raise self.fail(f"expected a comparison operator ({' '.join(OPS)}), got {self.token_here()}",
                            None, hint)
        if m.group() not in OPS:
            raise self.fail(f"unknown operator {m.group()!r}", None, f"; use one of {' '.join(OPS)}")
        self.pos = m.end()
        return m.group()

    def number(self) -> float:
        self.skip()
        m = _NUMRUN.match(self.text, self.pos)
        if not m or not _NUMBER.fullmatch(m.group()):
            got = repr(m.group()) if m else self.token_here()
            raise self.fail(f"expected a number (e.g. 0.1, 1e-3, 30, inf), got {got}")
        value = float(m.group())
        if math.isnan(value):
            raise self.fail("NaN is not a usable threshold")
        self.pos = m.end()
        return value


def parse_gate(text: str, known_metrics: Iterable[str]) -> Gate:
    """Parses one gate expression (a failure condition, as given to ``--fail-if``).

    Args:
        text: e.g. ``"mean(lpips_alex) > 0.1"``, ``"all: p5(psnr) < 30"``, ``"any(ssim < 0.9)"``.
        known_metrics: the column names a gate may name (the metrics of this run, deltas, ...).

    Returns:
        The :class:`Gate`, with ``text`` set to ``text``.

    Raises:
        UsageError: malformed expression or unknown metric; the one-line message quotes the expression,
            names the bad token and its 1-based column, and suggests the closest known name.
    """
    known = list(dict.fromkeys(known_metrics))
    return _Parser(text, known).parse()


def parse_gates(texts: Iterable[str], known_metrics: Iterable[str]) -> list[Gate]:
    """:func:`parse_gate` for each text (e.g. each ``--fail-if`` option), in order."""
    known = list(dict.fromkeys(known_metrics))
    return [parse_gate(t, known) for t in texts]


# ------------------------------------------------------------------------------------------ evaluation


def _fmt(x: float | int | None, other: float | None = None) -> str:
    """Short number text; full precision when the short forms of ``x`` and ``other`` would collide."""
    if x is None:
        return "undefined"
    if isinstance(x, int):
        return str(x)
    short = f"{x:.6g}"
    if other is not None and x != other and short == f"{other:.6g}":
        return repr(float(x))
    return short


def _exclusions(n_nan: int, n_inf: int) -> str:
    """``"1 infinite and 2 NaN excluded"``, or ``""`` when nothing was left out."""
    parts = []
    if n_inf:
        parts.append(f"{n_inf} infinite")
    if n_nan:
        parts.append(f"{n_nan} NaN")
    return f"{' and '.join(parts)} excluded" if parts else ""


def _over(n: int, what: str, excluded: str) -> str:
    """``"over 4 finite values; 1 infinite excluded"``."""
    return f"over {n} {what}value{'s' * (n != 1)}" + (f"; {excluded}" if excluded else "")


def _stat_value(gate: Gate, arr: np.ndarray) -> tuple[float | int | None, str, str]:
    """(observed, what it was computed over, why it is undefined when observed is None)."""
    nan = np.isnan(arr)
    present = arr[~nan]
    n_nan = int(nan.sum())
    stat = gate.stat
    if stat in ("mean", "std"):
        finite = present[np.isfinite(present)]
        n_inf = int(present.size - finite.size)
        mean, std, n_used = mean_std(present)
        if finite.size == 0 and mean is not None:  # every value the same infinity (stats rule 3)
            excluded = _exclusions(n_nan, 0)
            return (mean if stat == "mean" else std), _over(n_used, "", excluded) + f", all {_fmt(mean)}", ""
        excluded = _exclusions(n_nan, n_inf)
        over = _over(finite.size, "finite ", excluded)
        if mean is None:
            return None, over, "no finite values" + (f" ({excluded})" if excluded else "")
        return (mean if stat == "mean" else std), over, ""
    excluded = _exclusions(n_nan, 0)
    over = _over(present.size, "", excluded)
    if stat == "count":
        return int(present.size), over, ""
    if present.size == 0:
        return None, over, "no values" + (f" ({excluded})" if excluded else "")
    srt = np.sort(present)
    if stat == "min":
        return float(srt[0]), over, ""
    if stat == "max":
        return float(srt[-1]), over, ""
    if stat == "hmean":
        value = _hmean(srt)
        return value, over, "" if value is not None else f"it needs every value > 0 (min is {_fmt(float(srt[0]))})"
    q = 50.0 if stat == "median" else float(gate.q)  # type: ignore[arg-type]
    value = _percentile_sorted(srt, q)
    return value, over, "" if value is not None else "it falls between -inf and +inf (linear interpolation)"


def _row_name(keys: Sequence[str] | None, i: int) -> str:
    return repr(keys[i]) if keys is not None else f"row {i}"


def evaluate_gate(
    gate: Gate,
    values: Any,
    *,
    failed: int = 0,
    allow_failed: bool = False,
    keys: Sequence[str] | None = None,
) -> GateResult:
    """Evaluates one gate on one group's values of ``gate.metric``; the gate is a failure condition.

    Verdicts (``passed``):

    - ``STAT(METRIC) OP NUMBER``: False when ``observed OP NUMBER`` is true, True when it is false;
      False when the statistic is undefined (nothing could be checked).
    - ``any(METRIC OP NUMBER)``: False when at least one row with a value matches, True when none does.
    - ``all(METRIC OP NUMBER)``: False when every row with a value matches, True when one does not.
    - ``any``/``all`` with no rows with a value: False.
    - ``failed > 0`` without ``allow_failed``: False, whatever the values say.

    Args:
        gate: the parsed gate.
        values: 1-D floats, one per pair (NaN or ``None``: no value). For an ``all:`` gate pass the
            values of every distorted input concatenated (or use :func:`evaluate_gates`).
        failed: how many pairs of this group failed (decode or scoring errors).
        allow_failed: when False (the default) a group with ``failed > 0`` never passes.
        keys: optional row names, aligned with ``values``, used to name a matching (for ``any``) or
            non-matching (for ``all``) row in the reason.

    Returns:
        A :class:`GateResult`. ``observed`` is the statistic, or for ``any``/``all`` the number of rows
        that match the condition; it is ``None`` (and ``passed`` False) when the statistic is undefined
        (no finite values for ``mean``/``std``, no values, ``hmean`` with values ``<= 0``).

    Raises:
        ValueError: values not 1-D, ``failed < 0``, or ``keys`` of a different length.
    """
    arr = to_array(values)
    if failed < 0:
        raise ValueError(f"failed must be >= 0, got {failed}")
    if keys is not None and len(keys) != arr.size:
        raise ValueError(f"keys has {len(keys)} entries for {arr.size} values")
    compare = OPS[gate.op]
    thr = gate.threshold

    if gate.is_row_gate:
        idx = np.flatnonzero(~np.isnan(arr))
        match = [bool(compare(float(arr[i]), thr)) for i in idx]
        n_match = sum(match)
        observed: float | int | None = n_match
        n_nan = int(arr.size - idx.size)
        skipped = f"; {n_nan} NaN row{'s' * (n_nan != 1)} skipped" if n_nan else ""
        counted = f"{n_match} of {idx.size} row{'s' * (idx.size != 1)} match"
        if idx.size == 0:
            passed = False
            reason = f"{gate}: no rows with a value to check{skipped}"
        elif gate.stat == "any":
            passed = n_match == 0
            reason = f"{gate}: {counted}"
            if not passed:
                first = int(idx[match.index(True)])
                shown = _fmt(float(arr[first]), thr)
                reason += f"; first: {_row_name(keys, first)} = {shown} {gate.op} {_fmt(thr, float(arr[first]))}"
            reason += skipped
        else:
            passed = n_match < idx.size
            reason = f"{gate}: {counted}"
            if passed:
                first = int(idx[match.index(False)])
                shown = _fmt(float(arr[first]), thr)
                reason += (f"; first that does not: {_row_name(keys, first)} = {shown}, "
                           f"not {gate.op} {_fmt(thr, float(arr[first]))}")
            reason += skipped
    else:
        observed, over, undefined = _stat_value(gate, arr)
        label = f"{gate.stat}({gate.metric})"
        if observed is None:
            passed = False
            reason = f"{label} is undefined: {undefined}; the gate fails because nothing could be checked"
        else:
            passed = not compare(observed, thr)
            shown, shown_thr = _fmt(observed, thr), _fmt(thr, float(observed))
            if passed:
                reason = f"{label} = {shown}, not {gate.op} {shown_thr} ({over})"
            else:
                reason = f"{label} = {shown} {gate.op} {shown_thr} ({over})"
        if gate.scope == SCOPE_ALL:
            reason = "all: " + reason

    if failed:
        plural = "s" if failed != 1 else ""
        if allow_failed:
            reason += f"; {failed} failed pair{plural} ignored (failures allowed)"
        else:
            passed = False
            reason += f"; {failed} pair{plural} failed, so the gate fails unless failures are allowed"
    return GateResult(gate=gate, observed=observed, passed=bool(passed), reason=reason, failed=int(failed))


def evaluate_gates(
    gates: Iterable[Gate],
    groups: Mapping[str, Mapping[str, Any]],
    *,
    failed: Mapping[str, int] | None = None,
    allow_failed: bool = False,
    keys: Mapping[str, Sequence[str]] | None = None,
) -> list[GateOutcome]:
    """Evaluates every gate on its scope(s): per distorted input, or ``all:`` over all of them together.

    Each gate is a failure condition (``--fail-if``): an outcome passes when its condition does not hold
    on that scope, as :func:`evaluate_gate` decides.

    Args:
        gates: parsed gates, in the order they were given.
        groups: ``{distorted input name: {metric column: 1-D values}}``, in report order.
        failed: ``{distorted input name: number of failed pairs}``; missing names count 0. ``all:``
            gates see the sum.
        allow_failed: passed to :func:`evaluate_gate`.
        keys: optional ``{distorted input name: row names aligned with the values}``; for ``all:``
            gates the names become ``"input: row"`` (``"input: row i"`` without keys).

    Returns:
        One :class:`GateOutcome` per gate and scope: gates in order; an ``each`` gate yields one per
        group in ``groups`` order, an ``all:`` gate one with scope :data:`ALL_INPUTS`. With no groups at
        all, each gate yields one failing outcome (scope :data:`ALL_INPUTS`), so CI cannot pass vacuously.

    Raises:
        UsageError: a group has no column for a gate's metric.
    """
    failed = failed or {}
    outcomes: list[GateOutcome] = []

    def column(group: str, gate: Gate) -> Any:
        cols = groups[group]
        if gate.metric not in cols:
            raise UsageError(f"gate {gate.text!r}: input {group!r} has no values for metric {gate.metric!r}")
        return cols[gate.metric]

    for gate in gates:
        if not groups:
            outcomes.append(GateOutcome(ALL_INPUTS, str(gate), None, False, f"{gate}: no distorted inputs"))
        elif gate.scope == SCOPE_ALL:
            parts = [to_array(column(g, gate)) for g in groups]
            if keys is not None:
                all_keys = [f"{g}: {k}" for g in groups for k in keys[g]]
            else:
                all_keys = [f"{g}: row {i}" for g, part in zip(groups, parts, strict=True) for i in range(part.size)]
            res = evaluate_gate(gate, np.concatenate(parts), failed=sum(failed.get(g, 0) for g in groups),
                                allow_failed=allow_failed, keys=all_keys)
            outcomes.append(GateOutcome(ALL_INPUTS, str(gate), res.observed, res.passed, res.reason))
        else:
            for g in groups:
                res = evaluate_gate(gate, column(g, gate), failed=failed.get(g, 0), allow_failed=allow_failed,
                                    keys=None if keys is None else keys[g])
                outcomes.append(GateOutcome(g, str(gate), res.observed, res.passed, res.reason))
    return outcomes
