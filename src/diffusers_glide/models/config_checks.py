"""Checks of model config values, shared by the models' constructors.

A config.json edited by hand (or written by another tool) reaches `__init__` through `from_pretrained`; an
impossible value should fail there, naming the key, rather than deep inside torch or at the first forward.
"""

import math
from collections.abc import Callable, Sequence
from numbers import Integral, Real


class ConfigChecker:
    """Raises `ValueError("<owner> config: `key` must be <expected>, got <value>.")` for a bad value.

    Args:
        owner (`str`): The model class name, shown first in every message.
    """

    def __init__(self, owner: str):
        self.owner = owner

    def fail(self, key: str, value, expected: str):
        raise ValueError(f"{self.owner} config: `{key}` must be {expected}, got {value!r}.")

    def integer(self, key: str, value, minimum: int = 1, optional: bool = False):
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
            self.fail(key, value, f"an integer >= {minimum}" + (" or None" if optional else ""))

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

    def integers(self, key: str, value, minimum: int = 1):
        """A non-empty list (or tuple) of integers >= `minimum`."""
        if (
            not isinstance(value, (list, tuple))
            or not value
            or any(isinstance(v, bool) or not isinstance(v, Integral) or v < minimum for v in value)
        ):
            self.fail(key, value, f"a non-empty list of integers >= {minimum}")

    def booleans(self, key: str, value, length: int, what: str):
        """A list (or tuple) of `length` booleans; `what` says what each entry stands for."""
        if not isinstance(value, (list, tuple)) or len(value) != length or any(not isinstance(v, bool) for v in value):
            self.fail(key, value, f"a list of {length} booleans ({what})")

    def divides(self, key: str, value: int, widths: Sequence[int], what: str):
        """`value` divides each of `widths` (checked after `value` itself is known to be a positive integer)."""
        if any(width % value for width in widths):
            self.fail(key, value, f"a divisor of {what} {tuple(widths)}")
