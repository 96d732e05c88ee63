"""Frame-level embeddings and TDY attention weights of any model of the package.

Frame-level embeddings are the last stage's output before pooling: one vector
per output time bin (the ResNets reduce time 4x, VGG-M about 32x). Attention
weights are pi_k(t) of every TDY layer, recorded with forward pre-hooks while
the model runs (the model itself is not changed).
"""
from contextlib import contextmanager

import torch

from speechbrain_tdy.nnet.tdy_conv import TDYConv2d


@torch.no_grad()
def frame_embeddings(embedding_model, feats, lengths=None):
    """Frame-level embeddings.

    Arguments
    ---------
    embedding_model : ResNet or VGGM
        Any embedding model of the package (anything with ``frame_embeddings``).
    feats : torch.Tensor
        Features (batch, time, n_mels).
    lengths : torch.Tensor or None
        Relative lengths (batch,).

    Returns
    -------
    list of torch.Tensor
        Per item, its valid frames (time_out, dim).

    Example
    -------
    >>> from speechbrain_tdy.lobes import tdy_resnet34_quarter
    >>> model = tdy_resnet34_quarter(n_mels=40).eval()
    >>> [f.shape for f in frame_embeddings(model, torch.randn(2, 100, 40), torch.tensor([1.0, 0.5]))]
    [torch.Size([25, 640]), torch.Size([13, 640])]
    """
    frames, out_lengths = embedding_model.frame_embeddings(feats, lengths)
    frames = frames.transpose(1, 2)
    if out_lengths is None:
        return list(frames)
    return [item[:length] for item, length in zip(frames, out_lengths.tolist())]


@contextmanager
def record_attention(model):
    """Record pi (batch, K, time_out) of every TDY layer of ``model`` while it runs.

    Yields a dict, filled during the forward passes made inside the ``with``
    block: layer name -> list of attention tensors, one per call.
    """
    records, handles = {}, []
    for name, module in model.named_modules():
        if isinstance(module, TDYConv2d):
            records[name] = []

            def hook(layer, args, name=name):
                x = args[0]
                lengths = args[1] if len(args) > 1 else None
                records[name].append(layer.attention_weights(x, lengths).detach())

            handles.append(module.register_forward_pre_hook(hook))
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def attention_maps(embedding_model, feats, lengths=None):
    """pi_k(t) of every TDY layer for one forward pass.

    Returns a dict: layer name -> (batch, K, time_out). Empty for models
    without TDY layers.

    >>> from speechbrain_tdy.lobes import tdy_resnet34_quarter
    >>> maps = attention_maps(tdy_resnet34_quarter(n_mels=40).eval(), torch.randn(1, 80, 40))
    >>> maps["layer1.0.conv1"].shape, len(maps)
    (torch.Size([1, 6, 80]), 35)
    """
    with record_attention(embedding_model) as records:
        embedding_model(feats, lengths)
    return {name: calls[-1] for name, calls in records.items()}


def frame_labels_at_rate(labels, num_frames):
    """Resample per-10-ms labels to ``num_frames`` output frames (majority vote
    over the feature frames each output frame covers).

    >>> frame_labels_at_rate(["a", "a", "b", "b", "b", "c", "c", "c"], 2)
    ['a', 'c']
    """
    if num_frames <= 0:
        return []
    step = len(labels) / num_frames
    resampled = []
    for i in range(num_frames):
        window = labels[int(i * step) : max(int((i + 1) * step), int(i * step) + 1)]
        resampled.append(max(set(window), key=lambda label: (window.count(label), -window.index(label))))
    return resampled

