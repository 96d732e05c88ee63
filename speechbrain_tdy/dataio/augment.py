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

SpeechBrain's ``AddNoise(csv_file=...)`` reads a batch of noise files in the
training process at every call; :class:`NoiseBank`, its ``noise_funct``
instead, reads them once and crops them in memory on the batch's device.
"""
import csv

import torch
from speechbrain.augment.time_domain import SpeedPerturb

from speechbrain_tdy.dataio.audio import read_segment


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


class NoiseBank:
    """Random crops of noise recordings kept in memory: a ``noise_funct`` for
    SpeechBrain's ``AddNoise``, which then mixes them at a random SNR.

    At the first call the recordings listed in ``csv_file`` (the ``wav``
    column of SpeechBrain's augmentation CSV) are read (mono float32, at
    ``sample_rate``) into one tensor on the device of the waveforms: 230 MB
    per hour of 16 kHz audio. Each call draws one recording per waveform,
    uniformly, and a random offset in it, wrapping around recordings shorter
    than the waveforms: one gather, no file reading.

    Arguments
    ---------
    csv_file : str
        Augmentation CSV (``speechbrain_tdy.dataio.augmentation_files.folder_to_csv``).
    sample_rate : int
        Sample rate the recordings must have.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_tdy.dataio.augmentation_files import folder_to_csv, write_synthetic_noise_and_rirs
    >>> noise_folder, _ = write_synthetic_noise_and_rirs(tempfile.mkdtemp(), n_noises=2, n_rirs=1)
    >>> bank = NoiseBank(folder_to_csv(noise_folder, f"{noise_folder}/noise.csv"))
    >>> bank(torch.zeros(3, 60000)).shape  # 3.75 s from recordings of 3 s
    torch.Size([3, 60000])
    """

    def __init__(self, csv_file, sample_rate=16000):
        self.csv_file, self.sample_rate = csv_file, sample_rate
        self.noise = self.starts = self.lengths = None

    def load(self, device):
        """Read the recordings into ``self.noise`` (total samples,) on ``device``,
        with each one's ``starts`` and ``lengths`` (recordings,)."""
        with open(self.csv_file, newline="", encoding="utf-8") as stream:
            paths = [row["wav"] for row in csv.DictReader(stream)]
        if not paths:
            raise ValueError(f"{self.csv_file}: no noise recording listed")
        recordings = [read_segment(path, sample_rate=self.sample_rate) for path in paths]
        self.lengths = torch.tensor([len(r) for r in recordings], device=device)
        self.starts = torch.cumsum(self.lengths, 0) - self.lengths
        self.noise = torch.cat(recordings).to(device)

    def __call__(self, waveforms):
        """waveforms: (batch, samples) -> noise crops (batch, samples), float32, on their device."""
        if self.noise is None:
            self.load(waveforms.device)
        elif self.noise.device != waveforms.device:
            self.noise, self.starts, self.lengths = (t.to(waveforms.device) for t in (self.noise, self.starts, self.lengths))
        batch, samples = waveforms.shape[:2]
        pick = torch.randint(len(self.lengths), (batch,), device=waveforms.device)
        lengths = self.lengths[pick]
        offsets = (torch.rand(batch, device=waveforms.device) * lengths).long()
        positions = (offsets[:, None] + torch.arange(samples, device=waveforms.device)) % lengths[:, None]
        return self.noise[self.starts[pick, None] + positions]
