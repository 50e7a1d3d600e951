"""Circuit kinds, one module per algorithm; importing this package registers them."""

from .burst_multiplexing import BurstMultiplexing
from .continuous_dtp import ContinuousDTP
from .dendritic_mixture import DendriticMixture
from .dynamic_inversion import DynamicInversion
from .dynamic_inversion_expanding import DynamicInversionExpanding
from .single_loop_dynamic_inversion import SingleLoopDynamicInversion

__all__ = ["BurstMultiplexing", "ContinuousDTP", "DendriticMixture", "DynamicInversion", "DynamicInversionExpanding", "SingleLoopDynamicInversion"]
