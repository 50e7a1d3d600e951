"""Non-dynamic inversion: the steady state of linear dynamic inversion in closed form,
``M_l = B_l (W_l B_l - alpha I)^{-1}`` (supplement Algorithm 5, case NDI)."""

from .base import LayerwiseRule, ndi_apply, ndi_matrix, register_rule
from .feedback import LeakyFeedbackOptions, sequential_feedback


@register_rule
class NDI(LayerwiseRule):
    family = "dynamic inversion"
    name = "ndi"
    summary = "non-dynamic inversion, M_l = B_l (W_l B_l - alpha I)^-1 (Algorithm 5)"
    Options = LeakyFeedbackOptions
    min_layers = 2
    B: tuple  # B_2..B_L
    alpha: float = 0.0

    @classmethod
    def build(cls, network, options, *, seed, lr):
        B, info = sequential_feedback(network, options, seed, leak=options.leak)
        return cls(B=B, alpha=options.leak), info

    def matrix(self, network, l):
        return ndi_matrix(network.W[l - 1], self.B[l - 2], self.alpha)

    def propagate(self, network, l, delta):
        """``B_l u`` with ``(W_l B_l - alpha I) u = delta_l``: a ``d_l x d_l`` solve per sample."""
        return ndi_apply(network.W[l - 1], self.B[l - 2], self.alpha, delta)

    def feedback_matrices(self, network):
        return [(network.W[l - 1], self.B[l - 2]) for l in range(2, network.L + 1)]
