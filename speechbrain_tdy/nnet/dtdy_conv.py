"""Decomposed temporal dynamic convolution (DTDY-CNN, Kim et al., arXiv 2203.15277).

The kernel at time t is a static kernel plus a low-rank dynamic residual:

    W(t) = W0 + P Phi(t) Q^T

Q projects the C_in input channels to ``dim = int(sqrt(2 C_in + 2 C_out))``
latent channels with the layer's kernel, Phi(t) (dim x dim) mixes the latent
channels per time bin, and P (1x1) maps them to the C_out outputs. Parameter
names follow the authors' checkpoints (conv, q, p, bn1, bn2, fc_phi).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from speechbrain_tdy.nnet.geometry import check_feature_map, pair
from speechbrain_tdy.nnet.layout import Conv2d
from speechbrain_tdy.nnet.masking import conv_output_lengths, mask_time


def doubled_hard_sigmoid(x):
    """relu6(x + 3) / 3, the authors' "Hsigmoid": twice ``F.hardsigmoid``, range [0, 2]."""
    return 2.0 * F.hardsigmoid(x)


class DynamicMixingMatrix(nn.Module):
    """Phi(t): one (dim x dim) mixing matrix per output time bin.

    The input is summarised per time step by its mean over frequency (C_in
    values) and over channels (F values); Conv1d (the layer's time kernel and
    stride) -> squeeze-excitation gate -> Conv1d (kernel 3) -> doubled hard sigmoid.

    Arguments
    ---------
    in_channels, freq_size : int
        Channels and frequency bins of the layer input.
    dim : int
        Latent channels of the decomposition.
    kernel_size, stride, padding : int
        Time kernel, stride and padding of the main convolution.
    """

    def __init__(self, in_channels, freq_size, dim, kernel_size, stride, padding):
        super().__init__()
        hidden = dim**2 // 8
        self.dim = dim
        self.fc1 = nn.Conv1d(in_channels + freq_size, hidden, kernel_size, stride=stride, padding=padding)
        self.se_gate = nn.Conv1d(hidden, hidden, 1, bias=False)
        self.fc2 = nn.Conv1d(hidden, dim**2, 3, padding=1)
        self.time_kernel, self.time_stride, self.time_padding = kernel_size, stride, padding
        for conv in (self.fc1, self.se_gate, self.fc2):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def forward(self, x, lengths=None):
        """x: (batch, in_channels, freq, time), zero beyond ``lengths``.
        Returns Phi: (batch, dim, dim, time_out)."""
        summary = torch.cat([x.mean(dim=2), x.mean(dim=1)], dim=1)
        hidden = self.fc1(summary)
        hidden = hidden * doubled_hard_sigmoid(self.se_gate(hidden))
        out_lengths = conv_output_lengths(lengths, self.time_kernel, self.time_stride, self.time_padding)
        phi = doubled_hard_sigmoid(self.fc2(mask_time(hidden, out_lengths)))
        return phi.view(x.shape[0], self.dim, self.dim, -1)


class DTDYConv2d(nn.Module):
    """Decomposed temporal dynamic 2-D convolution.

    y = W0 * x + P (BN2(Phi(t) z) + z),  z = BN1(Q * x)

    Arguments
    ---------
    in_channels, out_channels : int
        Input and output channels.
    kernel_size, stride, padding : int or tuple
        The (freq, time) geometry, one int for both, as in ``nn.Conv2d``.
    freq_size : int
        Frequency bins of the input (Phi's summary depends on it).

    Example
    -------
    >>> conv = DTDYConv2d(32, 64, kernel_size=3, freq_size=16, stride=2, padding=1)
    >>> conv(torch.randn(2, 32, 16, 40)).shape
    torch.Size([2, 64, 8, 20])
    >>> conv.dim
    13
    """

    def __init__(self, in_channels, out_channels, kernel_size, *, freq_size, stride=1, padding=0):
        super().__init__()
        kernel_size, stride, padding = pair(kernel_size), pair(stride), pair(padding)
        self.in_channels, self.freq_size = in_channels, freq_size
        self.dim = int(math.sqrt(in_channels * 2 + out_channels * 2))
        self.conv = Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.q = Conv2d(in_channels, self.dim, kernel_size, stride, padding, bias=False)
        self.p = Conv2d(self.dim, out_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.dim)
        self.bn2 = nn.BatchNorm2d(self.dim)
        self.fc_phi = DynamicMixingMatrix(
            in_channels, freq_size, self.dim, kernel_size[1], stride[1], padding[1]
        )
        for conv in (self.conv, self.q, self.p):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x, lengths=None):
        """x: (batch, in_channels, freq, time); lengths: (batch,) valid time steps
        or None. Returns (batch, out_channels, freq_out, time_out)."""
        check_feature_map(x, self.in_channels, self.freq_size, type(self).__name__)
        x = mask_time(x, lengths)
        phi = self.fc_phi(x, lengths)
        latent = self.bn1(self.q(x))
        latent = self.bn2(torch.einsum("bdkt,bkft->bdft", phi, latent)) + latent
        return self.p(latent) + self.conv(x)
