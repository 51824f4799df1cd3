"""``convlens zoo list`` reads a catalog (no torch, no model built) that matches the registry."""

from __future__ import annotations

import subprocess
import sys

from convlens.zoo.catalog import ROWS, list_rows, source_text
from convlens.zoo.registry import catalog_rows
from tests.cli.test_errors import fails, run


def test_the_catalog_matches_the_registry() -> None:
    live = catalog_rows()  # builds nothing, but imports every model module (and torch)
    assert live == ROWS, "the zoo changed: run 'python -m convlens.zoo.catalog' to rewrite it"


def test_the_catalog_rewrites_itself_unchanged() -> None:
    from pathlib import Path

    import convlens.zoo.catalog as catalog

    assert source_text(ROWS) == Path(catalog.__file__).read_text(encoding="utf-8")


def test_zoo_list_does_not_import_torch() -> None:
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from convlens.cli.main import app\n"
        "result = CliRunner().invoke(app, ['zoo', 'list'])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'resnet50' in result.output, result.output\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_zoo_list_shows_every_row_with_its_parameters() -> None:
    code, output = run("zoo", "list")
    assert code == 0
    assert f"({len(ROWS)} models)" in output
    for row in ROWS:
        assert row.name in output and f"{row.params:,}" in output


def test_zoo_list_filters_by_pattern() -> None:
    code, output = run("zoo", "list", "resnet*")
    names = [row.name for row in list_rows("resnet*")]
    assert code == 0 and names and all(n.startswith("resnet") for n in names)
    assert f"({len(names)} models)" in output
    assert "alexnet" not in output


def test_zoo_list_pattern_matching_nothing() -> None:
    assert "no model matches 'x*'" in fails("zoo", "list", "x*")
    assert f"to see the {len(ROWS)} models" in fails("zoo", "list", "x*")
