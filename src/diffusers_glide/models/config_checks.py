"""Checks of model config values, shared by the models' constructors.

A config.json edited by hand (or written by another tool) reaches `__init__` through `from_pretrained`; an
impossible value should fail there, naming the key, rather than deep inside torch or at the first forward. A value
too large for any GLIDE model (see `config_limits.py`) fails there too, before a single module is built.
"""

import math
from collections.abc import Callable, Sequence
from numbers import Integral, Real

from ..config_limits import MAX_PARAMETERS


class ConfigChecker:
    """Raises `ValueError("<owner> config: `key` must be <expected>, got <value>.")` for a bad value.

    Args:
        owner (`str`): The model class name, shown first in every message.
    """

    def __init__(self, owner: str):
        self.owner = owner

    def fail(self, key: str, value, expected: str):
        raise ValueError(f"{self.owner} config: `{key}` must be {expected}, got {_shown(value)}.")

    def integer(self, key: str, value, minimum: int = 1, maximum: int | None = None, optional: bool = False):
        if optional and value is None:
            return
        if not _is_integer_in(value, minimum, maximum):
            self.fail(key, value, _integer_range(minimum, maximum) + (" or None" if optional else ""))

    def number(self, key: str, value, expected: str, within: Callable[[float], bool]):
        """A finite real number (not a bool) for which `within(value)` holds; `expected` describes the range."""
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or not within(value):
            self.fail(key, value, expected)

    def boolean(self, key: str, value):
        if not isinstance(value, bool):
            self.fail(key, value, "true or false (a boolean, not a string or number)")

    def choice(self, key: str, value, choices: Sequence[str]):
        if value not in choices:
            self.fail(key, value, "one of " + ", ".join(repr(choice) for choice in choices))

    def integers(self, key: str, value, minimum: int = 1, maximum: int | None = None, max_length: int | None = None):
        """A non-empty list (or tuple) of at most `max_length` integers in [`minimum`, `maximum`]."""
        if (
            not isinstance(value, (list, tuple))
            or not value
            or (max_length is not None and len(value) > max_length)
            or not all(_is_integer_in(v, minimum, maximum) for v in value)
        ):
            length = "a non-empty list of" if max_length is None else f"a list of 1 to {max_length}"
            each = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
            self.fail(key, value, f"{length} integers {each}")

    def booleans(self, key: str, value, length: int, what: str):
        """A list (or tuple) of `length` booleans; `what` says what each entry stands for."""
        if not isinstance(value, (list, tuple)) or len(value) != length or any(not isinstance(v, bool) for v in value):
            self.fail(key, value, f"a list of {length} booleans ({what})")

    def parameter_count(self, estimate: int):
        """Refuses a config whose model would have more than `MAX_PARAMETERS` parameters (`estimate`, computed from
        the config before anything is built)."""
        if estimate > MAX_PARAMETERS:
            raise ValueError(
                f"{self.owner} config: the model would have {estimate:,} parameters (estimated from the config), more "
                f"than the limit of {MAX_PARAMETERS:,} (ten times the largest GLIDE model); it is not built."
            )

    def divides(self, key: str, value: int, widths: Sequence[int], what: str):
        """`value` divides each of `widths` (checked after `value` itself is known to be a positive integer)."""
        if any(width % value for width in widths):
            self.fail(key, value, f"a divisor of {what} {tuple(widths)}")


def _shown(value, limit: int = 200) -> str:
    """`repr(value)`, cut short: a tampered config may hold a list of a million entries, and the error is one line."""
    text = repr(value)
    if len(text) <= limit:
        return text
    length = f" ({len(value)} entries)" if isinstance(value, (list, tuple)) else ""
    return f"{text[:limit]}...{length}"


def _is_integer_in(value, minimum: int, maximum: int | None) -> bool:
    if isinstance(value, bool) or not isinstance(value, Integral):
        return False
    return minimum <= value and (maximum is None or value <= maximum)


def _integer_range(minimum: int, maximum: int | None) -> str:
    return f"an integer >= {minimum}" if maximum is None else f"an integer in [{minimum}, {maximum}]"
