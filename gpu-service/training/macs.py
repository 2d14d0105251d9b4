"""Counts multiply-accumulates per network call with forward hooks, so the heavy/light cost ratio in the
manifest is measured, not guessed. Counted: Conv2d, Linear and the attention matmuls (the ops that dominate);
norms and activations are O(elements) and left out, as is conventional.
"""
import torch
from torch import nn


def count_macs(module, *inputs):
    """MACs of one forward pass of `module` on `inputs`, divided by the batch size (MACs per image)."""
    total = [0]

    def conv_hook(layer, args, output):
        kh, kw = layer.kernel_size
        total[0] += output.numel() * (layer.in_channels // layer.groups) * kh * kw

    def linear_hook(layer, args, output):
        total[0] += output.numel() * layer.in_features

    def attention_hook(layer, args, output):
        total[0] += args[0].shape[0] * layer.extra_macs(args[0].shape)

    handles = []
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            handles.append(layer.register_forward_hook(conv_hook))
        elif isinstance(layer, nn.Linear):
            handles.append(layer.register_forward_hook(linear_hook))
        elif hasattr(layer, "extra_macs"):
            handles.append(layer.register_forward_hook(attention_hook))
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return total[0] // inputs[0].shape[0]


def pair_macs(heavy, light, cfg, device="cpu"):
    """(heavy MACs per image, light MACs per image) at 28x28."""
    b = 2
    x = torch.zeros(b, 1, 28, 28, device=device)
    t = torch.full((b,), 0.5, device=device)
    label = torch.zeros(b, dtype=torch.long, device=device)
    features = torch.zeros(b, cfg.feature_channels, 28, 28, device=device)
    return count_macs(heavy, x, t, label), count_macs(light, x, t, label, features)


def param_count(module):
    return sum(p.numel() for p in module.parameters())
