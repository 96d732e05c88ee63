"""Waveform augmentation under mixed precision (speechbrain_tdy.dataio.augment)."""
import csv

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.augment.augmenter import Augmenter
from speechbrain.augment.time_domain import DropFreq, SpeedPerturb

from speechbrain_tdy.dataio.augment import NoiseBank, augment_waveforms
from speechbrain_tdy.dataio.augmentation_files import folder_to_csv


def test_a_half_precision_waveform_is_speed_perturbed_in_float32_on_its_device():
    """The GPU crash, reproduced on a CPU: a bf16 waveform (what DropFreq returns
    under CUDA autocast) reaches SpeedPerturb's float32 resampler outside any
    CPU autocast."""
    wavs, lens = torch.randn(2, 16000).bfloat16(), torch.ones(2)
    speed = Augmenter(augmentations=[SpeedPerturb(16000, speeds=[90])])
    with pytest.raises(RuntimeError, match="BFloat16"):
        speed(wavs, lens)
    out, out_lens = augment_waveforms(speed, wavs, lens)
    assert out.dtype == torch.float32 and out.shape == (2, 17778) and torch.equal(out_lens, lens)
    assert speed.augmentations["SpeedPerturb0"].device == wavs.device


def test_augmentation_under_autocast_equals_float32_augmentation():
    augmenter = Augmenter(augmentations=[DropFreq(), SpeedPerturb(16000, speeds=[105])])
    wavs, lens = torch.randn(3, 8000), torch.tensor([1.0, 0.8, 0.5])
    torch.manual_seed(0)
    expected, _ = augmenter(wavs, lens)
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, _ = augment_waveforms(augmenter, wavs, lens)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected)


def test_folder_to_csv_lists_recordings_and_leaves_them_as_they_are(tmp_path):
    """SpeechBrain's write_csv would cut this 12 s file into 5 s pieces and delete it."""
    folder = tmp_path / "noise"
    folder.mkdir()
    sf.write(folder / "long.wav", 0.1 * np.random.default_rng(0).standard_normal(12 * 16000), 16000)
    content = (folder / "long.wav").read_bytes()
    folder_to_csv(folder, tmp_path / "noise.csv")
    assert [p.name for p in folder.iterdir()] == ["long.wav"] and (folder / "long.wav").read_bytes() == content
    with open(tmp_path / "noise.csv", newline="") as stream:
        (row,) = csv.DictReader(stream)
    assert row["wav"] == str(folder / "long.wav") and float(row["duration"]) == 12.0

    sf.write(folder / "stereo.wav", np.zeros((1600, 2)), 16000)
    with pytest.raises(ValueError, match="stereo.wav: 2 channels"):
        folder_to_csv(folder, tmp_path / "again.csv")


def test_noise_bank_crops_are_cyclic_slices_of_its_recordings(tmp_path):
    recordings = [np.arange(1, 8001) / 1e4, -np.arange(1, 12001) / 1e4]  # distinct samples
    for i, recording in enumerate(recordings):
        sf.write(tmp_path / f"{i}.wav", recording, 16000, subtype="FLOAT")
    bank = NoiseBank(folder_to_csv(tmp_path, tmp_path / "noise.csv"))
    crops = bank(torch.zeros(40, 20000))  # longer than both recordings
    assert crops.shape == (40, 20000) and crops.dtype == torch.float32
    used = set()
    for crop in crops:
        index = 0 if crop[0] > 0 else 1
        recording = torch.tensor(recordings[index], dtype=torch.float32)
        offset = int(torch.nonzero(recording == crop[0]))
        assert torch.equal(crop, recording[(offset + torch.arange(20000)) % len(recording)])
        used.add(index)
    assert used == {0, 1}
