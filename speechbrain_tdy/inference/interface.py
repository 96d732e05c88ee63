"""SpeechBrain's speaker-verification interface for TDY-CNN models.

    >>> from speechbrain_tdy.inference import TDYSpeakerRecognition   # doctest: +SKIP
    >>> model = TDYSpeakerRecognition.from_hparams(source="path/or/org-name")  # doctest: +SKIP
    >>> score, same_speaker = model.verify_files("enrol.wav", "test.wav")  # doctest: +SKIP

A model folder (what ``python -m speechbrain_tdy.export`` and
``python -m speechbrain_tdy.convert`` write, and what a hub repository holds)
contains ``hyperparams.yaml``, ``embedding_model.ckpt`` and optionally
``threshold.json`` (decision threshold calibrated on a dev trial list, with
the scoring it was calibrated for) and ``cohort_embeddings.pt`` (for score
normalisation).
"""
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.inference.speaker import SpeakerRecognition
from speechbrain.utils.fetching import FetchConfig, LocalStrategy, fetch

from speechbrain_tdy.convert import check_state_dict
from speechbrain_tdy.dataio.audio import AudioError, crop_samples, evenly_spaced_crops, wrap_pad
from speechbrain_tdy.inference.long_audio import embed_waveforms
from speechbrain_tdy.inference.safety import check_hparams_file
from speechbrain_tdy.scoring import score_pairs

#: Cosine threshold used when a model has no calibrated threshold.json (the
#: default of SpeechBrain's SpeakerRecognition.verify_batch).
DEFAULT_THRESHOLD = 0.25


class TDYSpeakerRecognition(SpeakerRecognition):
    """Speaker embeddings and verification with a TDY-CNN (or baseline) model.

    Differences from SpeechBrain's ``SpeakerRecognition``:

    * ``from_hparams`` checks ``hyperparams.yaml`` against an allow-list before
      loading it (see :mod:`speechbrain_tdy.inference.safety`; opt out with
      ``trust_remote_code=True``) and loads parameters with ``weights_only=True``;
    * ``encode_batch`` honours ``wav_lens``: padding never changes an item's
      embedding; recordings longer than ``chunk_frames`` are embedded in chunks
      with bounded memory (same result);
    * ``verify_files``/``verify_batch`` use the model's calibrated threshold,
      optional score normalisation with the model's cohort, and (files) the
      paper's 10-crop scoring.

    Hyperparameters read from ``hyperparams.yaml`` (with defaults):
    ``chunk_frames`` (3000), ``chunk_context_frames`` (384), ``min_duration``
    (1.0 s: shorter files are wrap-padded, as the authors do), ``crop_frames``
    (400) and ``num_crops`` (10).
    """

    MODULES_NEEDED = ["compute_features", "embedding_model"]

    def __init__(self, *args, calibration=None, cohort=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.calibration = calibration
        self.cohort = None if cohort is None else cohort.to(self.device)
        setting = lambda name, default: getattr(self.hparams, name, default)  # noqa: E731
        self.chunk_frames = setting("chunk_frames", 3000)
        self.chunk_context_frames = setting("chunk_context_frames", 384)
        self.min_samples = int(setting("min_duration", 1.0) * self.audio_normalizer.sample_rate)
        self.crop_frames = setting("crop_frames", 400)
        self.num_crops = setting("num_crops", 10)

    @classmethod
    def from_hparams(
        cls,
        source,
        hparams_file="hyperparams.yaml",
        savedir=None,
        overrides=None,
        trust_remote_code=False,
        local_strategy=LocalStrategy.SYMLINK,
        fetch_config=None,
        **kwargs,
    ):
        """Load a model from a folder or a HuggingFace hub repository.

        Arguments
        ---------
        source : str
            Local folder or hub repository id ("org/name").
        hparams_file : str
            The inference HyperPyYAML file in ``source``.
        savedir : str or None
            Where files are linked or copied (None: use them where they are,
            e.g. in the HuggingFace cache).
        overrides : dict or None
            HyperPyYAML overrides (e.g. ``{"chunk_frames": 1000}``).
        trust_remote_code : bool
            Load ``hparams_file`` even if it names objects outside the
            allow-list. Loading HyperPyYAML runs the code it names.
        local_strategy, fetch_config
            As in SpeechBrain's ``fetch`` (``FetchConfig(allow_network=False)``
            never touches the network).
        **kwargs
            Passed to the constructor (e.g. ``run_opts={"device": "cuda"}``).
        """
        fetch_config = fetch_config or FetchConfig()
        check_source(source)

        def get(filename):
            return fetch(filename, source=source, savedir=savedir, local_strategy=local_strategy,
                         fetch_config=fetch_config)

        hparams_path = get(hparams_file)
        if not trust_remote_code:
            check_hparams_file(hparams_path)
        with open(hparams_path, encoding="utf-8") as stream:
            hparams = load_hyperpyyaml(stream, overrides or {})
        pretrainer = hparams["pretrainer"]
        pretrainer.set_collect_in(savedir)
        paths = pretrainer.collect_files(default_source=source, local_strategy=local_strategy,
                                         fetch_config=fetch_config)
        for name, path in paths.items():
            load_parameters(pretrainer.loadables[name], path)
        calibration = cohort = None
        if hparams.get("threshold_file"):
            calibration = read_calibration(get(hparams["threshold_file"]))
        if hparams.get("cohort_file"):
            cohort = read_cohort(get(hparams["cohort_file"]), hparams.get("emb_dim"))
        return cls(modules=hparams["modules"], hparams=hparams, calibration=calibration, cohort=cohort, **kwargs)

    def encode_batch(self, wavs, wav_lens=None, normalize=False):
        """Embeddings (batch, 1, dim) of waveforms (batch, samples) or (samples,)
        at 16 kHz, with relative lengths ``wav_lens`` (batch,) (None: all full).
        ``normalize=True`` returns L2-normalised embeddings."""
        wavs = check_waveforms(wavs)
        wav_lens = torch.ones(wavs.shape[0]) if wav_lens is None else torch.as_tensor(wav_lens, dtype=torch.float)
        wavs, wav_lens = wavs.to(self.device), wav_lens.to(self.device)
        embeddings = embed_waveforms(self.mods.compute_features, self.mods.embedding_model, wavs, wav_lens,
                                     self.chunk_frames, self.chunk_context_frames)
        return F.normalize(embeddings, dim=-1) if normalize else embeddings

    def load_audio(self, path, savedir=None):
        """Waveform (samples,) of an audio file, resampled to the model's rate and
        mixed to mono with SpeechBrain's audio normaliser.

        Raises AudioError naming the file if it cannot be decoded, is empty,
        holds NaN/infinite samples or only digital silence.
        """
        try:
            audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as error:
            raise AudioError(f"{path}: cannot read audio ({error})") from error
        if audio.shape[0] == 0:
            raise AudioError(f"{path}: the file holds no samples")
        if not np.isfinite(audio).all():
            raise AudioError(f"{path}: contains NaN or infinite samples")
        if not audio.any():
            raise AudioError(f"{path}: digital silence, there is no voice to embed")
        return self.audio_normalizer(torch.from_numpy(audio), rate)

    def embed_file(self, path, crop=False):
        """L2-normalised embedding of an audio file: (dim,) for the whole file,
        or (num_crops, dim) for the paper's evenly spaced crops of
        ``crop_frames`` frames (``crop=True``). Files shorter than
        ``min_duration`` are wrap-padded."""
        wav = wrap_pad(self.load_audio(path), self.min_samples)
        if crop:
            crops = evenly_spaced_crops(wav, crop_samples(self.crop_frames), self.num_crops)
            return self.encode_batch(crops, normalize=True)[:, 0]
        return self.encode_batch(wav, normalize=True)[0, 0]

    def verify_batch(self, wavs1, wavs2, wav1_lens=None, wav2_lens=None, threshold=None, score_norm="calibrated"):
        """Scores and decisions (batch, 1) for pairs of waveforms (batch, samples).

        ``threshold`` None uses the calibrated one (see :meth:`decision_threshold`);
        ``score_norm`` is "calibrated" (what the threshold was calibrated
        with), None, "s-norm" or "as-norm".
        """
        score_norm, threshold, top_n = self._scoring(False, score_norm, threshold)
        emb1 = self.encode_batch(wavs1, wav1_lens, normalize=True)[:, 0]
        emb2 = self.encode_batch(wavs2, wav2_lens, normalize=True)[:, 0]
        embeddings = {("x", i): e for i, e in enumerate(emb1)} | {("y", i): e for i, e in enumerate(emb2)}
        pairs = [(("x", i), ("y", i)) for i in range(len(emb1))]
        scores = score_pairs(pairs, embeddings, score_norm, self.cohort, top_n).unsqueeze(1)
        return scores, scores > threshold

    def verify_files(self, path_x, path_y, threshold=None, crop="calibrated", score_norm="calibrated"):
        """Score (1,) and decision (1,) for two audio files (any sample rate or
        channel count). ``crop`` and ``score_norm`` default to what the model's
        threshold was calibrated with; see :meth:`verify_batch`."""
        crop = bool((self.calibration or {}).get("crop", False)) if crop == "calibrated" else bool(crop)
        score_norm, threshold, top_n = self._scoring(crop, score_norm, threshold)
        embeddings = {"x": self.embed_file(path_x, crop), "y": self.embed_file(path_y, crop)}
        score = score_pairs([("x", "y")], embeddings, score_norm, self.cohort, top_n)
        return score, score > threshold

    def decision_threshold(self, crop=False, score_norm=None):
        """The calibrated threshold for this scoring, or DEFAULT_THRESHOLD for
        plain cosine scoring of a model without threshold.json."""
        if self.calibration is None:
            if crop or score_norm is not None:
                raise ValueError(
                    "This model has no calibrated threshold.json; pass threshold= for crop or normalised scores"
                )
            return DEFAULT_THRESHOLD
        calibrated = (bool(self.calibration.get("crop", False)), self.calibration.get("score_norm"))
        if calibrated != (bool(crop), score_norm):
            raise ValueError(
                f"The model's threshold was calibrated for crop={calibrated[0]}, score_norm={calibrated[1]}; "
                f"pass threshold= to score with crop={bool(crop)}, score_norm={score_norm}"
            )
        return self.calibration["threshold"]

    def _scoring(self, crop, score_norm, threshold):
        if score_norm == "calibrated":
            score_norm = (self.calibration or {}).get("score_norm")
        if score_norm is not None and self.cohort is None:
            raise ValueError(f"score_norm={score_norm!r} needs cohort embeddings, and this model has none")
        if threshold is None:
            threshold = self.decision_threshold(crop, score_norm)
        top_n = (self.calibration or {}).get("as_norm_top_n") or getattr(self.hparams, "as_norm_top_n", 100)
        return score_norm, threshold, top_n


def check_waveforms(wavs):
    """Waveforms as a float tensor (batch, samples); ValueError for anything else."""
    wavs = torch.as_tensor(wavs)
    if wavs.dim() == 1:
        wavs = wavs.unsqueeze(0)
    if wavs.dim() != 2 or wavs.shape[1] == 0:
        raise ValueError(f"Expected waveforms of shape (batch, samples) or (samples,), got {tuple(wavs.shape)}")
    if not torch.isfinite(wavs).all():
        bad = sorted({int(i) for i in torch.nonzero(~torch.isfinite(wavs))[:, 0]})
        raise ValueError(f"Waveforms contain NaN or infinite samples (batch items {bad})")
    return wavs.float()


def load_parameters(obj, path):
    """Load a module's state dict from ``path`` with ``weights_only=True``; errors name the file."""
    if isinstance(obj, CategoricalEncoder):
        obj.load(path)
        return
    if not isinstance(obj, torch.nn.Module):
        raise TypeError(f"Cannot load {path} into a {type(obj).__name__}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path} is not a PyTorch checkpoint that loads with weights_only=True: {error}") from error
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{path} is not a state dict of tensors")
    check_state_dict(obj.state_dict(), state, f"the {type(obj).__name__} built by hyperparams.yaml ({path})")
    obj.load_state_dict(state)


def read_calibration(path):
    """threshold.json as a dict with a numeric "threshold"."""
    try:
        with open(path, encoding="utf-8") as stream:
            calibration = json.load(stream)
        float(calibration["threshold"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a threshold file with a numeric 'threshold': {error}") from error
    return calibration


def read_cohort(path, emb_dim=None):
    """Cohort embeddings (n, dim), L2-normalised, from a tensor file (weights_only)."""
    try:
        cohort = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path} is not a tensor file that loads with weights_only=True: {error}") from error
    if not torch.is_tensor(cohort) or cohort.dim() != 2 or (emb_dim and cohort.shape[1] != emb_dim):
        shape = tuple(cohort.shape) if torch.is_tensor(cohort) else type(cohort).__name__
        raise ValueError(f"{path}: expected cohort embeddings of shape (n, {emb_dim or 'dim'}), got {shape}")
    return F.normalize(cohort.float(), dim=-1)


def check_source(source):
    """Refuse a ``source`` that is neither an existing folder nor a hub id
    (``name`` or ``org/name``), instead of letting the hub client fail on it."""
    text = str(source)
    looks_like_path = text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text
    if looks_like_path and not Path(text).expanduser().is_dir():
        raise FileNotFoundError(f"{text}: no such model folder (and not a hub id of the form org/name)")
