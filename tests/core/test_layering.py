"""The analysis core reads no renderer, explainer or front-end: data flows one way."""

from __future__ import annotations

import ast
from pathlib import Path

import convlens
from convlens.api import AnalysisReport
from convlens.core.analyze import Report

CORE = Path(__file__).resolve().parents[2] / "src" / "convlens" / "core"
OUTSIDE = ("convlens.render", "convlens.explain", "convlens.cli", "convlens.api", "convlens.torch")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_core_module_imports_renderers_or_front_ends() -> None:
    paths = sorted(CORE.rglob("*.py"))
    assert len(paths) > 10
    for path in paths:
        for name in imported_modules(path):
            assert not name.startswith(OUTSIDE), f"{path.relative_to(CORE)} imports {name}"


def test_the_api_report_keeps_its_conveniences() -> None:
    report = convlens.analyze("input 3x8x8\nconv2d 4 k=3\n")
    assert isinstance(report, AnalysisReport) and isinstance(report, Report)
    assert report.to_dict()["totals"]["params"] == 4 * 3 * 3 * 3 + 4
    assert '"params": 112' in report.to_json()
    assert report.to_markdown().startswith("### network")
    assert "<table>" in report._repr_html_()
    assert "modules" in report.to_dict(depth=1)
    assert not hasattr(Report, "to_json")  # the core's record renders nothing
