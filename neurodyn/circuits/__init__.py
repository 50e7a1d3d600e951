"""Circuit kinds, one module per algorithm; importing this package registers them."""

from .dynamic_inversion import DynamicInversion
from .dynamic_inversion_expanding import DynamicInversionExpanding
from .single_loop_dynamic_inversion import SingleLoopDynamicInversion

__all__ = ["DynamicInversion", "DynamicInversionExpanding", "SingleLoopDynamicInversion"]
