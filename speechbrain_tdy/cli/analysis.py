"""Phonetic analysis of frame-level embeddings, as in the TDY-CNN paper.

    speechbrain-tdy analysis --model MODEL [--baseline BASELINE] --data CORPUS --out OUT_DIR

MODEL and BASELINE are pretrained folders or hub ids (what
``TDYSpeakerRecognition.from_hparams`` loads); CORPUS is a mini corpus
(``tools/mini_corpus.py``), whose per-frame phone labels
give each frame-level embedding a phone class. Writes to OUT_DIR:

- ``tsne.png``: t-SNE of frame-level embeddings of a few test speakers,
  coloured by speaker and by phone class, one row per model;
- ``analysis.json``: silhouette scores of the frame embeddings by speaker and
  by phone class (cosine distance), per model;
- ``attention.png``: one utterance's spectrogram with the per-time attention
  over the K kernels of chosen TDY layers.

A model whose frame embeddings keep speaker information consistent across
phonemes has a high speaker silhouette and a low phone-class silhouette.
"""
import argparse
import json
import sys
from pathlib import Path

import matplotlib
import numpy as np
import torch
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score

from speechbrain_tdy.analysis.extract import attention_maps, frame_embeddings, frame_labels_at_rate
from speechbrain_tdy.analysis.phone_labels import read_phone_labels
from speechbrain_tdy.dataio.audio import read_segment
from speechbrain_tdy.dataio.trials import read_trials, speaker_of
from speechbrain_tdy.storage.atomic import Replaceable, check_destination, readable_by, write_text_atomically
from speechbrain_tdy.storage.figures import FIGURE, save_figure

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DEFAULT_LAYERS = ("layer1.0.conv1", "layer2.0.conv1", "layer3.0.conv1", "layer4.0.conv1")


def test_utterances(corpus, n_speakers, n_utterances):
    """(speaker, wav path, phone label path) for the first test speakers of the corpus."""
    speakers = sorted({speaker_of(p) for t in read_trials(Path(corpus) / "veri_test.txt") for p in (t.enrol, t.test)})
    chosen = []
    for speaker in speakers[:n_speakers]:
        wavs = sorted((Path(corpus) / "wav" / speaker).rglob("*.wav"))[:n_utterances]
        chosen.extend((speaker, wav, wav.with_suffix(".phn")) for wav in wavs)
    if not chosen:
        raise FileNotFoundError(f"No test utterances found under {corpus}/wav for the speakers of veri_test.txt")
    return chosen


def load_model(source, savedir):
    from speechbrain_tdy.inference import TDYSpeakerRecognition

    return TDYSpeakerRecognition.from_hparams(source=source, savedir=savedir)


@torch.no_grad()
def collect_frames(model, utterances):
    """Frame embeddings (N, dim), speaker labels and phone-class labels of all utterances."""
    vectors, speakers, classes = [], [], []
    for speaker, wav, labels in utterances:
        feats = model.pipeline.compute_features(read_segment(str(wav)).unsqueeze(0))
        frames = frame_embeddings(model.pipeline.embedding_model, feats)[0]
        phone_classes = [phone_class for _, phone_class in read_phone_labels(labels)]
        vectors.append(frames.numpy())
        speakers += [speaker] * len(frames)
        classes += frame_labels_at_rate(phone_classes, len(frames))
    return np.concatenate(vectors), np.array(speakers), np.array(classes)


def silhouettes(vectors, speakers, classes, seed):
    """Silhouette scores by speaker and by phone class (cosine), frames with a pause label excluded."""
    speech = classes != "pause"
    scores = {}
    for name, labels in (("speaker", speakers), ("phone_class", classes)):
        scores[f"silhouette_{name}"] = float(
            silhouette_score(vectors[speech], labels[speech], metric="cosine", sample_size=min(2000, speech.sum()),
                             random_state=seed)
        )
    return scores


def plot_tsne(rows, path, seed):
    """rows: [(model name, vectors, speakers, classes)] -> one row of two scatter plots per model."""
    figure, axes = plt.subplots(len(rows), 2, figsize=(11, 5 * len(rows)), squeeze=False)
    for (name, vectors, speakers, classes), (left, right) in zip(rows, axes):
        points = TSNE(n_components=2, metric="cosine", init="pca", random_state=seed,
                      perplexity=min(30, len(vectors) - 1)).fit_transform(vectors)
        for ax, labels, title in ((left, speakers, "speaker"), (right, classes, "phone class")):
            for label in sorted(set(labels)):
                chosen = labels == label
                ax.scatter(points[chosen, 0], points[chosen, 1], s=4, label=label)
            ax.set_title(f"{name}: frames coloured by {title}")
            ax.legend(markerscale=3, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    figure.tight_layout()
    _save(figure, path)


@torch.no_grad()
def plot_attention(model, wav, layers, path):
    """Spectrogram of one utterance and pi_k(t) of the chosen TDY layers below it."""
    feats = model.pipeline.compute_features(read_segment(str(wav)).unsqueeze(0))
    maps = attention_maps(model.pipeline.embedding_model, feats)
    layers = [layer for layer in layers if layer in maps] or sorted(maps)[:4]
    if not layers:
        raise ValueError("The model has no TDY layer: there is no attention to plot")
    figure, axes = plt.subplots(len(layers) + 1, 1, figsize=(10, 2 + 1.6 * len(layers)), sharex=True)
    duration = feats.shape[1] / 100
    axes[0].imshow(feats[0].T.numpy(), origin="lower", aspect="auto", extent=(0, duration, 0, feats.shape[2]))
    axes[0].set_ylabel("mel bin")
    axes[0].set_title(f"{Path(wav).name}: log-mel features and TDY attention pi_k(t)")
    for ax, layer in zip(axes[1:], layers):
        pi = maps[layer][0].numpy()
        ax.imshow(pi, origin="lower", aspect="auto", interpolation="nearest", extent=(0, duration, -0.5, pi.shape[0] - 0.5),
                  vmin=0, vmax=1, cmap="magma")
        ax.set_ylabel(f"{layer}\nkernel k", fontsize=8)
    axes[-1].set_xlabel("time (s)")
    figure.tight_layout()
    _save(figure, path)


def _save(figure, path):
    save_figure(figure, path, dpi=110)
    plt.close(figure)


def _read_results(path):
    results = json.loads(Path(path).read_text(encoding="utf-8"))
    model = results.get("model") if isinstance(results, dict) else None
    if not isinstance(model, dict) or "n_frames" not in model:
        raise ValueError(f"{path}: not the results of speechbrain-tdy analysis")
    return results


#: The analysis.json a rerun may replace.
RESULTS = Replaceable("the results of speechbrain-tdy analysis (JSON with model.n_frames)", readable_by(_read_results))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="speechbrain-tdy analysis", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="pretrained folder or hub id of the TDY model")
    parser.add_argument("--baseline", help="pretrained folder or hub id of a model to compare with (e.g. static)")
    parser.add_argument("--data", required=True, help="mini corpus folder (with wav/, .phn labels, veri_test.txt)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--speakers", type=int, default=5)
    parser.add_argument("--utterances", type=int, default=3, help="utterances per speaker")
    parser.add_argument("--layers", nargs="*", default=list(DEFAULT_LAYERS), help="TDY layers for attention.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    try:
        results = analyse(args)
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    print(json.dumps(results, indent=2))


def analyse(args):
    """Run the analysis for parsed command-line ``args``; returns the numbers written."""
    out = Path(args.out)
    for name, replace in (("tsne.png", FIGURE), ("attention.png", FIGURE), ("analysis.json", RESULTS)):
        check_destination(out / name, replace)  # before any work: a rerun replaces only what it wrote
    out.mkdir(parents=True, exist_ok=True)
    utterances = test_utterances(args.data, args.speakers, args.utterances)
    sources = [("model", args.model)] + ([("baseline", args.baseline)] if args.baseline else [])
    rows, results = [], {}
    for name, source in sources:
        model = load_model(source, str(out / "pretrained" / name))
        vectors, speakers, classes = collect_frames(model, utterances)
        results[name] = dict(source=str(source), n_frames=len(vectors), **silhouettes(vectors, speakers, classes, args.seed))
        rows.append((name, vectors, speakers, classes))
        if name == "model":
            plot_attention(model, utterances[0][1], args.layers, out / "attention.png")
    plot_tsne(rows, out / "tsne.png", args.seed)
    write_text_atomically(out / "analysis.json", json.dumps(results, indent=2) + "\n", RESULTS)
    return results


if __name__ == "__main__":
    main()
