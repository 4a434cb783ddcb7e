"""medcl: learning from unlabeled medical images.

Three jobs built from one set of parts (see ``DESIGN.md``): cluster-guided contrastive
pretraining (UFC), unsupervised stratification, and local discrimination.

A pretrained encoder outside medcl: ``medcl.load_encoder(run_dir, method, seed)`` returns
it as a ``torch.nn.Module``; ``medcl.export_encoder(run_dir, method, seed, out)`` writes its
weights for ``monai.networks.nets.UNet`` (see :mod:`medcl.stages.export`).
"""

from typing import Any

from medcl.errors import MedclError

__version__ = "0.1.0"
__all__ = ["MedclError", "__version__", "export_encoder", "load_encoder"]


def __getattr__(name: str) -> Any:
    # torch and MONAI load only when an encoder is asked for, not on `import medcl`
    if name in ("load_encoder", "export_encoder"):
        from medcl.stages import export

        return getattr(export, name)
    raise AttributeError(f"module 'medcl' has no attribute {name!r}")
