"""The authors' front end: log mel spectrogram normalised per mel bin over time.

MelSpectrogram (512-point FFT, 25 ms window, 10 ms hop) -> + 1e-6 -> natural log
-> instance norm (each mel bin to zero mean, unit variance over the valid
frames, no affine), computed in float32 without gradients.
"""
import warnings

import torch
import torchaudio
from torch import nn

WINDOWS = {"hamming": torch.hamming_window, "hann": torch.hann_window}


class LogMelInstanceNorm(nn.Module):
    """Waveforms (batch, samples) at 16 kHz -> features (batch, frames, n_mels).

    Usable as ``compute_features`` in SpeechBrain recipes. Items shorter than
    the batch are computed on their own samples only, so padding never changes
    an item's features; frames beyond an item's length are zero. The one front
    end of training, inference and the ONNX export.

    Arguments
    ---------
    n_mels : int
        Number of mel bins.
    window : str
        "hamming" (the authors' ResNets) or "hann" (their VGG-M).
    f_max : float or None
        Highest mel frequency (None: Nyquist; the VGG-M uses 8000).
    sample_rate, n_fft, win_length, hop_length : int
        STFT settings.

    Example
    -------
    >>> front_end = LogMelInstanceNorm(n_mels=40)
    >>> wavs = torch.randn(2, 16000)
    >>> front_end(wavs, torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 101, 40])
    >>> front_end.num_frames(torch.tensor([16000, 8000]))
    tensor([101,  51])
    """

    def __init__(
        self,
        n_mels=64,
        window="hamming",
        f_max=None,
        sample_rate=16000,
        n_fft=512,
        win_length=400,
        hop_length=160,
        log_offset=1e-6,
        norm_eps=1e-5,
    ):
        super().__init__()
        if window not in WINDOWS:
            raise ValueError(f"Unknown window {window!r}; expected one of {', '.join(WINDOWS)}")
        self.n_mels, self.hop_length, self.sample_rate = n_mels, hop_length, sample_rate
        self.log_offset, self.norm_eps = log_offset, norm_eps
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            win_length=win_length,
            hop_length=hop_length,
            f_max=f_max,
            window_fn=WINDOWS[window],
            n_mels=n_mels,
        )

    def num_frames(self, num_samples):
        """Frames produced for ``num_samples`` samples (centred STFT frames)."""
        return num_samples // self.hop_length + 1

    def frame_lengths(self, wav_lens, num_samples):
        """Relative feature lengths (batch,) for relative waveform lengths ``wav_lens``
        of a batch padded to ``num_samples``, exact for the lobes' rounding."""
        samples = torch.round(wav_lens.float() * num_samples).long()
        return self.num_frames(samples).float() / self.num_frames(num_samples)

    def forward(self, wavs, lengths=None):
        """wavs: (batch, samples) in [-1, 1]; lengths: (batch,) relative lengths
        (None: every item fills the batch). Returns (batch, frames, n_mels).

        With ``lengths``, the whole batch is computed at once, each item as if
        alone: reflect-padded at its own end (as the centred STFT pads a
        recording), normalised over its own frames, zero beyond them. No loop
        over items, so it traces to ONNX and compiles as one graph."""
        if wavs.dim() != 2:
            raise ValueError(f"Expected waveforms of shape (batch, samples), got {tuple(wavs.shape)}")
        with torch.no_grad(), torch.autocast(wavs.device.type, enabled=False):
            wavs = wavs.float()
            if lengths is None or bool((lengths >= 1).all()):  # no padding: the whole batch as it is
                return self._normalise(self._log_mel(wavs))
            return self._padded_features(wavs, lengths)

    def _padded_features(self, wavs, lengths):
        """:meth:`forward` of a padded batch (batch, samples) with relative ``lengths`` (batch,)."""
        stft = self.mel.spectrogram
        half = stft.n_fft // 2
        num_samples = wavs.shape[1]
        samples = torch.round(lengths.float() * num_samples).long().clamp(1, num_samples)
        last = (samples - 1).unsqueeze(1)
        # Reflect padding of each item, as the centred STFT pads it alone: before
        # the start, sample j (1 <= j <= half) at -j; after its end (position
        # last + j), sample last - j; clamped into the item for tiny items.
        offsets = torch.arange(1, half + 1, device=wavs.device).unsqueeze(0)
        before = torch.gather(wavs, 1, torch.minimum(offsets, last).flip(1))
        after = torch.gather(wavs, 1, (last - offsets).clamp(min=0))
        padded = torch.cat([before, wavs, wavs.new_zeros(wavs.shape[0], half)], dim=1)
        padded = padded.scatter(1, half + last + offsets, after)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*return_complex=False.*")
            spectrum = torch.stft(padded, stft.n_fft, stft.hop_length, stft.win_length, stft.window,
                                  center=False, return_complex=False)  # real pairs: ONNX has no complex tensors
        power = spectrum[..., 0] * spectrum[..., 0] + spectrum[..., 1] * spectrum[..., 1]
        log_mel = torch.log(self.mel.mel_scale(power) + self.log_offset)
        frames = self.num_frames(samples)
        valid = torch.arange(log_mel.shape[-1], device=wavs.device).unsqueeze(0) < frames.unsqueeze(1)
        valid = valid.to(log_mel.dtype).unsqueeze(1)
        count = frames.to(log_mel.dtype).view(-1, 1, 1)
        mean = (log_mel * valid).sum(-1, keepdim=True) / count
        variance = (((log_mel - mean) * valid) ** 2).sum(-1, keepdim=True) / count
        return ((log_mel - mean) / torch.sqrt(variance + self.norm_eps) * valid).transpose(1, 2)

    def features_in_chunks(self, wav, chunk_frames=6000):
        """Features (1, frames, n_mels) of one long waveform (samples,), equal to
        ``self(wav[None])`` but computing the spectrogram ``chunk_frames`` frames
        at a time, so memory beyond the output stays bounded.

        >>> front_end = LogMelInstanceNorm(n_mels=24)
        >>> wav = torch.randn(48000)
        >>> torch.allclose(front_end.features_in_chunks(wav, 70), front_end(wav[None]), atol=1e-5)
        True
        """
        if wav.dim() != 1:
            raise ValueError(f"Expected one waveform of shape (samples,), got {tuple(wav.shape)}")
        with torch.no_grad(), torch.autocast(wav.device.type, enabled=False):
            wav = wav.float()
            frames = int(self.num_frames(wav.shape[0]))
            # Frames computed on a slice are exact once their window lies inside it.
            margin = -(-self.mel.spectrogram.n_fft // (2 * self.hop_length)) + 1
            chunks = []
            for first in range(0, frames, chunk_frames):
                last = min(first + chunk_frames, frames)
                start = max(0, first - margin) * self.hop_length
                stop = min(wav.shape[0], (last - 1 + margin) * self.hop_length + 1)
                spec = self._log_mel(wav[None, start:stop])
                offset = first - start // self.hop_length
                chunks.append(spec[..., offset : offset + last - first])
            return self._normalise(torch.cat(chunks, dim=-1))

    def _log_mel(self, wavs):
        return torch.log(self.mel(wavs) + self.log_offset)

    def _normalise(self, spec):
        """Instance norm of (batch, n_mels, frames) over frames -> (batch, frames, n_mels)."""
        mean = spec.mean(dim=-1, keepdim=True)
        variance = spec.var(dim=-1, unbiased=False, keepdim=True)
        return ((spec - mean) / torch.sqrt(variance + self.norm_eps)).transpose(1, 2)
