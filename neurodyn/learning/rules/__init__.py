"""Credit-assignment rules, one file per rule: each returns per-layer learning signals."""

from .base import CircuitRule, LayerwiseRule, Rule, ndi_matrix
from .bp import BP
from .dfa import DFA
from .di import DI
from .fa import FA
from .ndi import NDI
from .pbp import PBP
from .sldi import SLDI

RULES = {r.name: r for r in (BP, FA, DFA, PBP, NDI, DI, SLDI)}

__all__ = ["RULES", "Rule", "LayerwiseRule", "CircuitRule", "ndi_matrix", "BP", "FA", "DFA", "PBP", "NDI", "DI", "SLDI"]
