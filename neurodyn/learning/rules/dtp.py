"""Difference target propagation (Lee et al. 2015; thesis 3.15 and section 4.3.3):
``hhat_l = g_l(hhat_{l+1}) + h_l - g_l(h_{l+1})`` (4.101). The difference correction
cancels the reconstruction errors of the learned inverses, so to first order ``hhat_l -
h_l = -eta_hat (prod_k J_{g_k}) e_L`` (4.102); the feedback maps and their layer-wise
training are those of :mod:`.tp`.
"""

from .base import register_rule
from .tp import TP


@register_rule
class DTP(TP):
    name = "dtp"
    summary = "difference target propagation, hhat_l = g_l(hhat_{l+1}) + h_l - g_l(h_{l+1}) (Lee et al. 2015)"
    difference = True
