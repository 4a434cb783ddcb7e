import math

import numpy as np
import pytest
import torch

from medcl.train import batches, lr_at, make_fabric, train_loop


def test_lr_schedule_values():
    assert lr_at(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, 10) == pytest.approx(1.0)
    assert lr_at(55, 100, 1.0, 10) == pytest.approx(0.5)  # half-way through the cosine
    assert lr_at(100, 100, 1.0, 10) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(50, 100, 2.0) == pytest.approx(1.0 + math.cos(math.pi * 0.5))


def test_batches_cover_and_shard():
    rng = np.random.default_rng(0)
    seen = np.concatenate(list(batches(10, 3, rng)))
    assert len(seen) == 9 and len(set(seen)) == 9  # drop_last, no repeats
    shards = [
        np.concatenate(list(batches(8, 4, np.random.default_rng(1), rank=r, world=2)))
        for r in (0, 1)
    ]
    assert sorted(np.concatenate(shards)) == list(range(8))


def _problem():
    torch.manual_seed(0)
    x = torch.randn(32, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    model = torch.nn.Linear(3, 1)
    return x, y, model


def test_loss_goes_down_and_resume_matches_uninterrupted(tmp_path):
    fabric = make_fabric("cpu")
    x, y, model = _problem()

    def fit(model, ckpt, kill_at_step=None):
        calls = []

        def step_loss(idx, net):
            calls.append(1)
            if len(calls) == kill_at_step:
                raise KeyboardInterrupt  # killed in the middle of epoch 3
            return ((net(x[idx]).squeeze(1) - y[idx]) ** 2).mean()

        return train_loop(
            fabric=fabric,
            module=model,
            n_items=32,
            epochs=6,
            batch_size=8,
            lr=0.1,
            warmup_epochs=1,
            step_loss=step_loss,
            seed=3,
            checkpoint=ckpt,
        )

    full = fit(model, tmp_path / "a.pt")
    assert full[-1] < full[0] / 5
    _, _, m2 = _problem()
    with pytest.raises(KeyboardInterrupt):
        fit(m2, tmp_path / "b.pt", kill_at_step=11)
    assert torch.load(tmp_path / "b.pt", weights_only=True)["epoch"] == 1
    _, _, m3 = _problem()
    resumed = fit(m3, tmp_path / "b.pt")  # a fresh process resumes after the last full epoch
    assert resumed == pytest.approx(full, rel=1e-5)
    assert torch.allclose(m3.weight, model.weight, atol=1e-6)


def test_checkpoint_every_limits_writes(tmp_path, monkeypatch):
    import medcl.train._loop as loop

    saved = []
    monkeypatch.setattr(loop, "atomic_torch_save", lambda obj, path: saved.append(obj["epoch"]))
    fabric = make_fabric("cpu")
    x, y, model = _problem()
    train_loop(
        fabric=fabric,
        module=model,
        n_items=8,
        epochs=10,
        batch_size=8,
        lr=0.1,
        step_loss=lambda idx, net: ((net(x[idx]).squeeze(1) - y[idx]) ** 2).mean(),
        checkpoint=tmp_path / "c.pt",
        checkpoint_every=4,
    )
    assert saved == [3, 7, 9]  # every 4th epoch and the last one


def test_on_step_end_sees_every_step_after_the_update():
    fabric = make_fabric("cpu")
    x, y, model = _problem()
    seen = []

    def on_step_end(step, total):
        seen.append((step, total, model.weight.detach().clone()))

    train_loop(
        fabric=fabric,
        module=model,
        n_items=16,
        epochs=2,
        batch_size=8,
        lr=0.1,
        step_loss=lambda idx, net: ((net(x[idx]).squeeze(1) - y[idx]) ** 2).mean(),
        on_step_end=on_step_end,
    )
    assert [(s, t) for s, t, _ in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert not torch.equal(seen[0][2], seen[1][2])  # called after the optimiser moved


def test_progress_lines_reach_a_log_file_without_a_terminal(capsys):
    from medcl.train import make_fabric, train_loop

    model = torch.nn.Linear(2, 1)
    x = torch.randn(8, 2)
    train_loop(
        fabric=make_fabric("cpu"),
        module=model,
        step_loss=lambda idx, net: net(x[torch.as_tensor(idx)]).pow(2).mean(),
        n_items=8,
        epochs=3,
        batch_size=4,
        lr=0.1,
        desc="toy stage",
        progress_every=0.0,
    )
    err = capsys.readouterr().err.splitlines()  # captured: not a terminal, so no bar
    lines = [e for e in err if e.startswith("medcl: toy stage: epoch")]
    assert [line.split(",")[0] for line in lines] == [
        "medcl: toy stage: epoch 1/3",
        "medcl: toy stage: epoch 2/3",
        "medcl: toy stage: epoch 3/3",
    ]


def test_a_group_lr_scale_multiplies_the_schedule():
    from medcl.train import make_fabric, train_loop

    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    model = torch.nn.Sequential(a, b)
    opt = torch.optim.AdamW(
        [{"params": a.parameters(), "lr_scale": 0.1}, {"params": b.parameters()}], lr=1.0
    )
    seen = []
    x = torch.randn(4, 2)

    def loss(idx, net):
        seen.append([g["lr"] for g in opt.param_groups])
        return net(x).pow(2).mean()

    train_loop(fabric=make_fabric("cpu"), module=model, optimizer=opt, step_loss=loss,
               n_items=4, epochs=2, batch_size=4, lr=0.5, lr_fn=lambda s, t: 0.5)  # fmt: skip
    assert seen == [[pytest.approx(0.05), 0.5]] * 2
