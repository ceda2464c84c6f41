"""The classes cvr-solo adds to solo-learn's ``solo.methods.METHODS``, by name.

A module of its own, so that :func:`cvr_solo.solo.registry.register` can import it while the
``cvr_solo.methods`` package itself is still being imported: that happens when importing the
package is what first imports solo-learn (unpickling a method in a ``ddp_spawn`` rank), whose
import runs cvr-solo's start-up hook, which registers.
"""

from cvr_solo.methods.c_byol import CBYOL
from cvr_solo.methods.c_mocov3 import CMoCoV3
from cvr_solo.methods.c_simclr import CSimCLR
from cvr_solo.methods.c_simsiam import CSimSiam

#: What :func:`cvr_solo.register` adds to ``solo.methods.METHODS``: the catalog's C-variants
#: (:data:`cvr_solo.common.catalog.CEB_METHODS`, a unit test keeps them equal).
CVR_METHODS = {"c_simclr": CSimCLR, "c_byol": CBYOL, "c_mocov3": CMoCoV3,
               "c_simsiam": CSimSiam}

__all__ = ["CVR_METHODS"]
