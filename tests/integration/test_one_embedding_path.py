"""One embedding per file, whichever way it goes.

verify.py's path (``embed_files`` with ``EmbeddingPipeline.embed``, each file
alone) is the reference; the interface (``encode_batch`` of one waveform,
``embed_file``, ``verify_files``, ``identify`` through a saved gallery),
``speechbrain-tdy embed`` and the ONNX backend must give the same L2-normalised
embeddings, alone and in padded batches, for a file shorter than
``min_duration`` (wrap-padded) and one longer than the model folder's
``chunk_frames`` (chunked by ``EmbeddingPipeline``; the ONNX graph runs it whole).
"""
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_tiny_model_folder, write_voice
from speechbrain.utils.data_utils import batch_pad_right

from speechbrain_tdy.cli import main as speechbrain_tdy
from speechbrain_tdy.dataio.audio import load_audio, load_utterance
from speechbrain_tdy.embedding.files import embed_files
from speechbrain_tdy.inference import TDYSpeakerRecognition
from speechbrain_tdy.inference.gallery import SpeakerGallery
from speechbrain_tdy.lobes import LogMelInstanceNorm
from speechbrain_tdy.storage.embeddings_file import read_embeddings

#: Largest accepted difference between L2-normalised embeddings.
ATOL = 1e-5
#: The model folder's chunk_frames: "long" is embedded in 3 chunks, the others in one pass.
CHUNK_FRAMES = 400
#: Seconds of each test file; "short" is wrap-padded to min_duration (1 s).
SECONDS = {"short": 0.4, "a": 1.7, "b": 2.5, "c": 3.5, "long": 9.0}
#: Padded samples per batch of embed_files: "c", "b" and "a" share a batch, "long" and "short" are alone.
BATCH_SAMPLES = 3 * int(SECONDS["c"] * 16000)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A tiny TDY-ResNet model folder with chunk_frames 400 (4 s)."""
    folder = write_tiny_model_folder(tmp_path_factory.mktemp("models") / "tdy", "tdy_resnet34_quarter")
    hparams = folder / "hyperparams.yaml"
    text = hparams.read_text()
    assert "\nchunk_frames: 3000 " in text
    hparams.write_text(text.replace("\nchunk_frames: 3000 ", f"\nchunk_frames: {CHUNK_FRAMES} "))
    return folder


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """name -> path of a wav file of SECONDS[name]."""
    root = tmp_path_factory.mktemp("audio")
    return {name: write_voice(root / f"{name}.wav", seconds, seed)
            for seed, (name, seconds) in enumerate(SECONDS.items())}


@pytest.fixture(scope="module")
def model(model_folder):
    return TDYSpeakerRecognition.from_hparams(source=str(model_folder), compile=False)


@pytest.fixture(scope="module")
def reference(model, audio):
    """name -> verify.py's embedding (dim,): embed_files with the pipeline, each file alone."""
    embeddings = embed_files(model.pipeline.embed, list(audio.values()), sample_rate=model.sample_rate,
                             min_samples=model.min_samples)
    return {name: embeddings[path] for name, path in audio.items()}


def assert_same(got, reference, names=SECONDS):
    """``got`` (name -> embedding, any array type) equals ``reference`` for ``names``, within ATOL."""
    for name in names:
        error = float((torch.as_tensor(np.asarray(got[name])) - reference[name]).abs().max())
        assert error <= ATOL, f"{name}: max abs difference {error:.2e}"


def padded_batch(model, audio, names):
    """Waveforms (batch, samples) of ``names`` as files are read, zero-padded, and their relative lengths."""
    return batch_pad_right([load_utterance(audio[name], model.sample_rate, model.min_samples) for name in names])


def test_the_files_cover_wrap_padding_chunking_and_single_passes(model, audio, reference):
    num_frames = model.pipeline.compute_features.num_frames
    frames = {name: num_frames(len(load_utterance(path, model.sample_rate, model.min_samples)))
              for name, path in audio.items()}
    assert len(load_audio(audio["short"])) < model.min_samples and frames["short"] == 101
    assert model.pipeline.chunk_frames == CHUNK_FRAMES < frames["long"]
    assert all(frames[name] <= CHUNK_FRAMES for name in ("short", "a", "b", "c"))
    similarities = torch.stack(list(reference.values())) @ torch.stack(list(reference.values())).T
    assert float(similarities.triu(1).max()) < 1 - 100 * ATOL, "the model tells the files apart"


def test_interface_embeddings_of_files_and_waveforms(model, audio, reference):
    one_waveform = {name: model.encode_batch(load_utterance(path, model.sample_rate, model.min_samples),
                                             normalize=True)[0, 0] for name, path in audio.items()}
    assert_same(one_waveform, reference)
    assert_same({name: model.embed_file(path) for name, path in audio.items()}, reference)


def test_padded_batches_of_the_interface_and_embed_files(model, audio, reference):
    one_pass = ["c", "b", "a", "short"]  # all within chunk_frames: one padded pass of the pipeline
    wavs, lens = padded_batch(model, audio, one_pass)
    assert_same(dict(zip(one_pass, model.encode_batch(wavs, lens, normalize=True)[:, 0])), reference, one_pass)
    with_long = ["long", "a", "short"]  # longer than chunk_frames: each item chunked on its own samples
    wavs, lens = padded_batch(model, audio, with_long)
    assert_same(dict(zip(with_long, model.encode_batch(wavs, lens, normalize=True)[:, 0])), reference, with_long)
    batched = embed_files(model.pipeline.embed, list(audio.values()), sample_rate=model.sample_rate,
                          min_samples=model.min_samples, batch_samples=BATCH_SAMPLES)
    assert_same({name: batched[path] for name, path in audio.items()}, reference)


def test_verify_files_scores_the_reference_embeddings(model, audio, reference):
    for x, y in (("short", "long"), ("a", "c")):
        score, _ = model.verify_files(audio[x], audio[y], threshold=0.5, crop=False, score_norm=None)
        assert abs(float(score) - float(reference[x] @ reference[y])) <= ATOL


def test_identify_through_a_saved_gallery_scores_the_reference_embeddings(model, audio, reference, tmp_path):
    model.gallery = SpeakerGallery()
    for name, path in audio.items():
        model.enroll(name, path)
    model.gallery.save(tmp_path / "gallery")
    model.gallery = SpeakerGallery.load(tmp_path / "gallery")
    assert_same(dict(zip(model.gallery.names, model.gallery.means())), reference)
    for probe in ("short", "long"):
        for recording in (audio[probe], load_audio(audio[probe])):  # a file, and its waveform
            names, scores = model.identify(recording, top_k=len(audio), threshold=-1.0, score_norm=None)
            assert names[0] == probe
            for name, score in zip(names, scores.tolist()):
                assert abs(score - float(reference[name] @ reference[probe])) <= ATOL


@pytest.mark.parametrize("options", [[], ["--batch-size", "3"]])
def test_the_embed_command_writes_the_reference_embeddings(model_folder, audio, reference, tmp_path, options):
    """By default each file alone, as embed_file; --batch-size 3 puts "short" and "a" in one padded batch."""
    inputs = str(Path(audio["a"]).parent)
    speechbrain_tdy(["embed", str(model_folder), inputs, str(tmp_path / "npy"), *options])
    speechbrain_tdy(["embed", str(model_folder), inputs, str(tmp_path / "all.npz"), "--num-workers", "0", *options])
    assert_same({name: np.load(tmp_path / "npy" / f"{name}.npy") for name in audio}, reference)
    assert_same(read_embeddings(tmp_path / "all.npz"), reference)


@pytest.fixture(scope="module")
def onnx_model(model_folder):
    """The model folder through the ONNX backend (its graph runs every input whole)."""
    pytest.importorskip("onnxruntime")
    speechbrain_tdy(["onnx", str(model_folder)])
    return TDYSpeakerRecognition.from_hparams(source=str(model_folder), backend="onnx")


def test_the_onnx_backend_gives_the_reference_embeddings(onnx_model, audio, reference):
    assert_same({name: onnx_model.embed_file(path) for name, path in audio.items()}, reference)
    names = list(audio)
    wavs, lens = padded_batch(onnx_model, audio, names)
    assert_same(dict(zip(names, onnx_model.encode_batch(wavs, lens, normalize=True)[:, 0])), reference)


def test_the_front_end_traced_to_onnx_computes_any_padded_batch_each_item_as_alone(tmp_path):
    """Traced on a batch of 2, the ONNX graph (opset 17, no loop over items
    possible) gives a batch of 4 other lengths each item's features alone."""
    onnxruntime = pytest.importorskip("onnxruntime")
    front_end = LogMelInstanceNorm(n_mels=24)
    generator = torch.Generator().manual_seed(0)
    example = (torch.randn(2, 8000, generator=generator), torch.tensor([1.0, 0.6]))
    torch.onnx.export(front_end, example, str(tmp_path / "front_end.onnx"), input_names=["wavs", "lens"],
                      output_names=["feats"], opset_version=17, dynamo=False,
                      dynamic_axes={"wavs": {0: "batch", 1: "samples"}, "lens": {0: "batch"}, "feats": {0: "batch"}})
    lengths = [32000, 16000, 5000, 401]
    wavs = torch.zeros(len(lengths), lengths[0])
    for row, length in enumerate(lengths):
        wavs[row, :length] = torch.randn(length, generator=generator)
    session = onnxruntime.InferenceSession(str(tmp_path / "front_end.onnx"), providers=["CPUExecutionProvider"])
    lens = (torch.tensor(lengths) / lengths[0]).numpy()
    feats = torch.from_numpy(session.run(["feats"], {"wavs": wavs.numpy(), "lens": lens})[0])
    for row, length in enumerate(lengths):
        alone = front_end(wavs[row : row + 1, :length])[0]
        torch.testing.assert_close(feats[row, : alone.shape[0]], alone, rtol=0, atol=1e-4)
        assert not feats[row, alone.shape[0]:].any()
