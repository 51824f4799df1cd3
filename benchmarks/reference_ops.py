"""Time the NumPy reference conv2d (forward and backward) against torch on the CPU.

    python benchmarks/reference_ops.py              # the table for docs/benchmarks.md
    python benchmarks/reference_ops.py --threads 2  # both libraries on two threads
    python benchmarks/reference_ops.py --quick      # fewer repeats, for a smoke test

Each time is the median of ``repeats`` calls after one warm-up call. The reference and
torch calls alternate, and the ratio is the median of the per-pair ratios reference /
torch (lower is better; the target is ≤ 3 for forward), so a burst of load from other
processes hits both sides of a pair. Both libraries get the same number of threads
(default 1: OpenBLAS's spinning threads make multi-threaded timings meaningless on a
loaded machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _threads_from_argv() -> str:
    """BLAS reads its thread count when NumPy is imported, so set it before that."""
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return "1"


for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _threads_from_argv()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from convlens.reference import conv2d_backward, conv2d_forward  # noqa: E402


@dataclass(frozen=True)
class Case:
    name: str
    input_shape: tuple[int, int, int, int]  # (N, C, H, W)
    weight_shape: tuple[int, int, int, int]  # (O, C / groups, K_h, K_w)
    stride: int = 1
    padding: int = 1
    groups: int = 1


CASES = (
    Case("1×64×56×56, 64 3×3 filters", (1, 64, 56, 56), (64, 64, 3, 3)),
    Case("1×64×56×56, depthwise 3×3", (1, 64, 56, 56), (64, 1, 3, 3), groups=64),
    Case("8×32×32×32, 64 3×3, stride 2", (8, 32, 32, 32), (64, 32, 3, 3), stride=2),
    Case("1×3×224×224, 64 7×7, stride 2", (1, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3),
)


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def paired_ms(
    ours: Callable[[], object], theirs: Callable[[], object], repeats: int
) -> tuple[float, float, float]:
    """Median ms of each, and the median of the per-pair ratios ours / theirs."""
    ours(), theirs()  # warm-up
    pairs = [(_seconds(ours), _seconds(theirs)) for _ in range(repeats)]
    return (
        statistics.median(a for a, _ in pairs) * 1e3,
        statistics.median(b for _, b in pairs) * 1e3,
        statistics.median(a / b for a, b in pairs),
    )


def measure(case: Case, dtype: Any, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(case.input_shape).astype(dtype)
    w = rng.standard_normal(case.weight_shape).astype(dtype)
    b = rng.standard_normal(case.weight_shape[0]).astype(dtype)
    args = (case.stride, case.padding, 1, case.groups)  # stride, padding, dilation, groups

    out, cache = conv2d_forward(x, w, b, *args)
    grad = rng.standard_normal(out.shape).astype(dtype)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = F.conv2d(tx, tw, tb, *args)
    tg = torch.tensor(grad)
    # the two agree (float32 accumulates differently, hence the loose tolerance)
    np.testing.assert_allclose(out, ty.detach().numpy(), rtol=1e-3, atol=1e-3)

    def torch_forward() -> object:
        with torch.no_grad():
            return F.conv2d(tx, tw, tb, *args)

    fwd = paired_ms(lambda: conv2d_forward(x, w, b, *args), torch_forward, repeats)
    bwd = paired_ms(
        lambda: conv2d_backward(grad, cache),
        lambda: torch.autograd.grad(ty, (tx, tw, tb), tg, retain_graph=True),
        repeats,
    )
    return {
        "fwd": fwd[0],
        "torch_fwd": fwd[1],
        "fwd_ratio": fwd[2],
        "bwd": bwd[0],
        "torch_bwd": bwd[1],
        "bwd_ratio": bwd[2],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 20")
    parser.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    parser.add_argument("--threads", type=int, default=1, help="threads for torch and BLAS")
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    repeats = 3 if options.quick else 20
    dtypes = ["float32", "float64"] if options.dtype == "both" else [options.dtype]

    print(
        f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads; numpy {np.__version__}"
    )
    print(f"median of {repeats} calls, milliseconds\n")
    print(
        "| case | dtype | reference fwd | torch fwd | ratio | reference bwd | torch bwd | ratio |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for case in CASES:
        for dtype in dtypes:
            t = measure(case, np.dtype(dtype), repeats)
            print(
                f"| {case.name} | {dtype} | {t['fwd']:.2f} | {t['torch_fwd']:.2f} | "
                f"{t['fwd_ratio']:.2f}× | {t['bwd']:.2f} | {t['torch_bwd']:.2f} | "
                f"{t['bwd_ratio']:.2f}× |",
                flush=True,
            )


if __name__ == "__main__":
    main()
