"""Golden outputs, in the manner of llama2.c's test_all.py: a tiny fixed-seed U-Net, text and sampler produce a
known array, stored small in tests/golden.json. A refactor that changes the math (the network, the schedules, the
sampler, guidance, the loss weights) fails here at once, with the first value that moved.

A change that is *meant* to alter the numbers regenerates the file, and the diff says so in review:
    python tests/test_golden.py
"""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import diffusion  # noqa: E402
from unet1d import UNet1D, UNetConfig  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden.json"
TOLERANCE = 1e-4        # float32 on one CPU build; far below any change of the math, above reordered sums


def compute():
    """{name: list of floats}: every value comes from seed 0 and nothing else."""
    torch.manual_seed(0)
    # Every feature a stage uses: attention and cross-attention, a conditioning channel, the level u. zero_init
    # is off, or the untrained network would output zeros and hide every change.
    cfg = UNetConfig(in_channels=1, cond_channels=1, base_channels=8, strides=(2, 2), channel_mults=(1, 2),
                     blocks=(1, 1), self_attn=(False, True), cross_attn=(False, True), heads=2, text_dim=8,
                     cond_noise_level=True, time_dim=16, zero_init=False)
    model = UNet1D(cfg).eval()
    text = torch.randn(1, 3, 8)                                               # (B, L, text_dim)
    mask = torch.tensor([[True, True, False]])
    cond = torch.randn(1, 1, 32)                                              # (B, 1, T)
    u = torch.full((1,), 0.1)

    def fn(x_t, t, drop_text=None):
        k = x_t.shape[0]
        return model(x_t, t, text_emb=text.repeat(k, 1, 1), text_mask=mask.repeat(k, 1), drop_text=drop_text,
                     cond=cond.repeat(k, 1, 1), cond_noise=u.repeat(k))

    out = {}
    with torch.no_grad():
        for schedule in ("cosine", "linear"):
            x = diffusion.sample(diffusion.classifier_free_guidance(fn, 3.0), (1, 1, 32),
                                 step_sizes=diffusion.step_schedule("waveform-generator", "front", 4),
                                 schedule=schedule, objective="v", gamma=0.3,
                                 generator=torch.Generator().manual_seed(0), clip_percentile=0.995)
            out[f"sample_{schedule}"] = x.flatten().tolist()
        x0 = torch.randn(4, 1, 32)
        for weight in diffusion.WEIGHTS:
            loss, _, _ = diffusion.diffusion_loss(lambda x_t, t: fn(x_t, t), x0, schedule="linear", weight=weight,
                                                  generator=torch.Generator().manual_seed(1))
            out[f"loss_{weight}"] = [float(loss)]
    return out


def test_golden_outputs():
    expected = json.loads(GOLDEN.read_text())
    got = compute()
    assert sorted(got) == sorted(expected), "the golden cases changed; regenerate with python tests/test_golden.py"
    for name, values in expected.items():
        for i, (a, b) in enumerate(zip(got[name], values)):
            assert abs(a - b) <= TOLERANCE * max(1.0, abs(b)), f"{name}[{i}] is {a}, the golden value {b}"


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps({k: [round(v, 7) for v in vals] for k, vals in compute().items()}, indent=0) + "\n")
    print(f"wrote {GOLDEN}")
