"""``flashinfer.utils``: the two weight-shuffle index helpers that engines import from
flashinfer's ``utils`` module (the rest of flashinfer's ``utils`` is about its JIT build and
attention kernels, and is not part of this library). Same objects as in
``flashinfer.fused_moe`` (defined in ``fused_moe/layout.py``)."""

from .fused_moe.layout import (
    get_shuffle_matrix_a_row_indices,
    get_shuffle_matrix_sf_a_row_indices,
)

__all__ = ["get_shuffle_matrix_a_row_indices", "get_shuffle_matrix_sf_a_row_indices"]
