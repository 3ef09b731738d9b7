"""flashinfer.fused_moe."""
