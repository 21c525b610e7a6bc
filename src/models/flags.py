"""The value types of the command-line flags, shared by `src/args.py` and the model files that add
their own flags (a registry entry's `add_arguments`): a bad value is refused when parsed
(`main.py: error: argument --lr: ...`).
"""
import argparse

# The help of a flag of the original code that selects nothing here; such flags are also listed by
# name where they are defined (src/args.py IGNORED_FLAGS, a registry entry's `ignored_flags`).
IGNORED = "accepted for compatibility with the original code; has no effect here"


def number_type(kind, ok, what):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value
    parse.__name__ = what          # argparse names the type in its message
    return parse


positive_int = number_type(int, lambda v: v >= 1, "a positive integer")
nonnegative_int = number_type(int, lambda v: v >= 0, "an integer >= 0 (0: no hidden layer)")
positive_float = number_type(float, lambda v: v > 0 and v != float("inf"), "a positive number")
nonnegative_float = number_type(float, lambda v: 0 <= v < float("inf"), "a number >= 0")
dropout = number_type(float, lambda v: 0 <= v < 1, "a dropout probability in [0, 1)")
momentum = number_type(float, lambda v: 0 <= v <= 1, "a BatchNorm momentum in [0, 1]")
seed = number_type(int, lambda v: 0 <= v < 2 ** 32, "a seed in [0, 2**32)")


def bool_value(text) -> bool:
    """The original TCaF's boolean flags: `--flag` alone, or `--flag True/False`."""
    if isinstance(text, bool):
        return text
    if str(text).lower() in ("1", "true", "yes", "on"):
        return True
    if str(text).lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (True or False)")
