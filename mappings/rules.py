"""Classification rules (``[[rules]]``): a small safe condition language over contact fields, and its actions.

Grammar (keywords are case-insensitive; user text is tokenised and parsed, never evaluated as Python)::

    condition  := and_cond ("or" and_cond)*
    and_cond   := not_cond ("and" not_cond)*
    not_cond   := "not" not_cond | "(" condition ")" | comparison
    comparison := value [("==" | "!=" | "<" | "<=" | ">" | ">=") value
                         | ["not"] "in" (list | field) | "contains" value]
    value      := field | string | number | "true" | "false" | "null"
    list       := "[" [value_literal ("," value_literal)* [","]] "]"

A field is a canonical name (``email``, ``tags``, ``consent``, ...) or ``custom.<name>``; a bare name that
is no canonical field means ``custom.<name>`` (``lifetime_value >= 10000``). A bare value is a test for
"present and not blank". Evaluation is total: a missing field makes any comparison false; a number
compares with numeric text as a number; values that cannot be compared are unequal and unordered;
``contains`` is substring for text and membership for ``tags``; ``in`` with ``tags`` on the left means
"has any of".
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from mappings.contact import CUSTOM_PREFIX, SCALAR_FIELDS, Lifecycle

MAX_DEPTH: Final = 64  # nesting of parentheses and "not": deeper is surely a mistake, and bounds recursion
_MISSING: Final = object()
_CANONICAL: Final = frozenset((*SCALAR_FIELDS, "tags", "consent"))
_KEYWORDS: Final = frozenset(("and", "or", "not", "in", "contains", "true", "false", "null"))
_LIFECYCLES: Final = frozenset(str(v) for v in Lifecycle)
_RULE_KEYS: Final = frozenset(("when", "add_tags", "set_lifecycle"))
_TOKEN: Final = re.compile(
    r"""(?P<space>\s+)
      | (?P<number>-?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_][A-Za-z0-9_-]*)*)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<op>==|!=|<=|>=|<|>)
      | (?P<punct>[()\[\],])""",
    re.VERBOSE | re.DOTALL,
)
_NUMERIC_TEXT: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ESCAPE: Final = re.compile(r"\\(.)", re.DOTALL)


class RuleError(ValueError):
    """A rule that cannot be parsed or compiled; ``column`` (1-based) points at the problem when known."""

    def __init__(self, message: str, *, column: int | None = None) -> None:
        super().__init__(f"column {column}: {message}" if column is not None else message)
        self.column = column


# --- the AST: values ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | int | float | bool | None

    def get(self, fields: Mapping[str, Any]) -> Any:
        return self.value


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # canonical: "email", "tags", "custom.lifetime_value"

    def get(self, fields: Mapping[str, Any]) -> Any:
        return fields.get(self.name, _MISSING)


Value = Literal | Field


# --- the AST: conditions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # == != < <= > >=
    left: Value
    right: Value

    def test(self, fields: Mapping[str, Any]) -> bool:
        return _compare(self.op, self.left.get(fields), self.right.get(fields))


@dataclass(frozen=True, slots=True)
class In:
    item: Value
    choices: tuple[Literal, ...] | Field  # a list literal, or a field (tags, or text for substring)
    negated: bool = False

    def test(self, fields: Mapping[str, Any]) -> bool:
        item = self.item.get(fields)
        if item is _MISSING:
            return False
        if isinstance(self.choices, Field):
            container = self.choices.get(fields)
            if container is _MISSING:
                return False
            found = _contains(container, item)
        elif isinstance(item, frozenset | set):
            found = any(isinstance(c.value, str) and c.value in item for c in self.choices)
        else:
            found = any(_compare("==", item, c.value) for c in self.choices)
        return found != self.negated


@dataclass(frozen=True, slots=True)
class Contains:
    container: Value
    item: Value

    def test(self, fields: Mapping[str, Any]) -> bool:
        container, item = self.container.get(fields), self.item.get(fields)
        if container is _MISSING or item is _MISSING:
            return False
        return _contains(container, item)


@dataclass(frozen=True, slots=True)
class Present:
    value: Value

    def test(self, fields: Mapping[str, Any]) -> bool:
        value = self.value.get(fields)
        return value is not _MISSING and value is not None and value is not False and value not in ("", frozenset())


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expression

    def test(self, fields: Mapping[str, Any]) -> bool:
        return not self.operand.test(fields)


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Expression, ...]

    def test(self, fields: Mapping[str, Any]) -> bool:
        return all(o.test(fields) for o in self.operands)


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Expression, ...]

    def test(self, fields: Mapping[str, Any]) -> bool:
        return any(o.test(fields) for o in self.operands)


Expression = Compare | In | Contains | Present | Not | And | Or


def evaluate(expression: Expression, fields: Mapping[str, Any]) -> bool:
    """Whether a contact's fields satisfy a condition; never raises."""
    return expression.test(fields)


# --- comparison semantics --------------------------------------------------------------------------------


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        if _NUMERIC_TEXT.fullmatch(text):
            try:
                return int(text)
            except ValueError:  # a fraction or exponent, or more digits than int() parses from text
                return float(text)
    return None


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    return None


def _comparable(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Both sides in one domain (number, boolean or text), or None when they have none in common."""
    if isinstance(a, bool) or isinstance(b, bool):
        x, y = _boolean(a), _boolean(b)
        return None if x is None or y is None else (x, y)
    if isinstance(a, int | float) or isinstance(b, int | float):
        n, m = _number(a), _number(b)
        return None if n is None or m is None else (n, m)
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    if isinstance(a, frozenset | set) and isinstance(b, frozenset | set):
        return frozenset(a), frozenset(b)
    return None


def _compare(op: str, a: Any, b: Any) -> bool:
    if a is _MISSING or b is _MISSING:
        return False
    if a is None or b is None:
        if op == "==":
            return a is None and b is None
        return op == "!=" and not (a is None and b is None)
    pair = _comparable(a, b)
    if op == "==":
        return pair is not None and pair[0] == pair[1]
    if op == "!=":
        return pair is None or pair[0] != pair[1]
    if pair is None or isinstance(pair[0], bool | frozenset):  # booleans and sets have no order
        return False
    x, y = pair
    if op == "<":
        return bool(x < y)
    if op == "<=":
        return bool(x <= y)
    if op == ">":
        return bool(x > y)
    return bool(x >= y)


def _contains(container: Any, item: Any) -> bool:
    if not isinstance(item, str):
        return False
    if isinstance(container, frozenset | set):
        return item in container
    return isinstance(container, str) and item in container


# --- tokenizer and parser --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number, name, keyword, string, op, punct, end
    text: str
    column: int  # 1-based


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            char = text[pos]
            if char in "\"'":
                raise RuleError("unterminated string", column=pos + 1)
            if char in "=!":
                raise RuleError(f"unexpected {char!r} (comparisons are == and !=)", column=pos + 1)
            raise RuleError(f"unexpected character {char!r}", column=pos + 1)
        kind = match.lastgroup or "space"
        if kind != "space":
            word = match.group()
            if kind == "name" and word.lower() in _KEYWORDS:
                kind, word = "keyword", word.lower()
            tokens.append(_Token(kind, word, pos + 1))
        pos = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0
        self.depth = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def at(self, kind: str, text: str | None = None) -> bool:
        token = self.tokens[self.pos]
        return token.kind == kind and (text is None or token.text == text)

    def expect(self, kind: str, text: str, what: str) -> None:
        if not self.at(kind, text):
            raise self.error(f"expected {what}")
        self.pos += 1

    def error(self, message: str) -> RuleError:
        token = self.token
        found = "the end of the rule" if token.kind == "end" else repr(token.text)
        return RuleError(f"{message}, found {found}", column=token.column)

    def parse(self) -> Expression:
        if self.at("end"):
            raise RuleError("empty rule", column=1)
        expression = self.condition()
        if not self.at("end"):
            raise self.error("expected 'and', 'or' or the end of the rule")
        return expression

    def condition(self) -> Expression:
        operands = [self.and_condition()]
        while self.at("keyword", "or"):
            self.pos += 1
            operands.append(self.and_condition())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_condition(self) -> Expression:
        operands = [self.not_condition()]
        while self.at("keyword", "and"):
            self.pos += 1
            operands.append(self.not_condition())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def not_condition(self) -> Expression:
        if self.at("keyword", "not") or self.at("punct", "("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error(f"nested more than {MAX_DEPTH} deep")
            if self.take().text == "not":
                inner: Expression = Not(self.not_condition())
            else:
                inner = self.condition()
                self.expect("punct", ")", "')'")
            self.depth -= 1
            return inner
        return self.comparison()

    def comparison(self) -> Expression:
        left = self.value()
        if self.at("op"):
            op = self.take().text
            return Compare(op, left, self.value())
        if self.at("keyword", "contains"):
            self.pos += 1
            return Contains(left, self.value())
        negated = self.at("keyword", "not") and self.tokens[self.pos + 1].text == "in"
        if negated:
            self.pos += 1
        if self.at("keyword", "in"):
            self.pos += 1
            return In(left, self.choices(), negated)
        return Present(left)

    def choices(self) -> tuple[Literal, ...] | Field:
        if self.at("name"):
            return self.field(self.take())
        self.expect("punct", "[", "a list '[...]' or a field after 'in'")
        items: list[Literal] = []
        while not self.at("punct", "]"):
            value = self.value()
            if not isinstance(value, Literal):
                raise RuleError("a list holds values, not fields", column=self.tokens[self.pos - 1].column)
            items.append(value)
            if not self.at("punct", ","):
                break
            self.pos += 1
        self.expect("punct", "]", "',' or ']'")
        return tuple(items)

    def value(self) -> Value:
        token = self.token
        if token.kind == "name":
            self.pos += 1
            return self.field(token)
        if token.kind == "string":
            self.pos += 1
            return Literal(_ESCAPE.sub(r"\1", token.text[1:-1]))
        if token.kind == "number":
            self.pos += 1
            return Literal(_parse_number(token))
        if token.kind == "keyword" and token.text in ("true", "false", "null"):
            self.pos += 1
            return Literal({"true": True, "false": False, "null": None}[token.text])
        raise self.error("expected a field name or a value")

    @staticmethod
    def field(token: _Token) -> Field:
        name = token.text
        if name in _CANONICAL or (name.startswith(CUSTOM_PREFIX) and len(name) > len(CUSTOM_PREFIX)):
            return Field(name)
        if "." in name:
            raise RuleError(f"unknown field {name!r} (custom fields are custom.<name>)", column=token.column)
        return Field(CUSTOM_PREFIX + name)


def _parse_number(token: _Token) -> int | float:
    try:
        return int(token.text)
    except ValueError:
        pass
    number = float(token.text)
    if not math.isfinite(number):
        raise RuleError("number out of range", column=token.column)
    return number


def parse_rule(text: str) -> Expression:
    """The condition of one rule; RuleError (with its column) when it is not well formed."""
    if not isinstance(text, str):
        raise RuleError("a rule condition must be text")
    return _Parser(text).parse()


# --- rules and their actions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    when: Expression
    add_tags: frozenset[str] = frozenset()
    set_lifecycle: str | None = None  # a Lifecycle value


def compile_rules(raw: Sequence[Mapping[str, Any]]) -> tuple[Rule, ...]:
    """The ``[[rules]]`` tables of the config; errors name the rule (``rules[0].when: column 5: ...``)."""
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        raise RuleError("rules: expected a list of [[rules]] tables")
    return tuple(_compile_rule(i, entry) for i, entry in enumerate(raw))


def _compile_rule(index: int, entry: Any) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(entry, Mapping):
        raise RuleError(f"{where}: expected a table with when, add_tags, set_lifecycle")
    unknown = sorted(str(k) for k in entry if k not in _RULE_KEYS)
    if unknown:
        raise RuleError(f"{where}: unknown key {unknown[0]!r} (expected when, add_tags, set_lifecycle)")
    if "when" not in entry:
        raise RuleError(f"{where}: missing 'when'")
    try:
        when = parse_rule(entry["when"])
    except RuleError as exc:
        error = RuleError(f"{where}.when: {exc}")
        error.column = exc.column
        raise error from None
    tags = entry.get("add_tags", [])
    if isinstance(tags, str) or not isinstance(tags, Sequence) or not all(isinstance(t, str) for t in tags):
        raise RuleError(f"{where}.add_tags: expected a list of tag names")
    add_tags = frozenset(t.strip() for t in tags)
    if "" in add_tags:
        raise RuleError(f"{where}.add_tags: a tag name cannot be blank")
    lifecycle = entry.get("set_lifecycle")
    if lifecycle is not None and lifecycle not in _LIFECYCLES:
        choices = " | ".join(str(v) for v in Lifecycle)
        raise RuleError(f"{where}.set_lifecycle: expected one of {choices}")
    if not add_tags and lifecycle is None:
        raise RuleError(f"{where}: needs add_tags or set_lifecycle")
    return Rule(when=when, add_tags=add_tags, set_lifecycle=lifecycle)


def apply_rules(fields: Mapping[str, Any], rules: Sequence[Rule]) -> dict[str, Any]:
    """The contact with its rules applied: tags added, lifecycle set; pure, and idempotent.

    Apply to a whole contact (the hub's): an absent ``tags`` reads as no tags. Rules run in order, each
    seeing what the earlier ones did, and passes repeat until nothing changes, so a rule that reads a tag
    or lifecycle set by a later rule still fires, and applying the result again changes nothing. Rules
    that contradict each other forever (lifecycle flip-flops) settle on the smallest state of their cycle.
    """
    current = dict(fields)
    seen: dict[tuple[Any, Any], int] = {_state(current): 0}
    states = [current]
    while True:
        changed = _one_pass(current, rules)
        if changed is None:
            return current
        key = _state(changed)
        if key in seen:  # a cycle: pick a member by a fixed order, the same from wherever it is entered
            return min(states[seen[key] :], key=_state_order)
        seen[key] = len(states)
        states.append(changed)
        current = changed


def _one_pass(fields: dict[str, Any], rules: Sequence[Rule]) -> dict[str, Any] | None:
    out: dict[str, Any] | None = None
    for rule in rules:
        view = fields if out is None else out
        if not rule.when.test(view):
            continue
        tags = view.get("tags", _MISSING)
        have = _tag_set(tags)
        if rule.add_tags and (tags is _MISSING or not rule.add_tags <= have):
            out = dict(view) if out is None else out
            out["tags"] = have | rule.add_tags
        if rule.set_lifecycle is not None and view.get("lifecycle", _MISSING) != rule.set_lifecycle:
            out = dict(view) if out is None else out
            out["lifecycle"] = rule.set_lifecycle
    return out


def _tag_set(tags: Any) -> frozenset[str]:
    if isinstance(tags, frozenset):
        return tags
    if isinstance(tags, set | list | tuple):
        return frozenset(t for t in tags if isinstance(t, str))
    return frozenset()  # absent, blank, or not a collection of names


def _state(fields: Mapping[str, Any]) -> tuple[Any, Any]:
    tags, lifecycle = fields.get("tags", _MISSING), fields.get("lifecycle", _MISSING)
    if not isinstance(lifecycle, Hashable):
        lifecycle = repr(lifecycle)
    return (tags if tags is _MISSING else _tag_set(tags)), lifecycle


def _state_order(fields: Mapping[str, Any]) -> tuple[Any, ...]:
    tags, lifecycle = _state(fields)
    return (
        tags is not _MISSING,
        sorted(tags) if tags is not _MISSING else [],
        lifecycle is not _MISSING,
        str(lifecycle) if lifecycle is not _MISSING else "",
    )
