"""C-SimCLR, C-BYOL, C-MoCo v3 and C-SimSiam as solo-learn methods (needs solo-learn from
GitHub, see README).

Importing this package checks the solo-learn install first and fails with one message that
says how to fix it (:class:`cvr_solo.solo.env.SoloLearnUnavailableError`).
"""

from cvr_solo.solo.env import require_solo

require_solo()

from cvr_solo.methods.c_byol import CBYOL  # noqa: E402
from cvr_solo.methods.c_mocov3 import CMoCoV3  # noqa: E402
from cvr_solo.methods.c_simclr import CSimCLR  # noqa: E402
from cvr_solo.methods.c_simsiam import CSimSiam  # noqa: E402
from cvr_solo.methods.registered import CVR_METHODS  # noqa: E402

__all__ = ["CBYOL", "CVR_METHODS", "CMoCoV3", "CSimCLR", "CSimSiam"]
