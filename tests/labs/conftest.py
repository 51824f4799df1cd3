"""Fixtures for the lab tests: tiny data sets and the shared horse data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from colourize_data import write_tiny

HORSE = Path(__file__).parents[2] / "../shared/data/cifar10-horse"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 training images (20 horses) and 6 test images (3 horses)."""
    return write_tiny(tmp_path_factory.mktemp("cifar"))


@pytest.fixture
def horse_data() -> Path:
    if not (HORSE / "cifar-10-batches-py").is_dir():
        pytest.fail(f"shared horse data not found at {HORSE} (../shared beside the repository)")
    return HORSE


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny steps gain nothing from threads; on the shared 2 cores they oversubscribe."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
