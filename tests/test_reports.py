"""lpipscli.reports: JUnit XML parsed back with ElementTree, Markdown tables, GitHub annotation escaping."""

from __future__ import annotations

import math
import operator
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lpipscli.gates import ALL_INPUTS, evaluate_gates, parse_gates
from lpipscli.reports import GateOutcome, github_annotations, github_step_summary, junit_xml
from lpipscli.stats import summarize

INF = math.inf
NAN = math.nan
KNOWN = ["psnr", "lpips_alex"]
# No numeric comparisons in this file: outputs are text, checked exactly.
TOLERANCES: dict[str, tuple[float, float]] = {}

# XML 1.0 Char production, written out independently of the module.
XML_CHARS = st.characters(
    codec="utf-8",
    exclude_categories=["Cs"],
    exclude_characters="".join(chr(c) for c in range(0x20) if c not in (0x9, 0xA, 0xD)) + "\ufffe\uffff",
)
# For annotations: printable text plus the characters GitHub needs escaped (other control characters
# are deliberately written as visible escapes, tested apart).
ANNOTATION_CHARS = st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"], include_characters="\r\n%:,")
HYPOTHESIS = settings(max_examples=60, deadline=None)


GROUPS = {"dist_a": {"psnr": [31.0, 32.0, INF]}, "dist_b": {"psnr": [10.0, NAN, 20.0]}}
FAILED = {"dist_b": 1}
# Gates are failure conditions (--fail-if): a gate fails when its expression is true.
GATES = ["median(psnr) < 30", "all:min(psnr) < 5", "any(psnr < 15)"]


def outcomes():
    return evaluate_gates(parse_gates(GATES, KNOWN), GROUPS, failed=FAILED)


def expected_verdicts():
    """(scope, passed) per outcome of :func:`outcomes`, from the fail-if rule with numpy."""
    def arr(group):
        return np.asarray(GROUPS[group]["psnr"], dtype=float)

    def present(a):
        return a[~np.isnan(a)]

    every = np.concatenate([arr(g) for g in GROUPS])
    out = []
    for g in GROUPS:  # median(psnr) < 30, per input
        fails = operator.lt(float(np.median(present(arr(g)))), 30.0) or FAILED.get(g, 0) > 0
        out.append((g, not fails))
    # all:min(psnr) < 5 over all inputs; failed pairs of any input count against it
    out.append((ALL_INPUTS, not (float(np.min(present(every))) < 5.0 or sum(FAILED.values()) > 0)))
    for g in GROUPS:  # any(psnr < 15), per input
        fails = bool(np.any(present(arr(g)) < 15.0)) or FAILED.get(g, 0) > 0
        out.append((g, not fails))
    return out


def test_outcomes_follow_fail_if_semantics():
    outs = outcomes()
    assert [(o.scope, o.passed) for o in outs] == expected_verdicts()
    assert {o.passed for o in outs} == {True, False}  # both verdicts occur in the fixtures below
    dist_a_median = outs[0]
    assert dist_a_median.passed and ", not < 30" in dist_a_median.reason
    dist_b_any = outs[-1]
    assert not dist_b_any.passed and "first: row 0 = 10 < 15" in dist_b_any.reason


def parse(xml_text):
    assert xml_text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(xml_text.encode("utf-8"))


def test_junit_counts_and_failures():
    outs = outcomes()
    expected = expected_verdicts()
    n_tests, n_failed = str(len(expected)), str(sum(not ok for _, ok in expected))
    root = parse(junit_xml(outs, suite_name="quality"))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == (n_tests, n_failed, "0")
    (suite,) = root.findall("testsuite")
    assert (suite.get("name"), suite.get("tests"), suite.get("failures")) == ("quality", n_tests, n_failed)
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [(o.scope, o.gate_text) for o in outs]
    for case, o, (_, ok) in zip(cases, outs, expected, strict=True):
        failure = case.find("failure")
        assert (failure is None) == ok
        if o.passed:
            assert failure is None
            assert o.reason in case.find("system-out").text
        else:
            assert failure is not None and failure.get("message") == o.reason
            assert o.reason in failure.text
    assert cases[2].get("classname") == ALL_INPUTS


def test_junit_per_pair_cases():
    pairs = [("dist_a/1.png", "ok", ""), ("dist_b/2.png", "error", "DecodeError: truncated <file> & more"),
             ("dist_b/3.png", "skipped", "not scored"), ("dist_b/4.png", "failed", "score out of range")]
    root = parse(junit_xml([], per_pair=pairs))
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("4", "1", "1",
                                                                                                    "1")
    gates_suite, pair_suite = root.findall("testsuite")
    assert gates_suite.get("tests") == "0"
    assert pair_suite.get("name") == "lpipscli.pairs"
    cases = pair_suite.findall("testcase")
    assert [c.get("name") for c in cases] == [p[0] for p in pairs]
    assert len(cases[0]) == 0
    assert cases[1].find("error").get("message") == "DecodeError: truncated <file> & more"
    assert cases[2].find("skipped") is not None
    assert cases[3].find("failure").get("message") == "score out of range"
    with pytest.raises(ValueError, match="status"):
        junit_xml([], per_pair=[("x", "weird", "")])


def test_junit_per_pair_cases_for_the_row_statuses():
    """The status vocabulary of lpipscli.status: partial is an <error>, missing_in_new a <failure>,
    extra_in_new a plain case."""
    pairs = [("a", "partial", "ms_ssim: too small"), ("b", "missing_in_new", "not in NEW"), ("c", "extra_in_new", "")]
    root = parse(junit_xml([], per_pair=pairs))
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "1")
    cases = root.findall("testsuite")[1].findall("testcase")
    assert cases[0].find("error").get("message") == "ms_ssim: too small"
    assert cases[1].find("failure").get("message") == "not in NEW" and len(cases[2]) == 0


@HYPOTHESIS
@given(scope=st.text(XML_CHARS, max_size=20), reason=st.text(XML_CHARS, max_size=40), passed=st.booleans())
def test_junit_escapes_anything_xml_can_hold(scope, reason, passed):
    o = GateOutcome(scope, 'mean(psnr) > 30 & "x" < \'y\'', 1.0, passed, reason)
    root = parse(junit_xml([o]))
    case = root.find("testsuite/testcase")
    assert case.get("classname") == scope
    assert case.get("name") == o.gate_text
    if not passed:
        # Attribute values are normalised by XML parsers only when written raw; escaped they survive.
        assert case.find("failure").get("message") == reason


def test_junit_survives_characters_xml_cannot_hold():
    scope = "bad\x00\x1b name \udcff"  # a control character and an undecodable-filename surrogate
    text = junit_xml([GateOutcome(scope, "mean(psnr) > 1", None, False, "oops\x07")])
    root = parse(text)  # encodable as UTF-8 and well-formed
    case = root.find("testsuite/testcase")
    assert case.get("classname") == "bad\\x00\\x1b name \\udcff"
    assert case.find("failure").get("message") == "oops\\x07"


def cells(line):
    """Splits a Markdown table row on unescaped pipes."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def test_step_summary_tables():
    tables = {
        "psnr": {"dist_a": summarize([31.0, 32.0, INF], higher_is_better=True),
                 "dist|b": summarize([10.0, NAN, 20.0], higher_is_better=True)},
        "lpips_alex": {"dist_a": summarize([0.1, 0.2]), "dist|b": summarize([NAN])},
    }
    outs = outcomes()
    md = github_step_summary(tables, outs, failed={"dist|b": 1})
    lines = md.splitlines()
    assert "### psnr (higher is better)" in lines and "### lpips\\_alex" in lines  # Markdown-escaped _
    rows = [cells(line) for line in lines if line.startswith("|")]
    header = ["input", "count", "failed", "NaN", "±inf", "mean", "median", "p5", "p95", "min", "max"]
    assert rows.count(header) == 2
    width = None  # every table is rectangular: each row has as many cells as its header
    for line in lines:
        if not line.startswith("|"):
            width = None
            continue
        width = width or len(cells(line))
        assert len(cells(line)) == width, line
    psnr_b = next(r for r in rows if r[0] == "dist\\|b" and r[1] == "3")
    assert psnr_b[2:5] == ["1", "1", "0"]  # failed, NaN, ±inf
    assert psnr_b[5] == "15" and psnr_b[9:] == ["10", "20"]
    psnr_a = next(r for r in rows if r[0] == "dist_a".replace("_", "\\_") and r[1] == "3")
    assert psnr_a[4] == "1" and psnr_a[6] == "32" and psnr_a[10] == "inf"
    lpips_b = next(r for r in rows if r[0] == "dist\\|b" and r[1] == "1")
    assert lpips_b[5:] == ["n/a"] * 6  # nothing to summarise: not 0
    gate_rows = [r for r in rows if len(r) == 5 and r[0] not in ("verdict", "---")]
    assert len(gate_rows) == len(outs)
    expected = expected_verdicts()
    assert [r[0].startswith("✅") for r in gate_rows] == [ok for _, ok in expected]
    assert [r[0] == "❌ FAIL" for r in gate_rows] == [not ok for _, ok in expected]
    n_failed = sum(not ok for _, ok in expected)
    assert f"### Quality gates: ❌ {n_failed} of {len(expected)} failed" in lines
    passing = [o for o in outs if o.passed]
    assert "### Quality gates: ✅ all 2 passed" in github_step_summary(tables, passing).splitlines()
    assert len(passing) == 2
    assert "Quality gates" not in github_step_summary(tables, [])


def unescape_data(s):
    return s.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def unescape_property(s):
    return s.replace("%3A", ":").replace("%2C", ",").replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


@HYPOTHESIS
@given(scope=st.text(ANNOTATION_CHARS, max_size=15), reason=st.text(ANNOTATION_CHARS, max_size=40))
def test_annotations_escape_as_github_requires(scope, reason):
    outs = [GateOutcome(scope, "p5(psnr) < 30, 100%", 29.0, False, reason),
            GateOutcome("ok", "mean(psnr) < 1", 2.0, True, "fine")]
    lines = github_annotations(outs)
    assert len(lines) == 1  # passed gates give nothing
    (line,) = lines
    assert "\r" not in line and "\n" not in line
    m = re.fullmatch(r"::error title=([^:]*)::(.*)", line, flags=re.S)
    assert m, line
    title, message = m.groups()
    assert "," not in title  # property values cannot hold raw ':' or ','
    assert not re.search(r"%(?!25|0D|0A|3A|2C)", title) and not re.search(r"%(?!25|0D|0A)", message)
    assert unescape_property(title) == f"Quality gate failed: p5(psnr) < 30, 100% [{scope}]"
    assert unescape_data(message) == f"{scope}: {reason}"


def test_annotation_escaping_example():
    (line,) = github_annotations([GateOutcome("a,b:c", "mean(psnr) < 1", 0.5, False, "50%\r\nbad")])
    assert line == ("::error title=Quality gate failed%3A mean(psnr) < 1 [a%2Cb%3Ac]"
                    "::a,b:c: 50%25%0D%0Abad")
    (line,) = github_annotations([GateOutcome("x\udcff", "mean(psnr) < 1", 0.5, False, "bell\x07")])
    assert line.endswith("::x\\udcff: bell\\x07")
    line.encode("utf-8")  # printable: no lone surrogates left


def test_annotations_for_evaluated_gates_are_the_failed_ones():
    outs = outcomes()
    lines = github_annotations(outs)
    failing = [(scope, o) for (scope, ok), o in zip(expected_verdicts(), outs, strict=True) if not ok]
    assert len(lines) == len(failing)
    for line, (scope, o) in zip(lines, failing, strict=True):
        title = f"Quality gate failed: {o.gate_text} [{scope}]".replace(":", "%3A").replace(",", "%2C")
        assert line.startswith(f"::error title={title}::")
