"""Feedback alignment (Lillicrap et al. 2016): ``M_l = B_l``, fixed random feedback
(supplement Algorithm 5, case FA)."""

from .base import LayerwiseRule


class FA(LayerwiseRule):
    name = "fa"
    B: tuple  # B_2..B_L, B_l is d_{l-1} x d_l

    def matrix(self, network, l):
        return self.B[l - 2]

    def feedback_matrices(self, network):
        return [(network.W[l - 1], self.B[l - 2]) for l in range(2, network.L + 1)]
