"""torchrun / DistributedDataParallel: torchrun sets RANK, WORLD_SIZE, LOCAL_RANK (and
MASTER_ADDR/PORT); a plain ``python`` run is one process and every helper is a no-op."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from convlens.errors import ArgumentError

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Dist()  # one process


def detect_distributed() -> Dist:
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Dist()
    return Dist(
        int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    )


def pick_device(preference: str, dist: Dist) -> torch.device:
    if preference == "cuda" and not torch.cuda.is_available():
        raise ArgumentError("--device cuda: no CUDA device is available; use --device cpu or auto.")
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", dist.local_rank % torch.cuda.device_count())


def init_distributed(dist: Dist, device: torch.device) -> None:
    """gloo on the CPU, nccl on CUDA; a no-op for a single process."""
    import torch.distributed as tdist

    if dist.enabled and not tdist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def barrier(dist: Dist) -> None:
    if dist.enabled:
        import torch.distributed as tdist

        tdist.barrier()


def all_reduce_sum(values: list[float], dist: Dist, device: torch.device) -> list[float]:
    """Sum a few numbers over processes (float64, one collective)."""
    if not dist.enabled:
        return values
    import torch.distributed as tdist

    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    tdist.all_reduce(tensor)
    return tensor.tolist()


def broadcast_buffers(model: nn.Module, dist: Dist) -> None:
    """Copy rank 0's BatchNorm running statistics to every rank (see ``wrap_model``)."""
    if not dist.enabled:
        return
    import torch.distributed as tdist

    for buffer in model.buffers():
        tdist.broadcast(buffer, src=0)


def wrap_model(model: nn.Module, dist: Dist, device: torch.device) -> nn.Module:
    """DDP under torchrun. BatchNorm: on CUDA SyncBatchNorm (statistics over the global
    batch, the same arithmetic as one process); on the CPU SyncBatchNorm is unavailable,
    so each process normalises its own slice and the running statistics are taken from
    rank 0 (DDP broadcasts them before every forward; ``broadcast_buffers`` after each epoch).
    """
    if not dist.enabled:
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )
