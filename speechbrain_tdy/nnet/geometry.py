"""Convolution geometry: (freq, time) pairs, output sizes, input shape checks."""


def pair(value):
    """Return ``value`` as a (freq, time) tuple of ints.

    >>> pair(3), pair((5, 7))
    ((3, 3), (5, 7))
    """
    if isinstance(value, int):
        return (value, value)
    return tuple(int(v) for v in value)


def conv_output_size(size, kernel_size, stride=1, padding=0):
    """Output size of a convolution or pooling along one axis.

    >>> conv_output_size(200, 3, stride=2, padding=1)
    100
    """
    return (size + 2 * padding - kernel_size) // stride + 1


def check_feature_map(x, in_channels, freq_size, layer):
    """Raise ValueError unless x is (batch, in_channels, freq_size, time).

    >>> import torch
    >>> check_feature_map(torch.zeros(2, 3, 5, 7), 3, 4, "TDYConv2d")
    Traceback (most recent call last):
    ...
    ValueError: TDYConv2d expected input (batch, 3, 4, time), got (2, 3, 5, 7)
    """
    if x.dim() != 4 or x.shape[1] != in_channels or x.shape[2] != freq_size:
        raise ValueError(f"{layer} expected input (batch, {in_channels}, {freq_size}, time), got {tuple(x.shape)}")
