"""No step waits for the device.

On a GPU, reading a value off the device (``float(loss)``, ``bool(mask.any())``, indexing by a
boolean mask, whose result has a data-dependent shape) makes the host wait for every queued
kernel, so that each step runs one after the other instead of overlapping with the next
batch's preparation. ``torch.cuda.set_sync_debug_mode`` catches that on a GPU
(``benchmarks/bench_gpu.py`` uses it); here a ``TorchFunctionMode`` records the same calls on
the CPU, so the check runs in every test run.
"""

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from medcl.methods import METHODS, Batch, build_method
from medcl.models import UNetEncoder
from medcl.train import train_loop
from medcl.train._device import make_fabric

_READS = {"__bool__", "__float__", "__int__", "item", "tolist", "numpy", "nonzero"}


class DeviceReads(TorchFunctionMode):
    """Records every call that would copy a tensor's value to the host."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        if name in _READS:
            self.reads.append(name)
        elif name == "__getitem__" and any(
            isinstance(a, torch.Tensor) and a.dtype == torch.bool for a in _flat(args[1:])
        ):
            self.reads.append("boolean indexing")
        return func(*args, **(kwargs or {}))


def _flat(items):
    for a in items:
        if isinstance(a, tuple | list):
            yield from _flat(a)
        else:
            yield a


def test_the_recorder_sees_what_it_must():
    x = torch.randn(5)
    with DeviceReads() as m:
        bool(x.sum() > 0)
        float(x[0])
        x[x > 0]
        x.nonzero()
    assert m.reads == ["__bool__", "__float__", "boolean indexing", "nonzero"]


PRETRAINING = sorted(n for n, m in METHODS.items() if m.pretrains)


@pytest.mark.parametrize("name", PRETRAINING)
def test_a_pretraining_step_reads_nothing_off_the_device(name):
    torch.manual_seed(0)
    model = build_method(
        name,
        UNetEncoder(1, (4, 8)),
        temperature=0.5,
        proj_hidden=16,
        proj_out=8,
        momentum=0.9,
        queue_size=6,
        partitions=3,
    )
    g = torch.Generator().manual_seed(0)
    batch = Batch(
        views=torch.rand(6, 2, 1, 16, 16, generator=g),
        images=torch.rand(6, 1, 16, 16, generator=g),
        labels=torch.tensor([0, 0, 1, 1, 2, 2]),
        positions=torch.linspace(0, 1, 6),
    )
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    model(batch).backward()  # the first step may read a buffer once (MoCo's queue pointer)
    model.after_step(1, 3)
    with DeviceReads() as m:
        for step in (2, 3):
            loss = model(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            model.after_step(step, 3)
    assert m.reads == [], f"{name}: {m.reads}"


def test_the_loop_reads_the_loss_once_an_epoch():
    fabric = make_fabric("cpu", None)
    net = torch.nn.Linear(3, 1)
    data = torch.randn(12, 3)
    reads = DeviceReads()

    def step_loss(idx: np.ndarray, model) -> torch.Tensor:
        with reads:  # only what happens around the step, not the loop's own bookkeeping
            return model(data[torch.as_tensor(idx)]).pow(2).mean()

    with reads:
        history = train_loop(
            fabric=fabric,
            module=net,
            step_loss=step_loss,
            n_items=12,
            epochs=2,
            batch_size=4,
            lr=0.01,
        )
    assert len(history) == 2 and all(np.isfinite(history))
    # one read of the loss per epoch, not per step (AdamW's own ``item()`` calls read its
    # step counter, which lives on the CPU even when the model is on a GPU)
    assert reads.reads.count("__float__") <= 2, reads.reads
