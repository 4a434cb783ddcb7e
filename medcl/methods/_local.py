"""LD: local discrimination (Chen et al.) as a pretraining method for the shared encoder."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from medcl.losses import cluster_contrastive_loss, local_discrimination_loss, prior_kl
from medcl.methods._base import Batch, PretrainMethod
from medcl.models import LocalDiscriminationNet, ProjectionHead


class LD(PretrainMethod):
    """Pixel-level embedding and clustering heads on a UNet, plus an instance-level term.

    Loss = :func:`~medcl.losses.local_discrimination_loss` of both views (pixels pulled to
    their cluster centres, centres apart, balanced and confident assignments) +
    ``instance_weight`` x NT-Xent of the two views' pooled encoder features through an MLP
    head, which keeps the encoder's global features from collapsing. Only the encoder is
    transferred to segmentation, as for every other method, so that the comparison isolates
    the pretraining. Under DDP the instance term sees the gathered batch; the pixel terms
    use each process's own pixels.

    Prior-guided clustering (:meth:`set_prior`): the statistics (location, area, spread) of
    cluster ``cluster``'s soft masks on view 0 of the batch, which must then be the
    un-augmented images, are pulled towards those of reference masks by
    :func:`~medcl.losses.prior_kl`, weighted by ``weight``.

    Args:
        encoder: the UNet encoder.
        temperature: for both the pixel-to-centre softmax and NT-Xent.
        proj_hidden, proj_out: the instance head's widths.
        embed_dim, n_clusters: the pixel heads (D and M).
        instance_weight: weight of the instance-level term.
    """

    name: ClassVar[str] = "ld"
    prior_mean: Tensor
    prior_var: Tensor

    def __init__(
        self,
        encoder: nn.Module,
        temperature: float = 0.1,
        proj_hidden: int = 2048,
        proj_out: int = 256,
        embed_dim: int = 32,
        n_clusters: int = 16,
        instance_weight: float = 1.0,
        head_batch_norm: bool = True,
    ) -> None:
        super().__init__(encoder)
        self.net = LocalDiscriminationNet(encoder, embed_dim, n_clusters)  # type: ignore[arg-type]
        self.head = ProjectionHead([self.out_dim, proj_hidden, proj_out], head_batch_norm)
        self.temperature = temperature
        self.instance_weight = instance_weight
        self._terms: dict[str, Tensor] = {}
        self.has_prior = False
        self.prior_cluster = 0
        self.prior_weight = 0.0

    def set_prior(self, mean: Tensor, var: Tensor, cluster: int = 0, weight: float = 1.0) -> None:
        """Guide ``cluster`` towards reference statistics ``mean``, ``var`` ``(5,)``."""
        if not 0 <= cluster < self.net.n_clusters:
            raise ValueError(f"cluster must be in [0, {self.net.n_clusters}), got {cluster}")
        self.register_buffer("prior_mean", mean.detach().clone().float())
        self.register_buffer("prior_var", var.detach().clone().float())
        self.has_prior = True
        self.prior_cluster, self.prior_weight = cluster, weight

    @property
    def last_terms(self) -> dict[str, float]:
        """The loss terms of the last batch, as floats (read once per log line: reading them
        waits for the device, so the step itself keeps them as tensors)."""
        return {k: float(v) for k, v in self._terms.items()}

    def forward(self, batch: Batch) -> Tensor:
        b, v = batch.views.shape[:2]
        emb, assign, pooled = self.net(batch.views.flatten(0, 1))
        local, terms = local_discrimination_loss(emb, assign, self.temperature)
        z = self.gather(self.head(pooled).view(b, v, -1))
        instance = cluster_contrastive_loss(z, None, self.temperature, "supcon")
        self._terms = terms | {"instance": instance.detach()}
        loss = local + self.instance_weight * instance
        if self.has_prior:
            maps = assign.view(b, v, *assign.shape[1:])[:, 0, self.prior_cluster]
            kl = prior_kl(maps, self.prior_mean, self.prior_var)
            self._terms["prior"] = kl.detach()
            loss = loss + self.prior_weight * kl
        return loss
