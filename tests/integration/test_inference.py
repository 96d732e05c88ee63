"""The pretrained interface: model folders from the converter, from_hparams from
a folder and from the HuggingFace cache, audio handling, scoring, and safety."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from helpers import ROOT, as_written_before_safetensors, fill_weights

from speechbrain_tdy.cli.convert import main as convert_main
from speechbrain_tdy.dataio.audio import AudioError, wrap_pad
from speechbrain_tdy.embedding.files import embed_files
from speechbrain_tdy.export.authors_checkpoint import convert_to_folder, load_official_checkpoint
from speechbrain_tdy.inference import TDYSpeakerRecognition, UnsafeHyperparamsError, load_model_hparams
from speechbrain_tdy.lobes.registry import ARCHITECTURES
from speechbrain_tdy.scoring.scores import normalise_score
from speechbrain_tdy.storage.model_files import CheckpointMismatchError

MODEL = dict(model="TDy_ResNet34_quarter", encoder_type="AVG", n_mels=40)


@pytest.fixture(scope="module")
def authors_checkpoint(reference_fixture, tmp_path_factory):
    """A checkpoint file as the authors' trainer writes it (fixture weights)."""
    state = fill_weights({name: torch.zeros(shape) for name, shape in reference_fixture["keys"]},
                         reference_fixture["gain"])
    path = tmp_path_factory.mktemp("authors") / "model000000100.model"
    torch.save({f"__S__.{key}": value for key, value in state.items()} | {"__L__.fc.weight": torch.zeros(3, 2)}, path)
    return path


@pytest.fixture(scope="module")
def model_folder(authors_checkpoint, tmp_path_factory):
    return convert_to_folder(authors_checkpoint, tmp_path_factory.mktemp("models") / "converted", **MODEL)


@pytest.fixture(scope="module")
def model(model_folder):
    with pytest.warns(UserWarning, match="no calibrated decision threshold"):
        return TDYSpeakerRecognition.from_hparams(source=str(model_folder))


def copy_folder(folder, tmp_path, name="model"):
    return Path(shutil.copytree(folder, tmp_path / name))


def write_wav(path, samples, rate=16000):
    sf.write(path, samples, rate, subtype="FLOAT" if not np.isfinite(samples).all() else "PCM_16")
    return str(path)


def speech_like(seconds, rate=16000, seed=0):
    """A voiced-sounding test signal (harmonics with a wandering pitch, plus noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    return (0.1 * voice + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


# Converter CLI and model folders ---------------------------------------------------


def test_converter_cli_folder_reproduces_the_converted_checkpoint(authors_checkpoint, reference_fixture, tmp_path):
    out = tmp_path / "cli"
    subprocess.run([sys.executable, "-m", "speechbrain_tdy.convert", str(authors_checkpoint), str(out),
                    "--model", "TDy_ResNet34_quarter", "--encoder-type", "AVG", "--n-mels", "40"], check=True)
    assert {p.name for p in out.iterdir()} == {"hyperparams.yaml", "embedding_model.safetensors", "README.md"}
    loaded = TDYSpeakerRecognition.from_hparams(source=str(out))
    direct = load_official_checkpoint(authors_checkpoint, **MODEL)
    for name in ("x_short", "x_long"):
        wavs = reference_fixture[name]
        with torch.no_grad():
            expected = direct(wavs)
        torch.testing.assert_close(loaded.encode_batch(wavs)[:, 0], expected, rtol=0, atol=1e-5)
        torch.testing.assert_close(expected, reference_fixture[name.replace("x", "y")], rtol=0, atol=1e-4)


def test_converter_cli_names_a_bad_checkpoint_and_writes_nothing(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a checkpoint")
    result = subprocess.run([sys.executable, "-m", "speechbrain_tdy.convert", str(bad), str(tmp_path / "out"),
                             "--model", "TDy_ResNet34_quarter", "--encoder-type", "AVG", "--n-mels", "40"],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert str(bad) in result.stderr and "weights_only" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


#: The converter's model options for the authors' test checkpoint.
CONVERT_OPTIONS = ("--model", "TDy_ResNet34_quarter", "--encoder-type", "AVG", "--n-mels", "40")


def convert_cli(checkpoint, out, *extra):
    return subprocess.run([sys.executable, "-m", "speechbrain_tdy.convert", str(checkpoint), str(out),
                           *CONVERT_OPTIONS, *extra], capture_output=True, text=True)


def test_converter_cli_never_deletes_what_it_did_not_write(authors_checkpoint, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("x")
    inside = precious / "ck.model"
    shutil.copyfile(authors_checkpoint, inside)
    a_file = tmp_path / "a_file"
    a_file.write_text("keep")
    result = convert_cli(authors_checkpoint, precious)  # the command, as a user runs it
    assert result.returncode != 0 and "already exists; pass --overwrite" in result.stderr
    assert "Traceback" not in result.stderr

    def convert(checkpoint, out, *extra):  # the command's main, in this process (faster than a new one each time)
        convert_main([str(checkpoint), str(out), *CONVERT_OPTIONS, *extra])

    for checkpoint, out, message in ((authors_checkpoint, precious, "not a model folder"),
                                     (authors_checkpoint, a_file, "not a model folder"),
                                     (inside, precious, "lies inside the output folder")):
        with pytest.raises(SystemExit, match=message):
            convert(checkpoint, out, "--overwrite")
    assert (precious / "thesis.txt").read_text() == "x" and inside.is_file() and a_file.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "precious"]  # no staging folder left
    convert(authors_checkpoint, tmp_path / "model")
    convert(authors_checkpoint, tmp_path / "model", "--overwrite")  # replaces a model folder it wrote
    assert (tmp_path / "model" / "hyperparams.yaml").is_file()


def test_model_card_names_the_model_and_shows_usage(model_folder):
    card = (model_folder / "README.md").read_text()
    assert "TDy_ResNet34_quarter" in card and "from_hparams" in card and "library_name: speechbrain" in card


# Loading --------------------------------------------------------------------------


def hub_cache(folder, cache, repo_id="tdy-org/tdy-resnet34-quarter", commit="0123456789abcdef0123456789abcdef01234567"):
    """Lay ``folder`` out as the HuggingFace hub cache does (blobs, snapshot symlinks, refs/main)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for path in folder.iterdir():
        blob = repo / "blobs" / f"blob-{path.name}"
        shutil.copyfile(path, blob)
        (snapshot / path.name).symlink_to(os.path.relpath(blob, snapshot))
    return repo_id


@pytest.mark.parametrize("parameters", ["embedding_model.safetensors", "embedding_model.ckpt"])
def test_from_hparams_loads_from_the_hub_cache_offline(model_folder, reference_fixture, tmp_path, parameters):
    if parameters.endswith(".ckpt"):  # a repository uploaded before safetensors
        model_folder = as_written_before_safetensors(copy_folder(model_folder, tmp_path, "legacy"))
    repo_id = hub_cache(model_folder, tmp_path / "hub")
    code = (
        "import sys, torch\n"
        "from speechbrain_tdy.inference import TDYSpeakerRecognition\n"
        f"model = TDYSpeakerRecognition.from_hparams(source={repo_id!r}, savedir=sys.argv[1])\n"
        "torch.save(model.encode_batch(torch.load(sys.argv[2])), sys.argv[3])\n"
    )
    torch.save(reference_fixture["x_short"], tmp_path / "wavs.pt")
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "savedir"), str(tmp_path / "wavs.pt"),
                    str(tmp_path / "emb.pt")], check=True, env=env)
    embeddings = torch.load(tmp_path / "emb.pt")
    torch.testing.assert_close(embeddings[:, 0], reference_fixture["y_short"], rtol=0, atol=1e-4)
    assert (tmp_path / "savedir" / parameters).exists()


def test_a_repository_missing_from_the_offline_cache_is_an_error(tmp_path):
    code = "from speechbrain_tdy.inference import TDYSpeakerRecognition\n" \
           "TDYSpeakerRecognition.from_hparams(source='tdy-org/absent')\n"
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode != 0 and "hyperparams.yaml" in result.stderr


def test_a_missing_model_folder_is_named(tmp_path):
    missing = tmp_path / "no_model_here"
    with pytest.raises(FileNotFoundError, match="no_model_here: no such model folder"):
        TDYSpeakerRecognition.from_hparams(source=str(missing))


def test_a_file_that_is_not_a_checkpoint_is_named(model_folder, tmp_path):
    folder = as_written_before_safetensors(copy_folder(model_folder, tmp_path))
    (folder / "embedding_model.ckpt").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="embedding_model.ckpt is not a PyTorch checkpoint"):
        TDYSpeakerRecognition.from_hparams(source=str(folder))


class NotWeights:
    """An arbitrary object: unpickling it would run code."""


def test_checkpoints_holding_objects_are_refused(model_folder, tmp_path):
    folder = as_written_before_safetensors(copy_folder(model_folder, tmp_path))
    torch.save({"weight": NotWeights()}, folder / "embedding_model.ckpt")
    with pytest.raises(ValueError, match="weights_only=True"):
        TDYSpeakerRecognition.from_hparams(source=str(folder))


def test_a_checkpoint_of_another_architecture_names_the_mismatch(model_folder, tmp_path):
    folder = as_written_before_safetensors(copy_folder(model_folder, tmp_path))
    state = torch.load(folder / "embedding_model.ckpt", weights_only=True)
    state["fc.weight"] = state["fc.weight"][:256]
    del state["conv1.weight"]
    torch.save(state, folder / "embedding_model.ckpt")
    with pytest.raises(CheckpointMismatchError, match=r"missing keys: conv1.weight.*mis-shaped keys: fc.weight"):
        TDYSpeakerRecognition.from_hparams(source=str(folder))


# Safety of hyperparams.yaml --------------------------------------------------------

WRITES_TO_DISK = "marker: !apply:os.makedirs [{path}]\n"


def test_hparams_that_would_write_to_disk_are_refused(model_folder, tmp_path):
    folder = copy_folder(model_folder, tmp_path)
    marker = tmp_path / "owned"
    text = (folder / "hyperparams.yaml").read_text()
    (folder / "hyperparams.yaml").write_text(WRITES_TO_DISK.format(path=marker) + text)
    with pytest.raises(UnsafeHyperparamsError, match=r"line 1: !apply:os.makedirs.*trust_remote_code=True"):
        TDYSpeakerRecognition.from_hparams(source=str(folder))
    assert not marker.exists()
    TDYSpeakerRecognition.from_hparams(source=str(folder), trust_remote_code=True)
    assert marker.is_dir()  # the explicit opt-in runs the file as written


@pytest.mark.parametrize("hparams_file", sorted((ROOT / "hparams").glob("*.yaml")), ids=lambda p: p.stem)
def test_released_hparams_are_the_registry_text_and_build_safely(hparams_file):
    from hyperpyyaml import load_hyperpyyaml

    assert hparams_file.read_text() == ARCHITECTURES[hparams_file.stem].hparams_text()
    for hparams in (load_model_hparams(hparams_file), load_hyperpyyaml(hparams_file.read_text())):
        assert set(hparams["modules"]) == {"compute_features", "embedding_model"}
        assert hparams["pretrainer"].loadables["embedding_model"] is hparams["embedding_model"]


def test_every_architecture_has_its_released_hparams_file():
    assert sorted(p.stem for p in (ROOT / "hparams").glob("*.yaml")) == sorted(ARCHITECTURES)


# Embeddings -----------------------------------------------------------------------


def test_a_batch_mixing_lengths_embeds_each_item_as_alone(model):
    items = [torch.from_numpy(speech_like(s, seed=i)) for i, s in enumerate((1.0, 2.3, 4.0))]
    longest = max(len(item) for item in items)
    batch = torch.stack([F.pad(item, (0, longest - len(item))) for item in items])
    lens = torch.tensor([len(item) / longest for item in items])
    together = model.encode_batch(batch, lens)
    for item, embedding in zip(items, together):
        torch.testing.assert_close(embedding, model.encode_batch(item)[0], rtol=0, atol=1e-5)
    assert together.shape == (3, 1, 512)


def test_trial_files_are_embedded_in_length_batches_as_alone(model, tmp_path):
    """verify.py and the recipe's dev EER embed whole files in padded batches of similar lengths."""
    names = [Path(write_wav(tmp_path / f"{i}.wav", speech_like(seconds, seed=i))).name
             for i, seconds in enumerate((1.0, 2.3, 4.0, 1.1, 2.2))]
    calls = []

    def embed(wavs, lens):
        calls.append(len(wavs))
        return model.encode_batch(wavs, lens)[:, 0]

    alone = embed_files(embed, names, tmp_path, batch_samples=1)
    assert calls == [1] * 5
    calls.clear()
    batched = embed_files(embed, names, tmp_path, batch_samples=int(5.0 * 16000))  # 4 s alone, then 2 x 2.3 s, 2 x 1.1 s
    assert calls == [1, 2, 2]
    assert batched.keys() == alone.keys()
    for name in names:
        torch.testing.assert_close(batched[name], alone[name], rtol=0, atol=1e-5)


def test_long_recordings_are_embedded_in_chunks_with_the_same_result(model_folder):
    wav = torch.from_numpy(speech_like(25.0))
    whole = TDYSpeakerRecognition.from_hparams(source=str(model_folder), overrides={"chunk_frames": 100000})
    chunked = TDYSpeakerRecognition.from_hparams(source=str(model_folder), overrides={"chunk_frames": 600})
    expected = whole.encode_batch(wav)
    torch.testing.assert_close(chunked.encode_batch(wav), expected, rtol=0, atol=1e-4 * float(expected.abs().max()))


def test_a_stereo_file_at_another_rate_is_mixed_down_and_resampled(model, tmp_path):
    mono = speech_like(2.0, rate=44100)
    stereo = write_wav(tmp_path / "stereo.wav", np.stack([mono, 0.5 * mono], axis=1), rate=44100)
    wav = model.load_audio(stereo)
    assert wav.dim() == 1 and abs(len(wav) - 32000) <= 1
    reference = write_wav(tmp_path / "mono16k.wav", speech_like(2.0))
    score, same = model.verify_files(stereo, reference, threshold=0.5)
    assert score.shape == (1,) and same.dtype == torch.bool
    assert model.embed_file(stereo).shape == (512,)


def test_a_one_second_file_and_a_shorter_one(model, tmp_path):
    one_second = write_wav(tmp_path / "one.wav", speech_like(1.0))
    assert model.embed_file(one_second).shape == (512,)
    short = speech_like(0.3)
    expected = model.encode_batch(wrap_pad(torch.from_numpy(short), 16000), normalize=True)[0, 0]
    torch.testing.assert_close(model.embed_file(write_wav(tmp_path / "short.wav", short)), expected)


@pytest.mark.parametrize("case", ["empty", "nan", "silence", "not_audio", "missing"])
def test_bad_audio_files_get_an_error_naming_them(model, tmp_path, case):
    path = tmp_path / f"{case}.wav"
    if case == "empty":
        write_wav(path, np.zeros(0, dtype=np.float32))
    elif case == "nan":
        samples = speech_like(1.0)
        samples[100] = np.nan
        write_wav(path, samples)
    elif case == "silence":
        write_wav(path, np.zeros(16000, dtype=np.float32))
    elif case == "not_audio":
        path.write_text("hello")
    with pytest.raises(AudioError, match=str(path)):
        model.verify_files(str(path), write_wav(tmp_path / "ok.wav", speech_like(1.0)), threshold=0.5)


def test_bad_tensors_get_a_clear_error(model):
    with pytest.raises(ValueError, match=r"NaN or infinite samples \(batch items \[1\]\)"):
        model.encode_batch(torch.stack([torch.ones(16000), torch.full((16000,), float("nan"))]))
    with pytest.raises(ValueError, match=r"shape \(batch, samples\)"):
        model.encode_batch(torch.zeros(2, 2, 16000))


# Scoring --------------------------------------------------------------------------


def test_without_calibration_a_threshold_must_be_given(model, tmp_path):
    a, b = (write_wav(tmp_path / f"{i}.wav", speech_like(1.5, seed=i)) for i in range(2))
    with pytest.raises(ValueError, match="no calibrated threshold.json: pass threshold="):
        model.verify_files(a, b)
    score, decision = model.verify_files(a, b, threshold=0.5)
    assert bool(decision) == bool(score > 0.5)
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        model.verify_files(a, b, threshold=float("nan"))
    with pytest.raises(ValueError, match="needs cohort embeddings"):
        model.verify_files(a, b, score_norm="s-norm", threshold=0.5)


def test_calibrated_threshold_cohort_and_crops(model_folder, tmp_path):
    folder = copy_folder(model_folder, tmp_path)
    cohort = F.normalize(torch.randn(20, 512), dim=-1)
    torch.save(cohort, folder / "cohort_embeddings.pt")
    calibration = {"threshold": 0.3, "crop": False, "score_norm": "as-norm", "as_norm_top_n": 5}
    (folder / "threshold.json").write_text(json.dumps(calibration))
    hparams = (folder / "hyperparams.yaml").read_text()
    hparams = hparams.replace("threshold_file: null", "threshold_file: threshold.json")
    (folder / "hyperparams.yaml").write_text(hparams.replace("cohort_file: null", "cohort_file: cohort_embeddings.pt"))
    model = TDYSpeakerRecognition.from_hparams(source=str(folder))
    a, b = (write_wav(tmp_path / f"{i}.wav", speech_like(1.5, seed=i)) for i in range(2))
    x, y = model.embed_file(a), model.embed_file(b)
    score, decision = model.verify_files(a, b)
    expected = normalise_score(float(x @ y), x, y, cohort, top_n=5)
    assert float(score) == pytest.approx(expected, abs=1e-4)
    assert bool(decision) == (expected > 0.3)
    raw, _ = model.verify_files(a, b, score_norm=None, threshold=0.5)
    assert float(raw) == pytest.approx(float(x @ y), abs=1e-5)
    crops, _ = model.verify_files(a, b, crop=True, score_norm=None, threshold=-1.0)
    expected_crops = -torch.cdist(model.embed_file(a, crop=True), model.embed_file(b, crop=True)).mean()
    assert float(crops) == pytest.approx(float(expected_crops), abs=1e-5)
    with pytest.raises(ValueError, match="calibrated for crop=False, score_norm=as-norm"):
        model.verify_files(a, b, score_norm=None)


def test_verify_batch_matches_verify_files(model, tmp_path):
    signals = [speech_like(1.5, seed=i) for i in range(2)]
    paths = [write_wav(tmp_path / f"{i}.wav", s) for i, s in enumerate(signals)]
    wavs = torch.stack([torch.from_numpy(s) for s in signals])
    scores, decisions = model.verify_batch(wavs, wavs.flip(0), threshold=0.5)
    assert scores.shape == (2, 1)
    file_score, _ = model.verify_files(*paths, threshold=0.5)
    assert float(scores[0]) == pytest.approx(float(file_score), abs=1e-4)
