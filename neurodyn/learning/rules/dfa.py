"""Direct feedback alignment (Nokland 2016): every hidden layer receives the output error
through its own fixed matrix, ``delta_l = (D_l delta_L) * s'(a_l)``."""

from typing import Literal

from pydantic import Field

from .base import SignalRule, register_rule
from .feedback import FeedbackOptions, direct_feedback


class DFAOptions(FeedbackOptions):
    feedback: Literal["random", "neg_transpose"] = Field("neg_transpose", description="random U(-s, s) | neg_transpose -s (W_L ... W_{l+1})^T")


@register_rule
class DFA(SignalRule):
    family = "feedback alignment"
    name = "dfa"
    summary = "direct feedback alignment, delta_l = (D_l delta_L) * s'(a_l)"
    Options = DFAOptions
    min_layers = 2
    D: tuple  # D_1..D_{L-1}, D_l is d_l x d_L

    @classmethod
    def build(cls, network, options, *, seed, lr):
        D, info = direct_feedback(network, options, seed)
        return cls(D=D), info

    def signals(self, network, fwd, delta_L):
        hidden = tuple((delta_L @ D.T) * network.s[l].deriv(fwd.a[l]) for l, D in enumerate(self.D))
        return hidden + (delta_L,)
