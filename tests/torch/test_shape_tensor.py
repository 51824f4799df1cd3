"""``meta_tensor``: every traced row's output wraps a meta template kept per shape and
dtype, so each must still behave as a tensor of its own."""

from __future__ import annotations

import pytest
import torch

from convlens.torch import shape_tensor
from convlens.torch.shape_tensor import ShapeTensor, meta_tensor


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((1, 16, 4, 4), torch.float32),
        ((2, 3), torch.float16),
        ((), torch.int64),
        ((0, 5), torch.bfloat16),
    ],
)
def test_each_call_gives_a_fresh_tensor_of_the_shape(
    shape: tuple[int, ...], dtype: torch.dtype
) -> None:
    first, second = meta_tensor(shape, dtype), meta_tensor(list(shape), dtype)
    assert first is not second
    for made in (first, second):
        with torch._C.DisableTorchFunctionSubclass():
            assert type(made) is ShapeTensor
            assert tuple(made.shape) == shape and made.dtype == dtype
            assert made.device.type == "meta" and made.is_contiguous()
            assert not made.requires_grad and not made._is_view() and made._base is None
            assert made.stride() == torch.empty(shape, device="meta").stride()


def test_changing_one_tensor_leaves_the_others_alone() -> None:
    first, second = (
        meta_tensor((1, 8, 2, 2), torch.float32),
        meta_tensor((1, 8, 2, 2), torch.float32),
    )
    with torch._C.DisableTorchFunctionSubclass():
        first.unsqueeze_(0)
        first.requires_grad_(True)
        assert tuple(second.shape) == (1, 8, 2, 2) and not second.requires_grad
        third = meta_tensor((1, 8, 2, 2), torch.float32)
        assert tuple(third.shape) == (1, 8, 2, 2) and not third.requires_grad


def test_templates_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shape_tensor, "_TEMPLATES", {})
    monkeypatch.setattr(shape_tensor, "_MOST_TEMPLATES", 3)
    made = [meta_tensor((1, n), torch.float32) for n in range(1, 8)]
    assert len(shape_tensor._TEMPLATES) <= 3
    assert [
        tuple(t.shape) for t in made
    ]  # no trace runs: plain reads == [(1, n) for n in range(1, 8)]
