"""``flashinfer.fp4_quantization``: the older module path of flashinfer's FP4 quantization
helpers. The same names, and the same objects, as ``flashinfer.quantization.fp4_quantization``
(whose ``__all__`` is the list; it is not repeated here)."""

from .quantization import fp4_quantization as _fp4_quantization
from .quantization.fp4_quantization import *  # noqa: F403  (the alias is the whole module)

__all__ = list(_fp4_quantization.__all__)
