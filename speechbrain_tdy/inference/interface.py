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
import math
import warnings

import torch
import torch.nn.functional as F
from hyperpyyaml import load_hyperpyyaml
from speechbrain.inference.speaker import SpeakerRecognition
from speechbrain.utils.fetching import LocalStrategy

from speechbrain_tdy.dataio.audio import MAX_AMPLITUDE, crop_samples, evenly_spaced_crops, load_audio, wrap_pad
from speechbrain_tdy.inference.model_files import (
    ModelSource,
    check_settings,
    load_parameters,
    read_calibration,
    read_cohort,
)
from speechbrain_tdy.inference.safe_hparams import load_model_hparams
from speechbrain_tdy.pipeline import EmbeddingPipeline
from speechbrain_tdy.scoring import score_pairs


class TDYSpeakerRecognition(SpeakerRecognition):
    """Speaker embeddings and verification with a TDY-CNN (or baseline) model.

    Differences from SpeechBrain's ``SpeakerRecognition``:

    * ``from_hparams`` reads ``hyperparams.yaml`` with a safe loader that builds
      only this package's lobes (see :mod:`speechbrain_tdy.inference.safe_hparams`;
      opt out with ``trust_remote_code=True``), fetches files by plain name only,
      loads parameters with ``weights_only=True`` and checks every value it reads
      (see :mod:`speechbrain_tdy.inference.model_files`);
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

    def __init__(self, *args, calibration=None, cohort=None, settings=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.calibration = calibration
        self.cohort = None if cohort is None else cohort.to(self.device)
        settings = settings or check_settings(vars(self.hparams), "hparams")
        self.sample_rate = self.audio_normalizer.sample_rate
        self.pipeline = EmbeddingPipeline(self.mods.compute_features, self.mods.embedding_model,
                                          settings["chunk_frames"], settings["chunk_context_frames"])
        self.min_samples = int(settings["min_duration"] * self.sample_rate)
        self.crop_frames = settings["crop_frames"]
        self.num_crops = settings["num_crops"]
        self.as_norm_top_n = settings["as_norm_top_n"]

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
            e.g. in the HuggingFace cache). A folder filled from another
            source is refreshed; one holding other files is refused.
        overrides : dict or None
            HyperPyYAML overrides (e.g. ``{"chunk_frames": 1000}``).
        trust_remote_code : bool
            Load ``hparams_file`` with HyperPyYAML itself, which runs the code
            it names: only for files you wrote or trust.
        local_strategy, fetch_config
            As in SpeechBrain's ``fetch`` (``FetchConfig(allow_network=False)``
            never touches the network).
        **kwargs
            Passed to the constructor (e.g. ``run_opts={"device": "cuda"}``).
        """
        files = ModelSource(source, savedir, local_strategy, fetch_config)
        hparams_path = files.get(hparams_file)
        if trust_remote_code:
            with open(hparams_path, encoding="utf-8") as stream:
                hparams = load_hyperpyyaml(stream, overrides or {})
        else:
            hparams = load_model_hparams(hparams_path, overrides)
        settings = check_settings(hparams, hparams_path)
        pretrainer = hparams.get("pretrainer")
        if pretrainer is None or "modules" not in hparams:
            raise ValueError(f"{hparams_path} defines no 'pretrainer' or 'modules': not a model folder's file")
        for name, module in pretrainer.loadables.items():
            load_parameters(module, files.get(f"{name}.ckpt"))
        calibration = cohort = None
        if settings["threshold_file"]:
            calibration = read_calibration(files.get(settings["threshold_file"]))
        else:
            warnings.warn(f"{source} has no calibrated decision threshold (threshold.json): verify_files and "
                          "verify_batch need an explicit threshold=", stacklevel=2)
        if settings["cohort_file"]:
            cohort = read_cohort(files.get(settings["cohort_file"]), settings["emb_dim"])
        return cls(modules=hparams["modules"], hparams=hparams, calibration=calibration, cohort=cohort,
                   settings=settings, **kwargs)

    def encode_batch(self, wavs, wav_lens=None, normalize=False):
        """Embeddings (batch, 1, dim) of waveforms (batch, samples) or (samples,)
        at 16 kHz, with relative lengths ``wav_lens`` (batch,) (None: all full).
        ``normalize=True`` returns L2-normalised embeddings."""
        wavs = check_waveforms(wavs)
        wav_lens = torch.ones(wavs.shape[0]) if wav_lens is None else torch.as_tensor(wav_lens, dtype=torch.float)
        wavs, wav_lens = wavs.to(self.device), wav_lens.to(self.device)
        embeddings = self.pipeline.embed(wavs, wav_lens).unsqueeze(1)
        if not torch.isfinite(embeddings).all():
            bad = sorted({int(i) for i in torch.nonzero(~torch.isfinite(embeddings))[:, 0]})
            raise ValueError(f"The model gave NaN or infinite embeddings for batch items {bad}")
        return F.normalize(embeddings, dim=-1) if normalize else embeddings

    def load_audio(self, path, savedir=None):
        """Waveform (samples,) of an audio file at the model's rate, mixed to mono.

        Raises AudioError naming the file if it cannot be decoded, is empty,
        has an unusable sample rate, holds NaN/infinite or out-of-range
        samples, or only digital silence (see
        :func:`speechbrain_tdy.dataio.audio.load_audio`).
        """
        return load_audio(path, self.sample_rate)

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
        """The calibrated threshold for this scoring; ValueError if the model
        has none for it (pass ``threshold=`` then)."""
        if self.calibration is None:
            raise ValueError("This model has no calibrated threshold.json: pass threshold= "
                             "(a cosine threshold calibrated on your own trials)")
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
        elif isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        top_n = (self.calibration or {}).get("as_norm_top_n") or self.as_norm_top_n
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
    if wavs.abs().max() > MAX_AMPLITUDE:
        bad = sorted({int(i) for i in torch.nonzero(wavs.abs() > MAX_AMPLITUDE)[:, 0]})
        raise ValueError(f"Waveforms exceed {MAX_AMPLITUDE:g} in magnitude (batch items {bad}); "
                         "expected floats in [-1, 1]")
    return wavs.float()
