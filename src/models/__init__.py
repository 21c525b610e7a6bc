"""The models. Importing this package registers every model, in the order of the imports below.

That order is the order of the model flags and of the models' own flag groups in --help and the
README. A new model: its file, one import line here, its row in `src.recipes.METHODS`, and
`python -m src.recipes --write_scripts` (README "Adding a method").
"""
from .registry import create_model, get_entry, list_models, model_flags, model_hooks, register_model  # noqa: F401

from . import avca, bilinear, apn, cjme, fvaegan, tcaf, clipclap, frozen_clipclap, hspmoe, avgzslnet  # noqa: F401  (each registers its models)
