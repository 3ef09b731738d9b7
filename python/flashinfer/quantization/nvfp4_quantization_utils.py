"""NVFP4 scale helpers and the "4over6" recipe setting (flashinfer's
``flashinfer.quantization.nvfp4_quantization_utils``).

NVFP4 stores e2m1 codes with an e4m3 scale per 16 elements and one fp32 global scale. The
global scale maps the tensor's amax to the largest block scale times the largest code:
``gs = e4m3_max * 6 / amax`` (a quant multiplier, with e4m3_max = 448 normally); in per-token
activation mode the global is the fixed ``1 / (e4m3_max * 6)`` and each row gets its own scale
(``nvfp4_quantize(..., per_token_activation=True)``).

"4over6" is an alternative NVFP4 recipe: for each block the quantizer tries both scaling the
block's amax to 6 (the standard choice) and to 4, and keeps the candidate with the smaller
error (MAE or MSE); ``e4m3_max`` may then be 256 instead of 448 so the larger block scales of
the scale-to-4 candidate stay in range, which also changes the global scale. flashinfer turns it
on with ``FLASHINFER_NVFP4_4OVER6=1`` (``..._E4M3_USE_256``, ``..._ERR_MODE``,
``..._ERR_USE_FAST_MATH``) or an explicit ``NVFP44Over6Config``.

This library's quantizers implement the standard recipe only: ``fp4_quantize`` and
``nvfp4_quantize`` raise ``NotImplementedError`` when the environment asks for 4over6 rather
than silently quantizing another way. The config, its resolution and the global-scale helpers
below are complete, so callers can build scales and keys exactly as with flashinfer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from enum import Enum, IntEnum

import torch

FLOAT4_E2M1_MAX = 6.0
FLOAT8_E4M3_MAX = 448.0

Tensor = torch.Tensor


class NVFP44Over6ErrMode(IntEnum):
    """Which error decides between the 4over6 scale candidates of a block."""

    MAE = 0
    MSE = 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


class NVFP4Recipe(Enum):
    """The two recipe settings that are not an ``NVFP44Over6Config``: read the environment
    (``FROM_ENV``, what ``None`` also means) or plain NVFP4 without consulting it
    (``STANDARD``)."""

    FROM_ENV = "from_env"
    STANDARD = "standard"

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


@dataclass(frozen=True)
class NVFP44Over6Config:
    """A 4over6 recipe: ``e4m3_max`` (448 or 256) is the largest block scale and fixes the
    per-token global ``1 / (e4m3_max * 6)``; ``err_mode`` (an ``NVFP44Over6ErrMode``, or its
    name as a string, normalized on construction) picks the candidate; ``err_use_fast_math``
    evaluates that error in fp16 instead of exactly."""

    e4m3_max: int = 448
    err_mode: NVFP44Over6ErrMode | str = NVFP44Over6ErrMode.MAE
    err_use_fast_math: bool = False

    def __post_init__(self) -> None:
        if self.e4m3_max not in (256, 448):
            raise ValueError(
                f"NVFP4 4over6 E4M3 max must be either 256 or 448, got {self.e4m3_max!r}"
            )
        mode = self.err_mode
        try:
            if isinstance(mode, str):
                mode = NVFP44Over6ErrMode[mode.upper()]
            else:
                mode = NVFP44Over6ErrMode(mode)
        except (KeyError, ValueError):
            raise ValueError(
                f"NVFP4 4over6 error mode must be MAE or MSE, got {self.err_mode!r}"
            ) from None
        object.__setattr__(self, "err_mode", mode)

    @property
    def err_mode_name(self) -> str:
        return NVFP44Over6ErrMode(self.err_mode).name

    def __repr__(self) -> str:
        parts = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if getattr(self, f.name) != f.default
        ]
        return f"{type(self).__name__}({', '.join(parts)})"


#: A recipe setting as the public functions take it: FROM_ENV (or None), STANDARD, or a config.
NVFP44Over6Setting = NVFP4Recipe | NVFP44Over6Config | None


def env_flag_enabled(name: str) -> bool:
    """True when the environment variable ``name`` is exactly ``"1"``."""
    return os.environ.get(name) == "1"


def current_nvfp4_4over6_config() -> NVFP44Over6Config | None:
    """The 4over6 recipe the ``FLASHINFER_NVFP4_4OVER6*`` environment variables ask for, or
    ``None`` when ``FLASHINFER_NVFP4_4OVER6`` is not ``"1"``."""
    if not env_flag_enabled("FLASHINFER_NVFP4_4OVER6"):
        return None
    return NVFP44Over6Config(
        e4m3_max=256 if env_flag_enabled("FLASHINFER_NVFP4_4OVER6_E4M3_USE_256") else 448,
        err_mode=os.environ.get("FLASHINFER_NVFP4_4OVER6_ERR_MODE", "MAE"),
        err_use_fast_math=env_flag_enabled("FLASHINFER_NVFP4_4OVER6_ERR_USE_FAST_MATH"),
    )


def resolve_nvfp4_4over6(
    setting: NVFP44Over6Setting = NVFP4Recipe.FROM_ENV,
) -> NVFP44Over6Config | None:
    """A setting as the recipe to apply: ``FROM_ENV`` / ``None`` read the environment,
    ``STANDARD`` is ``None`` (4over6 off), a config is returned as a plain
    ``NVFP44Over6Config`` (subclasses are rebuilt so equal recipes compare and hash equal).
    Anything else is a ``TypeError``."""
    if setting is None or setting is NVFP4Recipe.FROM_ENV:
        return current_nvfp4_4over6_config()
    if setting is NVFP4Recipe.STANDARD:
        return None
    if isinstance(setting, NVFP44Over6Config):
        if type(setting) is NVFP44Over6Config:
            return setting
        return NVFP44Over6Config(setting.e4m3_max, setting.err_mode, setting.err_use_fast_math)
    raise TypeError(
        "nvfp4_4over6 must be NVFP4Recipe.FROM_ENV, NVFP4Recipe.STANDARD, an "
        f"NVFP44Over6Config, or None; got {type(setting).__name__}"
    )


def _resolve_for_scale(
    nvfp4_4over6_config: NVFP44Over6Config | None, nvfp4_4over6: NVFP44Over6Setting
) -> NVFP44Over6Config | None:
    # The scale helpers take either the resolved config (None = off) or the three-state
    # setting, whose default here is STANDARD so a call without it never reads the environment.
    if nvfp4_4over6 is NVFP4Recipe.STANDARD:
        return nvfp4_4over6_config
    if nvfp4_4over6_config is not None:
        raise ValueError(
            "pass either nvfp4_4over6_config (resolved) or nvfp4_4over6 (three-state), not both"
        )
    return resolve_nvfp4_4over6(nvfp4_4over6)


def nvfp4_e4m3_max(
    nvfp4_4over6_config: NVFP44Over6Config | None = None,
    *,
    nvfp4_4over6: NVFP44Over6Setting = NVFP4Recipe.STANDARD,
) -> float:
    """The largest e4m3 block scale of a recipe: the config's ``e4m3_max`` (448.0 or 256.0),
    or 448.0 for standard NVFP4. Pass the resolved config or the three-state setting, not both."""
    config = _resolve_for_scale(nvfp4_4over6_config, nvfp4_4over6)
    return FLOAT8_E4M3_MAX if config is None else float(config.e4m3_max)


def make_nvfp4_global_scale(
    input_tensor: Tensor,
    per_token_activation: bool,
    global_scale: float | None = None,
    nvfp4_4over6_config: NVFP44Over6Config | None = None,
    *,
    nvfp4_4over6: NVFP44Over6Setting = NVFP4Recipe.STANDARD,
) -> Tensor:
    """The NVFP4 global scale for ``input_tensor`` as a float32 tensor of shape [1] on its
    device, for the recipe given (it must be the one the quantizer then uses):

    - ``per_token_activation``: ``1 / (e4m3_max * 6)`` (the inverse base scale that
      ``nvfp4_quantize(..., per_token_activation=True)`` takes);
    - else ``global_scale`` when given;
    - else the quant multiplier ``e4m3_max * 6 / amax(|input_tensor|)``, or float32 max when
      the tensor is all zeros. Computed on the device (no host read).
    """
    e4m3_max = nvfp4_e4m3_max(_resolve_for_scale(nvfp4_4over6_config, nvfp4_4over6))
    device = input_tensor.device
    if per_token_activation:
        return torch.tensor(
            [1.0 / (e4m3_max * FLOAT4_E2M1_MAX)], dtype=torch.float32, device=device
        )
    if global_scale is not None:
        return torch.tensor([global_scale], dtype=torch.float32, device=device)
    amax = input_tensor.abs().max().to(torch.float32)
    fmax = torch.tensor(torch.finfo(torch.float32).max, dtype=torch.float32, device=device)
    scale = torch.where(amax == 0, fmax, (e4m3_max * FLOAT4_E2M1_MAX) / amax)
    return scale.reshape(1)


def nvfp4_4over6_mode_label(
    per_token_activation: bool, nvfp4_4over6_config: NVFP44Over6Config | None
) -> str:
    """A short human label of a quantization mode for logs and test ids, e.g. ``"standard"``,
    ``"per-token"`` or ``"per-token, 4over6-mse, e4m3-256, err-exactmath"``."""
    parts = ["per-token"] if per_token_activation else []
    if nvfp4_4over6_config is not None:
        parts += [
            f"4over6-{nvfp4_4over6_config.err_mode_name.lower()}",
            f"e4m3-{nvfp4_4over6_config.e4m3_max}",
            "err-fastmath" if nvfp4_4over6_config.err_use_fast_math else "err-exactmath",
        ]
    return ", ".join(parts) if parts else "standard"


def check_standard_nvfp4_recipe(caller: str) -> None:
    """Raise ``NotImplementedError`` naming ``FLASHINFER_NVFP4_4OVER6`` when the environment
    asks for the 4over6 recipe, which this library's quantizers do not implement."""
    config = current_nvfp4_4over6_config()
    if config is not None:
        raise NotImplementedError(
            f"{caller}: FLASHINFER_NVFP4_4OVER6=1 asks for the NVFP4 4over6 recipe ({config!r}), "
            "which is not implemented; unset it to quantize with the standard NVFP4 recipe"
        )


__all__ = [
    "FLOAT4_E2M1_MAX",
    "FLOAT8_E4M3_MAX",
    "NVFP44Over6Config",
    "NVFP44Over6ErrMode",
    "NVFP44Over6Setting",
    "NVFP4Recipe",
    "current_nvfp4_4over6_config",
    "env_flag_enabled",
    "make_nvfp4_global_scale",
    "nvfp4_4over6_mode_label",
    "nvfp4_e4m3_max",
    "resolve_nvfp4_4over6",
]
