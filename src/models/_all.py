"""Importing this module registers every model. A new model: one file plus a line here."""
from . import avca  # noqa: F401
from . import bilinear  # noqa: F401
from . import apn  # noqa: F401
from . import cjme  # noqa: F401
from . import avgzslnet  # noqa: F401
