"""Device, precision and process setup through Lightning Fabric.

Nothing in medcl calls ``.cuda()``: the device is whatever Fabric picks (``auto``: a GPU if
there is one, else the CPU) or what the user names. Mixed precision (bf16) is the default on
GPUs only: on CPUs it makes training slower.
"""

from __future__ import annotations

import os

import torch

from medcl.errors import MedclError


def make_fabric(device: str = "auto", precision: str | None = None, devices: int | str = 1):
    """A launched :class:`lightning.fabric.Fabric` for ``device`` ('auto', 'cpu', 'cuda', 'cuda:1', 'mps')."""
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
    fabric = Fabric(accelerator=accelerator, devices=index or devices, precision=precision)  # type: ignore[arg-type]
    fabric.launch()
    return fabric


def set_threads(n: int | None) -> None:
    if n:
        torch.set_num_threads(n)
