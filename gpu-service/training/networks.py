"""The dual-rate pair: a heavy context encoder and a light denoiser.

heavy(x_s, s, label) -> features [B, F, 28, 28]   runs sparsely (every K sampler steps)
light(x_t, t, label, features) -> x0 [B, 1, 28, 28]  runs every step on fresh x_t, stale features

The heavy net is a small U-Net (Ronneberger et al. 2015; the diffusion variant of Ho et al. 2020) whose last
decoder activation at full resolution is the feature map. The light net is a few full-resolution residual
blocks that read x_t and those features; it must cost >= 10x fewer MACs than the heavy net (see macs.py).
"""
import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
import torch.nn.functional as F

NUM_LABELS = 11  # 10 Fashion-MNIST classes + the null class for classifier-free guidance


@dataclass
class NetConfig:
    heavy_channels: list = field(default_factory=lambda: [48, 112, 160])  # per resolution 28, 14, 7
    heavy_attention: bool = True  # one self-attention block at 7x7 in the U-Net's middle
    feature_channels: int = 48  # F: the features handed from heavy to light
    light_channels: int = 24
    light_blocks: int = 2
    embed_dim: int = 256

    def to_dict(self):
        return asdict(self)


PRESETS = {
    # ~320M / ~18M MACs (18x, 3.3M params): trains well in minutes on one GPU, and still lets the CPU evaluation
    # (12k samples at 4 heavy intervals through onnxruntime on two cores) finish within an hour.
    "gpu": NetConfig(),
    # ~130M-MAC heavy net: what two CPU cores can train in hours (about 0.4 s per step at batch 64).
    "cpu": NetConfig(heavy_channels=[32, 64, 128], feature_channels=32, light_channels=16, embed_dim=128),
    # The compute-matched baseline (issue 9): one network, run every step, costing per step what the dual-rate
    # "gpu" pair averages at 50 steps with heavy every 8: (50 x 17.7M + 7 x 320.6M) / 50 = 62.5M MACs. The
    # teacher's light denoiser unchanged and the heavy U-Net thinned: 45.5M + 17.7M = 63.1M MACs per image
    # (macs.py, +0.9 %). Trained with fresh features only (train.py --same-time-prob 1) and sampled at K=1.
    "matched": NetConfig(heavy_channels=[16, 32, 80]),
    # Tiny: the smoke test only checks that training and export run end to end.
    "smoke": NetConfig(heavy_channels=[8, 16, 16], heavy_attention=False, feature_channels=8,
                       light_channels=8, light_blocks=1, embed_dim=32),
}


def timestep_embedding(t, dim):
    """Sinusoidal embedding of continuous t in [0, 1], scaled by 1000 like discrete DDPM (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class Conditioning(nn.Module):
    """(time, label) -> one embedding vector that every residual block reads."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.time_mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.label_embedding = nn.Embedding(NUM_LABELS, dim)

    def forward(self, t, label):
        return self.time_mlp(timestep_embedding(t, self.dim)) + self.label_embedding(label)


def group_norm(channels):
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the conditioning as a per-channel scale and shift (FiLM)."""

    def __init__(self, in_ch, out_ch, embed_dim):
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.film = nn.Linear(embed_dim, 2 * out_ch)
        self.norm2 = group_norm(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Single-head self-attention over spatial positions; written with matmuls so it exports to any opset."""

    def __init__(self, channels):
        super().__init__()
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        weights = torch.softmax(torch.bmm(q.transpose(1, 2), k) / math.sqrt(c), dim=-1)  # [b, hw, hw]
        out = torch.bmm(v, weights.transpose(1, 2)).reshape(b, c, h, w)
        return x + self.proj(out)

    def extra_macs(self, x_shape):
        """The two matmuls, which the Conv/Linear hooks in macs.py cannot see."""
        _, c, h, w = x_shape
        return 2 * (h * w) * (h * w) * c


class HeavyEncoder(nn.Module):
    """U-Net over the noisier x_s: 28 -> 14 -> 7 -> 14 -> 28, one residual block per level each way."""

    def __init__(self, cfg: NetConfig):
        super().__init__()
        c0, c1, c2 = cfg.heavy_channels
        self.cond = Conditioning(cfg.embed_dim)
        self.conv_in = nn.Conv2d(1, c0, 3, padding=1)
        self.down0 = ResBlock(c0, c0, cfg.embed_dim)
        self.pool0 = nn.Conv2d(c0, c0, 3, stride=2, padding=1)  # 28 -> 14
        self.down1 = ResBlock(c0, c1, cfg.embed_dim)
        self.pool1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)  # 14 -> 7
        self.down2 = ResBlock(c1, c2, cfg.embed_dim)
        self.mid = ResBlock(c2, c2, cfg.embed_dim)
        self.attention = SelfAttention(c2) if cfg.heavy_attention else nn.Identity()
        self.up2 = ResBlock(c2 + c2, c2, cfg.embed_dim)
        self.up1 = ResBlock(c2 + c1, c1, cfg.embed_dim)
        self.up0 = ResBlock(c1 + c0, c0, cfg.embed_dim)
        self.norm_out = group_norm(c0)
        self.features_out = nn.Conv2d(c0, cfg.feature_channels, 1)

    def forward(self, x_s, s, label):
        emb = self.cond(s, label)
        h0 = self.down0(self.conv_in(x_s), emb)  # 28x28
        h1 = self.down1(self.pool0(h0), emb)  # 14x14
        h2 = self.down2(self.pool1(h1), emb)  # 7x7
        h = self.attention(self.mid(h2, emb))
        h = self.up2(torch.cat([h, h2], dim=1), emb)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.up1(torch.cat([h, h1], dim=1), emb)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = self.up0(torch.cat([h, h0], dim=1), emb)
        return self.features_out(F.silu(self.norm_out(h)))


class LightDenoiser(nn.Module):
    """Full-resolution residual blocks over x_t plus projected features -> x0 prediction."""

    def __init__(self, cfg: NetConfig):
        super().__init__()
        c = cfg.light_channels
        self.cond = Conditioning(cfg.embed_dim)
        self.conv_in = nn.Conv2d(1, c, 3, padding=1)
        self.features_in = nn.Conv2d(cfg.feature_channels, c, 1)
        self.blocks = nn.ModuleList([ResBlock(c, c, cfg.embed_dim) for _ in range(cfg.light_blocks)])
        self.norm_out = group_norm(c)
        self.conv_out = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, x_t, t, label, features):
        emb = self.cond(t, label)
        h = self.conv_in(x_t) + self.features_in(features)
        for block in self.blocks:
            h = block(h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))


def build_pair(cfg: NetConfig):
    return HeavyEncoder(cfg), LightDenoiser(cfg)
