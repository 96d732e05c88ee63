"""Functional form of the temporal dynamic convolution.

The layer :class:`speechbrain_tdy.nnet.tdy_conv.TDYConv2d` computes its
attention weights and calls :func:`tdy_conv2d`; everything that makes the
aggregation fast or memory-lean lives here, behind one function.
"""
import torch
import torch.nn.functional as F


def tdy_conv2d(x, weight, bias, attention, stride, padding):
    """Mix K convolutions per output time bin.

    y[b, c, f, t] = sum_k attention[b, k, t] * (conv2d(x, weight[k]) + bias[k])[b, c, f, t]

    Arguments
    ---------
    x : torch.Tensor
        Input, shape (batch, in_channels, freq, time).
    weight : torch.Tensor
        Basis kernels, shape (K, out_channels, in_channels, kh, kw).
    bias : torch.Tensor or None
        Basis biases, shape (K, out_channels).
    attention : torch.Tensor
        Mixing weights, shape (batch, K, time_out).
    stride, padding : tuple of int
        (freq, time) stride and zero padding of the convolution.

    Returns
    -------
    torch.Tensor
        Shape (batch, out_channels, freq_out, time_out).

    Example
    -------
    >>> x = torch.randn(2, 3, 8, 10)
    >>> w = torch.randn(4, 5, 3, 3, 3)
    >>> pi = torch.softmax(torch.randn(2, 4, 10), dim=1)
    >>> tdy_conv2d(x, w, None, pi, (1, 1), (1, 1)).shape
    torch.Size([2, 5, 8, 10])
    """
    n_kernels, out_channels = weight.shape[:2]
    flat_weight = weight.reshape(n_kernels * out_channels, *weight.shape[2:])
    flat_bias = None if bias is None else bias.reshape(-1)
    out = F.conv2d(x, flat_weight, flat_bias, stride=stride, padding=padding)
    batch, _, freq, time = out.shape
    out = out.view(batch, n_kernels, out_channels, freq, time)
    return (out * attention[:, :, None, None, :]).sum(dim=1)
