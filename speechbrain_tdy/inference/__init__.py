"""Pretrained-model interface: load an exported or converted model and verify speakers."""
from speechbrain_tdy.inference.interface import TDYSpeakerRecognition
from speechbrain_tdy.storage.safe_hparams import UnsafeHyperparamsError, load_model_hparams

__all__ = ["TDYSpeakerRecognition", "UnsafeHyperparamsError", "load_model_hparams"]
