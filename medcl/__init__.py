"""medcl: learning from unlabeled medical images.

Three jobs built from one set of parts (see ``DESIGN.md``): cluster-guided contrastive
pretraining (UFC), unsupervised stratification, and local discrimination.
"""

from medcl.errors import MedclError

__version__ = "0.1.0"
__all__ = ["MedclError", "__version__"]
