"""lpipscli.gates: the gate grammar (property-based) and gate evaluation checked against numpy."""

from __future__ import annotations

import math
import operator
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from lpipscli.errors import UsageError
from lpipscli.gates import (
    ALL_INPUTS,
    Gate,
    GateOutcome,
    evaluate_gate,
    evaluate_gates,
    parse_gate,
    parse_gates,
)

INF = math.inf
NAN = math.nan
KNOWN = ["lpips_alex", "lpips_vgg", "psnr", "psnr_y", "ssim", "ms_ssim", "delta_lpips_alex", "mmd_rff"]
NAMED_STATS = ["mean", "median", "min", "max", "std", "hmean", "count"]
# Written independently of the module's table.
COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
           "!=": operator.ne}

# (atol, rtol): observed statistics against numpy/scipy on the same data.
TOLERANCES = {"stat": (1e-12, 1e-12), "hmean": (0.0, 1e-12)}

HYPOTHESIS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------------------------ generated gates

ws = st.text(alphabet=" \t", max_size=2)
case = st.sampled_from([str.lower, str.upper, str.title])


@st.composite
def number_texts(draw):
    """(text, value) with value = float(text), Python's reading of the number."""
    kind = draw(st.sampled_from(["int", "repr", "sci", "fixed", "inf"]))
    if kind == "int":
        text = str(draw(st.integers(-(10**6), 10**6)))
    elif kind == "inf":
        text = draw(st.sampled_from(["inf", "-inf", "+inf", "Inf", "-INF", "infinity"]))
    else:
        x = draw(st.floats(allow_nan=False, allow_infinity=False))
        text = {"repr": repr(x), "sci": f"{x:.3e}", "fixed": f"{x:.4f}"}[kind]
    return text, float(text)


@st.composite
def stat_texts(draw):
    """(text as written, expected canonical stat or None for a percentile, percentile q or None)."""
    kind = draw(st.sampled_from(["named", "pint", "pdec"]))
    if kind == "named":
        name = draw(st.sampled_from(NAMED_STATS))
        return draw(case)(name), name, None
    if kind == "pint":
        n = draw(st.integers(0, 100))
        return f"p{n}", None, float(n)
    k = draw(st.integers(0, 999))
    text = f"p{k // 10}.{k % 10}"
    return text, None, float(text[1:])


@st.composite
def gate_tokens(draw):
    """A valid gate as tokens, plus what the parse must give."""
    scoped = draw(st.booleans())
    metric = draw(st.sampled_from(KNOWN))
    op = draw(st.sampled_from(list(COMPARE)))
    num_text, value = draw(number_texts())
    tokens = [draw(case)("all"), ":"] if scoped else []
    if draw(st.booleans()):
        quant = draw(st.sampled_from(["any", "all"]))
        tokens += [draw(case)(quant), "(", metric, op, num_text, ")"]
        stat, q = quant, None
    else:
        stat_text, stat, q = draw(stat_texts())
        tokens += [stat_text, "(", metric, ")", op, num_text]
    expected = {"scope": "all" if scoped else "each", "stat": stat, "q": q, "metric": metric, "op": op,
                "threshold": value}
    return tokens, expected


def join(draw, tokens):
    """Joins tokens with random whitespace; returns the text and each token's 0-based offset."""
    text, offsets = draw(ws), []
    for tok in tokens:
        offsets.append(len(text))
        text += tok + draw(ws)
    return text, offsets


@st.composite
def valid_gates(draw):
    tokens, expected = draw(gate_tokens())
    text, _ = join(draw, tokens)
    return text, expected


def check_fields(gate, expected):
    assert gate.scope == expected["scope"]
    assert gate.metric == expected["metric"]
    assert gate.op == expected["op"]
    assert gate.threshold == expected["threshold"]
    if expected["q"] is None:
        assert gate.stat == expected["stat"]
        assert gate.q is None
    else:
        assert gate.q == expected["q"]


@HYPOTHESIS
@given(valid_gates())
def test_generated_gates_parse_and_round_trip(case_):
    text, expected = case_
    gate = parse_gate(text, KNOWN)
    check_fields(gate, expected)
    assert gate.text == text
    again = parse_gate(str(gate), KNOWN)
    assert again == gate
    assert str(again) == str(gate)
    assert hash(again) == hash(gate)


@HYPOTHESIS
@given(
    scope=st.sampled_from(["each", "all"]),
    stat=st.one_of(st.sampled_from([*NAMED_STATS, "any", "all"]),
                   st.integers(0, 1000).map(lambda k: f"p{k / 10:g}"),
                   st.floats(0, 100).map(lambda q: f"p{q:.17f}")),
    metric=st.sampled_from(KNOWN),
    op=st.sampled_from(list(COMPARE)),
    threshold=st.floats(allow_nan=False),
)
def test_str_of_any_gate_parses_back_to_it(scope, stat, metric, op, threshold):
    gate = Gate(scope, stat, metric, op, threshold)
    assert parse_gate(str(gate), KNOWN) == gate


# ------------------------------------------------------------------------------------------ mutations

BAD_OPS = ["=", "=>", "=<", "<>", "!", "===", "><", "<<", "!=="]
GARBAGE = ["x", ")", "(", "and", "1", "&&", ",", "#", "mean(psnr)"]
BAD_NUMBERS = ["abc", "1..2", "1e", "nan", "NaN", "0x10", "--1", "1e5x", ")"]


def is_valid_stat_word(word):
    w = word.lower()
    if w in NAMED_STATS or w in ("any", "all"):
        return True
    m = re.fullmatch(r"p(\d+(\.\d+)?)", w)
    return bool(m) and float(m.group(1)) <= 100


@st.composite
def mutated_gates(draw):
    """(text, 0-based offset the error must point at, kind)."""
    tokens, expected = draw(gate_tokens())
    scoped = expected["scope"] == "all"
    body = 2 if scoped else 0  # index of the stat token
    quant = expected["stat"] in ("any", "all")
    kind = draw(st.sampled_from(["drop_open", "drop_close", "bad_op", "bad_stat", "trailing", "metric",
                                 "number", "scope"]))
    target = None  # index of the token the error points at, after the mutation
    if kind == "drop_open":
        del tokens[body + 1]
        target = body + 1
    elif kind == "drop_close":
        idx = len(tokens) - 1 if quant else body + 3
        del tokens[idx]
        target = idx  # the next token, or the end
    elif kind == "bad_op":
        idx = body + 3 if quant else body + 4
        tokens[idx] = draw(st.sampled_from(BAD_OPS))
        target = idx
    elif kind == "bad_stat":
        word = draw(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
            lambda w: not is_valid_stat_word(w)))
        tokens[body] = word
        target = body
    elif kind == "trailing":
        tokens.append(draw(st.sampled_from(GARBAGE)))
        target = len(tokens) - 1
    elif kind == "metric":
        tokens[body + 2] = draw(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True).filter(
            lambda m: m not in KNOWN))
        target = body + 2
    elif kind == "number":
        idx = body + 4 if quant else body + 5
        tokens[idx] = draw(st.sampled_from(BAD_NUMBERS))
        target = idx
    else:  # scope
        word = draw(st.sampled_from(["each", "any", "foo", "al", "ALLL"]))
        if scoped:
            tokens[0] = word
        else:
            tokens[:0] = [word, ":"]
        target = 0
    text, offsets = "", []
    # At least one space between tokens, so that a mutated token stays a token of its own.
    for tok in tokens:
        offsets.append(len(text))
        text += tok + " " + draw(ws)
    pos = offsets[target] if target < len(offsets) else len(text)
    return text, pos, kind


@HYPOTHESIS
@given(mutated_gates())
def test_mutated_gates_are_rejected_at_the_bad_token(case_):
    text, pos, kind = case_
    with pytest.raises(UsageError) as info:
        parse_gate(text, KNOWN)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"gate {text!r}: ")
    column = int(re.search(r"at column (\d+)", message).group(1))
    assert 1 <= column <= len(text) + 1
    assert column == pos + 1, (kind, message)
    if kind == "metric":
        assert "unknown metric" in message and "known: " in message


def test_unknown_metric_message_suggests_the_closest_name():
    text = "mean(lpips_alx) > 0.1"
    with pytest.raises(UsageError) as info:
        parse_gate(text, ["lpips_alex", "psnr", "ssim"])
    msg = str(info.value)
    assert msg.startswith("gate 'mean(lpips_alx) > 0.1': unknown metric 'lpips_alx'")
    assert "at column 6" in msg
    assert "did you mean 'lpips_alex'" in msg
    assert msg.endswith("known: lpips_alex, psnr, ssim")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("maen(psnr) > 1", "did you mean 'mean'"),
        ("p101(psnr) > 1", "p0..p100"),
        ("all(psnr) > 30", "takes a condition"),
        ("mean(psnr) > nan", "NaN"),
        ("mean(psnr)", "comparison operator"),
        ("mean() > 1", "metric name"),
        ("mean(PSNR) > 1", "did you mean 'psnr'"),
    ],
)
def test_error_messages_say_what_is_wrong(text, fragment):
    with pytest.raises(UsageError, match=re.escape(fragment)):
        parse_gate(text, KNOWN)


def test_parse_examples_and_canonical_text():
    g = parse_gate("  all :  P99.90( psnr )>=-INF ", KNOWN)
    assert (g.scope, g.stat, g.metric, g.op, g.threshold) == ("all", "p99.9", "psnr", ">=", -INF)
    assert str(g) == "all:p99.9(psnr) >= -inf"
    assert str(parse_gate("p05(ssim)<1e-3", KNOWN)) == "p5(ssim) < 0.001"
    assert str(parse_gate("any(psnr>30)", KNOWN)) == "any(psnr > 30)"
    tiny = parse_gate("p0.00001(psnr) > 1", KNOWN)
    assert tiny.q == 1e-5 and str(tiny) == "p0.00001(psnr) > 1" and parse_gate(str(tiny), KNOWN) == tiny
    assert str(parse_gate("all:all(ssim!=1.5)", KNOWN)) == "all:all(ssim != 1.5)"
    assert [str(g) for g in parse_gates(["count(psnr)>=10", "min(ssim) > 0.9"], KNOWN)] == [
        "count(psnr) >= 10", "min(ssim) > 0.9"]


def test_gate_rejects_invalid_fields():
    for args in [("some", "mean", "psnr", "<", 1.0), ("each", "avg", "psnr", "<", 1.0),
                 ("each", "mean", "psnr", "=", 1.0), ("each", "mean", "psnr", "<", NAN),
                 ("each", "mean", "ps nr", "<", 1.0)]:
        with pytest.raises(ValueError):
            Gate(*args)


# ----------------------------------------------------------------------------------------- evaluation
#
# A gate is a FAILURE condition (``--fail-if``): it fails when the expression is true, passes when it is
# false. Every expected verdict below is computed here with numpy/scipy from that rule.


def numpy_stat(stat, vals):
    """The statistic from numpy/scipy, with the rules written out: NaN out; mean/std over finite."""
    present = vals[~np.isnan(vals)]
    finite = present[np.isfinite(present)]
    if stat == "count":
        return int(np.count_nonzero(~np.isnan(vals)))
    if stat in ("mean", "std"):
        if finite.size == 0 and present.size and np.all(present == present[0]):
            # every value the same infinity (lossless): numpy's mean of them; all equal, so no spread
            return float(np.mean(present)) if stat == "mean" else 0.0
        return None if finite.size == 0 else float(getattr(np, stat)(finite))
    if present.size == 0:
        return None
    if stat == "hmean":
        return float(sps.hmean(present)) if np.all(present > 0) else None
    if stat in ("min", "max"):
        return float(getattr(np, stat)(present))
    q = 50.0 if stat == "median" else float(stat[1:])
    return float(np.percentile(present, q))


def expected_stat_verdict(stat, op, threshold, vals, failed=0, allow_failed=False):
    """Fail-if rule for STAT(METRIC) OP NUMBER: pass iff defined, the condition is false, no blocking failures."""
    observed = numpy_stat(stat, np.asarray(vals, dtype=float))
    if observed is None:
        return False
    if failed and not allow_failed:
        return False
    return not COMPARE[op](observed, threshold)


def expected_row_verdict(quant, op, threshold, vals, failed=0, allow_failed=False):
    """Fail-if rule for any(...)/all(...): any fails on one match, all fails when every row matches."""
    vals = np.asarray(vals, dtype=float)
    present = vals[~np.isnan(vals)]
    if present.size == 0:
        return False
    if failed and not allow_failed:
        return False
    hits = COMPARE[op](present, threshold)
    return not bool(np.any(hits) if quant == "any" else np.all(hits))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("stat", [*NAMED_STATS, "p1", "p5", "p95", "p99.9"])
def test_evaluate_gate_matches_numpy(seed, stat):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    vals = rng.lognormal(3.0, 0.3, size=n)
    vals[rng.random(n) < 0.15] = np.nan
    if stat in ("mean", "std", "count", "min", "max", "hmean") and seed % 2:
        vals[rng.random(n) < 0.2] = np.inf  # numpy handles inf in these; percentiles are tested apart
    expected = numpy_stat(stat, vals)
    n_pass = n_fail = 0
    for op in COMPARE:
        for shift in (-1.0, 0.0, 1.0):
            if expected is None or not math.isfinite(expected):
                threshold = 1.0
            else:
                threshold = expected + shift * max(1.0, abs(expected)) * 1e-6
            gate = Gate("each", stat, "psnr", op, threshold)
            res = evaluate_gate(gate, vals)
            assert "\n" not in res.reason
            if expected is None:
                assert res.observed is None and not res.passed
                assert "undefined" in res.reason and "fails" in res.reason
                continue
            atol, rtol = TOLERANCES["hmean" if stat == "hmean" else "stat"]
            np.testing.assert_allclose(res.observed, expected, atol=atol, rtol=rtol)
            if shift == 0.0 and math.isfinite(expected):
                continue  # at the threshold the verdict may depend on rounding
            want = expected_stat_verdict(stat, op, threshold, vals)
            assert res.passed == want, (op, expected, threshold, res.reason)
            label = f"{stat}(psnr) = "
            assert res.reason.startswith(label)
            if want:  # passed: the failure condition is false
                assert f", not {op} " in res.reason, res.reason
                n_pass += 1
            else:
                assert f", not {op} " not in res.reason and f" {op} " in res.reason, res.reason
                n_fail += 1
    if expected is not None:
        assert n_pass and n_fail  # both verdicts were exercised


def test_reason_texts_read_as_fail_if():
    fail_vals = [27.0, 27.5, 27.6, 27.5]
    pass_vals = [29.9, 29.8, 30.0, 29.9]
    gate = parse_gate("mean(psnr) < 28", KNOWN)
    res = evaluate_gate(gate, fail_vals)
    assert not res.passed
    assert res.reason == f"mean(psnr) = {np.mean(fail_vals):.6g} < 28 (over 4 finite values)"
    res = evaluate_gate(gate, pass_vals)
    assert res.passed
    assert res.reason == f"mean(psnr) = {np.mean(pass_vals):.6g}, not < 28 (over 4 finite values)"
    res = evaluate_gate(parse_gate("all: mean(psnr) < 28", KNOWN), [*pass_vals, INF, NAN])
    assert res.passed and res.reason.startswith("all: mean(psnr) = ")
    assert res.reason.endswith("(over 4 finite values; 1 infinite and 1 NaN excluded)")


@pytest.mark.parametrize(
    ("text", "vals"),
    [
        # The examples of the issue: low LPIPS / high PSNR pass, the reverse fails.
        ("mean(lpips_alex) > 0.10", [0.02, 0.05, 0.08]),
        ("mean(lpips_alex) > 0.10", [0.08, 0.15, 0.2]),
        ("p5(psnr) < 30", [31.0, 35.0, 40.0, 42.0]),
        ("p5(psnr) < 30", [25.0, 35.0, 40.0, 42.0]),
        ("min(ssim) < 0.9", [0.95, 0.97, 0.99]),
        ("min(ssim) < 0.9", [0.85, 0.97, 0.99]),
        ("mean(delta_lpips_alex) > 0.005", [0.001, -0.002, 0.003]),
        ("mean(delta_lpips_alex) > 0.005", [0.01, 0.004, 0.003]),
    ],
)
def test_issue_examples(text, vals):
    gate = parse_gate(text, KNOWN)
    res = evaluate_gate(gate, vals)
    assert res.passed == expected_stat_verdict(gate.stat, gate.op, gate.threshold, vals)
    # The verdict is the negation of the expression, evaluated here without the module.
    observed = numpy_stat(gate.stat, np.asarray(vals))
    assert res.passed is (not COMPARE[gate.op](observed, gate.threshold))


def test_each_example_pair_exercises_both_verdicts():
    gate = parse_gate("mean(lpips_alex) > 0.10", KNOWN)
    assert evaluate_gate(gate, [0.02, 0.05, 0.08]).passed
    assert not evaluate_gate(gate, [0.08, 0.15, 0.2]).passed


def test_undefined_statistics_fail_whatever_the_operator():
    cases = [("mean", [-INF, INF, NAN], "no finite values"), ("std", [NAN], "no finite values"),
             ("median", [], "no values"), ("p5", [NAN, NAN], "no values"), ("hmean", [0.0, 1.0], "> 0"),
             ("median", [-INF, INF], "between -inf and +inf")]
    for stat, vals, why in cases:
        if not np.isinf(vals).all() or stat != "median":  # numpy gives NaN (with a warning) for -inf..inf
            assert numpy_stat(stat, np.asarray(vals, dtype=float)) is None
        for op in COMPARE:
            for threshold in (-INF, 0.0, INF):
                res = evaluate_gate(Gate("each", stat, "psnr", op, threshold), vals)
                assert res.observed is None and not res.passed, (stat, vals, op)
                assert "undefined" in res.reason and why in res.reason and "nothing could be checked" in res.reason


def test_all_infinite_mean_passes_a_lossless_gate():
    """Issue 11 point 3: a lossless encode (every PSNR +inf) passes mean(psnr) < 40 and fails mean(psnr) > 40."""
    vals = [INF, INF, NAN]
    assert numpy_stat("mean", np.asarray(vals)) == INF
    res = evaluate_gate(parse_gate("mean(psnr) < 40", KNOWN), vals)
    assert res.passed and res.observed == INF, res.reason
    assert not evaluate_gate(parse_gate("mean(psnr) > 40", KNOWN), vals).passed
    res = evaluate_gate(parse_gate("std(psnr) > 1", KNOWN), vals)
    assert res.passed and res.observed == 0.0


def test_psnr_with_identical_pairs():
    vals = [30.0, INF, 40.0]
    arr = np.asarray(vals)
    # median is 40: "median(psnr) < 40" is false, so the gate passes; ">= 40" is true, so it fails.
    assert evaluate_gate(parse_gate("median(psnr) < 40", KNOWN), vals).passed
    assert not evaluate_gate(parse_gate("median(psnr) >= 40", KNOWN), vals).passed
    assert not evaluate_gate(parse_gate("max(psnr) == inf", KNOWN), vals).passed
    assert evaluate_gate(parse_gate("max(psnr) != inf", KNOWN), vals).passed
    assert evaluate_gate(parse_gate("p95(psnr) > 1e300", KNOWN), vals).observed == INF
    res = evaluate_gate(parse_gate("mean(psnr) < 34", KNOWN), vals)
    assert res.observed == float(np.mean(arr[np.isfinite(arr)])) and res.passed and "1 infinite" in res.reason
    res = evaluate_gate(parse_gate("mean(psnr) > 34", KNOWN), vals)
    assert not res.passed and "1 infinite" in res.reason
    assert not evaluate_gate(parse_gate("count(psnr) == 2", KNOWN), [INF, INF, NAN]).passed
    assert evaluate_gate(parse_gate("count(psnr) < 2", KNOWN), [INF, INF, NAN]).passed


@pytest.mark.parametrize("quant", ["any", "all"])
def test_row_gates_match_numpy(quant):
    rng = np.random.default_rng(7)
    vals = rng.normal(30, 3, size=50)
    vals[::7] = np.nan
    vals[3] = np.inf
    present = vals[~np.isnan(vals)]
    keys = [f"out/{i}.png" for i in range(vals.size)]
    verdicts = set()
    for op in COMPARE:
        for threshold in (20.0, 30.0, 45.0, INF):
            res = evaluate_gate(Gate("each", quant, "psnr", op, threshold), vals, keys=keys)
            hits = COMPARE[op](present, threshold)
            assert res.observed == int(np.count_nonzero(hits))
            want = expected_row_verdict(quant, op, threshold, vals)
            assert res.passed == want, (op, threshold, res.reason)
            verdicts.add(want)
            assert f"{int(np.count_nonzero(hits))} of {present.size} rows match" in res.reason
            assert f"{int(np.isnan(vals).sum())} NaN rows skipped" in res.reason
            row_hits = np.array([not np.isnan(v) and COMPARE[op](v, threshold) for v in vals])
            if quant == "any" and not want:  # names the first matching row
                first = int(np.flatnonzero(row_hits)[0])
                assert f"first: {keys[first]!r} = " in res.reason
            if quant == "all" and want:  # names the first row with a value that does not match
                first = int(np.flatnonzero(~row_hits & ~np.isnan(vals))[0])
                assert f"first that does not: {keys[first]!r} = " in res.reason
    assert verdicts == {True, False}


def test_any_fails_on_one_match_and_names_it():
    keys = ["out/a.png", "out/b.png", "out/c.png", "out/d.png"]
    vals = [0.1, NAN, 0.31, 0.5]
    res = evaluate_gate(parse_gate("any(lpips_alex > 0.3)", KNOWN), vals, keys=keys)
    assert not res.passed and res.observed == 2
    assert "2 of 3 rows match; first: 'out/c.png' = 0.31 > 0.3" in res.reason
    res = evaluate_gate(parse_gate("any(lpips_alex > 0.6)", KNOWN), vals, keys=keys)
    assert res.passed and res.observed == 0 and "0 of 3 rows match" in res.reason
    res = evaluate_gate(parse_gate("any(lpips_alex > 0.3)", KNOWN), [0.1, 0.4])
    assert "first: row 1 = 0.4" in res.reason  # no keys: the row index


def test_all_fails_only_when_every_row_matches():
    keys = ["a", "b", "c", "d"]
    res = evaluate_gate(parse_gate("all(psnr < 30)", KNOWN), [20.0, NAN, 25.0, 29.0], keys=keys)
    assert not res.passed and res.observed == 3 and "3 of 3 rows match" in res.reason
    res = evaluate_gate(parse_gate("all(psnr < 30)", KNOWN), [20.0, NAN, 31.0, 28.0], keys=keys)
    assert res.passed and res.observed == 2
    assert "first that does not: 'c' = 31, not < 30" in res.reason
    with pytest.raises(ValueError, match="keys"):
        evaluate_gate(parse_gate("all(psnr > 30)", KNOWN), [1.0], keys=["a", "b"])


def test_row_gates_over_no_rows_fail():
    for quant in ("any", "all"):
        for op in COMPARE:
            for vals in ([], [NAN, NAN]):
                res = evaluate_gate(Gate("each", quant, "psnr", op, 0.0), vals)
                assert not res.passed and res.observed == 0 and "no rows with a value to check" in res.reason
                assert res.passed == expected_row_verdict(quant, op, 0.0, vals)


def test_failed_pairs_fail_the_gate_unless_allowed():
    gate = parse_gate("mean(psnr) < 30", KNOWN)
    vals = [35.0, 36.0, NAN]
    assert evaluate_gate(gate, vals).passed  # mean 35.5 is not < 30
    res = evaluate_gate(gate, vals, failed=1)
    assert not res.passed and res.observed == float(np.mean([35.0, 36.0])) and "1 pair failed" in res.reason
    assert res.failed == 1
    res = evaluate_gate(gate, vals, failed=2, allow_failed=True)
    assert res.passed and "2 failed pairs ignored" in res.reason
    # Allowed failures do not rescue a gate whose condition holds.
    res = evaluate_gate(gate, [1.0], failed=3, allow_failed=True)
    assert not res.passed and res.passed == expected_stat_verdict("mean", "<", 30.0, [1.0], 3, True)
    for quant, cond in (("any", "psnr < 10"), ("all", "psnr > 40")):  # row gates that pass on the values
        rg = parse_gate(f"{quant}({cond})", KNOWN)
        assert evaluate_gate(rg, vals).passed
        assert not evaluate_gate(rg, vals, failed=1).passed
        assert evaluate_gate(rg, vals, failed=1, allow_failed=True).passed
    with pytest.raises(ValueError):
        evaluate_gate(gate, vals, failed=-1)


def test_evaluate_gates_scopes():
    groups = {"a": {"psnr": [31.0, 32.0]}, "b|c": {"psnr": [10.0, NAN, 50.0]}}
    failed = {"b|c": 1}
    texts = ["median(psnr) < 30", "all:mean(psnr) < 25", "all:any(psnr < 5)", "all:all(psnr > 5)"]
    gates = parse_gates(texts, KNOWN)
    out = evaluate_gates(gates, groups, failed=failed)
    assert all(isinstance(o, GateOutcome) for o in out)
    assert [(o.scope, o.gate_text) for o in out] == [
        ("a", "median(psnr) < 30"), ("b|c", "median(psnr) < 30"), (ALL_INPUTS, "all:mean(psnr) < 25"),
        (ALL_INPUTS, "all:any(psnr < 5)"), (ALL_INPUTS, "all:all(psnr > 5)")]
    every = np.concatenate([np.asarray(groups[g]["psnr"]) for g in groups])
    n_failed = sum(failed.values())
    expected = [
        expected_stat_verdict("median", "<", 30.0, groups["a"]["psnr"], failed.get("a", 0)),
        expected_stat_verdict("median", "<", 30.0, groups["b|c"]["psnr"], failed["b|c"]),
        expected_stat_verdict("mean", "<", 25.0, every, n_failed),
        expected_row_verdict("any", "<", 5.0, every, n_failed),
        expected_row_verdict("all", ">", 5.0, every, n_failed),
    ]
    assert [o.passed for o in out] == expected
    assert out[0].passed and out[0].observed == float(np.median(groups["a"]["psnr"]))
    assert out[2].observed == pytest.approx(np.mean(every[np.isfinite(every)]))
    assert "1 pair failed" in out[2].reason  # the failure counts for all inputs
    assert out[4].observed == int(np.count_nonzero(every[~np.isnan(every)] > 5.0))
    # Failures allowed: the all: verdicts follow the values alone.
    ok = evaluate_gates(gates[1:], groups, failed=failed, allow_failed=True)
    assert [o.passed for o in ok] == [
        expected_stat_verdict("mean", "<", 25.0, every),
        expected_row_verdict("any", "<", 5.0, every),
        expected_row_verdict("all", ">", 5.0, every),
    ]
    assert [o.passed for o in ok] == [True, True, False]  # every verdict kind occurs


def test_all_scope_names_rows_with_their_input():
    groups = {"a": {"psnr": [31.0, 32.0]}, "b": {"psnr": [10.0, NAN, 50.0]}}
    keys = {"a": ["1.png", "2.png"], "b": ["1.png", "2.png", "3.png"]}
    (o,) = evaluate_gates(parse_gates(["all:any(psnr < 20)"], KNOWN), groups, keys=keys)
    assert not o.passed and "first: 'b: 1.png' = 10" in o.reason
    (o,) = evaluate_gates(parse_gates(["all:any(psnr < 20)"], KNOWN), groups)
    assert not o.passed and "first: 'b: row 0' = 10" in o.reason
    (o,) = evaluate_gates(parse_gates(["all:all(psnr > 20)"], KNOWN), groups, keys=keys)
    assert o.passed and "first that does not: 'b: 1.png' = 10" in o.reason
    each = evaluate_gates(parse_gates(["any(psnr < 20)"], KNOWN), groups, keys=keys)
    assert [(o.scope, o.passed) for o in each] == [
        (g, expected_row_verdict("any", "<", 20.0, groups[g]["psnr"])) for g in groups]


def test_evaluate_gates_cannot_pass_vacuously_or_on_missing_columns():
    gates = parse_gates(["mean(psnr) > 1"], KNOWN)
    out = evaluate_gates(gates, {})
    assert len(out) == 1 and not out[0].passed and out[0].scope == ALL_INPUTS
    with pytest.raises(UsageError, match="ssim"):
        evaluate_gates(parse_gates(["mean(ssim) > 0.5"], KNOWN), {"a": {"psnr": [1.0]}})
