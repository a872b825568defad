"""Shared fixtures: the reference data beside the checkout, and small synthetic images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LITESR_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data (benchmark and training images); skip where it is absent."""
    if not (SHARED_DATA / "benchmark" / "Set5").is_dir():
        pytest.skip(
            f"reference data not found at {SHARED_DATA} (a user's clone has no ../shared; "
            "set LITESR_SHARED_DATA to point at it)"
        )
    return SHARED_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
