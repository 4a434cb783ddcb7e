"""Device, precision and process setup through Lightning Fabric.

Nothing in medcl calls ``.cuda()``: the device is whatever Fabric picks (``auto``: a GPU if
there is one, else the CPU) or what the user names. Mixed precision (bf16) is the default on
GPUs only: on CPUs it makes training slower.
"""

from __future__ import annotations

import os

import torch

from medcl.errors import MedclError


def make_fabric(
    device: str = "auto", precision: str | None = None, devices: int = 1, num_nodes: int = 1
):
    """A launched :class:`lightning.fabric.Fabric` for ``device`` ('auto', 'cpu', 'cuda', 'cuda:1', 'mps').

    ``devices > 1`` starts that many processes with DDP (one per GPU; on CPUs, gloo).
    ``num_nodes > 1`` spans machines: a cluster launcher (``srun`` under SLURM, ``torchrun``)
    starts ``devices`` processes on each, and Fabric reads the ranks from its environment.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from lightning_fabric import Fabric

    accelerator, index = device, None
    if ":" in device:
        accelerator, idx = device.split(":", 1)
        if not idx.isdigit():
            raise MedclError(
                f"run.device='{device}' is not a device; use auto, cpu, cuda or cuda:N."
            )
        index = [int(idx)]
    if accelerator not in ("auto", "cpu", "cuda", "gpu", "mps"):
        raise MedclError(f"run.device='{device}' is not a device; use auto, cpu, cuda or cuda:N.")
    if accelerator in ("cuda", "gpu") and not torch.cuda.is_available():
        raise MedclError(f"run.device='{device}' but no CUDA GPU is visible; use run.device=cpu.")
    if precision is None:
        on_gpu = accelerator in ("cuda", "gpu") or (
            accelerator == "auto" and torch.cuda.is_available()
        )
        precision = "bf16-mixed" if on_gpu else "32-true"
    strategy: object = "auto"
    if (devices != 1 or num_nodes != 1) and index is None:
        from datetime import timedelta

        from lightning_fabric.strategies import DDPStrategy

        # One process per device, each started by re-running the command (no spawn), and a
        # long timeout: the other processes wait while rank 0 fine-tunes between pretrainings.
        strategy = DDPStrategy(timeout=timedelta(hours=24))
    fabric = Fabric(
        accelerator=accelerator,
        devices=index or devices,
        num_nodes=num_nodes if index is None else 1,
        precision=precision,  # type: ignore[arg-type]
        strategy=strategy,  # type: ignore[arg-type]
    )
    fabric.launch()
    if fabric.world_size > 1:
        import atexit

        atexit.register(close_distributed)
    return fabric


def close_distributed() -> None:
    """Take the process group down before Python exits (no barrier: after an error on one
    process, the others must still be able to exit).

    Left to interpreter shutdown, gloo's worker threads can still hold tensors when the
    interpreter is torn down, and the process dies with SIGABRT ("terminate called without an
    active exception") after its work is done. A no-op without a process group.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def single_device(fabric, precision: str | None = None):
    """A one-process Fabric on this process's device: for stages that run on rank 0 only."""
    if fabric.world_size == 1:
        return fabric
    device = fabric.device
    name = device.type if device.index is None else f"{device.type}:{device.index}"
    return make_fabric(name, precision)


def set_threads(n: int | None) -> None:
    if n:
        torch.set_num_threads(n)
