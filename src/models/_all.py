"""Importing this module registers every model. A new model: one file plus its name here.

The order is the order of the model flags in --help and the README.
"""
import importlib

MODULES = ("avca", "bilinear", "apn", "cjme", "fvaegan", "avgzslnet")

for _name in MODULES:
    importlib.import_module(f"{__package__}.{_name}")
