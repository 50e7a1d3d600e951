"""Direct feedback alignment (Nokland 2016): every hidden layer receives the output error
through its own fixed matrix, ``delta_l = (D_l delta_L) * s'(a_l)``."""

from .base import Rule


class DFA(Rule):
    name = "dfa"
    D: tuple  # D_1..D_{L-1}, D_l is d_l x d_L

    def signals(self, network, fwd, delta_L):
        hidden = tuple((delta_L @ D.T) * network.s[l].deriv(fwd.a[l]) for l, D in enumerate(self.D))
        return hidden + (delta_L,)
