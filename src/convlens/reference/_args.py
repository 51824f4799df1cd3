"""Checking and normalising operator arguments (shapes, pairs, padding).

Every check raises ``ArgumentError`` with one paragraph that names the argument
and the expected shape, so the CLI can print it as is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from convlens.errors import ArgumentError

Pair = tuple[int, int]
# (top, bottom, left, right), the order in which padding is applied to (H, W).
Padding4 = tuple[int, int, int, int]
IntOrPair = int | Sequence[int]
PaddingArg = int | str | Sequence[int] | Sequence[Sequence[int]]


# The reference operators are for worked examples: an array beyond this many values (80 MB
# of float64) is a mistake, refused before NumPy is asked to allocate it.
MAX_ELEMENTS = 10_000_000


def check_elements(shape: Sequence[int], what: str) -> None:
    """Refuse an array of ``shape`` before allocating it when it would exceed ``MAX_ELEMENTS``."""
    count = 1
    for size in shape:
        count *= int(size)
    if count > MAX_ELEMENTS:
        raise ArgumentError(
            f"{what} would hold {count:,} values (shape {tuple(int(s) for s in shape)}), more "
            f"than the {MAX_ELEMENTS:,} the reference operators take: they are for worked "
            "examples on small matrices."
        )


def as_array(value: object, name: str, ndim: int | tuple[int, ...], shape_hint: str) -> np.ndarray:
    """A float ndarray with one of the given ranks; integers are promoted to float64."""
    array = np.asarray(value)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise ArgumentError(
            f"{name} must be numeric with shape {shape_hint}; got dtype {array.dtype}."
        )
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    ranks = (ndim,) if isinstance(ndim, int) else ndim
    if array.ndim not in ranks:
        raise ArgumentError(
            f"{name} must have shape {shape_hint} ({' or '.join(f'{r}-D' for r in ranks)}); "
            f"got shape {tuple(array.shape)}."
        )
    if array.size == 0:
        raise ArgumentError(f"{name} is empty; expected shape {shape_hint} with every size ≥ 1.")
    return array


def pair(value: IntOrPair, name: str, minimum: int = 0) -> Pair:
    """``3`` → ``(3, 3)``; ``(2, 1)`` stays; every entry must be an int ≥ ``minimum``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        result = (int(value), int(value))
    else:
        try:
            items = tuple(value)  # type: ignore[arg-type]
        except TypeError:
            raise ArgumentError(
                f"{name} must be an int or a pair of ints; got {value!r}."
            ) from None
        if len(items) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items
        ):
            raise ArgumentError(f"{name} must be an int or a pair of ints; got {value!r}.")
        result = (int(items[0]), int(items[1]))
    if min(result) < minimum:
        raise ArgumentError(f"{name} must be ≥ {minimum}; got {value!r}.")
    return result


def conv_padding(padding: PaddingArg, kernel_size: Pair, dilation: Pair, stride: Pair) -> Padding4:
    """Resolve conv2d padding to (top, bottom, left, right).

    Accepts an int, a pair ``(ph, pw)``, an asymmetric ``((top, bottom), (left, right))``,
    ``"valid"`` (no padding) or ``"same"`` (stride 1 only; the odd pixel of the total
    padding ``d·(k − 1)`` goes to the bottom/right, as PyTorch does).
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ArgumentError(
                    f"padding='same' needs stride 1 (as in PyTorch); got stride {stride}."
                )
            sides: list[int] = []
            for k, d in zip(kernel_size, dilation, strict=True):
                total = d * (k - 1)
                sides += [total // 2, total - total // 2]
            return (sides[0], sides[1], sides[2], sides[3])
        raise ArgumentError(
            f"padding must be an int, a pair, ((top, bottom), (left, right)), 'same' or 'valid'; "
            f"got {padding!r}."
        )
    if (
        isinstance(padding, Sequence)
        and len(padding) == 2
        and all(isinstance(p, Sequence) for p in padding)
    ):
        (top, bottom), (left, right) = (pair(p, "padding") for p in padding)  # type: ignore[arg-type]
        return (top, bottom, left, right)
    if isinstance(padding, Sequence) and len(padding) == 4:
        top, bottom, left, right = (pair(p, "padding")[0] for p in padding)  # type: ignore[arg-type]
        return (top, bottom, left, right)
    ph, pw = pair(padding, "padding")  # type: ignore[arg-type]
    return (ph, ph, pw, pw)


def conv_output_size(
    size: int, before: int, after: int, kernel: int, stride: int, dilation: int
) -> int:
    """O = ⌊(I + P_before + P_after − d·(K − 1) − 1) / S⌋ + 1 (may be ≤ 0 when K is too large)."""
    return (size + before + after - dilation * (kernel - 1) - 1) // stride + 1


def pad_hw(x: np.ndarray, padding: Padding4, value: float = 0.0) -> np.ndarray:
    """Pad the last two axes of (…, H, W) by (top, bottom, left, right) with ``value``."""
    top, bottom, left, right = padding
    if not any(padding):
        return x
    h, w = x.shape[-2:]
    shape = (*x.shape[:-2], h + top + bottom, w + left + right)
    check_elements(shape, "the padded input")
    # a filled array and one copy: np.pad costs about 50% more on a 1×64×56×56 input
    padded = np.zeros(shape, x.dtype) if value == 0 else np.full(shape, value, x.dtype)
    padded[..., top : top + h, left : left + w] = x
    return padded


def check_grad_shape(
    grad: np.ndarray, expected: tuple[int, ...], name: str = "grad_output"
) -> np.ndarray:
    grad = np.asarray(grad)
    if grad.shape != tuple(expected):
        raise ArgumentError(
            f"{name} must have the shape of the forward output {tuple(expected)}; "
            f"got shape {tuple(grad.shape)}."
        )
    return as_array(grad, name, grad.ndim, str(tuple(expected)))


def result_dtype(*arrays: np.ndarray | None) -> np.dtype:
    return np.result_type(*(a.dtype for a in arrays if a is not None))
