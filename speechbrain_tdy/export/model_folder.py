"""Writing a model folder: what a HuggingFace hub repository of a model holds.

    hyperparams.yaml        inference HyperPyYAML (Architecture.hparams_text)
    embedding_model.safetensors  the embedding model's state dict
    threshold.json          calibration: LLRs, EER threshold, the scoring they hold for (optional)
    cohort_embeddings.safetensors  cohort for score normalisation (optional; one tensor "embeddings")
    label_encoder.txt       training speakers (optional, informative)
    README.md               model card

The front end normalises each recording on its own (instance norm), so there
are no normalisation statistics to ship. Used by ``speechbrain_tdy.export``
(recipe outputs) and ``speechbrain_tdy.convert`` (the authors' checkpoints).
A folder is written under a fresh temporary name, checked by loading it through
:class:`~speechbrain_tdy.inference.TDYSpeakerRecognition` and comparing
embeddings with the source model, and only then renamed into place; an
existing folder is replaced only with ``overwrite`` and only if it holds
nothing but model-folder files (:data:`MODEL_FOLDER`).
"""
import shutil
import warnings
from pathlib import Path

import torch
from huggingface_hub import EvalResult, ModelCardData

from speechbrain_tdy.inference import TDYSpeakerRecognition
from speechbrain_tdy.scoring.calibration import write_calibration
from speechbrain_tdy.storage.atomic import OutputExistsError, Replaceable, atomic_folder, check_destination
from speechbrain_tdy.storage.model_files import (
    CALIBRATION_FILE,
    CARD_FILE,
    COHORT_FILE,
    COHORT_TENSOR,
    HPARAMS_FILE,
    LABELS_FILE,
    MODEL_FOLDER_FILES,
    PARAMETERS_FILE,
    is_model_folder,
    write_safetensors,
)

#: What ``overwrite`` may replace: a folder holding nothing but model-folder files.
MODEL_FOLDER = Replaceable(f"a model folder (a folder holding nothing but {', '.join(sorted(MODEL_FOLDER_FILES))})",
                           is_model_folder)


def check_output_folder(out_dir, overwrite=False, inputs=()):
    """Refuse, before any work, to write a model folder to ``out_dir`` where that
    could destroy anything else: an existing path (unless ``overwrite`` and it
    is a model folder), a symlink, or a folder holding one of the ``inputs``.
    :func:`write_model_folder` checks again when it puts the folder in place."""
    out_dir = Path(out_dir)
    resolved = out_dir.resolve()
    for path in inputs:
        path = Path(path).resolve()
        if path == resolved or resolved in path.parents:
            raise ValueError(f"The input {path} lies inside the output folder {out_dir}; write elsewhere")
    try:
        check_destination(out_dir, MODEL_FOLDER if overwrite else None, folder=True)
    except OutputExistsError as error:
        if overwrite:
            raise
        raise OutputExistsError(f"{out_dir} already exists; pass --overwrite to replace a model folder "
                                "there") from error


def write_model_folder(out_dir, architecture, values, embedding_model, reference, model_card, calibration=None,
                       cohort=None, label_encoder=None, overwrite=False, inputs=()):
    """Write a model folder to ``out_dir`` and check it.

    The folder is written and checked in a fresh staging folder beside
    ``out_dir`` and renamed into place (:func:`~speechbrain_tdy.storage.atomic.atomic_folder`):
    ``out_dir`` is claimed by that rename, so a folder that appears there in
    the meantime is never replaced; with ``overwrite``, a model folder there is
    checked again when it is replaced, and only its model-folder files are
    deleted. On any error ``out_dir`` is as it was.

    Arguments
    ---------
    architecture : speechbrain_tdy.lobes.registry.Architecture
        The model's architecture (writes ``hyperparams.yaml``).
    values : dict
        Checked model values (see ``Architecture.model_values``).
    embedding_model : torch.nn.Module
        The embedding model whose state dict is written.
    reference : callable
        wavs (batch, samples) -> embeddings (batch, dim) of the source model;
        the written folder must reproduce them.
    model_card : str
        README.md text.
    calibration : Calibration or None
        Written as threshold.json.
    cohort : torch.Tensor or None
        (n, dim) cohort embeddings.
    label_encoder : path or None
        A SpeechBrain label_encoder.txt to include.
    overwrite : bool
        Replace an existing model folder at ``out_dir``.
    inputs : sequence of paths
        Files the folder is made from; none may lie inside ``out_dir``.
    """
    out_dir = Path(out_dir)
    check_output_folder(out_dir, overwrite, inputs)
    with atomic_folder(out_dir, MODEL_FOLDER if overwrite else None) as staging:
        write_safetensors(embedding_model.state_dict(), staging / PARAMETERS_FILE)
        if calibration is not None:
            write_calibration(staging / CALIBRATION_FILE, calibration)
        if cohort is not None:
            write_safetensors({COHORT_TENSOR: cohort}, staging / COHORT_FILE)
        if label_encoder is not None:
            shutil.copyfile(label_encoder, staging / LABELS_FILE)
        n_parameters = sum(p.numel() for p in embedding_model.parameters())
        text = architecture.hparams_text(values, threshold_file=CALIBRATION_FILE if calibration is not None else None,
                                         cohort_file=COHORT_FILE if cohort is not None else None,
                                         n_parameters=n_parameters)
        (staging / HPARAMS_FILE).write_text(text, encoding="utf-8")
        (staging / CARD_FILE).write_text(model_card, encoding="utf-8")
        check_model_folder(staging, reference)
    return out_dir


def check_model_folder(folder, reference, atol=1e-4):
    """Load ``folder`` through the pretrained interface and compare its
    embeddings of random audio with ``reference``; ValueError if they differ."""
    with warnings.catch_warnings():  # a folder without threshold.json: the caller's card says so
        warnings.simplefilter("ignore")
        model = TDYSpeakerRecognition.from_hparams(source=str(folder), run_opts={"device": "cpu"})
    wavs = 0.1 * torch.randn(2, 48000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(wavs)
    got = model.encode_batch(wavs)[:, 0]
    error = float((got - expected).abs().max())
    if error > atol * max(1.0, float(expected.abs().max())):
        raise ValueError(f"{folder} does not reproduce the source model (max abs difference {error:.2e})")


#: The hub's task of these models (its model-index) and pipeline tag: the hub
#: has no task of its own for speaker embeddings; speaker models are listed
#: under audio classification.
TASK_TYPE, TASK_NAME, PIPELINE_TAG = "speaker-verification", "Speaker Verification", "audio-classification"
#: Hub dataset ids of the corpora a data folder or trial list is recognised by (its path, lower-cased).
KNOWN_DATASETS = {"voxceleb": "voxceleb", "librispeech": "librispeech_asr"}
#: The license a card names unless told another: SpeechBrain's, under which its own hub models are released.
DEFAULT_LICENSE = "apache-2.0"


def known_dataset(path):
    """The hub dataset id of the corpus ``path`` belongs to, by name, or None.

    >>> known_dataset("/data/VoxCeleb1/veri_test2.txt"), known_dataset("/data/mine")
    ('voxceleb', None)
    """
    lowered = str(path).lower()
    return next((dataset for name, dataset in KNOWN_DATASETS.items() if name in lowered), None)


def card_metadata(title, architecture, results=None, license=DEFAULT_LICENSE, datasets=()):
    """The YAML front matter of a model card, as the hub reads it
    (``huggingface_hub.ModelCardData``): library, license, tags (with the
    architecture), training ``datasets`` (hub ids), pipeline tag and, given
    the ``results`` of the recipe's ``verify.py``, a model-index with the EER
    (percent), minDCF and Cllr (bits) on its trial list."""
    evaluation = None
    if results is not None:
        trials = str(results["verification_file"])
        metrics = [("eer", "EER", results["EER"], None),
                   ("min_dcf", "minDCF", results["minDCF"], {"p_target": results["p_target"]})]
        if "Cllr" in results:
            metrics.append(("cllr", "Cllr", results["Cllr"], None))
        evaluation = [
            EvalResult(task_type=TASK_TYPE, task_name=TASK_NAME, dataset_type=known_dataset(trials) or "custom",
                       dataset_name=Path(trials).name, metric_type=kind, metric_name=name,
                       metric_value=round(float(value), 4), metric_args=args)
            for kind, name, value, args in metrics
        ]
    data = ModelCardData(
        license=license, library_name="speechbrain", pipeline_tag=PIPELINE_TAG, datasets=list(datasets) or None,
        tags=["speaker-verification", "speaker-recognition", "speaker-embedding", "speechbrain", "tdy-cnn",
              architecture],
        model_name=title, eval_results=evaluation,
    )
    return data.to_yaml()


def model_card(title, architecture, values, n_parameters, training, results, calibration, license=DEFAULT_LICENSE,
               datasets=()):
    """README.md of a model folder: hub metadata (:func:`card_metadata`), then
    what the model is, how it was trained, its ``results`` (the recipe's
    ``results.json``, or None), how it decides and how to use it."""
    lines = [
        "---",
        card_metadata(title, architecture, results, license, datasets).strip(),
        "---",
        "",
        f"# {title}",
        "",
        "Speaker embeddings from a Temporal Dynamic CNN (Kim et al., ICASSP 2022), "
        "loaded with SpeechBrain through the `speechbrain_tdy` package (install it from the speechbrain-tdy repository).",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | `{architecture}` |",
        *[f"| {key} | {value} |" for key, value in values.items()],
        f"| parameters | {n_parameters:,} |",
        "| front end | log mel spectrogram, 25 ms / 10 ms, instance norm per recording (no stored statistics) |",
        f"| license | {license} |",
        "",
        "## Training",
        "",
        training,
        "",
        "## Results",
        "",
        results_text(results),
        "",
    ]
    lines += calibration_section(calibration)
    lines += [
        "## Usage",
        "",
        "```python",
        "from speechbrain_tdy.inference import TDYSpeakerRecognition",
        "",
        'model = TDYSpeakerRecognition.from_hparams(source="<this folder or org/name>")',
        ('llr, same_speaker = model.verify_files("enrol.wav", "test.wav", p_target=0.01)  # any rate, mono or stereo'
         if calibration is not None and calibration.llr is not None else
         'score, same_speaker = model.verify_files("enrol.wav", "test.wav")  # any rate, mono or stereo'),
        "embeddings = model.encode_batch(wavs, wav_lens)  # (batch, 1, dim) for 16 kHz (batch, samples)",
        "```",
        "",
    ]
    return "\n".join(lines)


def results_text(results):
    """The card's sentence on the ``results`` of the recipe's ``verify.py`` (None: not evaluated)."""
    if results is None:
        return "Not evaluated."
    text = (f"EER {results['EER']:.2f}%, minDCF(p_target={results['p_target']:g}) {results['minDCF']:.3f} on "
            f"{results['n_trials']} trials of `{results['verification_file']}` (the recipe's verify.py).")
    if "Cllr" in results:
        costs = ", ".join(f"p_target={prior}: {cost['actual']:.3f} (minimum {cost['minimum']:.3f})"
                          for prior, cost in results["DCF"].items())
        text += (f" Calibrated LLRs: Cllr {results['Cllr']:.3f} bits (minCllr {results['minCllr']:.3f}); actual "
                 f"DCF of the decisions at {costs}.")
    return text


def calibration_section(calibration):
    """Lines of the model card that say how the model decides (``calibration``:
    a :class:`~speechbrain_tdy.scoring.calibration.Calibration` or None)."""
    if calibration is None:
        return ["No calibrated decision threshold: pass `threshold=` to `verify_files` (a threshold calibrated "
                "on trials of your own).", ""]
    scoring = f"crop={calibration.crop}, score_norm={calibration.score_norm}"
    source = f"`{calibration.calibrated_on or 'a trial list'}`"
    caveat = (" This is the evaluation list itself (no dev list was given), so decisions on new trials will "
              "be less accurate than the results above say." if calibration.on_evaluation_list else "")
    if calibration.llr is None:
        return [f"Decision threshold {calibration.threshold:.4f} (`threshold.json`), calibrated at the EER of "
                f"{source} for {scoring}.{caveat}", ""]
    llr = calibration.llr
    durations = (f" {llr.duration_weights[0]:+.4g} log(shorter duration) {llr.duration_weights[1]:+.4g} "
                 "log(longer duration)" if llr.uses_durations else "")
    return [
        f"Calibrated log-likelihood ratios (`threshold.json`): LLR = {llr.slope:.4g} score {llr.offset:+.4g}"
        f"{durations}, fitted on {source} for {scoring} by prior-weighted logistic regression (prior "
        f"{llr.fit_prior:g}). `verify_files` and `verify_batch` return the LLR and decide at the prior "
        f"p_target={calibration.p_target:g} of a same-speaker trial unless given another (`p_target=`) or a score "
        f"threshold (`threshold=`); the EER threshold of that list is {calibration.threshold:.4f}.{caveat}",
        "",
    ]
