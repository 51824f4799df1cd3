"""What the gradient-flow lab added to the runtime: ``after_backward`` (sees and may change
each step's gradients before the optimizer) and ``per_step`` metrics (sums ÷ steps)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from convlens.labs.runtime.loop import (
    LabInfo,
    Position,
    Recipe,
    fit,
    open_run,
    run_epoch,
    scheduled_lab,
)

X = torch.linspace(-1, 1, 24).reshape(12, 2)
Y = X.sum(1, keepdim=True) * 3.0


def squared_error(net: nn.Module, index: torch.Tensor, epoch: int) -> tuple[torch.Tensor, dict]:
    return ((net(X[index]) - Y[index]) ** 2).mean(), {}


def test_after_backward_sees_this_steps_gradients_before_the_step() -> None:
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen: list[list[tuple[torch.Tensor, torch.Tensor]]] = []

    def record(net: nn.Module) -> dict[str, torch.Tensor]:
        seen.append([(p.detach().clone(), p.grad.clone()) for p in net.parameters()])
        return {"norm": net.weight.grad.norm()}

    order = torch.arange(12)
    position = run_epoch(
        model, optimizer, squared_error, order, 4, Position(), after_backward=record
    )
    assert len(seen) == 3 and position.step == 3
    for step, [(weight, weight_grad), (bias, bias_grad)] in enumerate(seen):
        w, b = weight.requires_grad_(True), bias.requires_grad_(True)
        index = order[4 * step : 4 * step + 4]
        loss = ((X[index] @ w.T + b - Y[index]) ** 2).mean()
        expected = torch.autograd.grad(loss, (w, b))
        torch.testing.assert_close((weight_grad, bias_grad), expected)  # at the step's weights
        if step + 1 < len(seen):  # and the optimizer stepped only after
            torch.testing.assert_close(seen[step + 1][0][0], weight.detach() - 0.1 * weight_grad)
    assert position.sums["norm"] == sum(float(step[0][1].norm()) for step in seen)


def test_after_backward_may_change_the_gradients() -> None:
    """Zeroing every gradient there leaves plain SGD with nothing to do."""
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def zero(net: nn.Module) -> dict[str, torch.Tensor]:
        for p in net.parameters():
            p.grad.zero_()
        return {}

    run_epoch(model, optimizer, squared_error, torch.arange(12), 4, Position(), after_backward=zero)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@dataclass
class TinyConfig:
    out: str
    epochs: int = 2
    batch_size: int = 4
    seed: int = 0
    lr: float = 0.1
    device: str = "cpu"
    threads: int = 0


def test_per_step_metrics_are_means_over_the_steps(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    cfg = TinyConfig(out=str(tmp_path / "run"))
    lab = LabInfo("tiny", "a tiny run folder")
    norms: list[float] = []

    def record(net: nn.Module) -> dict[str, torch.Tensor]:
        norms.append(float(net.weight.grad.double().norm()))
        return {"norm": net.weight.grad.double().norm(), "two": torch.tensor(2.0)}

    recipe = Recipe(
        lab=lab,
        config=cfg,
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=cfg.lr),
        step=squared_error,
        evaluate=lambda net, dist: {},
        n_train=12,
        describe=lambda dist, device: "tiny",
        epoch_line=lambda row: "",
        after_backward=record,
        per_step={"norm": "mean_norm", "two": "two"},
    )
    result = fit(recipe, open_run(cfg, lab, False), progress_bar=False)
    assert [m["two"] for m in result.metrics] == [2.0, 2.0]
    for epoch, row in enumerate(result.metrics):
        assert row["mean_norm"] == sum(norms[3 * epoch : 3 * epoch + 3]) / 3


def test_a_schedule_fixes_the_epochs_on_resume() -> None:
    lab = LabInfo("x", "an x run folder")
    assert scheduled_lab(lab, "constant") == (lab, "")
    changed, note = scheduled_lab(lab, "cosine")
    assert "epochs" in lab.may_change and "epochs" not in changed.may_change
    assert note == " (not epochs, which fix the cosine schedule)"
