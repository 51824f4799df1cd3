"""benchmarks/vs_anchors.py runs without the anchor tools installed (convlens only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.scripts import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "vs_anchors.py"


def load() -> object:
    return load_script(SCRIPT)


def test_every_anchor_has_a_whole_process_command() -> None:
    bench = load()
    assert set(bench.ANCHORS) == set(bench.PROCESS)
    assert set(bench.BIG_TOOLS) <= set(bench.ANCHORS)


def test_convlens_worker_times_two_calls() -> None:
    result = load().worker("convlens", "mobilenet_v2", 32, 2)
    assert result["cold"] > 0 and result["warm"] > 0 and result["peak"] > 0


def test_compare_cases_have_the_hand_counted_figures() -> None:
    bench = load()
    cases = {title: (model, shape) for title, model, shape in bench.compare_cases()}
    counts = {}
    for title, (model, shape) in cases.items():
        if "ResNet" in title or "MobileNet" in title:
            continue
        counts[title.split(" ")[0]] = bench._convlens(model, shape, None, "2mac")
    # ConvTranspose2d(64, 32, 4, s=2, p=1) on 32²: every input pixel meets 32·4·4 weights
    # per input channel, 64·32·4·4·32·32 MACs; output 64², FLOPs = 2 × MACs.
    assert counts["ConvTranspose2d(64,"] == (
        64 * 32 * 16 + 32,
        64 * 32 * 16 * 32 * 32,
        2 * 64 * 32 * 16 * 32 * 32,
    )
    # depthwise: one 3×3 filter per channel, 64 · 9 · 56 · 56 MACs
    assert counts["depthwise"][:2] == (64 * 9 + 64, 64 * 9 * 56 * 56)
    # one Conv2d called twice: parameters once, MACs twice
    assert counts["one"][:2] == (16 * 16 * 9 + 16, 2 * 16 * 16 * 9 * 32 * 32)


def test_table_names_the_fastest_tool() -> None:
    bench = load()
    result = {
        "convlens": {"cold": 0.1, "peak": 2**20, "error": None},
        "thop": {"cold": 0.3, "peak": 2**21, "error": None},
        "fvcore": {"cold": None, "peak": None, "error": "boom"},
    }
    text = bench.table("t", result, ["cold"])
    assert "faster than the fastest tool (thop 0.300 s, 3.0×)" in text
    assert "| fvcore | failed: boom |" in text


def test_children_write_and_reuse_bytecode(monkeypatch: pytest.MonkeyPatch) -> None:
    """An editable convlens would otherwise compile its tracer inside each cold call while
    the other tools come precompiled from site-packages."""
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = load().child_env()
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"


def test_the_baseline_is_never_the_fastest_tool() -> None:
    """``--baseline`` measures another convlens beside this one: a row of the table, not
    a tool to beat."""
    bench = load()
    result = {
        "convlens": {"cold": 0.1, "peak": 2**20, "error": None},
        bench.BASELINE_TOOL: {"cold": 0.2, "peak": 2**20, "error": None},
        "thop": {"cold": 0.3, "peak": 2**21, "error": None},
    }
    text = bench.table("t", result, ["cold"])
    assert f"| {bench.BASELINE_TOOL} | 0.200 | 2.0× |" in text
    assert "faster than the fastest tool (thop 0.300 s, 3.0×)" in text


def test_the_baseline_worker_imports_the_other_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load()
    seen: dict[str, object] = {}

    def run(command: list[str], **kwargs: object) -> object:
        seen.update(command=command, env=kwargs["env"])
        raise SystemExit  # the command is all this test needs

    monkeypatch.setattr(bench, "BASELINE", "/elsewhere/src")
    monkeypatch.setattr(bench.subprocess, "run", run)
    with pytest.raises(SystemExit):
        bench.run_worker(bench.BASELINE_TOOL, "mobilenet_v2", 32, 2)
    assert seen["command"][3] == "convlens"  # type: ignore[index]
    assert seen["env"]["PYTHONPATH"] == "/elsewhere/src"  # type: ignore[index]


def test_milliseconds_keep_two_figures() -> None:
    bench = load()
    assert [bench.seconds(v) for v in (0.00624, 0.0549, 0.1, 1.5, None)] == [
        "0.0062",
        "0.0549",
        "0.100",
        "1.500",
        "—",
    ]


def test_models_are_chosen_by_name_in_the_scripts_order() -> None:
    bench = load()
    assert bench.chosen_models("densenet121,mobilenet_v2") == [
        ("mobilenet_v2", 224),
        ("densenet121", 224),
    ]
    with pytest.raises(SystemExit, match="unknown resnet5; choose from resnet50, vgg16"):
        bench.chosen_models("resnet5,vgg16")
