"""Credit-assignment rules, one file per rule, each registering itself in :data:`RULES`.

Every module of this package is imported here, so a new rule is one new file that
defines a :class:`Rule` subclass decorated with ``@register_rule``.
"""

import importlib
import pkgutil

from .base import RULES, CircuitRule, LayerwiseRule, Rule, RuleOptions, SignalRule, get_rule, make_rule, ndi_apply, ndi_matrix, register_rule

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

from .bp import BP  # noqa: E402
from .dfa import DFA  # noqa: E402
from .di import DI  # noqa: E402
from .fa import FA  # noqa: E402
from .ndi import NDI  # noqa: E402
from .pbp import PBP  # noqa: E402
from .sldi import SLDI  # noqa: E402
from .ao_sdtp import AOSDTP  # noqa: E402
from .ddtp_control import DDTPControl  # noqa: E402
from .ddtp_linear import DDTPLinear  # noqa: E402
from .ddtp_rhl import DDTPRHL  # noqa: E402
from .dtp import DTP  # noqa: E402
from .dtp_bengio import DTPBengio  # noqa: E402
from .dtp_drl import DTPDRL  # noqa: E402
from .gn import GaussNewtonTargets  # noqa: E402
from .sdtp import SDTP  # noqa: E402
from .targets import LearnedTargetRule, TargetRule  # noqa: E402
from .tp import TP  # noqa: E402
from .tp_exact import TPExact  # noqa: E402

__all__ = [
    "RULES", "Rule", "RuleOptions", "SignalRule", "LayerwiseRule", "CircuitRule", "get_rule", "make_rule", "register_rule",
    "ndi_matrix", "ndi_apply", "BP", "FA", "DFA", "PBP", "NDI", "DI", "SLDI",
    "TargetRule", "LearnedTargetRule", "GaussNewtonTargets", "TPExact", "TP", "DTP", "DTPDRL", "DDTPLinear", "DDTPRHL",
    "DDTPControl", "SDTP", "AOSDTP", "DTPBengio",
]
