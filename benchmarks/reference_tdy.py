"""The authors' formulation of the TDY aggregation, kept for benchmarks and tests.

One convolution with K * C_out output channels, viewed as (B, K, C_out, F, T)
and mixed over K by ``einsum('bkcft,bkt->bcft')``. Same signature as
:func:`speechbrain_tdy.nnet.tdy_functional.tdy_conv2d`.
"""
import contextlib

import torch
import torch.nn.functional as F


def reference_tdy_conv2d(x, weight, bias, attention, stride, padding, recompute=False):
    """y[b, c, f, t] = sum_k attention[b, k, t] * (conv2d(x, weight[k]) + bias[k])[b, c, f, t].

    ``recompute`` is accepted for the layer's sake and ignored: autograd keeps
    what the einsum needs."""
    n_kernels, out_channels = weight.shape[:2]
    flat_weight = weight.reshape(n_kernels * out_channels, *weight.shape[2:])
    flat_bias = None if bias is None else bias.reshape(-1)
    out = F.conv2d(x, flat_weight, flat_bias, stride=stride, padding=padding)
    batch, _, freq, time = out.shape
    out = out.view(batch, n_kernels, out_channels, freq, time)
    return torch.einsum("bkcft,bkt->bcft", out, attention)


@contextlib.contextmanager
def reference_formulation():
    """Within this context, TDYConv2d layers (and models built from them) use
    the reference formulation instead of the package's fast path."""
    from speechbrain_tdy.nnet import tdy_conv

    fast = tdy_conv.tdy_conv2d
    tdy_conv.tdy_conv2d = reference_tdy_conv2d
    try:
        yield
    finally:
        tdy_conv.tdy_conv2d = fast
