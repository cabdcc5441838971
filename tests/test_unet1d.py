"""Tests for unet1d.py: shapes at odd lengths, classifier-free-guidance text dropping, the text padding mask,
gradient flow, Table 2 parameter counts, the matmul forms of the entry/exit convs, and a tiny overfit run."""

import json
import math
from dataclasses import asdict, replace

import pytest
import torch
import torch.nn.functional as F

import unet1d
from perf import ThinConv1d
from unet1d import PRESETS, UNet1D, UNetConfig, build_unet, count_parameters

TINY = [name for name in PRESETS if name.startswith("tiny-")]


def make_inputs(cfg, T, B=2, L=7, seed=0):
    """Random inputs for every conditioning path the config has: (x, t, keyword arguments)."""
    g = torch.Generator().manual_seed(seed)
    kw = {}
    if cfg.cond_channels:
        kw["cond"] = torch.randn(B, cfg.cond_channels, T, generator=g)
    if cfg.aligned_channels:
        kw["aligned"] = torch.randn(B, cfg.aligned_channels, math.ceil(T / cfg.total_stride), generator=g)
    if cfg.text_dim:
        kw["text_emb"] = torch.randn(B, L, cfg.text_dim, generator=g)
        kw["text_mask"] = torch.ones(B, L, dtype=torch.bool)
    if cfg.cond_noise_level:
        kw["cond_noise"] = torch.rand(B, generator=g)
    return torch.randn(B, cfg.in_channels, T, generator=g), torch.rand(B, generator=g), kw


def unzeroed(name):
    """A tiny preset without the zero-init, so that every path (text, aligned input) reaches the output."""
    torch.manual_seed(0)
    return UNet1D(replace(PRESETS[name], zero_init=False)).eval()


@pytest.mark.parametrize("name", TINY)
def test_output_shape_at_odd_lengths(name):
    cfg = PRESETS[name]
    model = build_unet(name).eval()
    lengths = (301, 1000) if cfg.in_channels == 80 else (1000, 4097)
    for T in lengths:
        x, t, kw = make_inputs(cfg, T)
        with torch.no_grad():
            y = model(x, t, **kw)
        assert y.shape == (2, cfg.out_channels, T)
        assert torch.isfinite(y).all()


def test_zero_init_predicts_zero():
    # The [choice] in UNet1D.__init__: the exit conv starts at zero, so the first prediction is exactly 0.
    cfg = PRESETS["tiny-waveform-cascader"]
    x, t, kw = make_inputs(cfg, 1000)
    assert build_unet(cfg)(x, t, **kw).abs().max() == 0


def test_thin_conv_matches_conv1d():
    g = torch.Generator().manual_seed(0)
    for c_in, c_out in [(2, 8), (1, 16), (8, 1), (80, 32), (32, 80)]:
        conv = ThinConv1d(c_in, c_out, 3, padding=1)
        x = torch.randn(2, c_in, 513, generator=g)
        torch.testing.assert_close(conv(x), F.conv1d(x, conv.weight, conv.bias, padding=1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("stride", [2, 3, 4, 5])
def test_upsample_mirrors_downsample(stride):
    # With shared weights and no bias, Upsample must be the exact adjoint of Downsample: <D x, y> = <x, U y>.
    # That pins down lengths (T -> T/S -> T) and alignment (each step maps back onto the window it came from).
    down, up = unet1d.Downsample(3, 5, stride), unet1d.Upsample(5, 3, stride)
    with torch.no_grad():
        up.conv.weight.copy_(down.conv.weight)
        down.conv.bias.zero_()
        up.conv.bias.zero_()
    g = torch.Generator().manual_seed(stride)
    x, y = torch.randn(2, 3, 7 * stride, generator=g), torch.randn(2, 5, 7, generator=g)
    dx, uy = down(x), up(y)
    assert dx.shape == y.shape and uy.shape == x.shape
    torch.testing.assert_close((dx * y).sum(), (x * uy).sum(), rtol=1e-5, atol=1e-5)


def test_drop_text_removes_the_text_and_only_for_dropped_examples():
    model = unzeroed("tiny-waveform-generator")
    cfg = model.config
    x, t, kw = make_inputs(cfg, 4096)
    other = torch.randn_like(kw["text_emb"])
    with torch.no_grad():
        kept = model(x, t, **kw)
        kept_other = model(x, t, **{**kw, "text_emb": other})
        drop = torch.tensor([True, False])
        dropped = model(x, t, **kw, drop_text=drop)
        dropped_other = model(x, t, **{**kw, "text_emb": other}, drop_text=drop)
        no_text = model(x, t)
    # Kept text matters (otherwise the next assertions would prove nothing).
    assert (kept - kept_other).abs().amax(dim=(1, 2)).min() > 1e-4
    # Example 0 is dropped: independent of the text, and equal to the model run with no text at all.
    torch.testing.assert_close(dropped[0], dropped_other[0], rtol=0, atol=0)
    torch.testing.assert_close(dropped[0], no_text[0], rtol=1e-5, atol=1e-6)
    # Example 1 is kept: same as the undropped batch.
    torch.testing.assert_close(dropped[1], kept[1], rtol=1e-5, atol=1e-6)


def test_padding_mask_is_honoured():
    model = unzeroed("tiny-spectrogram-generator")
    cfg = model.config
    x, t, kw = make_inputs(cfg, 288, L=10)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, 4:] = False   # example 0 has 4 real tokens
    mask[1, :] = False    # example 1 has none: no NaN, and the same as no text
    changed = kw["text_emb"].clone()
    changed[~mask] = 100 * torch.randn_like(changed[~mask])
    with torch.no_grad():
        a = model(x, t, text_emb=kw["text_emb"], text_mask=mask)
        b = model(x, t, text_emb=changed, text_mask=mask)
        none = model(x, t)
        unmasked = model(x, t, text_emb=kw["text_emb"])
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a[1], none[1], rtol=1e-5, atol=1e-6)
    assert (a[0] - unmasked[0]).abs().max() > 1e-4  # the mask did change what example 0 attends to


def test_aligned_input_and_noise_level_reach_the_output():
    model = unzeroed("tiny-vocoder")
    x, t, kw = make_inputs(model.config, 1600)
    with torch.no_grad():
        y = model(x, t, **kw)
        y_aligned = model(x, t, **{**kw, "aligned": torch.randn_like(kw["aligned"])})
        y_noise = model(x, t, **{**kw, "cond_noise": 1 - kw["cond_noise"]})
    assert (y - y_aligned).abs().max() > 1e-4
    assert (y - y_noise).abs().max() > 1e-4


@pytest.mark.parametrize("name", ["tiny-waveform-generator", "tiny-waveform-cascader", "tiny-vocoder"])
def test_every_parameter_gets_a_gradient(name):
    # With the zero-init on, the exit conv's zero weights block every gradient upstream at step 0 (by design),
    # so this checks the wiring with zero_init=False: no parameter may be dead.
    model = unzeroed(name).train()
    cfg = model.config
    x, t, kw = make_inputs(cfg, 4096)
    model(x, t, **kw).square().mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().max() == 0]
    assert not dead, f"parameters without gradient: {dead}"


@pytest.mark.parametrize("name", list(unet1d.PAPER_PARAMS_M))
def test_paper_presets_match_table_2(name):
    with torch.device("meta"):
        n = count_parameters(build_unet(name)) / 1e6
    assert abs(n / unet1d.PAPER_PARAMS_M[name] - 1) < 0.06, f"{name}: {n:.1f}M"     # the 6% unet1d.py claims


def test_paper_preset_runs_on_meta_device():
    # The paper models are too big to run here, but their shapes must work end to end.
    cfg = PRESETS["paper-waveform-generator"]
    with torch.device("meta"):
        model = build_unet(cfg)
        x, t, kw = make_inputs(cfg, 5000)
        assert model(x, t, **kw).shape == (2, 1, 5000)


def test_config_survives_a_json_round_trip():
    cfg = PRESETS["tiny-spectrogram-generator"]
    assert UNetConfig(**json.loads(json.dumps(asdict(cfg)))) == cfg


def test_bad_inputs_raise_clear_errors():
    cascader = build_unet("tiny-waveform-cascader")
    x, t, kw = make_inputs(cascader.config, 1000)
    with pytest.raises(ValueError, match="cond"):
        cascader(x, t, text_emb=kw["text_emb"])
    vocoder = build_unet("tiny-vocoder")
    x, t, kw = make_inputs(vocoder.config, 1600)
    with pytest.raises(ValueError, match="aligned"):
        vocoder(x, t, aligned=kw["aligned"][..., :-1])
    with pytest.raises(ValueError, match="text"):
        vocoder(x, t, aligned=kw["aligned"], text_emb=torch.zeros(2, 3, 128))
    with pytest.raises(ValueError, match="unknown U-Net preset"):
        build_unet("tiny-nothing")
    with pytest.raises(ValueError, match="one entry per depth"):
        UNetConfig(strides=(4, 4), channel_mults=(1,), blocks=(1, 1))


def test_tiny_unet_overfits_one_waveform():
    """The v-prediction denoising loss on one fixed waveform falls at least tenfold in 200 steps (seconds).

    For one fixed x0 the ideal denoiser is exact, so the loss can go to 0; here it falls about 28-fold."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    T, steps = 1024, 200
    cfg = UNetConfig(base_channels=16, kernel_size=7, strides=(4, 4, 4), channel_mults=(2, 4, 4), blocks=(1, 1, 1),
                     time_dim=64)
    model = UNet1D(cfg)
    n = torch.arange(T) / T
    x0 = (0.5 * torch.sin(2 * math.pi * 8 * n) + 0.3 * torch.sin(2 * math.pi * 37 * n + 1) * (n > 0.3)).view(1, 1, T)

    def loss(t, noise):  # v-prediction with the cosine schedule alpha = cos(pi t / 2), sigma = sin(pi t / 2)
        alpha, sigma = torch.cos(math.pi / 2 * t)[:, None, None], torch.sin(math.pi / 2 * t)[:, None, None]
        v = alpha * noise - sigma * x0
        return (model(alpha * x0 + sigma * noise, t) - v).square().mean()

    t_eval, noise_eval = torch.linspace(0.02, 0.98, 16), torch.randn(16, 1, T, generator=g)
    with torch.no_grad():
        before = loss(t_eval, noise_eval).item()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 - step / steps)  # a calm end point to compare
    for _ in range(steps):
        value = loss(torch.rand(8, generator=g), torch.randn(8, 1, T, generator=g))
        opt.zero_grad()
        value.backward()
        opt.step()
        decay.step()
    with torch.no_grad():
        after = loss(t_eval, noise_eval).item()
    assert after < before / 10, f"loss {before:.4f} -> {after:.4f}"


@pytest.mark.parametrize("name", list(PRESETS))
def test_full_rate_is_at_least_as_wide_as_the_input(name):
    """No block runs at the full rate: the entry conv and the depth-1 skip carry every sample's detail past the
    downsampling. Narrower than the input (the 80 mel bins), they squeeze it; the base-32 spectrogram generator
    trained that way learned little more than each bin's mean (README, "What the demo checkpoints are")."""
    cfg = PRESETS[name]
    assert cfg.base_channels >= cfg.in_channels + cfg.cond_channels


def test_a_stride_one_depth_keeps_the_length():
    # Stride 1 puts a depth's blocks at the full rate (Downsample and Upsample become kernel-3 convs).
    cfg = UNetConfig(in_channels=2, out_channels=2, base_channels=8, strides=(1, 2), channel_mults=(1, 2),
                     blocks=(1, 1), zero_init=False)
    x = torch.randn(2, 2, 37)
    assert UNet1D(cfg)(x, torch.rand(2)).shape == x.shape
