"""Inference through ``torch.compile``: one graph per model, CUDA graphs on a GPU.

At small batches a TDY model's time on a GPU goes to launching its many small
kernels (K basis convolutions, an attention branch per layer) more than to
running them. Compiling the embedding model fuses the element-wise work, and
on a GPU ``mode="reduce-overhead"`` replays the whole forward as one CUDA
graph. Every model here traces to a single graph, for training too (see
:func:`speechbrain_tdy.nnet.masking.relative_to_absolute` and
:func:`speechbrain_tdy.nnet.tdy_functional.tdy_conv2d`).

:class:`CompiledForward` wraps an embedding model for inference:

* the time axis is zero-padded up to a multiple of ``bucket_frames`` and the
  lengths tell the model where each item ends. The models mask every padded
  frame, so the embedding is the same, and recordings of different lengths
  share one CUDA graph per bucket instead of recording one per length;
* ``dynamic=True`` compiles once for every bucket and batch size (and once
  more for single recordings: the compiler specialises a size of 1);
* if compiling or running the compiled model fails (no C++ compiler, no
  Triton, an unsupported GPU), it warns once and runs the model eagerly from
  then on, with the same results.

``torch.compile`` is lazy: the first call of each new shape takes seconds on a
GPU (a minute on a CPU), later calls are fast.
"""
import warnings

import torch
import torch.nn.functional as F

#: Frames (10 ms each) the time axis is padded to a multiple of.
BUCKET_FRAMES = 64


def compile_options(compile, device):
    """The ``torch.compile`` keyword arguments for the interface's ``compile``
    setting on ``device``, or None for eager.

    ``compile`` is "auto" (compile on CUDA devices only), True, False, or a
    dict of ``torch.compile`` arguments (used as given, on any device).

    >>> compile_options("auto", "cpu") is None
    True
    >>> compile_options("auto", "cuda:0")
    {'mode': 'reduce-overhead', 'dynamic': True}
    >>> compile_options(True, "cpu")
    {'dynamic': True}
    >>> compile_options({"backend": "aot_eager"}, "cpu")
    {'backend': 'aot_eager'}
    """
    if isinstance(compile, dict):
        return dict(compile)
    if not (compile == "auto" or compile is True or compile is False):
        raise ValueError(f"compile must be 'auto', True, False or a dict of torch.compile arguments, got {compile!r}")
    on_cuda = torch.device(device).type == "cuda"
    if compile is False or (compile == "auto" and not on_cuda):
        return None
    return {"mode": "reduce-overhead", "dynamic": True} if on_cuda else {"dynamic": True}


class CompiledForward:
    """``model(feats, lengths)`` through ``torch.compile``, for inference.

    Not an ``nn.Module``: it holds no parameters of its own and is kept beside
    the model it runs, not in its state dict.

    Arguments
    ---------
    model : nn.Module
        An embedding model: features (batch, frames, n_mels) and relative
        lengths (batch,) or None -> embeddings (batch, 1, dim).
    bucket_frames : int
        The time axis is padded to a multiple of this.
    **options
        ``torch.compile`` arguments (see :func:`compile_options`).

    Example
    -------
    >>> from speechbrain_tdy.lobes import tdy_resnet34_quarter
    >>> model = tdy_resnet34_quarter(n_mels=40).eval()
    >>> compiled = CompiledForward(model, backend="aot_eager")  # doctest: +SKIP
    >>> compiled(torch.randn(2, 300, 40)).shape  # doctest: +SKIP
    torch.Size([2, 1, 512])
    """

    def __init__(self, model, bucket_frames=BUCKET_FRAMES, **options):
        if bucket_frames < 1:
            raise ValueError(f"bucket_frames must be at least 1, got {bucket_frames}")
        self.model = model
        self.bucket_frames = bucket_frames
        self.compiled = torch.compile(model, **options)
        self.error = None  # why the compiled model is no longer used, once it failed

    def __call__(self, feats, lengths=None):
        """feats: (batch, frames, n_mels); lengths: (batch,) relative or None.
        Returns embeddings (batch, 1, dim), as the eager model would."""
        if self.error is None:
            padded, padded_lengths = pad_to_bucket(feats, lengths, self.bucket_frames)
            try:
                torch.compiler.cudagraph_mark_step_begin()
                # A CUDA graph's outputs live in its memory pool and are overwritten by the next replay.
                return self.compiled(padded, padded_lengths).clone()
            except Exception as error:  # noqa: BLE001 - any failure of the compiler falls back to eager
                self.error = error
                warnings.warn(f"torch.compile failed, so the embedding model runs eagerly from now on: "
                              f"{type(error).__name__}: {error}", stacklevel=2)
        return self.model(feats, lengths)


def pad_to_bucket(feats, lengths, bucket_frames):
    """Zero-pad features (batch, frames, n_mels) in time to a multiple of
    ``bucket_frames``, with relative lengths (batch,) that mark the original
    frames as the valid ones (None: all of them).

    >>> feats, lengths = pad_to_bucket(torch.ones(2, 100, 3), torch.tensor([1.0, 0.5]), 64)
    >>> feats.shape, lengths
    (torch.Size([2, 128, 3]), tensor([0.7812, 0.3906]))
    """
    frames = feats.shape[1]
    padded_frames = -(-frames // bucket_frames) * bucket_frames
    if lengths is None:
        lengths = torch.ones(feats.shape[0], device=feats.device)
    lengths = lengths.to(torch.float32) * (frames / padded_frames)
    return F.pad(feats, (0, 0, 0, padded_frames - frames)), lengths
