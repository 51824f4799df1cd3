"""benchmarks/vs_forward.py: one row per model, with its rows, times and ratios."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from tests.scripts import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "vs_forward.py"


def test_every_model_gets_a_row(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    bench = load_script(SCRIPT)
    monkeypatch.setattr(sys, "argv", ["vs_forward.py", "--repeats", "1"])
    threads = torch.get_num_threads()  # the script sets one thread for itself
    try:
        bench.main()
    finally:
        torch.set_num_threads(threads)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][1:]
    assert [row.split("|")[1].strip() for row in rows] == list(bench.MODELS)
    for row in rows:
        cells = [cell.strip() for cell in row.split("|")[2:-1]]
        assert int(cells[0]) > 100  # traced rows of a 224² ImageNet net
        # warm, per row, of which tracing, dispatch floor, skeleton, new model, one forward
        units = ["ms", "µs", "ms", "ms", "ms", "ms", "ms"]
        assert [cell.split()[1] for cell in cells[1:8]] == units
        assert all(float(cell.split()[0]) > 0 for cell in cells[1:8])
        warm, new_model = (float(ratio) for ratio in cells[-1].split(","))
        assert warm > 0 and new_model > 0


def test_measures_are_taken_round_robin() -> None:
    """One call of every measure per round, so a drift in the machine's speed hits all
    of them alike; each figure is its measure's median."""
    bench = load_script(SCRIPT)
    order: list[str] = []

    def measure(key: str, seconds: list[float]):  # type: ignore[no-untyped-def]
        def run(now):  # type: ignore[no-untyped-def]
            order.append(key)
            return seconds[order.count(key) - 1]

        return run

    medians = bench.interleaved(
        {"a": measure("a", [3.0, 1.0, 2.0]), "b": measure("b", [5.0, 9.0, 7.0])}, 3, "cpu"
    )
    assert order == ["a", "b"] * 3
    assert medians == {"a": 2.0, "b": 7.0}


def test_skeleton_makes_one_row_per_traced_row() -> None:
    """The skeleton tracer is a floor for the same work: as many rows as convlens traces."""
    import convlens
    from convlens.zoo import create_model

    bench = load_script(SCRIPT)
    model = create_model("mobilenet_v3_small").eval()
    seconds = bench.skeleton_tracer(model)(bench.time.process_time)
    assert seconds > 0
    kinds = [kind for kind, _ in bench._Skeleton.rows]
    layers = convlens.analyze(model, input_size=bench.SIZE).layers
    assert len(kinds) == len(layers) > 100
    convs = sum(layer.kind == "conv2d" for layer in layers)
    assert kinds.count(torch.nn.Conv2d) == convs > 0
