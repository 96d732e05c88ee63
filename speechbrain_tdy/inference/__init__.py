"""Pretrained-model interface: load an exported or converted model and verify speakers."""
from speechbrain_tdy.inference.interface import DEFAULT_THRESHOLD, TDYSpeakerRecognition
from speechbrain_tdy.inference.safety import UnsafeHyperparamsError, check_hparams_file

__all__ = ["DEFAULT_THRESHOLD", "TDYSpeakerRecognition", "UnsafeHyperparamsError", "check_hparams_file"]
