"""Shape helpers shared by everything built on forward weights ``W = (W_1, ..., W_L)``."""

from __future__ import annotations


class LayerSizes:
    """Mixin: ``L`` and ``sizes = [d_0, ..., d_L]`` from a tuple field ``W`` (``W_l`` is ``d_l x d_{l-1}``)."""

    @property
    def L(self) -> int:
        return len(self.W)

    @property
    def sizes(self) -> list[int]:
        return [self.W[0].shape[1]] + [w.shape[0] for w in self.W]
