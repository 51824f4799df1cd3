"""Zoo tests run their small forwards on one intra-op thread.

Tiny convolutions gain nothing from threads, and on a shared 2-core machine
intra-op thread pools oversubscribe badly (a ResNet-50 forward at 32×32 went
from 0.1 s to 5 s under load). The setting is restored after each test so
other test folders keep their own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
