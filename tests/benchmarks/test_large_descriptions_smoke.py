"""benchmarks/large_descriptions.py on a tiny description: every mode runs and counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.scripts import load_script

from convlens.spec import parse_text

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "large_descriptions.py"


def load() -> Any:
    return load_script(SCRIPT)


def test_the_description_has_one_layer_a_line() -> None:
    text = load().description(7)
    assert len(text.splitlines()) == 1 + 7
    assert [spec.kind for spec in parse_text(text).layers] == ["conv2d", "relu"] * 3 + ["conv2d"]


@pytest.mark.parametrize(
    ("mode", "fmt"), [("cli", "table"), ("cli", "json"), ("box", "table"), ("rich", "table")]
)
def test_every_mode_measures(tmp_path: Path, mode: str, fmt: str) -> None:
    bench = load()
    path = tmp_path / "net.cnn"
    path.write_text(bench.description(6))
    result = bench.measure(mode, path, fmt)
    assert result["cpu"] > 0 and result["peak_mib"] > 0
    # 6 rows between the header and the totals, drawn the same either way
    if mode != "cli":
        assert result["lines"] == 1 + 3 + 6 + 3
