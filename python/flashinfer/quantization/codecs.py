"""Element and scale codecs shared by the quantization helpers and the float64 reference.

The bit-level meaning of every code is fixed by docs/semantics.md ("Element codes"):
e4m3 (float8_e4m3fn, round-to-nearest-even, saturating), e2m1 (3-bit magnitude index + sign bit,
ties to the even code, saturating at 6), int4 (two's complement -8..7) and ue8m0 (a power of
two 2^(b-127)). Everything here is pure torch and works on any device; encoders take any float
tensor and work from its fp32 value.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor

E4M3_MAX = 448.0
E2M1_MAX = 6.0

# The eight e2m1 magnitudes, indexed by the low three bits of a code.
_E2M1_MAGNITUDES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)

_FP8_E4M3 = torch.float8_e4m3fn
_FP8_E8M0 = getattr(torch, "float8_e8m0fnu", None)


def _check_tensor(name: str, t) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")


def as_code_bytes(name: str, t: Tensor) -> Tensor:
    """The uint8 codes of a fp8-typed or uint8 tensor (a view, never a copy)."""
    _check_tensor(name, t)
    if t.dtype == torch.uint8:
        return t
    if t.dtype == _FP8_E4M3 or (_FP8_E8M0 is not None and t.dtype == _FP8_E8M0):
        return t.view(torch.uint8)
    raise TypeError(f"{name} must be uint8 or a float8 dtype, got {t.dtype}")


# ---- e4m3 -------------------------------------------------------------------------------------


def e4m3_encode(x: Tensor) -> Tensor:
    """fp32 value -> float8_e4m3fn, round to nearest even, saturating to +-448 (NaN stays NaN).

    The value is taken in fp32 first (a float64 input would otherwise be rounded twice).
    The clamp makes saturation explicit rather than relying on torch's cast behaviour.
    """
    _check_tensor("x", x)
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    return x.float().clamp(-E4M3_MAX, E4M3_MAX).to(_FP8_E4M3)


def e4m3_decode(codes: Tensor) -> Tensor:
    """float8_e4m3fn (or its uint8 codes) -> fp32 (exact)."""
    return as_code_bytes("codes", codes).view(_FP8_E4M3).float()


def e4m3_round(x: Tensor) -> Tensor:
    """decode(sat_e4m3(x)) as fp32."""
    return e4m3_encode(x).float()


# ---- e2m1 -------------------------------------------------------------------------------------


def e2m1_encode(x: Tensor) -> Tensor:
    """fp32 value -> e2m1 code (uint8 0..15, one per element, sign in bit 3).

    Round to nearest with ties to the even code, saturating at 6. Each midpoint between codes
    i and i+1 goes up exactly when i+1 is even, hence the alternating > / >= comparisons below.
    NaN encodes as (signed) zero.
    """
    _check_tensor("x", x)
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    xf = x.float()
    a = xf.abs()
    mag = (
        (a > 0.25).to(torch.uint8)
        + (a >= 0.75).to(torch.uint8)
        + (a > 1.25).to(torch.uint8)
        + (a >= 1.75).to(torch.uint8)
        + (a > 2.5).to(torch.uint8)
        + (a >= 3.5).to(torch.uint8)
        + (a > 5.0).to(torch.uint8)
    )
    sign = torch.signbit(xf).to(torch.uint8) << 3
    return mag | sign


def e2m1_decode(codes: Tensor) -> Tensor:
    """e2m1 codes (uint8, low nibble; the high nibble is ignored) -> fp32 (exact)."""
    _check_tensor("codes", codes)
    if codes.dtype != torch.uint8:
        raise TypeError(f"codes must be uint8, got {codes.dtype}")
    table = torch.tensor(_E2M1_MAGNITUDES, dtype=torch.float32, device=codes.device)
    c = codes.long()
    mag = table[c & 7]
    return torch.where((c & 8) != 0, -mag, mag)


def e2m1_round(x: Tensor) -> Tensor:
    """decode(e2m1(x)) as fp32."""
    return e2m1_decode(e2m1_encode(x))


def pack_e2m1(codes: Tensor) -> Tensor:
    """[..., K] codes (uint8, one per byte) -> [..., K/2] bytes, low nibble = even element."""
    _check_tensor("codes", codes)
    if codes.dtype != torch.uint8:
        raise TypeError(f"codes must be uint8, got {codes.dtype}")
    if codes.dim() == 0 or codes.shape[-1] % 2 != 0:
        raise ValueError(f"codes must have an even last dimension, got shape {tuple(codes.shape)}")
    lo = codes[..., 0::2] & 0xF
    hi = codes[..., 1::2] & 0xF
    return (lo | (hi << 4)).contiguous()


def unpack_e2m1(packed: Tensor) -> Tensor:
    """[..., K/2] bytes -> [..., K] codes (uint8 0..15), low nibble first."""
    _check_tensor("packed", packed)
    if packed.dtype != torch.uint8:
        raise TypeError(f"packed must be uint8, got {packed.dtype}")
    if packed.dim() == 0:
        raise ValueError("packed must have at least one dimension, got a scalar")
    lo = packed & 0xF
    hi = packed >> 4
    return torch.stack((lo, hi), dim=-1).flatten(-2)


# ---- int4 --------------------------------------------------------------------------------------


def int4_decode(codes: Tensor) -> Tensor:
    """Signed int4 codes (uint8, two's complement in the low nibble; the high nibble is ignored)
    -> fp32 -8..7 (exact). Packed bytes unpack with ``unpack_e2m1`` (the same nibble order)."""
    _check_tensor("codes", codes)
    if codes.dtype != torch.uint8:
        raise TypeError(f"codes must be uint8, got {codes.dtype}")
    v = (codes & 0xF).to(torch.int16)
    return torch.where(v < 8, v, v - 16).float()


# ---- ue8m0 ------------------------------------------------------------------------------------


def ue8m0_decode(codes: Tensor) -> Tensor:
    """ue8m0 bytes -> fp32 2^(b-127); b = 255 is NaN. 2^-127 is an fp32 subnormal, still exact."""
    b = as_code_bytes("codes", codes).long()
    val = torch.ldexp(torch.ones_like(b, dtype=torch.float64), b - 127).float()
    return torch.where(b == 255, torch.full_like(val, float("nan")), val)


def pow2_ceil_exponent(r: Tensor, lo: int = -127, hi: int = 127) -> Tensor:
    """Smallest integer e with 2^e >= r (r > 0, fp32 values), clamped to [lo, hi]; int64.

    Done in float64: log2 of an fp32 value that is not a power of two is at least ~1e-7 away
    from an integer, far above float64's error, so the ceil is exact.
    """
    e = torch.ceil(torch.log2(r.double()))
    e = torch.nan_to_num(e, nan=float(hi), posinf=float(hi), neginf=float(lo))
    return e.clamp(lo, hi).long()


def ue8m0_scale_for(amax: Tensor, qmax: float) -> Tensor:
    """The ue8m0 byte of the MX scale for blocks with fp32 maximum `amax`.

    s = 2^e with e the smallest integer such that 2^e >= amax / qmax (the division in fp32),
    clamped to [-127, 127]; s = 1 (byte 127) when amax == 0.
    """
    r = amax.float() / qmax
    e = pow2_ceil_exponent(r)
    e = torch.where(amax == 0, torch.zeros_like(e), e)
    return (e + 127).to(torch.uint8)


# ---- fp32 rounding to a compute dtype ----------------------------------------------------------


def round_to_dtype(x: Tensor, dtype: torch.dtype) -> Tensor:
    """fp32 value of x rounded (RNE) to `dtype` (float32 / float16 / bfloat16), back to fp32."""
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"compute_dtype must be float32, float16 or bfloat16, got {dtype}")
    return x.float().to(dtype).float()
