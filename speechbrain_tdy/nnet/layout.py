"""Memory layout of the package's convolutions, and the guard against oneDNN's
channels-last backward bug on CPU.

The TDY layer runs its basis convolution channels-last, (B, F, T, C) in
memory: oneDNN convolves that without reordering it, and the batched mixing on
a GPU relies on it. On CPU, oneDNN (as shipped in PyTorch 2.14.1) computes the
backward of some channels-last convolutions wrongly when the input channels are
not a multiple of its vector width: silently wrong gradients or a corrupted
heap ("double free or corruption"), depending on the instruction set
(``docs/onednn_channels_last.md``; ``tools/onednn_sweep.py`` measures it). The
rule here holds for every instruction set measured: on CPU a convolution runs
channels-last only when its input channels are a multiple of 16 (or one: then
both layouts are the same memory), and NCHW otherwise. The released models'
convolutions all have input channels in multiples of 16, or one (the stems),
so they are unaffected.

Every convolution the package builds goes through this module: the TDY layer
(:func:`to_conv_layout`), and the static, DTDY and stem convolutions
(:class:`Conv2d`), eager or compiled.
"""
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Conv2d", "channels_last_is_safe", "safe_conv_layout", "to_conv_layout"]

#: On CPU, input channels must be a multiple of this for a channels-last convolution.
ONEDNN_CHANNEL_BLOCK = 16


def channels_last_is_safe(in_channels, device):
    """Whether a convolution with ``in_channels`` input channels may run
    channels-last on ``device`` (a torch.device or its type, e.g. "cpu").

    Example
    -------
    >>> channels_last_is_safe(32, "cpu"), channels_last_is_safe(8, "cpu"), channels_last_is_safe(8, "cuda")
    (True, False, True)
    """
    device_type = getattr(device, "type", device)
    return device_type != "cpu" or in_channels == 1 or in_channels % ONEDNN_CHANNEL_BLOCK == 0


def to_conv_layout(tensor, x):
    """A 4-d ``tensor`` in the layout of a TDY basis convolution of
    x (batch, in_channels, freq, time): channels-last where that is safe,
    exactly NCHW otherwise."""
    if channels_last_is_safe(x.shape[1], x.device):
        return tensor.contiguous(memory_format=torch.channels_last)
    return _nchw(tensor)


def safe_conv_layout(x, weight):
    """x (batch, in_channels, freq, time) and a conv weight, both made NCHW where
    channels-last is unsafe (either would make PyTorch pick channels-last);
    returned as they are otherwise, so PyTorch picks the layout as usual."""
    if channels_last_is_safe(x.shape[1], x.device):
        return x, weight
    return _nchw(x), _nchw(weight)


def _nchw(tensor):
    """tensor with exactly NCHW strides, which PyTorch never reads as
    channels-last. ``contiguous()`` is not enough: it keeps the strides of
    size-1 dimensions, and a (C_out, C_in, 1, 1) weight converted to
    channels-last still reads as channels-last after it."""
    strides, step = [], 1
    for size in reversed(tensor.shape):
        strides.append(step)
        step *= max(size, 1)
    if tensor.stride() == tuple(reversed(strides)):
        return tensor
    return tensor.clone(memory_format=torch.contiguous_format)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (zero padding) that never runs a convolution oneDNN gets
    wrong: same parameters and state-dict keys, NCHW where channels-last is unsafe.

    Example
    -------
    >>> conv = Conv2d(8, 16, 1, stride=2).to(memory_format=torch.channels_last)
    >>> conv(torch.randn(2, 8, 10, 20)).shape
    torch.Size([2, 16, 5, 10])
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros":
            raise ValueError(f"Conv2d pads with zeros only, got padding_mode={self.padding_mode!r}")

    def forward(self, x):
        """x: (batch, in_channels, freq, time) -> (batch, out_channels, freq_out, time_out)."""
        x, weight = safe_conv_layout(x, self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
