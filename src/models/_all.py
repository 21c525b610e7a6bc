"""Importing this module registers every model. A new model: one file plus a line here."""
from . import avca  # noqa: F401
