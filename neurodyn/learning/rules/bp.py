"""Backpropagation: ``M_l = W_l^T`` (supplement Algorithm 5, case BP)."""

from .base import LayerwiseRule


class BP(LayerwiseRule):
    name = "bp"

    def matrix(self, network, l):
        return network.W[l - 1].T
