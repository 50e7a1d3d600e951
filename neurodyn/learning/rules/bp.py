"""Backpropagation: ``M_l = W_l^T`` (supplement Algorithm 5, case BP)."""

from .base import LayerwiseRule, RuleOptions, register_rule


@register_rule
class BP(LayerwiseRule):
    family = "backpropagation"
    name = "bp"
    summary = "backpropagation, M_l = W_l^T (the reference; frozen_layers = [1..L-1] gives the frozen-hidden-layer control)"
    Options = RuleOptions

    @classmethod
    def build(cls, network, options, *, seed, lr):
        return cls(), {}

    def matrix(self, network, l):
        return network.W[l - 1].T
