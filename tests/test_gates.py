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


def numpy_stat(stat, vals):
    """The statistic from numpy/scipy, with the rules written out: NaN out; mean/std over finite."""
    present = vals[~np.isnan(vals)]
    finite = present[np.isfinite(present)]
    if stat == "count":
        return int(np.count_nonzero(~np.isnan(vals)))
    if stat in ("mean", "std"):
        return None if finite.size == 0 else float(getattr(np, stat)(finite))
    if present.size == 0:
        return None
    if stat == "hmean":
        return float(sps.hmean(present)) if np.all(present > 0) else None
    if stat in ("min", "max"):
        return float(getattr(np, stat)(present))
    q = 50.0 if stat == "median" else float(stat[1:])
    return float(np.percentile(present, q))


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
    for op in COMPARE:
        for shift in (-1.0, 0.0, 1.0):
            if expected is None:
                threshold = 1.0
            else:
                threshold = expected + shift * max(1.0, abs(expected)) * 1e-6 if math.isfinite(expected) \
                    else 1.0
            gate = Gate("each", stat, "psnr", op, threshold)
            res = evaluate_gate(gate, vals)
            if expected is None:
                assert res.observed is None and not res.passed
                assert "undefined" in res.reason
                continue
            atol, rtol = TOLERANCES["hmean" if stat == "hmean" else "stat"]
            np.testing.assert_allclose(res.observed, expected, atol=atol, rtol=rtol)
            if shift != 0.0:  # away from the threshold the verdict cannot depend on rounding
                assert res.passed == COMPARE[op](expected, threshold), (op, expected, threshold, res.reason)
            assert "\n" not in res.reason


def test_psnr_with_identical_pairs():
    vals = [30.0, INF, 40.0]
    assert evaluate_gate(parse_gate("median(psnr) >= 40", KNOWN), vals).passed
    assert evaluate_gate(parse_gate("max(psnr) == inf", KNOWN), vals).passed
    assert evaluate_gate(parse_gate("p95(psnr) > 1e300", KNOWN), vals).observed == INF
    res = evaluate_gate(parse_gate("mean(psnr) > 34", KNOWN), vals)
    assert res.observed == 35.0 and res.passed and "1 infinite" in res.reason
    res = evaluate_gate(parse_gate("mean(psnr) > 0", KNOWN), [INF, INF, NAN])
    assert res.observed is None and not res.passed and "undefined" in res.reason and "no finite" in res.reason
    assert evaluate_gate(parse_gate("count(psnr) == 2", KNOWN), [INF, INF, NAN]).passed
    assert evaluate_gate(parse_gate("median(psnr) > 0", KNOWN), [-INF, INF]).observed is None


@pytest.mark.parametrize("quant", ["any", "all"])
def test_row_gates_match_numpy(quant):
    rng = np.random.default_rng(7)
    vals = rng.normal(30, 3, size=50)
    vals[::7] = np.nan
    vals[3] = np.inf
    present = vals[~np.isnan(vals)]
    for op in COMPARE:
        for threshold in (20.0, 30.0, 45.0, INF):
            res = evaluate_gate(Gate("each", quant, "psnr", op, threshold), vals)
            hits = COMPARE[op](present, threshold)
            assert res.observed == int(np.count_nonzero(hits))
            assert res.passed == bool(getattr(np, quant)(hits))


def test_row_gates_over_no_rows_fail():
    for quant in ("any", "all"):
        for vals in ([], [NAN, NAN]):
            res = evaluate_gate(Gate("each", quant, "psnr", ">", 0.0), vals)
            assert not res.passed and res.observed == 0 and "no rows" in res.reason


def test_all_names_the_first_violation():
    res = evaluate_gate(parse_gate("all(psnr > 30)", KNOWN), [31.0, NAN, 29.0, 28.0], keys=["a", "b", "c", "d"])
    assert not res.passed and res.observed == 1 and "'c' = 29" in res.reason
    with pytest.raises(ValueError, match="keys"):
        evaluate_gate(parse_gate("all(psnr > 30)", KNOWN), [1.0], keys=["a", "b"])


def test_failed_pairs_block_a_pass_unless_allowed():
    gate = parse_gate("mean(psnr) > 30", KNOWN)
    vals = [35.0, 36.0, NAN]
    assert evaluate_gate(gate, vals).passed
    res = evaluate_gate(gate, vals, failed=1)
    assert not res.passed and res.observed == 35.5 and "1 pair failed" in res.reason
    res = evaluate_gate(gate, vals, failed=2, allow_failed=True)
    assert res.passed and "2 failed pairs ignored" in res.reason
    assert not evaluate_gate(gate, [1.0], failed=3, allow_failed=True).passed  # still judged on values
    with pytest.raises(ValueError):
        evaluate_gate(gate, vals, failed=-1)


def test_evaluate_gates_scopes():
    groups = {"a": {"psnr": [31.0, 32.0]}, "b|c": {"psnr": [10.0, NAN, 50.0]}}
    gates = parse_gates(["median(psnr) > 30", "all:mean(psnr) > 25", "all:all(psnr > 5)"], KNOWN)
    out = evaluate_gates(gates, groups, failed={"b|c": 1})
    assert all(isinstance(o, GateOutcome) for o in out)
    assert [(o.scope, o.gate_text) for o in out] == [
        ("a", "median(psnr) > 30"), ("b|c", "median(psnr) > 30"),
        (ALL_INPUTS, "all:mean(psnr) > 25"), (ALL_INPUTS, "all:all(psnr > 5)")]
    assert out[0].passed and out[0].observed == 31.5
    assert not out[1].passed and out[1].observed == 30.0
    assert out[2].observed == pytest.approx(np.mean([31.0, 32.0, 10.0, 50.0]))
    assert not out[2].passed and "1 pair failed" in out[2].reason  # the failure counts for all inputs
    ok = evaluate_gates(gates[1:], groups, failed={"b|c": 1}, allow_failed=True)
    assert [o.passed for o in ok] == [True, True]


def test_evaluate_gates_cannot_pass_vacuously_or_on_missing_columns():
    gates = parse_gates(["mean(psnr) > 1"], KNOWN)
    out = evaluate_gates(gates, {})
    assert len(out) == 1 and not out[0].passed
    with pytest.raises(UsageError, match="ssim"):
        evaluate_gates(parse_gates(["mean(ssim) > 0.5"], KNOWN), {"a": {"psnr": [1.0]}})
