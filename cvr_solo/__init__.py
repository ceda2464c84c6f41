"""cvr-solo: C-SimCLR and C-BYOL (Lee et al., "Compressive Visual Representations",
NeurIPS 2021) for solo-learn.

The CEB core (``cvr_solo.ceb``) is plain torch; the solo-learn methods live in
``cvr_solo.methods`` and need solo-learn installed from GitHub (see README).
"""

from cvr_solo.ceb import *  # noqa: F403
from cvr_solo.ceb import __all__ as _ceb_all
from cvr_solo.registry import register

__version__ = "0.1.0"
__all__ = [*_ceb_all, "__version__", "register"]
