"""Waveform augmentation under mixed precision (speechbrain_tdy.augment)."""
import pytest
import torch
from speechbrain.augment.augmenter import Augmenter
from speechbrain.augment.time_domain import DropFreq, SpeedPerturb

from speechbrain_tdy.augment import augment_waveforms


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
