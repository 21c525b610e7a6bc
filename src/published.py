"""The published numbers the results tables print beside the measured ones.

The data is `src/published.csv`, one row per method, dataset and feature family:
`method` (its label in the methods table, src/recipes.py), `dataset`, `family` (a feature family
key, src/families.py), `hm` and `zsl` (percent, as published) and `source` (the document, its
version and the table the numbers were read from). A method, dataset or family with no row has no
published number (the cell stays empty); nothing is filled in from elsewhere.
"""
import csv
from pathlib import Path
from typing import Dict, NamedTuple, Tuple

from .errors import UserError
from .families import DATASETS, FAMILIES
from .recipes import METHODS

PUBLISHED_CSV = Path(__file__).with_name("published.csv")
COLUMNS = ["method", "dataset", "family", "hm", "zsl", "source"]


class Published(NamedTuple):
    hm: float       # percent
    zsl: float      # percent
    source: str


def _row(path: Path, line: int, row: Dict[str, str], keys: Dict[str, str]) -> Tuple[tuple, Published]:
    """One row -> ((method key, dataset, family), Published); a UserError naming the line otherwise."""
    where = f"{path} line {line}"
    if None in row or None in row.values():
        raise UserError(f"{where}: expected {len(COLUMNS)} fields ({','.join(COLUMNS)}); quote a source holding commas")
    checks = (("method", keys, "a method label of src/recipes.py"), ("dataset", DATASETS, "a dataset"),
              ("family", FAMILIES, "a feature family"))
    for column, known, what in checks:
        if row[column] not in known:
            raise UserError(f"{where}: {column} {row[column]!r} is not {what} ({', '.join(known)})")
    numbers = {}
    for column in ("hm", "zsl"):
        try:
            numbers[column] = float(row[column])
        except ValueError:
            raise UserError(f"{where}: {column} {row[column]!r} is not a number (percent, e.g. 27.15)") from None
        if not 0.0 <= numbers[column] <= 100.0:
            raise UserError(f"{where}: {column} {numbers[column]} is not a percentage in [0, 100]")
    if not row["source"].strip():
        raise UserError(f"{where}: no source; name the document, its version and table the numbers come from")
    return (keys[row["method"]], row["dataset"], row["family"]), Published(numbers["hm"], numbers["zsl"], row["source"])


def load_published(path: Path = PUBLISHED_CSV) -> Dict[Tuple[str, str, str], Published]:
    """{(method key, dataset, family): Published} of the file (METHODS keys, e.g. "avca")."""
    keys = {m.label: key for key, m in METHODS.items()}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != COLUMNS:
            raise UserError(f"{path}: columns {reader.fieldnames}, expected {','.join(COLUMNS)}")
        out: Dict[Tuple[str, str, str], Published] = {}
        for line, row in enumerate(reader, start=2):
            cell, numbers = _row(Path(path), line, row, keys)
            if cell in out:
                raise UserError(f"{path} line {line}: a second row for {row['method']} {row['dataset']} "
                                f"{row['family']}; keep one")
            out[cell] = numbers
    return out
