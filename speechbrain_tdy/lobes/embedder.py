"""Waveform-to-embedding pipeline: front end followed by an embedding model."""
from torch import nn


class SpeakerEmbedder(nn.Module):
    """compute_features + embedding_model as one module.

    Arguments
    ---------
    compute_features : LogMelInstanceNorm
        Front end, waveforms (batch, samples) -> features (batch, frames, n_mels).
    embedding_model : nn.Module
        Features and relative lengths -> embeddings (batch, 1, dim).

    Example
    -------
    >>> import torch
    >>> from speechbrain_tdy.lobes import LogMelInstanceNorm, tdy_resnet34_quarter
    >>> embedder = SpeakerEmbedder(LogMelInstanceNorm(40), tdy_resnet34_quarter(n_mels=40)).eval()
    >>> embedder(torch.randn(2, 16000), torch.tensor([1.0, 0.7])).shape
    torch.Size([2, 512])
    """

    def __init__(self, compute_features, embedding_model):
        super().__init__()
        self.compute_features = compute_features
        self.embedding_model = embedding_model

    def forward(self, wavs, wav_lens=None):
        """wavs: (batch, samples) at 16 kHz; wav_lens: (batch,) relative lengths.
        Returns embeddings (batch, dim)."""
        feats = self.compute_features(wavs, wav_lens)
        feat_lens = None
        if wav_lens is not None:
            feat_lens = self.compute_features.frame_lengths(wav_lens.to(feats.device), wavs.shape[1])
        return self.embedding_model(feats, feat_lens).squeeze(1)
