"""flashinfer-moe: fused Mixture-of-Experts kernels behind the ``flashinfer.fused_moe`` API."""
