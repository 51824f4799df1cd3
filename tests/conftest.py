"""Shared test set-up: a deterministic Hypothesis profile, a golden-file flag, and a memo
of rule results that starts empty in every test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from convlens.core.memo import RF_RESULTS, RULE_RESULTS

# Derandomized and a fixed number of examples: the same run every time, in CI and locally.
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=200,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", parent=settings.get_profile("ci"), max_examples=50)
# For an occasional deep run (HYPOTHESIS_PROFILE=explore): new random examples each time and
# ten times as many; a failure prints the seed and blob to reproduce it under "ci".
settings.register_profile(
    "explore",
    parent=settings.get_profile("ci"),
    derandomize=False,
    max_examples=2000,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):  # type: ignore[no-untyped-def]
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files under tests/render/golden instead of comparing with them",
    )


@pytest.fixture(autouse=True)
def _fresh_memos() -> Iterator[None]:
    """Each test computes its rules and receptive fields itself: a result remembered from
    an earlier test (``core/memo.py``) would make a test pass or fail depending on what ran
    before it. Within a test the memos work as in use (tests/torch/test_tracer_work.py
    checks them)."""
    RULE_RESULTS.clear()
    RF_RESULTS.clear()
    yield
