"""Helpers that keep padded time steps from leaking into valid ones.

Every operation that mixes time steps (convolutions, the attention branches,
pooling) zeroes its input beyond each item's length. A padded batch item then
sees exactly the zero padding it would see alone, so its output is the same.
Lengths here are absolute numbers of valid time steps, shape (batch,).
"""
import torch


def conv_output_lengths(lengths, kernel_size, stride=1, padding=0):
    """Valid output lengths of a convolution for valid input ``lengths``.

    Arguments
    ---------
    lengths : torch.Tensor or None
        Valid input time steps, shape (batch,). None means "all valid".

    >>> conv_output_lengths(torch.tensor([200, 7]), 3, 2, 1)
    tensor([100,   4])
    """
    if lengths is None:
        return None
    out = torch.div(lengths + 2 * padding - kernel_size, stride, rounding_mode="floor") + 1
    return out.clamp(min=1)


def relative_to_absolute(lengths, max_length):
    """Convert SpeechBrain relative lengths (batch,) in (0, 1] to time steps.

    Returns None when every item is full length, so unpadded batches skip
    masking; not while ``torch.compile`` traces the model, where that check
    would split the graph at every layer (masking a full-length item changes
    nothing).

    >>> relative_to_absolute(torch.tensor([1.0, 0.5]), 10)
    tensor([10,  5])
    >>> relative_to_absolute(torch.tensor([1.0, 1.0]), 10) is None
    True
    """
    if lengths is None:
        return None
    absolute = torch.round(lengths.float() * max_length).long().clamp(1, max_length)
    if not torch.compiler.is_compiling() and bool((absolute == max_length).all()):
        return None
    return absolute


def time_mask(lengths, max_length, dtype=torch.float32):
    """Mask of valid time steps, shape (batch, max_length); 1 valid, 0 padded.

    >>> time_mask(torch.tensor([3, 1]), 4)
    tensor([[1., 1., 1., 0.],
            [1., 0., 0., 0.]])
    """
    steps = torch.arange(max_length, device=lengths.device)
    return (steps[None, :] < lengths[:, None]).to(dtype)


def mask_time(x, lengths):
    """Zero the time steps (last axis) of ``x`` beyond ``lengths``.

    Arguments
    ---------
    x : torch.Tensor
        Shape (batch, ..., time).
    lengths : torch.Tensor or None
        Valid time steps, shape (batch,); None returns ``x`` unchanged.
    """
    if lengths is None:
        return x
    mask = time_mask(lengths, x.shape[-1], x.dtype)
    return x * mask.view(x.shape[0], *([1] * (x.dim() - 2)), x.shape[-1])
