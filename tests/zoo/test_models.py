"""Every registered model, parametrised over ``list_models()`` (timm's tests/test_models.py).

Counting and default-input shapes use the meta device (no memory, no weights);
real forwards run at each entry's ``small_input``.
"""

from __future__ import annotations

import pytest
import torch

from convlens.zoo import get_entry, list_models
from convlens.zoo.measure import build, count_params, forward_shapes, measure_figure

MODELS = list_models()
FIGURES = [(name, key) for name in MODELS for key in get_entry(name).published]


@pytest.mark.parametrize("name", MODELS)
def test_exact_parameter_count(name: str) -> None:
    entry = get_entry(name)
    assert count_params(build(name)) == entry.exact_params


@pytest.mark.parametrize("name", MODELS)
def test_output_shapes_at_default_input(name: str) -> None:
    entry = get_entry(name)
    assert forward_shapes(build(name), entry.default_input) == entry.output_shapes


@pytest.mark.parametrize(("name", "figure"), FIGURES)
def test_published_figure_within_tolerance(name: str, figure: str) -> None:
    entry = get_entry(name)
    published = entry.published[figure]
    measured = measure_figure(entry, published)
    assert published.matches(measured), (
        f"{name}.{figure}: published {published.value:,} vs rebuild {measured:,} "
        f"(tolerance {published.rel_tolerance:.2%})"
    )


@pytest.mark.parametrize("name", MODELS)
def test_real_forward_at_small_input(name: str) -> None:
    entry = get_entry(name)
    torch.manual_seed(0)
    model = build(name, device="cpu")
    expected = forward_shapes(build(name), entry.small_input, batch=2)
    with torch.no_grad():
        x = torch.randn(2, *entry.small_input)
        shapes = forward_shapes(model, entry.small_input, batch=2)
        output = model(x)
    assert shapes == expected
    tensors = (
        output.values()
        if isinstance(output, dict)
        else (output if isinstance(output, (tuple, list)) else (output,))
    )
    for tensor in tensors:
        assert tensor.shape[0] == 2
        assert torch.isfinite(tensor).all()


@pytest.mark.parametrize("name", MODELS)
def test_entry_is_documented(name: str) -> None:
    entry = get_entry(name)
    assert entry.citation.year == entry.year > 1990
    assert entry.notes, f"{name} has no notes"
    assert entry.factory.__doc__, f"{name}'s factory has no docstring"
    for argument in entry.arguments:
        assert argument.help, f"{name}: argument {argument.name} has no help"
    for key, figure in entry.published.items():
        assert figure.rel_tolerance == 0 or figure.note, f"{name}.{key}: tolerance without a note"
