"""MoCo v2 (Chen, Fan, Girshick and He 2020): a momentum key encoder and a queue of negatives."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medcl.losses import moco_loss
from medcl.methods._base import Batch, PretrainMethod, frozen_copy, momentum_update
from medcl.models import ProjectionHead


class MoCo(PretrainMethod):
    """MoCo v2: InfoNCE between a query and its momentum-encoded key, against a queue.

    The query is view 1 through the encoder and an MLP head (MoCo v2's: no BatchNorm); the
    key is view 2 through momentum copies of both. The loss is a cross-entropy over
    ``[q.k+, q.queue] / temperature`` with the positive at index 0; the batch's keys then
    replace the oldest ones in the queue. After each optimiser step the key networks move
    towards the query networks (:meth:`after_step`). Under DDP the keys are gathered before
    they are enqueued, so every process holds the same queue. The encoder uses instance norm,
    so MoCo's shuffled BatchNorm is not needed.

    Args:
        encoder: the UNet encoder.
        temperature: InfoNCE temperature (MoCo v2: 0.2).
        proj_hidden, proj_out: MLP head widths (MoCo v2: 2048 -> 128).
        momentum: key-encoder momentum ``m`` (0.999).
        queue_size: number of negatives kept (65536 on ImageNet; keep it below the number of
            training images, or the queue holds stale keys of the query's own image).
    """

    name: ClassVar[str] = "moco"
    queue: Tensor
    queue_ptr: Tensor

    def __init__(
        self,
        encoder: nn.Module,
        temperature: float = 0.2,
        proj_hidden: int = 2048,
        proj_out: int = 128,
        momentum: float = 0.999,
        queue_size: int = 4096,
    ) -> None:
        super().__init__(encoder)
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.head = ProjectionHead([self.out_dim, proj_hidden, proj_out], batch_norm=False)
        self.key_encoder = frozen_copy(encoder)
        self.key_head = frozen_copy(self.head)
        self.temperature = temperature
        self.momentum = momentum
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, proj_out), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        # The buffer keeps the pointer in checkpoints; this host copy keeps reading it off
        # the device (a sync every step) out of the step. None: read the buffer once.
        self._ptr: int | None = None

    def forward(self, batch: Batch) -> Tensor:
        v1, v2 = batch.views[:, 0], batch.views[:, 1]
        q = F.normalize(self.head(self.encoder(v1)), dim=1)
        with torch.no_grad():
            k = F.normalize(self.key_head(self.key_encoder(v2)), dim=1)
        loss = moco_loss(q, k, self.queue.clone(), self.temperature)
        self.enqueue(self.gather(k.detach()))
        return loss

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Write ``keys`` over the oldest entries of the ring buffer."""
        size = self.queue.shape[0]
        keys = keys[-size:].to(self.queue.dtype)
        ptr = int(self.queue_ptr) if self._ptr is None else self._ptr
        idx = (ptr + torch.arange(len(keys), device=self.queue.device)) % size
        self.queue[idx] = keys
        self._ptr = (ptr + len(keys)) % size
        self.queue_ptr.fill_(self._ptr)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._ptr = None  # a resumed queue: its pointer comes from the loaded buffer

    def after_step(self, step: int, total: int) -> None:
        momentum_update(self.key_encoder, self.encoder, self.momentum)
        momentum_update(self.key_head, self.head, self.momentum)
