import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
PYTHON = sys.executable


@pytest.fixture(scope="session")
def shared_splits():
    """The official class splits, from ../shared/data (skips when absent)."""
    root = SHARED_DATA / "avgzsl_benchmark_datasets"
    if not root.is_dir():
        pytest.skip("../shared/data is not available")
    return root
