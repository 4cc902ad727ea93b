"""Data-parallel training: DDP over gloo (CPU) or NCCL (GPU), and FSDP2 `fully_shard` on GPU.

`torchrun` (or `modelforge train CFG --nproc N`, which spawns it) starts one process per rank
with RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT set; `setup` joins the group.
Every rank walks the same epoch order (a pure function of seed and epoch) and takes its share
of each global batch, so `train.batch_size` is the global batch whatever the process count.
Each rank's loss is weighted by its share of the batch, so averaging gradients over ranks
gives exactly the gradient of the global batch mean. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from modelforge.errors import ConfigError


@dataclass(frozen=True)
class Topology:
    """Where this process sits: rank, world size, its device; the collectives the loop needs."""

    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's rows of one global batch (strided, so shares differ by at most one row)."""
        return rows[self.rank :: self.world] if self.distributed else rows

    def batch_weight(self, local_rows: int, global_rows: int) -> float:
        """Factor on the local mean loss so the ranks' averaged gradient is the global mean's."""
        return local_rows * self.world / global_rows if self.distributed else 1.0

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one (stop requests, non-finite losses)."""
        if not self.distributed:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self._collective_device)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        return bool(value.item() > 0)

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        if not self.distributed:
            return value
        total = value.detach().to(self._collective_device, copy=True)
        torch.distributed.all_reduce(total)
        return total.to(value.device)

    def gather(self, value: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's copy of a same-shaped tensor, on the CPU, in rank order."""
        if not self.distributed:
            return [value.detach().cpu()]
        local = value.detach().to(self._collective_device).contiguous()
        parts = [torch.empty_like(local) for _ in range(self.world)]
        torch.distributed.all_gather(parts, local)
        return [part.cpu() for part in parts]

    def broadcast_text(self, text: str) -> str:
        """Rank 0's string on every rank (the run directory, chosen once)."""
        if not self.distributed:
            return text
        data = torch.tensor(list(text.encode()), dtype=torch.uint8)
        size = torch.tensor([len(data)], device=self._collective_device)
        torch.distributed.broadcast(size, 0)
        buffer = torch.zeros(int(size.item()), dtype=torch.uint8, device=self._collective_device)
        if self.is_writer:
            buffer.copy_(data)
        torch.distributed.broadcast(buffer, 0)
        return bytes(buffer.cpu().tolist()).decode()

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    @property
    def _collective_device(self) -> torch.device:
        # gloo reduces CPU tensors; NCCL needs them on this rank's GPU
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> Topology:
    """Join the process group torchrun prepared (gloo on CPU, NCCL on GPU); single-process otherwise."""
    if not launched_by_torchrun():
        return Topology(device=device)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend, rank=rank, world_size=world, device_id=_device_id(device))
    return Topology(device=device, rank=rank, world=world, local_rank=local_rank)


def _device_id(device: torch.device) -> torch.device | None:
    return device if device.type == "cuda" else None


def teardown(topology: Topology) -> None:
    if topology.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


# ----------------------------------------------------------------------------- wrapping
def wrap_model(model: nn.Module, strategy: str, topology: Topology, precision: str = "fp32") -> nn.Module:
    """The module the loop calls: the model itself, DDP around it, or the model sharded in place by FSDP2."""
    if not topology.distributed:
        return model
    if strategy == "fsdp":
        return _fully_shard(model, topology, precision)
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [topology.device.index] if topology.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def _fully_shard(model: nn.Module, topology: Topology, precision: str) -> nn.Module:
    if topology.device.type != "cuda":
        raise ConfigError("train.strategy: fsdp needs CUDA devices; use ddp on the CPU")
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh("cuda", (topology.world,))
    bf16 = precision == "bf16" or (precision == "auto" and torch.cuda.is_bf16_supported())
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else None
    kwargs: dict[str, Any] = {"mesh": mesh} | ({"mp_policy": policy} if policy else {})
    # one shard group per repeated block (transformer layers), then the rest at the root
    for module in list(model.modules()):
        if isinstance(module, nn.ModuleList):
            for block in module:
                fully_shard(block, **kwargs)
    fully_shard(model, **kwargs)
    return model


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


# ----------------------------------------------------------------------------- full state
def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights on the CPU (a collective under FSDP: call it on every rank)."""
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_model_state_dict(model, options=options)
    return {name: value.detach().cpu() for name, value in model.state_dict().items()}


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_optimizer_state_dict(model, optimizer, options=options)  # type: ignore[return-value]
    return optimizer.state_dict()


def load_full_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    weights: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
) -> None:
    if is_sharded(model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        options = StateDictOptions(full_state_dict=True)
        set_state_dict(model, optimizer, model_state_dict=weights, optim_state_dict=optimizer_state, options=options)
        return
    model.load_state_dict(weights)
    optimizer.load_state_dict(optimizer_state)
