"""Temporal pooling of frame-level features into one vector per utterance.

All poolings take x: (batch, channels, time) and optional ``lengths`` (batch,)
of valid time steps, and ignore padded steps.
"""
import torch
from torch import nn

from speechbrain_tdy.nnet.masking import time_mask


def _masked_softmax(logits, lengths):
    """Softmax over the last (time) axis of logits (batch, ..., time), padded steps excluded."""
    if lengths is not None:
        mask = time_mask(lengths, logits.shape[-1], torch.bool)
        mask = mask.view(mask.shape[0], *([1] * (logits.dim() - 2)), mask.shape[-1])
        logits = logits.masked_fill(~mask, float("-inf"))
    return torch.softmax(logits, dim=-1)


def _weighted_statistics(x, weights):
    """Weighted mean and standard deviation over time; std floored at sqrt(1e-5)."""
    mean = torch.sum(x * weights, dim=-1)
    variance = torch.sum(x**2 * weights, dim=-1) - mean**2
    return mean, torch.sqrt(variance.clamp(min=1e-5))


class TemporalAveragePooling(nn.Module):
    """Mean over valid time steps ("AVG").

    >>> pool = TemporalAveragePooling(8)
    >>> pool(torch.ones(2, 8, 5), torch.tensor([5, 2])).shape
    torch.Size([2, 8])
    """

    def __init__(self, channels):
        super().__init__()
        self.out_channels = channels

    def forward(self, x, lengths=None):
        """x: (batch, channels, time) -> (batch, channels)."""
        if lengths is None:
            return x.mean(dim=-1)
        mask = time_mask(lengths, x.shape[-1], x.dtype)
        return (x * mask[:, None, :]).sum(dim=-1) / lengths[:, None].to(x.dtype)


class SelfAttentivePooling(nn.Module):
    """Self-attentive pooling ("SAP"): w_t = softmax_t(v^T tanh(W x_t + b)),
    output sum_t w_t x_t.

    >>> SelfAttentivePooling(8)(torch.randn(2, 8, 5)).shape
    torch.Size([2, 8])
    """

    def __init__(self, channels):
        super().__init__()
        self.linear = nn.Linear(channels, channels)
        self.attention = nn.Parameter(torch.empty(channels, 1))
        nn.init.xavier_normal_(self.attention)
        self.out_channels = channels

    def attention_weights(self, x, lengths=None):
        """Weights (batch, 1, time) for x: (batch, channels, time)."""
        hidden = torch.tanh(self.linear(x.transpose(1, 2)))
        logits = torch.matmul(hidden, self.attention).transpose(1, 2)
        return _masked_softmax(logits, lengths)

    def forward(self, x, lengths=None):
        """x: (batch, channels, time) -> (batch, channels)."""
        return torch.sum(x * self.attention_weights(x, lengths), dim=-1)


class AttentiveStatisticsPooling(SelfAttentivePooling):
    """Attentive statistics pooling ("ASP"): attention-weighted mean and standard
    deviation, concatenated.

    >>> AttentiveStatisticsPooling(8)(torch.randn(2, 8, 5)).shape
    torch.Size([2, 16])
    """

    def __init__(self, channels):
        super().__init__(channels)
        self.out_channels = 2 * channels

    def forward(self, x, lengths=None):
        """x: (batch, channels, time) -> (batch, 2 * channels)."""
        mean, std = _weighted_statistics(x, self.attention_weights(x, lengths))
        return torch.cat([mean, std], dim=1)


class ChannelAttentivePooling(nn.Module):
    """Channel-wise attentive pooling used by the DTDY-CNN models: a separate
    softmax over time for every channel, from a 1x1 Conv1d bottleneck
    (channels -> hidden -> channels). With ``statistics`` it returns the weighted
    mean and standard deviation ("ASP"), otherwise the weighted mean ("SAP").

    >>> ChannelAttentivePooling(8, statistics=True)(torch.randn(2, 8, 5)).shape
    torch.Size([2, 16])
    """

    def __init__(self, channels, hidden=128, statistics=True):
        super().__init__()
        self.attention = nn.Sequential(
            nn.Conv1d(channels, hidden, kernel_size=1),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Conv1d(hidden, channels, kernel_size=1),
        )
        self.statistics = statistics
        self.out_channels = 2 * channels if statistics else channels

    def forward(self, x, lengths=None):
        """x: (batch, channels, time) -> (batch, out_channels)."""
        weights = _masked_softmax(self.attention(x), lengths)
        if not self.statistics:
            return torch.sum(x * weights, dim=-1)
        mean, std = _weighted_statistics(x, weights)
        return torch.cat([mean, std], dim=1)


POOLINGS = ("AVG", "SAP", "ASP")


def build_pooling(pooling, channels, channel_attention=False):
    """Pooling module by the authors' name: "AVG", "SAP" or "ASP".

    ``channel_attention`` selects the DTDY models' channel-wise attention for
    SAP and ASP.

    >>> build_pooling("ASP", 16).out_channels
    32
    """
    if pooling not in POOLINGS:
        raise ValueError(f"Unknown pooling {pooling!r}; expected one of {', '.join(POOLINGS)}")
    if pooling == "AVG":
        return TemporalAveragePooling(channels)
    if channel_attention:
        return ChannelAttentivePooling(channels, statistics=pooling == "ASP")
    if pooling == "SAP":
        return SelfAttentivePooling(channels)
    return AttentiveStatisticsPooling(channels)
