"""Classification rules: the condition language, rule compilation, and applying rules to contacts."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.contact import SCALAR_FIELDS, Consent, Lifecycle
from mappings.rules import (
    MAX_DEPTH,
    And,
    Compare,
    Contains,
    Field,
    In,
    Literal,
    Not,
    Or,
    Present,
    Rule,
    RuleError,
    apply_rules,
    compile_rules,
    evaluate,
    parse_rule,
)

CONTACT: dict[str, Any] = {
    "email": "ann@example.com",
    "first_name": "Ann",
    "last_name": None,
    "country": "DE",
    "lifecycle": "customer",
    "tags": frozenset({"newsletter", "vip"}),
    "consent": Consent.SUBSCRIBED,
    "custom.lifetime_value": "12500.50",
    "custom.orders": "7",
    "custom.note": "prefers email",
    "custom.active": "TRUE",
}


def holds(rule: str, fields: dict[str, Any] | None = None) -> bool:
    return evaluate(parse_rule(rule), CONTACT if fields is None else fields)


# --- parsing -----------------------------------------------------------------------------------------------


def test_parse_builds_a_small_ast() -> None:
    assert parse_rule("lifetime_value >= 10000") == Compare(">=", Field("custom.lifetime_value"), Literal(10000))
    assert parse_rule('tags contains "vip" and not country in ["DE", \'AT\']') == And(
        (
            Contains(Field("tags"), Literal("vip")),
            Not(In(Field("country"), (Literal("DE"), Literal("AT")))),
        )
    )
    assert parse_rule("a or b and c") == Or(
        (Present(Field("custom.a")), And((Present(Field("custom.b")), Present(Field("custom.c")))))
    )
    assert parse_rule("x not in [1, 2.5, true, null,]") == In(
        Field("custom.x"), (Literal(1), Literal(2.5), Literal(True), Literal(None)), negated=True
    )
    assert parse_rule('"vip" in tags') == In(Literal("vip"), Field("tags"))


def test_identifiers_resolve_to_canonical_then_custom() -> None:
    for name in SCALAR_FIELDS:
        assert parse_rule(f"{name} == 'x'") == Compare("==", Field(name), Literal("x"))
    assert parse_rule("custom.email == 'x'") == Compare("==", Field("custom.email"), Literal("x"))
    assert parse_rule("score == 1") == Compare("==", Field("custom.score"), Literal(1))
    assert parse_rule("custom.lifetime-value == 1").left == Field("custom.lifetime-value")  # type: ignore[union-attr]


def test_keywords_are_case_insensitive_and_strings_unescape() -> None:
    assert parse_rule("NOT a AND b Or c") == parse_rule("not a and b or c")
    assert parse_rule(r'note == "say \"hi\" \\ ok"') == Compare("==", Field("custom.note"), Literal('say "hi" \\ ok'))


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("", 1, "empty rule"),
        ("   ", 1, "empty rule"),
        ("a ==", 5, "expected a field name or a value"),
        ("a = 1", 3, "unexpected '='"),
        ("a ! b", 3, "unexpected '!'"),
        ("(a == 1", 8, "expected ')'"),
        ("a == 1)", 7, "expected 'and', 'or'"),
        ("a == 'x", 6, "unterminated string"),
        ("a in 1", 6, "expected a list"),
        ("a in [b]", 7, "a list holds values, not fields"),
        ("a in [1 2]", 9, "expected ',' or ']'"),
        ("foo.bar == 1", 1, "unknown field 'foo.bar'"),
        ("a == 1 and", 11, "expected a field name or a value"),
        ("a == 1e999", 6, "number out of range"),
        ("a @ b", 3, "unexpected character '@'"),
        ("and", 1, "expected a field name or a value"),
        ("a == b == c", 8, "expected 'and', 'or'"),
        ("a contains", 11, "expected a field name"),
    ],
)
def test_parse_errors_point_at_the_column(text: str, column: int, message: str) -> None:
    with pytest.raises(RuleError, match=f"^column {column}: {re.escape(message)}") as info:
        parse_rule(text)
    assert info.value.column == column


def test_nesting_is_bounded() -> None:
    parse_rule("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH)
    with pytest.raises(RuleError, match="nested more than"):
        parse_rule("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(RuleError, match="nested more than"):
        parse_rule("not " * 5000 + "a")


def test_parse_rule_is_not_python() -> None:
    for text in ("__import__('os').system('true')", "a.__class__", "lambda: 1", "a if b else c", "a + 1"):
        with pytest.raises(RuleError):
            parse_rule(text)


@settings(max_examples=500)
@given(st.text(max_size=60))
def test_parse_rule_on_any_text_parses_or_raises_rule_error(text: str) -> None:
    try:
        parse_rule(text)
    except RuleError as exc:
        assert exc.column is None or 1 <= exc.column <= len(text) + 1


ALPHABET = "abc.()[],'\"=!<>0123456789 -_ \\" + "andortincsuelf"


@settings(max_examples=500)
@given(st.text(alphabet=ALPHABET, max_size=40))
def test_parse_rule_on_grammar_like_text_parses_or_raises_rule_error(text: str) -> None:
    try:
        parse_rule(text)
    except RuleError as exc:
        assert exc.column is not None


# --- evaluation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("lifetime_value >= 10000", True),
        ("lifetime_value > 12500.5", False),
        ("lifetime_value == 12500.5", True),
        ("orders < 10 and orders >= 7", True),
        ("orders == '7'", True),
        ("orders < '10'", False),  # text against text compares as text: "7" > "10"
        ("first_name == 'Ann'", True),
        ("first_name == 'ann'", False),
        ("first_name != 'Bob'", True),
        ("first_name < 'B'", True),
        ("first_name > 5", False),  # not a number: unordered
        ("first_name == 5", False),
        ("first_name != 5", True),
        ("last_name == null", True),
        ("last_name != null", False),
        ("first_name != null", True),
        ("last_name < 1", False),
        ("missing == null", False),  # a missing field compares false, whatever the operator
        ("missing != 1", False),
        ("missing < 1", False),
        ("not missing == 1", True),
        ("missing in [1]", False),
        ("missing not in [1]", False),
        ("tags contains 'vip'", True),
        ("tags contains 'vi'", False),
        ("note contains 'email'", True),
        ("note contains 5", False),
        ("'vip' in tags", True),
        ("'pref' in note", True),
        ("'x' in missing", False),
        ("tags in ['vip', 'gold']", True),
        ("tags not in ['gold']", True),
        ("country in ['AT', 'DE']", True),
        ("country not in ['AT', 'DE']", False),
        ("orders in [1, 7]", True),
        ("consent == 'subscribed'", True),
        ("lifecycle in ['customer', 'vip']", True),
        ("active == true", True),
        ("active != false", True),
        ("active < true", False),
        ("first_name == true", False),
        ("tags == 'vip'", False),
        ("tags > 1", False),
        ("first_name", True),
        ("last_name", False),
        ("missing", False),
        ("tags", True),
        ("true", True),
        ("false", False),
        ("null", False),
        ("(first_name == 'Ann' or missing == 1) and not last_name", True),
    ],
)
def test_evaluation(rule: str, expected: bool) -> None:
    assert holds(rule) is expected


def test_numeric_text_compares_as_a_number_both_ways() -> None:
    assert holds("10000 <= lifetime_value")
    assert holds("lifetime_value >= 1e4")
    assert holds("x > 5", {"custom.x": " 6 "})
    assert not holds("x > 5", {"custom.x": "6 apples"})
    assert holds("x == 12345678901234567891", {"custom.x": "12345678901234567891"})
    assert not holds("x == 12345678901234567890", {"custom.x": "12345678901234567891"})
    assert holds("x > 1", {"custom.x": "9" * 5000})  # more digits than int() reads from text: still total


field_values = st.one_of(
    st.none(),
    st.text(max_size=8),
    st.sampled_from(["0", "-1.5", "1e3", "true", "FALSE", " 7 ", "nan", "inf", "9" * 5000]),
    st.frozensets(st.text(max_size=4), max_size=3),
    st.sampled_from(list(Consent)),
    st.integers(),
    st.floats(),
    st.booleans(),
)
names = st.sampled_from(["first_name", "tags", "consent", "lifecycle", "custom.a", "custom.b", "custom.n"])
contacts = st.dictionaries(names, field_values, max_size=6)
literals = st.builds(
    Literal, st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4)
)
values = literals | names.map(Field)
leaves = st.one_of(
    st.builds(Compare, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), values, values),
    st.builds(In, values, st.lists(literals, max_size=3).map(tuple) | names.map(Field), st.booleans()),
    st.builds(Contains, values, values),
    st.builds(Present, values),
)
expressions = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=8,
)


@settings(max_examples=400)
@given(expression=expressions, fields=contacts)
def test_evaluation_is_total(expression: Any, fields: dict[str, Any]) -> None:
    assert evaluate(expression, fields) in (True, False)


@settings(max_examples=300)
@given(text=st.text(alphabet=ALPHABET, max_size=40), fields=contacts)
def test_whatever_parses_evaluates_without_raising(text: str, fields: dict[str, Any]) -> None:
    try:
        expression = parse_rule(text)
    except RuleError:
        return
    assert evaluate(expression, fields) in (True, False)


# --- compile_rules -----------------------------------------------------------------------------------------


def test_compile_rules() -> None:
    rules = compile_rules([{"when": "lifetime_value >= 10000", "add_tags": ["vip", " big "], "set_lifecycle": "vip"}])
    assert rules == (
        Rule(
            when=Compare(">=", Field("custom.lifetime_value"), Literal(10000)),
            add_tags=frozenset({"vip", "big"}),
            set_lifecycle="vip",
        ),
    )
    assert compile_rules([]) == ()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([{"when": "a ==", "add_tags": ["x"]}], r"^rules\[0\]\.when: column 5: expected a field name"),
        ([{"add_tags": ["x"]}, {"when": "a", "add_tag": ["x"]}], r"^rules\[0\]: missing 'when'"),
        ([{"when": "a", "add_tags": ["x"]}, {"when": "a", "add_tag": ["x"]}], r"^rules\[1\]: unknown key 'add_tag'"),
        ([{"when": "a", "set_lifecycle": "gold"}], r"^rules\[0\]\.set_lifecycle: expected one of prospect"),
        ([{"when": "a", "set_lifecycle": "VIP"}], r"set_lifecycle: expected one of"),
        ([{"when": "a", "add_tags": "vip"}], r"^rules\[0\]\.add_tags: expected a list"),
        ([{"when": "a", "add_tags": [1]}], r"add_tags: expected a list of tag names"),
        ([{"when": "a", "add_tags": [" "]}], r"add_tags: a tag name cannot be blank"),
        ([{"when": "a"}], r"^rules\[0\]: needs add_tags or set_lifecycle"),
        ([{"when": 5, "add_tags": ["x"]}], r"^rules\[0\]\.when: a rule condition must be text"),
        (["when = a"], r"^rules\[0\]: expected a table"),
        ("when = a", r"^rules: expected a list"),
    ],
)
def test_compile_errors_name_the_rule(raw: Any, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        compile_rules(raw)


def test_compile_error_keeps_the_column() -> None:
    with pytest.raises(RuleError) as info:
        compile_rules([{"when": "a == 1 and (", "add_tags": ["x"]}])
    assert info.value.column == 13


# --- apply_rules -------------------------------------------------------------------------------------------


def test_apply_rules_adds_tags_and_sets_lifecycle() -> None:
    rules = compile_rules(
        [
            {"when": "lifetime_value >= 10000", "add_tags": ["big-spender"], "set_lifecycle": "vip"},
            {"when": "orders > 100", "add_tags": ["never"]},
        ]
    )
    result = apply_rules(CONTACT, rules)
    assert result["tags"] == frozenset({"newsletter", "vip", "big-spender"})
    assert result["lifecycle"] == "vip"
    assert {k: v for k, v in result.items() if k not in ("tags", "lifecycle")} == {
        k: v for k, v in CONTACT.items() if k not in ("tags", "lifecycle")
    }
    assert CONTACT["tags"] == frozenset({"newsletter", "vip"})  # pure: the input is untouched


def test_apply_rules_without_a_match_changes_nothing_and_adds_no_keys() -> None:
    rules = compile_rules([{"when": "orders > 100", "add_tags": ["never"], "set_lifecycle": "vip"}])
    fields = {"email": "a@example.com"}
    assert apply_rules(fields, rules) == fields
    assert apply_rules(fields, rules) is not fields


def test_a_rule_sees_tags_that_a_later_rule_adds() -> None:
    rules = compile_rules(
        [
            {"when": "tags contains 'vip'", "add_tags": ["gold"]},
            {"when": "lifetime_value >= 10000", "add_tags": ["vip"]},
        ]
    )
    result = apply_rules({"email": "a@example.com", "custom.lifetime_value": "20000"}, rules)
    assert result["tags"] == frozenset({"vip", "gold"})
    assert apply_rules(result, rules) == result


def test_flip_flopping_lifecycle_rules_settle_and_stay_settled() -> None:
    rules = compile_rules(
        [
            {"when": "lifecycle == 'vip'", "set_lifecycle": "customer"},
            {"when": "lifecycle == 'customer'", "set_lifecycle": "vip"},
        ]
    )
    for start in ("vip", "customer"):
        once = apply_rules({"email": "a@example.com", "lifecycle": start}, rules)
        assert once["lifecycle"] in ("vip", "customer")
        assert apply_rules(once, rules) == once


def test_a_lifecycle_cycle_across_passes_settles_the_same_from_every_entry() -> None:
    rules = compile_rules(
        [
            {"when": "lifecycle == 'vip'", "set_lifecycle": "prospect"},
            {"when": "lifecycle == 'customer'", "set_lifecycle": "vip"},
            {"when": "lifecycle == 'prospect'", "set_lifecycle": "customer"},
        ]
    )
    # prospect -> customer -> vip -> customer -> vip ...: a two-state cycle between passes
    results = {
        start: apply_rules({"email": "a@example.com", "lifecycle": start}, rules)
        for start in ("prospect", "customer", "vip")
    }
    assert {r["lifecycle"] for r in results.values()} == {"customer"}
    for once in results.values():
        assert apply_rules(once, rules) == once


def test_the_last_matching_lifecycle_wins_within_a_pass() -> None:
    rules = compile_rules([{"when": "true", "set_lifecycle": "prospect"}, {"when": "true", "set_lifecycle": "other"}])
    # both always fire: the pass ends on "other", the next pass sets prospect then other again: stable
    assert apply_rules({"email": "a@example.com"}, rules)["lifecycle"] == "other"


rule_specs = st.builds(
    lambda when, tags, lifecycle: Rule(when=when, add_tags=tags, set_lifecycle=lifecycle),
    expressions,
    st.frozensets(st.sampled_from(["a", "b", "c", "vip"]), max_size=2),
    st.none() | st.sampled_from([str(v) for v in Lifecycle]),
)
rule_names = st.sampled_from(["first_name", "tags", "lifecycle", "custom.a", "custom.b"])
rule_fields = st.dictionaries(
    rule_names,
    st.none() | st.sampled_from(["a", "b", "vip", "7", "prospect", "customer", "vip"]),
    max_size=4,
).map(lambda d: {**d, "tags": frozenset(d["tags"] or ()) if "tags" in d else frozenset()})
tag_conditions = st.builds(
    Contains, st.just(Field("tags")), st.sampled_from(["a", "b", "c", "vip"]).map(Literal)
) | st.builds(
    Compare,
    st.sampled_from(["==", "!="]),
    st.just(Field("lifecycle")),
    st.sampled_from([str(v) for v in Lifecycle]).map(Literal),
)
dependent_rules = st.builds(
    lambda when, tags, lifecycle: Rule(when=when, add_tags=tags, set_lifecycle=lifecycle),
    tag_conditions | st.builds(Not, tag_conditions),
    st.frozensets(st.sampled_from(["a", "b", "c", "vip"]), max_size=2),
    st.none() | st.sampled_from([str(v) for v in Lifecycle]),
)


@settings(max_examples=400)
@given(fields=rule_fields, rules=st.lists(rule_specs | dependent_rules, max_size=5))
def test_apply_rules_is_idempotent_and_total(fields: dict[str, Any], rules: list[Rule]) -> None:
    once = apply_rules(fields, rules)
    assert apply_rules(once, rules) == once
    assert once["tags"] >= fields["tags"]  # rules only add tags
    assert {k: v for k, v in once.items() if k not in ("tags", "lifecycle")} == {
        k: v for k, v in fields.items() if k not in ("tags", "lifecycle")
    }


@settings(max_examples=200)
@given(fields=contacts, rules=st.lists(rule_specs, max_size=4))
def test_apply_rules_never_raises_on_odd_contacts(fields: dict[str, Any], rules: list[Rule]) -> None:
    once = apply_rules(fields, rules)
    assert apply_rules(once, rules) == once
