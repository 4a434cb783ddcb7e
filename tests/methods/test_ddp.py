"""Two CPU processes (DDP over gloo) train exactly like one process on the whole batch.

The contrastive losses gather features across processes with gradients, so negatives and
positives span the global batch; MoCo's queue holds the gathered keys on every process.
"""

import numpy as np
import pytest
import torch

from medcl.methods import Batch, build_method
from medcl.models import UNetEncoder
from medcl.stages.pretrain import distribute
from medcl.train import close_distributed, train_loop

N = 8
SETTINGS = dict(
    temperature=0.3, proj_hidden=16, proj_out=8, head_batch_norm=False, queue_size=16,
    momentum=0.9, threshold=0.3, partitions=2,
)  # fmt: skip
# BatchNorm statistics are per process unless converted to SyncBatchNorm, which needs GPUs:
# the heads here are built without BatchNorm so that the two runs can be equal exactly.


def _data():
    g = torch.Generator().manual_seed(0)
    views = torch.rand(N, 2, 1, 16, 16, generator=g)
    labels = torch.tensor([0, 1, 0, 1, 2, 2, 0, 1])
    positions = torch.linspace(0, 1, N)
    return views, labels, positions


def _train(fabric, name):
    torch.manual_seed(0)
    model = distribute(build_method(name, UNetEncoder(1, (4, 8)), **SETTINGS), fabric)
    views, labels, positions = _data()

    def step_loss(idx: np.ndarray, net):
        t = torch.as_tensor(idx)
        return net(Batch(views[t], labels[t], positions[t]))

    history = train_loop(
        fabric=fabric,
        module=model,
        step_loss=step_loss,
        n_items=N,
        epochs=2,
        batch_size=N,
        lr=0.05,
        weight_decay=0.0,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
        lr_fn=lambda step, total: 0.05,
        on_step_end=model.after_step,
    )
    return history, {k: v.detach().clone() for k, v in model.state_dict().items()}


def _worker(fabric, name, out):
    history, state = _train(fabric, name)
    if fabric.global_rank == 0:
        torch.save({"history": history, "state": state}, out)
    close_distributed()  # or gloo may abort the process at interpreter exit


@pytest.mark.parametrize("name", ["simclr", "ufc", "pcl", "moco"])
def test_two_processes_equal_one_on_the_gathered_batch(name, tmp_path):
    from lightning_fabric import Fabric

    single = Fabric(accelerator="cpu", devices=1)
    history1, state1 = _train(single, name)

    out = tmp_path / "ddp.pt"
    fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp_spawn")
    fabric.launch(_worker, name, str(out))
    got = torch.load(out, weights_only=False)

    assert got["history"] == pytest.approx(history1, rel=1e-5)
    assert history1[0] != pytest.approx(history1[1])  # the step changed something
    for key, value in state1.items():
        if key == "queue":
            # Gathered keys arrive rank by rank: process 0 had images 0, 2, 4, 6.
            order = [0, 2, 4, 6, 1, 3, 5, 7]
            first, second = value[:N], value[N:]
            value = torch.cat([first[order], second[order]])
        assert torch.allclose(got["state"][key], value, atol=1e-5), key
