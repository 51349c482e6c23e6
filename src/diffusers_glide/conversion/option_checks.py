"""Type and range checks of the converter's options (`--options_json`), with errors that name the option, the
value received and what is expected, before any of it reaches a model constructor."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    """What one option accepts: `accepts(value)`, described for errors as `expected`."""

    accepts: Callable[[Any], bool]
    expected: str


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def int_at_least(minimum: int, expected: str | None = None) -> Rule:
    return Rule(lambda v: _is_int(v) and v >= minimum, expected or f"an integer >= {minimum}")


POSITIVE_INT = int_at_least(1, "a positive integer")
BOOL = Rule(lambda v: isinstance(v, bool), "true or false")
POSITIVE_NUMBER = Rule(lambda v: _is_number(v) and v > 0, "a positive number")
STRING = Rule(lambda v: isinstance(v, str), "a string")
# OpenAI's "-1" means "derive it from another option".
POSITIVE_INT_OR_MINUS_ONE = Rule(lambda v: _is_int(v) and (v >= 1 or v == -1), "a positive integer or -1")
PROBABILITY_BELOW_ONE = Rule(lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)")


def one_of(choices) -> Rule:
    return Rule(lambda v: v in choices, f"one of {', '.join(map(show, choices))}")


def int_list(value) -> tuple[int, ...] | None:
    """`"1,2,3"` or `[1, 2, 3]` as positive integers, or None when it is neither."""
    if isinstance(value, str):
        try:
            value = [int(part) for part in value.split(",")]
        except ValueError:
            return None
    if not isinstance(value, (list, tuple)) or not value or not all(_is_int(v) and v >= 1 for v in value):
        return None
    return tuple(value)


POSITIVE_INT_LIST = Rule(
    lambda v: int_list(v) is not None, 'positive integers, comma-separated ("32,16,8") or as a list'
)


def show(value) -> str:
    """`value` as it is written in the options JSON."""
    try:
        return json.dumps(value)
    except TypeError:
        return repr(value)


def option_error(what: str, name: str, value, expected: str) -> ValueError:
    return ValueError(f"{what} option {name}={show(value)} is invalid: expected {expected}.")


def check_options(options: Mapping, rules: Mapping[str, Rule], what: str) -> None:
    """Raise a ValueError for the first option (in `rules` order) whose value its rule does not accept."""
    for name, rule in rules.items():
        if name in options and not rule.accepts(options[name]):
            raise option_error(what, name, options[name], rule.expected)


def check_known(overrides, known, what: str) -> dict:
    """`overrides` as a dict, if it is a mapping of known option names."""
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise ValueError(
            f"The {what} options must be a JSON object of option names and values, got {type(overrides).__name__}: "
            f"{show(overrides)[:200]}"
        )
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"Unknown {what} option(s) {unknown}; known options are {sorted(known)}.")
    return dict(overrides)
