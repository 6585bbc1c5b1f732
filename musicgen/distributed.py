"""Data-parallel training across processes started by torchrun (PyTorch DistributedDataParallel).

`torchrun --nproc_per_node N -m musicgen train ...` starts N processes and sets RANK,
LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT for each. `session` joins them into
one process group, with NCCL between GPUs and gloo on CPUs. Every process reads the whole
corpus and cuts the same windows in the same order; each global batch is split into one
contiguous shard per rank, and DDP averages the gradients, so the update equals the one
of a single process on the whole batch up to the order of floating-point sums. Only rank
0 writes checkpoints, the metrics CSV and logs. Without torchrun (WORLD_SIZE unset or 1)
everything here is a no-op.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from musicgen.device import resolve_device
from musicgen.errors import MusicgenError

logger = logging.getLogger(__name__)


class DistributedError(MusicgenError):
    pass


@dataclass
class Context:
    """This process's place in the process group; rank 0 of world size 1 without torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device | None = None  # the device of this rank under torchrun; None means resolve --device

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_context = Context()


def context() -> Context:
    """Return the context of the running `session`, or the single-process one."""
    return _context


def world_size_from_env() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise DistributedError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a whole number; start with torchrun") from None


@contextlib.contextmanager
def session(device_name: str) -> Iterator[Context]:
    """Join the process group that torchrun set up, for the duration of a run; yield this rank's context."""
    global _context
    world_size = world_size_from_env()
    if world_size <= 1:
        yield _context
        return
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = _rank_device(device_name, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    _limit_cpu_threads(int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size))))
    dist.init_process_group(backend, rank=rank, world_size=world_size)
    _context = Context(rank, world_size, local_rank, device)
    _quiet_other_ranks(rank)
    logger.info("process group of %d ranks (%s backend); rank %d trains on %s", world_size, backend, rank, device)
    try:
        yield _context
    finally:
        dist.destroy_process_group()
        _context = Context()


def _rank_device(device_name: str, local_rank: int) -> torch.device:
    """Return the device of one rank: its own GPU (cuda:LOCAL_RANK) when CUDA is used, else the CPU."""
    device = resolve_device(device_name)
    if device.type != "cuda":
        return device
    if local_rank >= torch.cuda.device_count():
        raise DistributedError(
            f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible); "
            "start at most that many processes per node (--nproc_per_node) or use --device cpu"
        )
    return torch.device("cuda", local_rank)


def _limit_cpu_threads(local_processes: int) -> None:
    """Share the CPU cores among the processes of this node, unless OMP_NUM_THREADS sets the count."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(local_processes, 1)))


def _quiet_other_ranks(rank: int) -> None:
    """Keep the log of ranks other than 0 to warnings and errors, so each line appears once."""
    if rank != 0:
        logging.getLogger().setLevel(logging.WARNING)


def shard(batch: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Return this rank's contiguous part of a global batch (rows) and its weight.

    A rank whose part would be empty (a last batch with fewer rows than ranks) gets the
    first row with weight 0, because every rank must run the forward and backward pass
    for the gradient average to complete.
    """
    if not _context.enabled:
        return batch, 1.0
    part = batch.tensor_split(_context.world_size)[_context.rank]
    if len(part) == 0:
        return batch[:1], 0.0
    return part, 1.0


def wrap(module: torch.nn.Module) -> torch.nn.Module:
    """Wrap `module` in DistributedDataParallel under torchrun; return it unchanged otherwise."""
    if not _context.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [_context.device.index] if _context.device is not None and _context.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def sum_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """Return the element-wise sum of `values` over all ranks (the values themselves without torchrun)."""
    if not _context.enabled:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def any_rank(flag: bool, device: torch.device) -> bool:
    """Return True on every rank when `flag` is True on at least one, so all ranks stop at the same step."""
    if not _context.enabled:
        return flag
    return sum_over_ranks([1.0 if flag else 0.0], device)[0] > 0


def gather_objects(value: Any) -> list[Any]:
    """Return `value` of every rank, in rank order (a one-item list without torchrun)."""
    if not _context.enabled:
        return [value]
    gathered: list[Any] = [None] * _context.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def barrier() -> None:
    if _context.enabled:
        dist.barrier()
