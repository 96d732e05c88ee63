"""Writing a model folder: what a HuggingFace hub repository of a model holds.

    hyperparams.yaml        inference HyperPyYAML (from the top-level hparams/)
    embedding_model.ckpt    the embedding model's state dict
    threshold.json          decision threshold and the scoring it is for (optional)
    cohort_embeddings.pt    cohort for score normalisation (optional)
    label_encoder.txt       training speakers (optional, informative)
    README.md               model card

The front end normalises each recording on its own (instance norm), so there
are no normalisation statistics to ship. Used by ``speechbrain_tdy.export``
(recipe outputs) and ``speechbrain_tdy.convert`` (the authors' checkpoints).
A folder is written under a temporary name, checked by loading it through
:class:`~speechbrain_tdy.inference.TDYSpeakerRecognition` and comparing
embeddings with the source model, and only then renamed into place.
"""
import json
import re
import shutil
from pathlib import Path

import torch
import yaml

HPARAMS_DIR = Path(__file__).resolve().parent.parent / "hparams"


def inference_hparams(architecture, values):
    """Text of ``hparams/<architecture>.yaml`` with top-level ``values`` set.

    >>> text = inference_hparams("tdy_resnet34_quarter", {"n_mels": 40, "pooling": "SAP"})
    >>> "n_mels: 40" in text and "pooling: SAP" in text
    True
    """
    template = HPARAMS_DIR / f"{architecture}.yaml"
    if not template.is_file():
        known = sorted(p.stem for p in HPARAMS_DIR.glob("*.yaml"))
        raise ValueError(f"No inference hyperparameters for architecture {architecture!r} in {HPARAMS_DIR}; "
                         f"known: {', '.join(known) or 'none (is this a checkout of the repository?)'}")
    text = template.read_text(encoding="utf-8")
    for key, value in values.items():
        line = f"{key}: {yaml.safe_dump(value, default_flow_style=True).split(chr(10) + '...')[0].strip()}"
        text, count = re.subn(rf"^{re.escape(key)}:.*$", line, text, count=1, flags=re.MULTILINE)
        if count != 1:
            raise ValueError(f"{template} has no top-level key {key!r}")
    return text


def write_model_folder(out_dir, architecture, values, state_dict, reference, model_card,
                       calibration=None, cohort=None, label_encoder=None):
    """Write a model folder to ``out_dir`` (replacing it) and check it.

    Arguments
    ---------
    architecture : str
        Name of a file in the top-level ``hparams/`` folder.
    values : dict
        Top-level hyperparameters (n_mels, emb_dim, pooling, ...).
    state_dict : dict
        Parameters of the embedding model.
    reference : callable
        wavs (batch, samples) -> embeddings (batch, dim) of the source model;
        the written folder must reproduce them.
    model_card : str
        README.md text.
    calibration : dict or None
        Contents of threshold.json.
    cohort : torch.Tensor or None
        (n, dim) cohort embeddings.
    label_encoder : path or None
        A SpeechBrain label_encoder.txt to include.
    """
    out_dir = Path(out_dir)
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    values = dict(values)
    torch.save(state_dict, staging / "embedding_model.ckpt")
    if calibration is not None:
        (staging / "threshold.json").write_text(json.dumps(calibration, indent=2) + "\n", encoding="utf-8")
        values["threshold_file"] = "threshold.json"
    if cohort is not None:
        torch.save(cohort, staging / "cohort_embeddings.pt")
        values["cohort_file"] = "cohort_embeddings.pt"
    if label_encoder is not None:
        shutil.copyfile(label_encoder, staging / "label_encoder.txt")
    (staging / "hyperparams.yaml").write_text(inference_hparams(architecture, values), encoding="utf-8")
    (staging / "README.md").write_text(model_card, encoding="utf-8")
    check_model_folder(staging, reference)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    return out_dir


def check_model_folder(folder, reference, atol=1e-4):
    """Load ``folder`` through the pretrained interface and compare its
    embeddings of random audio with ``reference``; ValueError if they differ."""
    from speechbrain_tdy.inference import TDYSpeakerRecognition

    model = TDYSpeakerRecognition.from_hparams(source=str(folder), run_opts={"device": "cpu"})
    wavs = 0.1 * torch.randn(2, 48000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(wavs)
    got = model.encode_batch(wavs)[:, 0]
    error = float((got - expected).abs().max())
    if error > atol * max(1.0, float(expected.abs().max())):
        raise ValueError(f"{folder} does not reproduce the source model (max abs difference {error:.2e})")


def model_card(title, architecture, values, n_parameters, training, results, calibration):
    """README.md of a model folder, with a HuggingFace metadata header."""
    lines = [
        "---",
        "library_name: speechbrain",
        "tags: [speaker-verification, speaker-recognition, speechbrain, tdy-cnn]",
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
        "",
        "## Training",
        "",
        training,
        "",
        "## Results",
        "",
        results or "Not evaluated.",
        "",
    ]
    if calibration is not None:
        lines += [
            f"Decision threshold {calibration['threshold']:.4f} (`threshold.json`), calibrated at the EER of "
            f"`{calibration.get('calibrated_on', 'a dev list')}` for crop={calibration.get('crop', False)}, "
            f"score_norm={calibration.get('score_norm')}.",
            "",
        ]
    lines += [
        "## Usage",
        "",
        "```python",
        "from speechbrain_tdy.inference import TDYSpeakerRecognition",
        "",
        'model = TDYSpeakerRecognition.from_hparams(source="<this folder or org/name>")',
        'score, same_speaker = model.verify_files("enrol.wav", "test.wav")  # any rate, mono or stereo',
        "embeddings = model.encode_batch(wavs, wav_lens)  # (batch, 1, dim) for 16 kHz (batch, samples)",
        "```",
        "",
    ]
    return "\n".join(lines)

