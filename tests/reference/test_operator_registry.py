"""The operator registry is what every front-end reads: each registered operator runs
forward and backward through ``reference.run``, agrees with the PyTorch equivalent it
registered (the check ``convlens op`` prints), and is offered by ``convlens op`` with
exactly the options it registered."""

from __future__ import annotations

import numpy as np
import pytest

from convlens.cli.op import Operator as CliChoices
from convlens.cli.op import hyper_parameters, torch_check
from convlens.reference import OPERATORS, run

SHAPE = (2, 3, 5, 5)
# every hyper-parameter option of convlens op
EVERY_OPTION = frozenset(
    [
        "weight",
        "bias",
        "stride",
        "padding",
        "dilation",
        "groups",
        "output_padding",
        "kernel",
        "ceil_mode",
        "count_include_pad",
        "size",
        "scale",
        "mode",
        "align_corners",
        "running_mean",
        "running_var",
        "training",
        "momentum",
        "eps",
    ]
)


def problem(name: str, rng: np.random.Generator) -> dict:
    op = OPERATORS[name]
    x = rng.standard_normal(SHAPE)
    given: dict = {"x": x}
    if op.weight == "filter":
        groups = op.example.get("groups", 1)
        c_in = SHAPE[1]
        shape = (4, c_in // groups, 3, 3) if name == "conv2d" else (c_in, 2, 3, 3)
        given |= {
            "weight": rng.standard_normal(shape),
            "bias": rng.standard_normal(4 if name == "conv2d" else 2 * groups),
        }
    elif op.weight == "affine":
        given |= {"weight": rng.standard_normal(SHAPE[1]), "bias": rng.standard_normal(SHAPE[1])}
    elif op.weight == "matrix":
        given |= {"weight": rng.standard_normal((4, SHAPE[-1])), "bias": rng.standard_normal(4)}
    return given


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_every_operator_agrees_with_its_pytorch_equivalent(name: str) -> None:
    rng = np.random.default_rng(0)
    given = problem(name, rng)
    forward = run(name, given["x"], given.get("weight"), given.get("bias"), explain=False,
                  **OPERATORS[name].example)  # fmt: skip
    grad = rng.standard_normal(forward.output.shape)
    worked = run(name, given["x"], given.get("weight"), given.get("bias"), grad_output=grad,
                 explain=False, **OPERATORS[name].example)  # fmt: skip
    assert set(worked.grads) >= {"input"}
    line = torch_check(worked)
    assert line.startswith("check: agrees with torch.nn.functional."), line
    # and a wrong result is caught: the check is not a formality
    wrong = worked.output.copy()
    wrong.flat[0] += 1e-6
    broken = type(worked)(**{**vars(worked), "output": wrong})
    assert torch_check(broken).startswith("check FAILED"), name


def test_convlens_op_offers_exactly_the_registered_operators() -> None:
    assert [choice.value for choice in CliChoices] == list(OPERATORS)


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_an_option_the_operator_did_not_register_is_refused(name: str) -> None:
    every = EVERY_OPTION
    assert OPERATORS[name].options <= every
    for option in sorted(every - OPERATORS[name].options - {"weight", "bias"}):
        given = dict.fromkeys(every)
        given[option] = "2"
        with pytest.raises(Exception, match="does not apply to"):
            hyper_parameters(name, given)
