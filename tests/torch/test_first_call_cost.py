"""The first analysis in a process must not start PyTorch's Python decompositions.

Running an operation with autograd on meta tensors can take PyTorch's Python
decomposition path, whose first use imports ``torch._dynamo`` (~1 s, as long as dozens
of whole analyses): shape-only tracing exists to avoid that cost, so tracing a model
whose operations all have rules must not load it. Checked in a fresh process, with the
model built first (building is not the analysis).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# torch.fx's symbolic shapes (and SymPy with them, ~0.3 s) load with PyTorch's Python
# references, e.g. torch.empty_like on a meta tensor: the trace computes those itself.
HEAVY = ("torch._dynamo", "torch._inductor", "torch.fx.experimental.symbolic_shapes", "sympy")


@pytest.mark.parametrize("model", ["resnet18", "mobilenet_v2", "densenet121", "unet_same"])
def test_tracing_a_zoo_model_starts_no_decompositions(model: str) -> None:
    code = textwrap.dedent(f"""
        import sys
        import convlens
        from convlens.zoo import create_model
        model = create_model({model!r})
        before = [m for m in {HEAVY!r} if m in sys.modules]
        report = convlens.analyze(model, input_size=(1, 3, 64, 64))
        assert not report.totals.unsupported, report.totals.unsupported
        print(before, [m for m in {HEAVY!r} if m in sys.modules and m not in before])
    """)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[] []", result.stdout
