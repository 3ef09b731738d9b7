"""flashinfer's FP4 quantization module paths, nvfp4_quantize(..., per_token_activation=True)
and flashinfer.quantization.nvfp4_quantization_utils (global scales, the 4over6 setting)."""

from __future__ import annotations

import inspect

import flashinfer
import pytest
import torch
from flashinfer.quantization import SfLayout, fp4
from flashinfer.quantization import nvfp4_quantization_utils as nu

E2M1_GRID = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
G = 1.0 / (448 * 6)  # flashinfer's per-token inverse base scale


def unpack_e2m1(q: torch.Tensor) -> torch.Tensor:
    """Two codes per byte, the low nibble first (written here, not taken from the library)."""
    return torch.stack((q & 0xF, q >> 4), dim=-1).reshape(*q.shape[:-1], -1)


def _params(fn):
    return [(p.name, p.default, p.kind) for p in inspect.signature(fn).parameters.values()]


P, KW, E = (
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.KEYWORD_ONLY,
    inspect.Parameter.empty,
)


def test_nvfp4_quantize_signature():
    # flashinfer's source makes the two per-token arguments keyword-only
    assert _params(flashinfer.nvfp4_quantize) == [
        ("a", E, P),
        ("a_global_sf", E, P),
        ("sfLayout", SfLayout.layout_128x4, P),
        ("do_shuffle", False, P),
        ("sf_vec_size", 16, P),
        ("enable_pdl", None, P),
        ("backend", "cuda", P),
        ("per_token_activation", False, KW),
        ("expanded_idx_to_permuted_idx", None, KW),
    ]


def test_fp4_quantize_signature():
    assert _params(flashinfer.fp4_quantize) == [
        ("input", E, P),
        ("global_scale", None, P),
        ("sf_vec_size", 16, P),
        ("sf_use_ue8m0", False, P),
        ("is_sf_swizzled_layout", True, P),
        ("is_sf_8x4_layout", False, P),
        ("is_global_scale_inversed", False, P),
        ("enable_pdl", None, P),
        ("backend", "cuda", P),
    ]


def test_module_paths_are_the_same_objects():
    import flashinfer.fp4_quantization as old
    import flashinfer.quantization.fp4_quantization as new
    from flashinfer.fused_moe import layout
    from flashinfer.quantization import sf_layout

    assert flashinfer.fp4_quantization is old
    for name in new.__all__:
        assert getattr(old, name) is getattr(new, name), name
    for name in ("fp4_quantize", "nvfp4_quantize", "mxfp4_quantize", "mxfp4_dequantize"):
        assert getattr(new, name) is getattr(fp4, name) is getattr(flashinfer, name)
    assert new.shuffle_matrix_a is layout.shuffle_matrix_a is flashinfer.shuffle_matrix_a
    assert new.shuffle_matrix_sf_a is layout.shuffle_matrix_sf_a
    assert new.block_scale_interleave is sf_layout.block_scale_interleave
    assert new.nvfp4_block_scale_interleave is sf_layout.block_scale_interleave
    assert new.SfLayout is fp4.SfLayout is flashinfer.tllm_enums.SfLayout


# ---- per-token NVFP4 ---------------------------------------------------------------------------


def _exact_rows(gen, m: int, k: int):
    """Rows whose NVFP4 per-token quantization is exact: row r has amax A_r = 6 * 2^t_r and
    block j of it holds e2m1 codes times 2^(t_r - j_b) with a +-6 code in every block, so
    p_r = A_r * g, each block scale is e4m3(448 * 2^-j_b) and the codes are the chosen ones."""
    nb = k // 16
    codes = torch.randint(0, 16, (m, k), generator=gen, dtype=torch.uint8)
    codes[:, ::16] = torch.where(torch.rand(m, nb, generator=gen) < 0.5, 7, 15).to(torch.uint8)
    mag = torch.tensor(E2M1_GRID)[(codes & 7).long()]
    sign = torch.where(codes >= 8, -1.0, 1.0)
    t = torch.randint(-3, 4, (m, 1), generator=gen).float()
    jb = torch.randint(0, 5, (m, nb), generator=gen).float()
    jb[:, 0] = 0  # the block holding the row's amax
    x = sign * mag * torch.exp2(t - jb.repeat_interleave(16, dim=1))
    sf = (448.0 * torch.exp2(-jb)).to(torch.float8_e4m3fn).view(torch.uint8)  # exact values
    # code 8 (-0) gives an input of -0.0, which quantizes back to code 8
    return x, codes, sf, (6.0 * torch.exp2(t.squeeze(1))).float()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_per_token_exact_small_integers(gen, dtype):
    x, codes, sf, amax = _exact_rows(gen, 6, 64)
    q, q_sf, p = flashinfer.nvfp4_quantize(
        x.to(dtype), G, SfLayout.layout_linear, per_token_activation=True
    )
    assert torch.equal(unpack_e2m1(q), codes)
    assert torch.equal(q_sf, sf)
    assert p.dtype == torch.float32 and p.shape == (6,)
    assert torch.equal(p, amax * torch.tensor(G, dtype=torch.float32))


def test_per_token_error_bound_and_layouts(gen):
    m, k = 5, 96
    a = (torch.randn(m, k, generator=gen) * torch.rand(m, 1, generator=gen) * 10).bfloat16()
    q, sf, p = flashinfer.nvfp4_quantize(a, G, SfLayout.layout_linear, per_token_activation=True)
    x = a.double()
    assert torch.allclose(p.double(), x.abs().amax(1) * G, rtol=1e-6)
    sf_val = sf.view(torch.float8_e4m3fn).double()
    assert (sf_val <= 448).all()
    step = (sf_val * p.double().unsqueeze(1)).repeat_interleave(16, 1)
    codes = unpack_e2m1(q)
    vals = torch.tensor(E2M1_GRID, dtype=torch.float64)[(codes & 7).long()]
    deq = torch.where(codes >= 8, -vals, vals) * step
    # nearest e2m1 code: within half the largest code step (1) of the scaled value
    assert ((deq - x).abs() <= step * (1 + 1e-6)).all()
    # the 128x4 layout holds the same scales swizzled; a tensor global is the same as a float
    q2, sf2, p2 = flashinfer.nvfp4_quantize(a, torch.tensor([G]), per_token_activation=True)
    assert torch.equal(q2, q) and torch.equal(p2, p)
    assert sf2.shape == (128, 8)
    assert torch.equal(flashinfer.quantization.block_scale_deinterleave(sf2, (m, k // 16)), sf)


def test_per_token_zero_row(gen):
    a = torch.randn(3, 32, generator=gen).half()
    a[1] = 0
    q, sf, p = flashinfer.nvfp4_quantize(a, G, SfLayout.layout_linear, per_token_activation=True)
    assert p[1] == 0 and (q[1] == 0).all() and (sf[1] == 0).all()
    assert (p[[0, 2]] > 0).all()


def test_per_token_expanded_idx_selects_rows(gen):
    m, k = 7, 32
    a = torch.randn(m, k, generator=gen).bfloat16()
    full = flashinfer.nvfp4_quantize(a, G, SfLayout.layout_linear, per_token_activation=True)
    idx = torch.tensor([4, -1, 0, 6, 9, -1, 2, 3, 5], dtype=torch.int32)  # 9 is out of range
    q, sf, p = flashinfer.nvfp4_quantize(
        a, G, SfLayout.layout_linear, per_token_activation=True, expanded_idx_to_permuted_idx=idx
    )
    listed = [4, 0, 6, 2]  # idx[:M], valid entries only
    for r in range(m):
        if r in listed:
            assert torch.equal(q[r], full[0][r]) and torch.equal(sf[r], full[1][r])
            assert p[r] == full[2][r]
        else:
            assert (q[r] == 0).all() and (sf[r] == 0).all() and p[r] == 0
    with pytest.raises(ValueError, match="at least M=7"):
        flashinfer.nvfp4_quantize(
            a, G, per_token_activation=True, expanded_idx_to_permuted_idx=idx[:3]
        )


def test_per_token_do_shuffle(gen):
    from flashinfer.fused_moe.layout import shuffle_matrix_a, shuffle_matrix_sf_a

    m, k = 128, 64
    a = torch.randn(m, k, generator=gen).bfloat16()
    q, sf, p = flashinfer.nvfp4_quantize(a, G, SfLayout.layout_linear, per_token_activation=True)
    qs, sfs, ps = flashinfer.nvfp4_quantize(a, G, do_shuffle=True, per_token_activation=True)
    assert torch.equal(qs, shuffle_matrix_a(q, 128))
    assert torch.equal(ps, shuffle_matrix_a(p, 128))
    assert sfs.shape == (m, k // 16)
    assert torch.equal(sfs.reshape(-1), shuffle_matrix_sf_a(sf, 128))
    with pytest.raises(ValueError, match="layout_128x4"):
        flashinfer.nvfp4_quantize(
            a, G, SfLayout.layout_linear, do_shuffle=True, per_token_activation=True
        )
    # the per-tensor path returns its shuffled scales in the same (flashinfer's) form
    gs = torch.tensor([448 * 6.0]) / a.float().abs().max()
    q1, sf1 = flashinfer.nvfp4_quantize(a, gs, SfLayout.layout_linear)
    q1s, sf1s = flashinfer.nvfp4_quantize(a, gs, do_shuffle=True)
    assert torch.equal(q1s, shuffle_matrix_a(q1, 128)) and sf1s.shape == (m, k // 16)
    assert torch.equal(sf1s.reshape(-1), shuffle_matrix_sf_a(sf1, 128))
    with pytest.raises(ValueError, match="layout_128x4"):
        flashinfer.nvfp4_quantize(a, gs, SfLayout.layout_linear, do_shuffle=True)
    with pytest.raises(ValueError, match="M % 128 == 0"):
        flashinfer.nvfp4_quantize(a[:64], gs, do_shuffle=True)


def test_per_token_argument_errors(gen):
    a = torch.randn(4, 32, generator=gen).bfloat16()
    with pytest.raises(ValueError, match="only supports backend='cuda'"):
        flashinfer.nvfp4_quantize(a, G, backend="cute-dsl", per_token_activation=True)
    with pytest.raises(ValueError, match="only supports sf_vec_size=16"):
        flashinfer.nvfp4_quantize(a, G, sf_vec_size=32, per_token_activation=True)
    idx = torch.arange(4, dtype=torch.int32)
    with pytest.raises(ValueError, match="only supported with per_token_activation=True"):
        flashinfer.nvfp4_quantize(a, G, expanded_idx_to_permuted_idx=idx)
    with pytest.raises(TypeError, match="expanded_idx_to_permuted_idx"):
        flashinfer.nvfp4_quantize(
            a, G, per_token_activation=True, expanded_idx_to_permuted_idx=idx.long()
        )


def test_4over6_environment_is_refused_not_ignored(gen, monkeypatch):
    a = torch.randn(4, 64, generator=gen).bfloat16()
    monkeypatch.setenv("FLASHINFER_NVFP4_4OVER6", "1")
    with pytest.raises(NotImplementedError, match="FLASHINFER_NVFP4_4OVER6"):
        flashinfer.fp4_quantize(a, torch.tensor([1.0]))
    with pytest.raises(NotImplementedError, match="4over6"):
        flashinfer.nvfp4_quantize(a, G, per_token_activation=True)
    flashinfer.mxfp4_quantize(a)  # MXFP4 has no 4over6 variant
    monkeypatch.setenv("FLASHINFER_NVFP4_4OVER6", "0")
    flashinfer.fp4_quantize(a, torch.tensor([1.0]))


# ---- nvfp4_quantization_utils ------------------------------------------------------------------


def test_utils_module_path():
    import flashinfer.quantization.nvfp4_quantization_utils as mod

    assert mod is nu
    for name in mod.__all__:
        assert getattr(mod, name) is not None
    assert nu.FLOAT4_E2M1_MAX == 6.0 and nu.FLOAT8_E4M3_MAX == 448.0


def test_config_validation_and_normalization():
    c = nu.NVFP44Over6Config(256, "mse", True)
    assert c.err_mode is nu.NVFP44Over6ErrMode.MSE and c.err_mode_name == "MSE"
    assert nu.NVFP44Over6Config(err_mode=1) == nu.NVFP44Over6Config(err_mode="MSE")
    assert repr(nu.NVFP44Over6Config()) == "NVFP44Over6Config()"
    assert repr(c) == (
        "NVFP44Over6Config(e4m3_max=256, err_mode=NVFP44Over6ErrMode.MSE, err_use_fast_math=True)"
    )
    with pytest.raises(ValueError, match="256 or 448"):
        nu.NVFP44Over6Config(e4m3_max=300)
    with pytest.raises(ValueError, match="MAE or MSE"):
        nu.NVFP44Over6Config(err_mode="rmse")
    with pytest.raises(AttributeError):
        c.e4m3_max = 448  # frozen


def test_resolution_reads_the_environment_only_when_asked(monkeypatch):
    for var in ("E4M3_USE_256", "ERR_MODE", "ERR_USE_FAST_MATH"):
        monkeypatch.delenv(f"FLASHINFER_NVFP4_4OVER6_{var}", raising=False)
    monkeypatch.delenv("FLASHINFER_NVFP4_4OVER6", raising=False)
    assert nu.resolve_nvfp4_4over6() is None
    monkeypatch.setenv("FLASHINFER_NVFP4_4OVER6", "1")
    monkeypatch.setenv("FLASHINFER_NVFP4_4OVER6_E4M3_USE_256", "1")
    monkeypatch.setenv("FLASHINFER_NVFP4_4OVER6_ERR_MODE", "MSE")
    want = nu.NVFP44Over6Config(256, "MSE", False)
    assert nu.resolve_nvfp4_4over6() == want
    assert nu.resolve_nvfp4_4over6(None) == want
    assert nu.resolve_nvfp4_4over6(nu.NVFP4Recipe.STANDARD) is None
    explicit = nu.NVFP44Over6Config(448, "MAE", True)
    assert nu.resolve_nvfp4_4over6(explicit) is explicit
    # the scale helpers default to STANDARD: they never read the environment unless told
    assert nu.nvfp4_e4m3_max() == 448.0
    assert nu.nvfp4_e4m3_max(nvfp4_4over6=nu.NVFP4Recipe.FROM_ENV) == 256.0
    with pytest.raises(TypeError, match="nvfp4_4over6"):
        nu.resolve_nvfp4_4over6("4over6")


def test_make_nvfp4_global_scale(gen):
    x = torch.randn(4, 32, generator=gen).bfloat16()
    x[2, 5] = -7.0  # amax
    for args, kw, want in [
        ((True,), {}, 1.0 / 2688.0),
        ((True, None, nu.NVFP44Over6Config(256)), {}, 1.0 / 1536.0),
        ((True,), {"nvfp4_4over6": nu.NVFP44Over6Config(256)}, 1.0 / 1536.0),
        ((False, 3.5), {}, 3.5),
    ]:
        s = nu.make_nvfp4_global_scale(x, *args, **kw)
        assert s.dtype == torch.float32 and s.shape == (1,)
        assert s.item() == torch.tensor(want, dtype=torch.float32).item()
    s = nu.make_nvfp4_global_scale(x, False)
    assert s.shape == (1,) and s.item() == pytest.approx(2688.0 / 7.0, rel=1e-6)
    s = nu.make_nvfp4_global_scale(x, False, None, nu.NVFP44Over6Config(256))
    assert s.item() == pytest.approx(1536.0 / 7.0, rel=1e-6)
    zero = nu.make_nvfp4_global_scale(torch.zeros(3, 16), False)
    assert zero.item() == torch.finfo(torch.float32).max
    with pytest.raises(ValueError, match="not both"):
        nu.make_nvfp4_global_scale(
            x, True, None, nu.NVFP44Over6Config(), nvfp4_4over6=nu.NVFP44Over6Config()
        )


def test_scale_helper_signatures_and_label():
    assert _params(nu.nvfp4_e4m3_max) == [
        ("nvfp4_4over6_config", None, P),
        ("nvfp4_4over6", nu.NVFP4Recipe.STANDARD, KW),
    ]
    assert _params(nu.make_nvfp4_global_scale) == [
        ("input_tensor", E, P),
        ("per_token_activation", E, P),
        ("global_scale", None, P),
        ("nvfp4_4over6_config", None, P),
        ("nvfp4_4over6", nu.NVFP4Recipe.STANDARD, KW),
    ]
    assert nu.nvfp4_4over6_mode_label(False, None) == "standard"
    assert (
        nu.nvfp4_4over6_mode_label(True, nu.NVFP44Over6Config(256, "MSE", False))
        == "per-token, 4over6-mse, e4m3-256, err-exactmath"
    )
