"""``convlens zoo list`` / ``zoo show``, driven through Typer's CliRunner."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from convlens.cli import zoo as zoo_cli
from convlens.zoo import list_models

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    zoo_cli.register(app)
    return app


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(_app(), ["zoo", *args], terminal_width=200)
    return result.exit_code, result.output


def test_main_app_registers_zoo() -> None:
    from convlens.cli.main import COMMAND_MODULES

    assert "zoo" in COMMAND_MODULES


def test_list_shows_every_model() -> None:
    code, out = invoke("list")
    assert code == 0
    for name in list_models():
        assert name in out
    assert "25,557,032" in out and "3×224×224" in out


def test_list_pattern() -> None:
    code, out = invoke("list", "resnet*")
    assert code == 0
    assert "resnet50" in out and "se_resnet50" not in out and "vgg16" not in out


def test_list_pattern_without_match_exits_2() -> None:
    code, out = invoke("list", "nothing*")
    assert code == 2
    assert "no model matches 'nothing*'" in out


def test_show_prints_citation_arguments_figures_and_summary() -> None:
    code, out = invoke("show", "mobilenet_v1")
    assert code == 0
    assert "Howard" in out and "2017" in out
    assert "width_mult" in out
    assert "4,200,000" in out and "4,231,976" in out
    assert "569,000,000" in out and "568,740,352" in out
    assert "3×224×224 → output 1000" in out


def test_show_multi_output_model() -> None:
    code, out = invoke("show", "yolov3")
    assert code == 0
    assert "255×13×13, 255×26×26, 255×52×52" in out


def test_show_unknown_model_suggests_the_closest() -> None:
    code, out = invoke("show", "resnet5")
    assert code == 2
    assert "unknown model 'resnet5'" in out and "Did you mean 'resnet50'" in out
    assert "Traceback" not in out
