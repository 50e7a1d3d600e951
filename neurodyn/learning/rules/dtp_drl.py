"""DTP trained with the difference reconstruction loss (DTP-DRL, Meulemans et al. 2020
section 4 (i)): the layer-wise feedback maps and targets of :mod:`.dtp`, but each ``g_l``
learns from a noisy loop through the output and back down the whole difference-corrected
path (eq. 10), whose minimum makes the product of the feedback Jacobians the damped
pseudo-inverse of ``J_{f_{l,L}}`` (Theorem 4, eq. 12): Gauss-Newton targets.
"""

import equinox as eqx
from pydantic import Field

from .base import register_rule
from .dtp import DTP
from .targets import difference_reconstruction_loss
from .tp import TPOptions


class DRLOptions(TPOptions):
    damping: float = Field(0.0, ge=0, description="lambda of eq. 10's second term (0: the paper's practice, weight decay feedback_decay instead)")


@register_rule
class DTPDRL(DTP):
    name = "dtp_drl"
    summary = "DTP with the difference reconstruction loss (Meulemans et al. 2020 eq. 10)"
    Options = DRLOptions
    damping: float = eqx.field(static=True)

    @classmethod
    def fields(cls, options):
        return {"damping": options.damping}

    def feedback_loss(self, feedback, network, fwd, key):
        return difference_reconstruction_loss(self, feedback, network, fwd, key, self.damping)
