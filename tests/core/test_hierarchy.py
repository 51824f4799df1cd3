"""--depth rows group layers by their enclosing module and add up to the totals."""

from __future__ import annotations

import convlens
from convlens.core.hierarchy import module_rows

RESNET_BLOCKS = """
input 3x32x32
block basic(planes):
    conv2d planes k=3 p=1 bias=false
    batchnorm2d
    relu
    conv2d planes k=3 p=1 bias=false
    batchnorm2d
    add in
    relu
conv2d 16 k=3 p=1
repeat 3: basic 16
global_avgpool
flatten
linear 10
"""


def test_rows_group_blocks_and_sum_to_totals() -> None:
    report = convlens.analyze(RESNET_BLOCKS)
    rows = module_rows(report, 1)
    assert [r.name for r in rows][:4] == ["conv2d_1", "basic_1", "basic_2", "basic_3"]
    assert rows[1].layers == 7 and rows[1].module_type == "block"
    assert rows[1].params == 2 * (16 * 16 * 9) + 2 * (2 * 16)
    for field in ("params", "macs", "flops", "activation_bytes"):
        assert sum(getattr(r, field) for r in rows) == getattr(report.totals, field)


def test_traced_modules_carry_their_class_names() -> None:
    from convlens.zoo import create_model

    report = convlens.analyze(create_model("resnet18"), input_size=(1, 3, 64, 64))
    rows = {r.name: r for r in module_rows(report, 1)}
    assert rows["layer1"].module_type == "Sequential" and rows["conv1"].module_type == "Conv2d"
    assert sum(r.params for r in rows.values()) == 11_689_512


def test_cli_depth_table() -> None:
    from typer.testing import CliRunner

    from convlens.cli.main import app

    result = CliRunner().invoke(app, ["analyze", "zoo:resnet18", "--depth", "1"])
    assert result.exit_code == 0, result.output
    assert "layer4" in result.output and "Sequential" in result.output
    assert "11,689,512" in result.output


def test_depth_rows_show_tuple_and_dict_outputs_of_modules() -> None:
    import torch
    from torch import nn

    from convlens.zoo import create_model

    report = convlens.analyze(create_model("yolov3"), input_size=(1, 3, 416, 416))
    rows = module_rows(report, 0)  # depth 0: the whole model as one row
    assert rows[0].output_text == "(255×13×13, 255×26×26, 255×52×52)"

    class Heads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            y = self.body(x)
            return {"out": y, "pooled": y.mean((2, 3))}

    class Wrap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.heads = Heads()

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return self.heads(x)

    report = convlens.analyze(Wrap(), input_size=(2, 3, 8, 8))
    heads = next(r for r in module_rows(report, 1) if r.name == "heads")
    assert heads.output_text == "{out: 4×6×6, pooled: 4}"
