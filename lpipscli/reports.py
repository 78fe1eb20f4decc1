"""Pure report renderers for CI: JUnit XML, a GitHub step summary, GitHub annotations.

Everything here returns strings (no I/O); the caller writes files atomically and prints annotations.

Inputs:

- gate verdicts are :class:`lpipscli.gates.GateOutcome` ``(scope, gate_text, observed, passed, reason)``,
  as :func:`lpipscli.gates.evaluate_gates` returns them (re-exported here);
- per-pair results, optional, are ``(pair name, status, message)`` tuples with ``status`` one of
  :data:`PAIR_STATUSES`;
- summary tables are ``{metric: {distorted input name: lpipscli.stats.summarize(...) dict}}``.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lpipscli.gates import GateOutcome

__all__ = [
    "PAIR_STATUSES",
    "GateOutcome",
    "github_annotations",
    "github_step_summary",
    "junit_xml",
]

#: Per-pair statuses: "ok"/"passed"/"extra_in_new" (a plain testcase), "failed"/"missing_in_new" (<failure>),
#: "error"/"partial" (<error>: a metric could not score the pair), "skipped" (<skipped>). See lpipscli.status.
PAIR_STATUSES = ("ok", "passed", "failed", "error", "skipped", "partial", "missing_in_new", "extra_in_new")
_PAIR_KINDS = {"ok": "", "passed": "", "extra_in_new": "", "failed": "failure", "missing_in_new": "failure",
               "error": "error", "partial": "error", "skipped": "skipped"}

# XML 1.0 Char production; anything else (control characters, lone surrogates from undecodable file
# names) cannot appear in a document even escaped, so it is written as a visible Python-style escape.
_XML_BAD = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(text: Any) -> str:
    return _XML_BAD.sub(lambda m: repr(m.group())[1:-1], str(text))


# Control characters (except TAB, LF, CR) and lone surrogates: unprintable, and a lone surrogate cannot
# even be encoded as UTF-8 when the caller writes the text out.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def _printable(text: Any) -> str:
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], str(text))


def _num(x: Any, digits: int = 6) -> str:
    """A number for humans: ``None`` -> ``n/a``, ints as is, floats with ``digits`` significant digits."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int):
        return str(x)
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def _suite(parent: ET.Element, name: str, cases: list[tuple[str, str, str, str, str]]) -> ET.Element:
    """``cases``: (classname, name, kind in {"", "failure", "error", "skipped"}, message, details)."""
    counts = {k: sum(1 for c in cases if c[2] == k) for k in ("failure", "error", "skipped")}
    suite = ET.SubElement(
        parent, "testsuite", name=_xml_safe(name), tests=str(len(cases)), failures=str(counts["failure"]),
        errors=str(counts["error"]), skipped=str(counts["skipped"]), time="0",
    )
    for classname, case_name, kind, message, details in cases:
        case = ET.SubElement(suite, "testcase", classname=_xml_safe(classname), name=_xml_safe(case_name),
                             time="0")
        if kind:
            child = ET.SubElement(case, kind, message=_xml_safe(message))
            if kind != "skipped":
                child.set("type", "QualityGateFailed" if kind == "failure" else "PairError")
            if details:
                child.text = _xml_safe(details)
        elif details:
            ET.SubElement(case, "system-out").text = _xml_safe(details)
    return suite


def junit_xml(
    gate_results: Iterable[GateOutcome],
    *,
    suite_name: str = "lpipscli",
    per_pair: Iterable[Sequence[str]] | None = None,
) -> str:
    """Renders gate verdicts (and optionally per-pair results) as JUnit XML.

    Layout (accepted by the GitLab, Jenkins and GitHub JUnit reporters)::

        <testsuites name=suite_name tests failures errors skipped time>
          <testsuite name=suite_name ...>                 one testcase per gate per scope:
            <testcase classname=SCOPE name=GATE_TEXT>     SCOPE = distorted input name or "(all inputs)"
              <failure message=REASON type="QualityGateFailed">REASON + observed</failure>   if failed
              <system-out>REASON + observed</system-out>                                      if passed
          <testsuite name=suite_name + ".pairs" ...>      only when per_pair is given:
            <testcase classname=suite_name + ".pairs" name=PAIR> with <failure>, <error> or <skipped>

    ``tests``/``failures``/``errors``/``skipped`` are counted per suite and in total; ``time`` is 0
    (the output is deterministic). Characters XML cannot carry are written as ``\\xNN`` escapes.

    Args:
        gate_results: :class:`GateOutcome` items, in report order.
        suite_name: the name of the top-level suites.
        per_pair: optional ``(pair name, status, message)`` items, status in :data:`PAIR_STATUSES`.

    Returns:
        The XML document as a string, with an XML declaration and a trailing newline.

    Raises:
        ValueError: an unknown per-pair status.
    """
    root = ET.Element("testsuites", name=_xml_safe(suite_name))
    gate_cases = []
    for o in gate_results:
        details = f"{o.reason}\nobserved: {_num(o.observed, 17)}"
        gate_cases.append((o.scope, o.gate_text, "" if o.passed else "failure", o.reason, details))
    suites = [_suite(root, suite_name, gate_cases)]
    if per_pair is not None:
        kinds = _PAIR_KINDS
        pair_cases = []
        for item in per_pair:
            name, status, message = item
            if status not in kinds:
                raise ValueError(f"pair {name!r}: unknown status {status!r}; expected one of {PAIR_STATUSES}")
            pair_cases.append((f"{suite_name}.pairs", name, kinds[status], message or "", message or ""))
        suites.append(_suite(root, f"{suite_name}.pairs", pair_cases))
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key)) for s in suites)))
    root.set("time", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ----------------------------------------------------------------------------------------------- GitHub

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&#!])")


def _md(text: Any) -> str:
    """Text for a Markdown table cell: specials backslash-escaped, line breaks turned into spaces."""
    flat = re.sub(r"[\r\n]+", " ", _printable(text))
    return _MD_SPECIAL.sub(r"\\\1", flat)


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


_SUMMARY_COLUMNS = ("count", "failed", "NaN", "±inf", "mean", "median", "p5", "p95", "min", "max")


def github_step_summary(
    summary_tables: Mapping[str, Mapping[str, Mapping[str, Any]]],
    gate_outcomes: Iterable[GateOutcome] = (),
    *,
    failed: Mapping[str, int] | None = None,
    title: str = "lpipscli results",
) -> str:
    """Renders a Markdown report for ``$GITHUB_STEP_SUMMARY``.

    One table per metric with a row per distorted input: count (all rows), failed (from ``failed``;
    ``n/a`` when it is not given), NaN (rows without a value), ±inf, mean (over finite values), median,
    p5, p95, min, max. Then, when there are gate outcomes, a gates table with a verdict per gate and
    scope, headed by the pass/fail counts.

    Args:
        summary_tables: ``{metric: {distorted input name: summarize() dict}}``, in display order; the
            dict's ``higher_is_better`` (if not None) is shown next to the metric name.
        gate_outcomes: :class:`GateOutcome` items.
        failed: ``{distorted input name: number of failed pairs}``.
        title: the level-2 heading.

    Returns:
        Markdown text ending with a newline.
    """
    lines = [f"## {_md(title)}", ""]
    for metric, groups in summary_tables.items():
        direction = next((s.get("higher_is_better") for s in groups.values()), None)
        suffix = {True: " (higher is better)", False: " (lower is better)"}.get(direction, "")
        lines += [f"### {_md(metric)}{suffix}", ""]
        lines.append(_row(["input", *_SUMMARY_COLUMNS]))
        lines.append(_row(["---"] + ["---:"] * len(_SUMMARY_COLUMNS)))
        for group, s in groups.items():
            n_fail = _num(failed.get(group, 0)) if failed is not None else "n/a"
            n_inf = int(s.get("n_posinf", 0)) + int(s.get("n_neginf", 0))
            cells = [_md(group), _num(s.get("count")), n_fail, _num(s.get("n_nan")), _num(n_inf)]
            cells += [_num(s.get(k), 5) for k in ("mean", "median", "p5", "p95", "min", "max")]
            lines.append(_row(cells))
        lines += ["", "_mean over finite values only; order statistics include ±inf; NaN rows have no value._",
                  ""]
    outcomes = list(gate_outcomes)
    if outcomes:
        n_pass = sum(o.passed for o in outcomes)
        n_fail = len(outcomes) - n_pass
        verdict = f"✅ all {n_pass} passed" if n_fail == 0 else f"❌ {n_fail} of {len(outcomes)} failed"
        lines += [f"### Quality gates: {verdict}", ""]
        lines.append(_row(["verdict", "input", "gate", "observed", "reason"]))
        lines.append(_row(["---", "---", "---", "---:", "---"]))
        for o in outcomes:
            mark = "✅ pass" if o.passed else "❌ FAIL"
            lines.append(_row([mark, _md(o.scope), _md(o.gate_text), _num(o.observed), _md(o.reason)]))
        lines.append("")
    return "\n".join(lines) + "\n"


def _escape_data(text: str) -> str:
    """GitHub workflow-command message escaping (actions/toolkit ``escapeData``)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    """GitHub workflow-command property escaping (actions/toolkit ``escapeProperty``)."""
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(outcomes: Iterable[GateOutcome]) -> list[str]:
    """``::error`` workflow commands, one per failed gate outcome (passed ones give nothing).

    Each line is ``::error title=Quality gate failed: GATE [SCOPE]::SCOPE: REASON`` with the title
    escaped as a property (``%``, CR, LF, ``:`` and ``,``) and the message as data (``%``, CR, LF), as
    GitHub requires; print each line to stdout. Other control characters and lone surrogates (from
    undecodable file names) are written as ``\\xNN`` / ``\\udcNN`` escapes.

    Args:
        outcomes: :class:`GateOutcome` items.

    Returns:
        The lines, without trailing newlines, in input order.
    """
    lines = []
    for o in outcomes:
        if o.passed:
            continue
        title = _printable(f"Quality gate failed: {o.gate_text} [{o.scope}]")
        message = _printable(f"{o.scope}: {o.reason}")
        lines.append(f"::error title={_escape_property(title)}::{_escape_data(message)}")
    return lines
