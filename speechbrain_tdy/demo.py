"""Smallest end-to-end path: waveforms -> TDY-ResNet-34 (x0.25) -> cosine scores.

Replaced by the full recipe demo (prepare, train, verify) once the recipe lands.
"""
import torch

from speechbrain_tdy.lobes import LogMelInstanceNorm, SpeakerEmbedder, tdy_resnet34_quarter
from speechbrain_tdy.nnet import set_temperature


def main():
    torch.manual_seed(0)
    embedder = SpeakerEmbedder(LogMelInstanceNorm(n_mels=40), tdy_resnet34_quarter(n_mels=40)).eval()
    set_temperature(embedder, 1.0)
    time = torch.arange(32000) / 16000
    wavs = torch.stack([0.3 * torch.sin(2 * torch.pi * f * time) for f in (120.0, 125.0, 240.0)])
    with torch.no_grad():
        embeddings = torch.nn.functional.normalize(embedder(wavs), dim=1)
    print("cosine scores of 3 synthetic tones (untrained model):")
    print(embeddings @ embeddings.T)


if __name__ == "__main__":
    main()
