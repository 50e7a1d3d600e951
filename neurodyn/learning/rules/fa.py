"""Feedback alignment (Lillicrap et al. 2016): ``M_l = B_l``, fixed random feedback
(supplement Algorithm 5, case FA)."""

from pydantic import Field

from .base import LayerwiseRule, register_rule
from .feedback import MAX_LEAK, FeedbackOptions, sequential_feedback


class FAOptions(FeedbackOptions):
    leak: float = Field(0.0, ge=0, le=MAX_LEAK, description="feedback = 'ssa': the leak alpha of the S24 loops that SSA stabilises, 0 to 1e6")


@register_rule
class FA(LayerwiseRule):
    family = "feedback alignment"
    name = "fa"
    summary = "feedback alignment, M_l = B_l (fixed feedback)"
    Options = FAOptions
    min_layers = 2
    B: tuple  # B_2..B_L, B_l is d_{l-1} x d_l

    @classmethod
    def build(cls, network, options, *, seed, lr):
        B, info = sequential_feedback(network, options, seed, leak=options.leak)
        return cls(B=B), info

    def matrix(self, network, l):
        return self.B[l - 2]

    def feedback_matrices(self, network):
        return [(network.W[l - 1], self.B[l - 2]) for l in range(2, network.L + 1)]
