"""SpeechBrain's waveform augmentation in a mixed-precision training step.

A ``Brain`` runs ``compute_forward`` under ``torch.autocast`` when trained with
``--precision=bf16`` or ``fp16``, so an augmenter called there computes its
convolutions (``DropFreq``'s notch filter, ``SpeedPerturb``'s resampler) in
half precision and hands half-precision waveforms to the transforms after it.
``SpeedPerturb`` moreover resamples on its own ``device`` (default "cpu"): on a
GPU it copies such a waveform to the CPU, where the CUDA autocast does not
apply, and convolves it with its float32 kernel, which fails ("Input type
(CPUBFloat16Type) and weight type (torch.FloatTensor) should be the same").
On a CPU the same step runs but quantises the waveforms to 8 mantissa bits.

:func:`augment_waveforms` runs an augmenter as it was written: in float32,
with autocast off, with speed perturbation on the batch's device.
"""
import torch
from speechbrain.augment.time_domain import SpeedPerturb


def augment_waveforms(augmenter, wavs, lens):
    """Apply a SpeechBrain ``Augmenter`` in float32 outside autocast, on ``wavs.device``.

    Arguments
    ---------
    augmenter : speechbrain.augment.augmenter.Augmenter
        Its ``SpeedPerturb`` transforms are set to resample on ``wavs.device``.
    wavs : torch.Tensor
        (batch, samples) waveforms, any floating dtype.
    lens : torch.Tensor
        (batch,) lengths relative to ``samples``.

    Returns
    -------
    (batch', samples') float32 waveforms and (batch',) relative lengths, as the
    augmenter returns them (batch' > batch when it concatenates copies,
    samples' != samples after speed perturbation).

    Example
    -------
    >>> from speechbrain.augment.augmenter import Augmenter
    >>> speed = Augmenter(augmentations=[SpeedPerturb(16000, speeds=[90])])
    >>> with torch.autocast("cpu", dtype=torch.bfloat16):
    ...     wavs, lens = augment_waveforms(speed, torch.randn(2, 16000), torch.ones(2))
    >>> wavs.dtype, wavs.shape
    (torch.float32, torch.Size([2, 17778]))
    """
    for transform in augmenter.augmentations.values():
        if isinstance(transform, SpeedPerturb):
            transform.device = wavs.device
    with torch.autocast(wavs.device.type, enabled=False):
        return augmenter(wavs.float(), lens)
