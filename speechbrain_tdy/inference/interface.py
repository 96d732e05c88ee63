"""SpeechBrain's speaker-verification interface for TDY-CNN models.

    >>> from speechbrain_tdy.inference import TDYSpeakerRecognition   # doctest: +SKIP
    >>> model = TDYSpeakerRecognition.from_hparams(source="path/or/org-name")  # doctest: +SKIP
    >>> llr, same_speaker = model.verify_files("enrol.wav", "test.wav", p_target=0.01)  # doctest: +SKIP

A model folder (what ``speechbrain-tdy export`` and
``speechbrain-tdy convert`` write, and what a hub repository holds)
contains ``hyperparams.yaml``, ``embedding_model.safetensors`` (folders
written before safetensors: ``embedding_model.ckpt``) and optionally
``threshold.json`` (the calibration measured on a dev trial list, with the
scoring it holds for: :mod:`speechbrain_tdy.scoring.calibration`) and
``cohort_embeddings.safetensors`` (for score normalisation).
"""
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from hyperpyyaml import load_hyperpyyaml
from speechbrain.core import RunOptions
from speechbrain.inference.speaker import SpeakerRecognition
from speechbrain.utils.fetching import LocalStrategy
from speechbrain.utils.parameter_transfer import Pretrainer

from speechbrain_tdy.dataio.audio import MAX_AMPLITUDE, crop_samples, header_duration, load_audio, pad_utterance
from speechbrain_tdy.embedding.compiled import compile_options
from speechbrain_tdy.embedding.files import embed_files
from speechbrain_tdy.embedding.fingerprint import probe_signal, same_fingerprint
from speechbrain_tdy.embedding.pipeline import EmbeddingPipeline
from speechbrain_tdy.inference.gallery import UNKNOWN, SpeakerGallery
from speechbrain_tdy.inference.onnx_backend import OnnxEmbeddingModel
from speechbrain_tdy.scoring.calibration import open_set_posteriors, read_calibration
from speechbrain_tdy.scoring.metrics import bayes_threshold
from speechbrain_tdy.scoring.scores import score_pairs
from speechbrain_tdy.storage.checks import checked_number
from speechbrain_tdy.storage.model_files import (
    HPARAMS_FILE,
    ONNX_FILE,
    ModelSource,
    check_settings,
    load_parameters,
    read_cohort,
)
from speechbrain_tdy.storage.safe_hparams import load_model_hparams

#: Why classify_file/classify_batch raise.
NO_CLASSIFIER = (
    "TDY-CNN model folders hold a speaker embedding model without a classifier over training speakers: "
    "use encode_batch()/embed_file() for embeddings, verify_files()/verify_batch() to compare two recordings, "
    "or enroll() and identify() to name speakers from your own recordings"
)
#: Prior that a recording ``identify`` is given comes from none of the enrolled speakers.
DEFAULT_P_UNKNOWN = 0.5


#: SpeechBrain's run options (device, compile, jit, precision, distributed, ...):
#: the caller's choice only; a model folder's hyperparams.yaml may not set them.
RUN_OPTIONS = frozenset(RunOptions().as_dict()) - {"overridden_args"}


class TDYSpeakerRecognition(SpeakerRecognition):
    """Speaker embeddings and verification with a TDY-CNN (or baseline) model.

    Differences from SpeechBrain's ``SpeakerRecognition``:

    * ``from_hparams`` reads ``hyperparams.yaml`` with a safe loader that builds
      only this package's lobes (see :mod:`speechbrain_tdy.storage.safe_hparams`;
      opt out with ``trust_remote_code=True``), fetches files by plain name only,
      loads parameters with ``weights_only=True`` and checks every value it reads
      (see :mod:`speechbrain_tdy.storage.model_files`);
    * ``encode_batch`` honours ``wav_lens``: padding never changes an item's
      embedding; recordings longer than ``chunk_frames`` are embedded in chunks
      with bounded memory (same result);
    * ``verify_files``/``verify_batch`` return calibrated log-likelihood
      ratios and decide at a prior (``p_target=``, the calibration's by
      default) with the model's calibration (``threshold.json``), score
      normalisation with the model's cohort and (files) the paper's 10-crop
      scoring, as calibrated; ``identify`` answers "one of the enrolled
      speakers" or "unknown" from the posteriors at a prior of an unknown
      speaker (``p_unknown=``);
    * on a CUDA device the embedding model runs through ``torch.compile``
      with CUDA graphs (``compile="auto"``: the first call compiles, each
      new length bucket records a graph, see :mod:`speechbrain_tdy.embedding.compiled`): pass
      ``compile=False`` for eager, ``True`` to compile on a CPU too, or a
      dict of ``torch.compile`` arguments.

    Hyperparameters read from ``hyperparams.yaml`` (with defaults):
    ``chunk_frames`` (3000), ``chunk_context_frames`` (384), ``min_duration``
    (1.0 s: shorter files are wrap-padded, as the authors do), ``crop_frames``
    (400) and ``num_crops`` (10).
    """

    MODULES_NEEDED = ["compute_features", "embedding_model"]

    def __init__(self, *args, calibration=None, cohort=None, settings=None, backend="torch", onnx_file=None,
                 compile="auto", **kwargs):
        super().__init__(*args, **kwargs)
        self.onnx_model = self._onnx_model(backend, onnx_file)
        #: The model's :class:`~speechbrain_tdy.scoring.calibration.Calibration`, or None.
        self.calibration = calibration
        if calibration is not None and calibration.llr is None:
            warnings.warn(f"This model's threshold.json was written before calibrated log-likelihood ratios: "
                          f"verify_files/verify_batch/identify return scores and decide at its EER threshold "
                          f"{calibration.threshold:.4f}, not at a prior (re-run the recipe's verify.py for LLRs)",
                          stacklevel=3)
        self.cohort = None if cohort is None else cohort.to(self.device)
        settings = settings or check_settings(vars(self.hparams), "hparams")
        self.sample_rate = self.audio_normalizer.sample_rate
        self.pipeline = EmbeddingPipeline(self.mods.compute_features, self.mods.embedding_model,
                                          settings["chunk_frames"], settings["chunk_context_frames"])
        options = compile_options(compile, self.device)
        if options is not None and self.onnx_model is None and not self.compile:  # run_opts compile: SpeechBrain's
            self.pipeline.compile_inference(**options)
        self.min_samples = int(settings["min_duration"] * self.sample_rate)
        self.max_duration = settings["max_duration"]
        self.crop_frames = settings["crop_frames"]
        self.num_crops = settings["num_crops"]
        self.as_norm_top_n = settings["as_norm_top_n"]
        self.gallery = SpeakerGallery()
        self._fingerprint = None

    @classmethod
    def from_hparams(
        cls,
        source,
        hparams_file=HPARAMS_FILE,
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
            Passed to the constructor: ``run_opts={"device": "cuda"}``,
            ``compile=False`` (see the class), ``backend="onnx"``.
        """
        files = ModelSource(source, savedir, local_strategy, fetch_config)
        if kwargs.get("backend") == "onnx" and kwargs.get("onnx_file") is None:
            kwargs["onnx_file"] = files.get(ONNX_FILE)
        hparams_path = files.get(hparams_file)
        if trust_remote_code:
            with open(hparams_path, encoding="utf-8") as stream:
                hparams = load_hyperpyyaml(stream, overrides or {})
        else:
            hparams = load_model_hparams(hparams_path, overrides)
        settings = check_settings(hparams, hparams_path)
        ignored = sorted(RUN_OPTIONS & set(hparams))
        if ignored:  # how to run is the caller's choice (run_opts=, compile=), never the folder's
            warnings.warn(f"{hparams_path}: ignoring run options set by the model folder ({', '.join(ignored)}); "
                          "pass run_opts= to choose them", stacklevel=2)
            hparams = {key: value for key, value in hparams.items() if key not in RUN_OPTIONS}
        pretrainer = hparams.get("pretrainer")
        if pretrainer is None or "modules" not in hparams:
            raise ValueError(f"{hparams_path} defines no 'pretrainer' or 'modules': not a model folder's file")
        check_modules(hparams["modules"], pretrainer, hparams_path, cls.MODULES_NEEDED)
        for name, module in pretrainer.loadables.items():
            load_parameters(module, files.parameters(name))
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
        at 16 kHz, with relative lengths ``wav_lens`` (batch,) in (0, 1] (None:
        all full). ``normalize=True`` returns L2-normalised embeddings."""
        wavs = check_waveforms(wavs)
        wav_lens = check_lengths(wav_lens, wavs)
        wavs, wav_lens = wavs.to(self.device), wav_lens.to(self.device)
        if self.onnx_model is not None:
            embeddings = self.onnx_model(wavs, wav_lens).unsqueeze(1)
        else:
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
        ``min_duration`` are wrap-padded. The same as ``verify.py`` computes
        (:func:`speechbrain_tdy.embedding.files.embed_files`)."""
        crop_frames, num_crops = self._crop_settings()
        return embed_files(
            lambda wavs, lens: self.encode_batch(wavs, lens)[:, 0], [path], sample_rate=self.sample_rate,
            min_samples=self.min_samples, crop_samples=crop_samples(crop_frames) if crop else None,
            num_crops=num_crops, max_duration=self.max_duration,
        )[path].to(self.device)

    def _crop_settings(self):
        """(crop_frames, num_crops): those the threshold was calibrated with, if
        it was calibrated on crops, else the model folder's."""
        if self.calibration is not None and self.calibration.crop:
            return self.calibration.crop_frames, self.calibration.num_crops
        return self.crop_frames, self.num_crops

    def verify_batch(self, wavs1, wavs2, wav1_lens=None, wav2_lens=None, threshold=None, score_norm="calibrated",
                     p_target=None, c_miss=None, c_fa=None, return_score=False):
        """Log-likelihood ratios and decisions (batch, 1) for pairs of waveforms
        (batch, samples) at 16 kHz with relative lengths (batch,) (None: full).

        Decisions are Bayes decisions, ``llr > log(c_fa (1 - p_target) / (c_miss p_target))``,
        at the prior ``p_target`` of a same-speaker pair (None: the one of the
        model's calibration) and the costs of a miss and of a false alarm
        (default 1 each). ``threshold=`` (a score) decides ``score > threshold``
        instead. ``return_score=True`` returns the score (cosine, or s-norm /
        as-norm) instead of the LLR. A model whose calibration has no LLRs
        (older ``threshold.json``) returns scores and decides at its EER
        threshold; one without a calibration needs ``threshold=``.
        ``score_norm`` is "calibrated" (what the model was calibrated with),
        None, "s-norm" or "as-norm"; LLRs exist only for the calibrated one.
        """
        score_norm, top_n = self._scoring(score_norm)
        emb1 = self.encode_batch(wavs1, wav1_lens, normalize=True)[:, 0]
        emb2 = self.encode_batch(wavs2, wav2_lens, normalize=True)[:, 0]
        embeddings = {("x", i): e for i, e in enumerate(emb1)} | {("y", i): e for i, e in enumerate(emb2)}
        pairs = [(("x", i), ("y", i)) for i in range(len(emb1))]
        scores = score_pairs(pairs, embeddings, score_norm, self.cohort, top_n)

        def durations():
            sides = [(torch.ones(len(emb1)) if lens is None else torch.as_tensor(lens, dtype=torch.float).cpu())
                     * torch.as_tensor(wavs).shape[-1] / self.sample_rate
                     for wavs, lens in ((wavs1, wav1_lens), (wavs2, wav2_lens))]
            return torch.stack(sides, dim=1)

        values, decisions = self._decide(scores, durations, False, score_norm, threshold, p_target, c_miss, c_fa,
                                         return_score)
        return values.unsqueeze(1), decisions.unsqueeze(1)

    def verify_files(self, path_x, path_y, threshold=None, crop="calibrated", score_norm="calibrated",
                     p_target=None, c_miss=None, c_fa=None, return_score=False):
        """Log-likelihood ratio (1,) and decision (1,) for two audio files (any
        sample rate or channel count). ``crop`` and ``score_norm`` default to
        what the model was calibrated with; the rest is as in :meth:`verify_batch`."""
        if crop == "calibrated":
            crop = self.calibration is not None and self.calibration.crop
        crop = bool(crop)
        score_norm, top_n = self._scoring(score_norm)
        embeddings = {"x": self.embed_file(path_x, crop), "y": self.embed_file(path_y, crop)}
        scores = score_pairs([("x", "y")], embeddings, score_norm, self.cohort, top_n)

        def durations():
            return torch.tensor([[header_duration(path_x), header_duration(path_y)]])

        return self._decide(scores, durations, crop, score_norm, threshold, p_target, c_miss, c_fa, return_score)

    def decision_threshold(self, crop=False, score_norm=None):
        """The calibrated EER threshold of scores of this scoring; ValueError if
        the model has none for it (pass ``threshold=`` then)."""
        if self.calibration is None:
            raise ValueError("This model has no calibrated threshold.json: pass threshold= "
                             "(a cosine threshold calibrated on your own trials)")
        calibrated = (self.calibration.crop, self.calibration.score_norm)
        if calibrated != (bool(crop), score_norm):
            raise ValueError(
                f"The model's threshold was calibrated for crop={calibrated[0]}, score_norm={calibrated[1]}; "
                f"pass threshold= to score with crop={bool(crop)}, score_norm={score_norm}"
            )
        return self.calibration.threshold

    def _calibrated_llrs(self, crop, score_norm):
        """The calibration's LLR map if it has one for this scoring, else None."""
        calibration = self.calibration
        if calibration is None or calibration.llr is None or not calibration.holds_for(crop, score_norm):
            return None
        return calibration.llr

    def _decide(self, scores, durations, crop, score_norm, threshold, p_target, c_miss, c_fa, return_score):
        """(LLRs or scores (n,), decisions (n,)) of trials' ``scores`` (n,); see
        :meth:`verify_batch`. ``durations`` () -> (n, 2) seconds of both
        recordings, called only if the calibration uses them."""
        llr_map = self._calibrated_llrs(crop, score_norm)
        llrs = None if llr_map is None else llr_map(scores, durations() if llr_map.uses_durations else None)
        if threshold is not None or llr_map is None:
            for key, value in (("p_target", p_target), ("c_miss", c_miss), ("c_fa", c_fa)):
                if value is not None:
                    raise ValueError(f"{key}= needs a calibration with log-likelihood ratios for crop={bool(crop)}, "
                                     f"score_norm={score_norm} and no threshold=; this model's "
                                     + ("threshold.json has none" if threshold is None else "call passed threshold="))
            if threshold is None:
                threshold = self.decision_threshold(crop, score_norm)
            decisions = scores > checked_number(threshold, "threshold")
        else:
            p_target = self.calibration.p_target if p_target is None else p_target
            decisions = llrs > bayes_threshold(p_target, 1.0 if c_miss is None else c_miss,
                                               1.0 if c_fa is None else c_fa, where="verify")
        return (scores if llrs is None or return_score else llrs.float()), decisions

    def _scoring(self, score_norm):
        """(score_norm, as-norm top_n) of a call: "calibrated" is the calibration's."""
        if score_norm == "calibrated":
            score_norm = None if self.calibration is None else self.calibration.score_norm
        if score_norm is not None and self.cohort is None:
            raise ValueError(f"score_norm={score_norm!r} needs cohort embeddings, and this model has none")
        top_n = (self.calibration and self.calibration.as_norm_top_n) or self.as_norm_top_n
        return score_norm, top_n

    # Identification, backends and SpeechBrain's classifier methods -------------

    def enroll(self, name, recordings):
        """Add ``recordings`` of speaker ``name`` (new or already enrolled) to
        ``self.gallery``: one or more audio files (any rate, mono or stereo) or
        16-kHz waveforms (samples,). The speaker is the mean of the recordings'
        L2-normalised embeddings (see :class:`~speechbrain_tdy.inference.gallery.SpeakerGallery`)."""
        if isinstance(recordings, (str, os.PathLike, torch.Tensor, np.ndarray)):
            recordings = [recordings]
        if not recordings:
            raise ValueError(f"No recordings given to enrol {name!r}")
        self._check_gallery_model()
        self.gallery.add(name, torch.stack([self._embed_recording(item) for item in recordings]))

    def identify(self, recording, top_k=1, threshold=None, score_norm="calibrated", p_unknown=None):
        """The ``top_k`` most likely answers for ``recording`` (an audio file or
        a 16-kHz waveform (samples,)), best first: (names, values (k,)).

        With a calibration with log-likelihood ratios (and no ``threshold=``),
        the answers are the enrolled speakers and ``"unknown"`` and the values
        their posteriors (:func:`~speechbrain_tdy.scoring.calibration.open_set_posteriors`)
        at the prior ``p_unknown`` (default :data:`DEFAULT_P_UNKNOWN`) that the
        recording comes from none of them: ``names[0]`` is the most probable
        answer, and raising ``p_unknown`` rejects more recordings. If the
        calibration uses recording durations, an enrolled speaker counts as the
        longest recording it was fitted on.

        Otherwise (``threshold=``, or an older calibration with only an EER
        threshold) the values are the speakers' scores, and a speaker scoring
        at or below the threshold (None: the calibrated one, see
        :meth:`decision_threshold`) is named ``"unknown"``. ``score_norm`` is
        as in :meth:`verify_batch`.
        """
        if len(self.gallery) == 0:
            raise ValueError("The gallery is empty: enroll() speakers first")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        self._check_gallery_model()
        score_norm, top_n = self._scoring(score_norm)
        embeddings = dict(zip(self.gallery.names, F.normalize(self.gallery.means(), dim=-1).to(self.device)))
        embeddings[None] = self._embed_recording(recording)
        pairs = [(name, None) for name in self.gallery.names]
        scores = score_pairs(pairs, embeddings, score_norm, self.cohort, top_n)
        llr_map = None if threshold is not None else self._calibrated_llrs(False, score_norm)
        if llr_map is None:
            if p_unknown is not None:
                raise ValueError("p_unknown= needs a calibration with log-likelihood ratios for "
                                 f"score_norm={score_norm} and no threshold=")
            threshold = self.decision_threshold(False, score_norm) if threshold is None else threshold
            threshold = checked_number(threshold, "threshold")
            scores, order = scores.sort(descending=True)
            names = [self.gallery.names[i] if score > threshold else UNKNOWN for i, score in zip(order.tolist(), scores)]
            return names[:top_k], scores[:top_k]
        durations = None
        if llr_map.uses_durations:
            enrolled = math.exp(llr_map.log_duration_range[1])
            durations = torch.tensor([[self._recording_duration(recording), enrolled]] * len(pairs))
        posteriors = open_set_posteriors(llr_map(scores, durations), DEFAULT_P_UNKNOWN if p_unknown is None
                                         else p_unknown)
        posteriors, order = posteriors.float().sort(descending=True)
        answers = self.gallery.names + [UNKNOWN]
        return [answers[i] for i in order.tolist()[:top_k]], posteriors[:top_k]

    def classify_batch(self, wavs, wav_lens=None):
        """Not available: these models have no classifier (see :data:`NO_CLASSIFIER`)."""
        raise NotImplementedError(NO_CLASSIFIER)

    def classify_file(self, path, **kwargs):
        """Not available: these models have no classifier (see :data:`NO_CLASSIFIER`)."""
        raise NotImplementedError(NO_CLASSIFIER)

    def _recording_duration(self, recording):
        """Seconds of an audio file (its header) or a 16-kHz waveform (samples,)."""
        if isinstance(recording, (str, os.PathLike)):
            return header_duration(recording)
        return len(recording) / self.sample_rate

    def _embed_recording(self, recording):
        """L2-normalised embedding (dim,) of an audio file or a 16-kHz waveform
        (samples,); waveforms are refused if too short and wrap-padded as files are."""
        if isinstance(recording, (str, os.PathLike)):
            return self.embed_file(recording)
        wav = torch.as_tensor(recording, dtype=torch.float32)
        if wav.dim() != 1 or wav.shape[0] == 0:
            raise ValueError(f"Expected an audio file or a waveform of shape (samples,), got shape {tuple(wav.shape)}")
        wav = pad_utterance(wav, self.min_samples, self.sample_rate, "the waveform")
        return self.encode_batch(wav, normalize=True)[0, 0]

    def fingerprint(self):
        """L2-normalised embedding (dim,) of a fixed 1-s probe signal: tells
        models apart (files of embeddings and galleries keep it to refuse
        mixing models)."""
        if self._fingerprint is None:
            self._fingerprint = self.encode_batch(probe_signal(), normalize=True)[0, 0].cpu()
        return self._fingerprint

    def _check_gallery_model(self):
        """Record this model's fingerprint in the gallery, or refuse a gallery
        whose speakers another model enrolled (or of another embedding size)."""
        dim = self.fingerprint().shape[0]
        if self.gallery.dim not in (None, dim):
            raise ValueError(f"The gallery holds {self.gallery.dim}-dimensional embeddings, this model's are "
                             f"{dim}-dimensional; enrol its speakers with this model in a new gallery")
        if self.gallery.fingerprint is None:
            self.gallery.fingerprint = self.fingerprint()
        elif not same_fingerprint(self.fingerprint(), self.gallery.fingerprint):
            raise ValueError("The gallery's speakers were enrolled with another model (or another version of it); "
                             "enrol them again with this one")

    def _onnx_model(self, backend, onnx_file):
        """None for ``backend="torch"``; for ``"onnx"`` the ONNX model in
        ``onnx_file`` (the model folder's ``embedding_model.onnx``)."""
        if backend == "torch":
            return None
        if backend != "onnx":
            raise ValueError(f"Unknown backend {backend!r}; expected 'torch' or 'onnx'")
        if str(self.device) != "cpu":
            raise ValueError(f"backend='onnx' runs on the CPU, not on {self.device}")
        if onnx_file is None:
            raise ValueError(f"backend='onnx' needs onnx_file=, the model folder's {ONNX_FILE}")
        if not Path(onnx_file).exists():  # OnnxEmbeddingModel refuses what is not a regular file
            raise FileNotFoundError(f"{onnx_file}: no ONNX model; write it with `speechbrain-tdy onnx "
                                    "MODEL_FOLDER`")
        return OnnxEmbeddingModel(onnx_file)






def check_lengths(wav_lens, wavs):
    """Relative lengths (batch,) in (0, 1] for ``wavs`` (batch, samples), as a
    float tensor (ones for None); ValueError for anything else."""
    if wav_lens is None:
        return torch.ones(wavs.shape[0])
    wav_lens = torch.as_tensor(wav_lens, dtype=torch.float)
    if wav_lens.dim() != 1 or wav_lens.shape[0] != wavs.shape[0]:
        raise ValueError(f"wav_lens must hold one relative length per waveform: {wavs.shape[0]} waveforms, "
                         f"wav_lens of shape {tuple(wav_lens.shape)}")
    bad = ~(torch.isfinite(wav_lens) & (wav_lens > 0) & (wav_lens <= 1))
    if bad.any():
        raise ValueError(f"wav_lens must be relative lengths in (0, 1], got {wav_lens[bad].tolist()[:5]} "
                         f"(batch items {torch.nonzero(bad)[:, 0].tolist()[:5]})")
    return wav_lens


def check_waveforms(wavs):
    """Waveforms as a float tensor (batch, samples); ValueError for anything else."""
    wavs = torch.as_tensor(wavs)
    if wavs.dim() == 1:
        wavs = wavs.unsqueeze(0)
    if wavs.dim() != 2 or wavs.shape[0] == 0 or wavs.shape[1] == 0:
        raise ValueError(f"Expected waveforms of shape (batch, samples) or (samples,), got {tuple(wavs.shape)}")
    if not torch.isfinite(wavs).all():
        bad = sorted({int(i) for i in torch.nonzero(~torch.isfinite(wavs))[:, 0]})
        raise ValueError(f"Waveforms contain NaN or infinite samples (batch items {bad})")
    if wavs.abs().max() > MAX_AMPLITUDE:
        bad = sorted({int(i) for i in torch.nonzero(wavs.abs() > MAX_AMPLITUDE)[:, 0]})
        raise ValueError(f"Waveforms exceed {MAX_AMPLITUDE:g} in magnitude (batch items {bad}); "
                         "expected floats in [-1, 1]")
    return wavs.float()


def check_modules(modules, pretrainer, where, needed):
    """Refuse (ValueError naming ``where``) ``modules`` that are not a mapping
    of names to torch modules holding ``needed``, or a ``pretrainer`` that is
    not a SpeechBrain Pretrainer, before SpeechBrain fails on them."""
    if not isinstance(pretrainer, Pretrainer):
        raise ValueError(f"{where}: 'pretrainer' must be a Pretrainer, got {type(pretrainer).__name__}")
    if not isinstance(modules, dict) or not all(isinstance(m, torch.nn.Module) for m in modules.values()):
        got = type(modules).__name__ if not isinstance(modules, dict) else "a mapping to other values"
        raise ValueError(f"{where}: 'modules' must map names to modules built in the file, got {got}")
    missing = [name for name in needed if name not in modules]
    if missing:
        raise ValueError(f"{where}: 'modules' lacks {', '.join(missing)}")
