"""Hub-ready model folders (issue 30): parameters and cohorts in safetensors,
headers checked before data is read, folders written before still loading,
and a model card whose front matter the hub reads (license, datasets,
pipeline tag, architecture tag, model-index with the measured results)."""
import json
import shutil
import struct
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import as_written_before_safetensors, fake_run, load_model_folder, voice, write_tiny_model_folder
from huggingface_hub import ModelCard
from safetensors.torch import load_file, save_file

from speechbrain_tdy.export.run import export, read_results
from speechbrain_tdy.storage import model_files
from speechbrain_tdy.storage.model_files import CheckpointMismatchError, read_cohort, write_safetensors

PARAMETERS = "embedding_model.safetensors"


@pytest.fixture
def folder(tmp_path):
    return write_tiny_model_folder(tmp_path / "model", "tdy_resnet34_quarter")


def speech(count=2, seconds=1.5):
    return torch.from_numpy(np.stack([voice(seconds, 40 + i) for i in range(count)]))


def test_export_writes_safetensors_that_round_trip_to_the_same_embeddings(folder, tmp_path):
    assert (folder / PARAMETERS).is_file() and not (folder / "embedding_model.ckpt").exists()
    assert (folder / PARAMETERS).read_bytes()[8:9] == b"{"  # a JSON header, not a zip of pickles
    new = load_model_folder(folder).encode_batch(speech())
    legacy = as_written_before_safetensors(shutil.copytree(folder, tmp_path / "legacy"))
    with pytest.warns(UserWarning, match=r"holds embedding_model.ckpt, a torch pickle .* writes embedding_model.safetensors"):
        old = load_model_folder(legacy).encode_batch(speech())
    assert torch.equal(new, old)  # the same parameters: the same embeddings (and gallery fingerprints)


def header_of(path):
    """The JSON header of a safetensors file."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + size]), data[8 + size:]


def write_with_header(path, header, payload):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + payload)


class DataReads:
    """Wraps safe_open so that a test sees whether any tensor data was read."""

    def __init__(self, monkeypatch):
        self.tensors = []
        opener = model_files.safe_open

        def counting_open(*args, **kwargs):
            stream = opener(*args, **kwargs)
            reads = self.tensors

            class Counting:
                def __enter__(self):
                    self.inner = stream.__enter__()
                    return self

                def __exit__(self, *exc):
                    return stream.__exit__(*exc)

                def __getattr__(self, name):
                    return getattr(self.inner, name)

                def get_tensor(self, name):
                    reads.append(name)
                    return self.inner.get_tensor(name)

            return Counting()

        monkeypatch.setattr(model_files, "safe_open", counting_open)


def another_shape(state):
    key = next(name for name in state if name.endswith("weight") and state[name].dim() == 2)
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    return rf"mis-shaped keys: {key}"


def another_dtype(state):
    key = next(name for name, value in state.items() if value.is_floating_point())
    state[key] = state[key].half()
    return rf"{PARAMETERS}: {key} is F16, the model's is torch.float32"


@pytest.mark.parametrize("change", [another_shape, another_dtype])
def test_a_header_declaring_another_shape_or_dtype_is_refused_before_data_is_read(folder, monkeypatch, change):
    state = load_file(folder / PARAMETERS)
    message = change(state)
    save_file(state, folder / PARAMETERS)
    reads = DataReads(monkeypatch)
    with pytest.raises(CheckpointMismatchError, match=message):
        load_model_folder(folder)
    assert reads.tensors == []


def test_a_header_declaring_a_huge_tensor_is_refused_unread(folder, monkeypatch):
    header, payload = header_of(folder / PARAMETERS)
    name = next(key for key in header if key != "__metadata__")
    header[name] = {"dtype": "F32", "shape": [1 << 20, 1 << 14], "data_offsets": [0, 1 << 36]}  # 64 GiB
    write_with_header(folder / PARAMETERS, header, payload)
    reads = DataReads(monkeypatch)
    with pytest.raises(ValueError, match=rf"{PARAMETERS}"):
        load_model_folder(folder)
    assert reads.tensors == []


def test_a_file_larger_than_the_architecture_allows_is_not_opened(folder, monkeypatch):
    state = load_file(folder / PARAMETERS)
    state["padding"] = torch.zeros(2 << 20)  # 8 MB more than a tiny model's tensors and the 1-MiB allowance
    save_file(state, folder / PARAMETERS)
    monkeypatch.setattr(model_files, "safe_open", lambda *args, **kwargs: pytest.fail("the file was opened"))
    with pytest.raises(ValueError, match=rf"{PARAMETERS}: [\d,]+ bytes, over the [\d,]+-byte limit"):
        load_model_folder(folder)


@pytest.mark.parametrize("content", [b"", b"\x00garbage", b"\xff" * 8 + b"{}"])
def test_a_file_that_is_not_safetensors_is_named(folder, content):
    (folder / PARAMETERS).write_bytes(content)
    with pytest.raises(ValueError, match=rf"{PARAMETERS} is not a safetensors parameter file"):
        load_model_folder(folder)


def test_non_finite_parameters_are_refused(folder):
    state = load_file(folder / PARAMETERS)
    key = next(name for name, value in state.items() if value.is_floating_point())
    state[key] = torch.full_like(state[key], float("nan"))
    save_file(state, folder / PARAMETERS)
    with pytest.raises(ValueError, match=rf"NaN or infinite values in {key}"):
        load_model_folder(folder)


def test_cohorts_are_safetensors_without_pickle(tmp_path):
    cohort = F.normalize(torch.randn(30, 16), dim=-1)
    write_safetensors({"embeddings": cohort}, tmp_path / "cohort_embeddings.safetensors")
    torch.testing.assert_close(read_cohort(tmp_path / "cohort_embeddings.safetensors", 16), cohort)
    torch.save(cohort, tmp_path / "cohort_embeddings.pt")  # written before safetensors: still read
    torch.testing.assert_close(read_cohort(tmp_path / "cohort_embeddings.pt", 16), cohort)
    write_safetensors({"embeddings": cohort, "other": cohort}, tmp_path / "two.safetensors")
    with pytest.raises(ValueError, match="two.safetensors: expected one tensor 'embeddings' of shape"):
        read_cohort(tmp_path / "two.safetensors", 16)


def exported_run(tmp_path, results, data_folder="/data/VoxCeleb2/dev"):
    """A fake train.py run with verify.py's ``results``, exported; returns the model folder."""
    run = fake_run(tmp_path / "run")
    text = (run / "hyperparams.yaml").read_text()
    (run / "hyperparams.yaml").write_text(text + f"data_folder: {data_folder}\n")
    (run / "verification").mkdir()
    (run / "verification" / "results.json").write_text(json.dumps(results))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no threshold.json in this run
        return export(run, tmp_path / "exported")


RESULTS = {"EER": 2.3456, "minDCF": 0.1789, "p_target": 0.05, "n_trials": 37611, "threshold": 0.4,
           "verification_file": "/data/VoxCeleb1/veri_test2.txt", "Cllr": 0.2345, "minCllr": 0.2,
           "DCF": {"0.01": {"actual": 0.009, "minimum": 0.008}, "0.05": {"actual": 0.04, "minimum": 0.035}}}


def test_the_model_card_front_matter_is_what_the_hub_reads(tmp_path):
    folder = exported_run(tmp_path, RESULTS)
    assert (folder / PARAMETERS).is_file()
    card = ModelCard.load(folder / "README.md")
    data = card.data
    assert data.library_name == "speechbrain" and data.license == "apache-2.0"
    assert data.pipeline_tag == "audio-classification" and data.datasets == ["voxceleb"]
    assert "tdy_resnet34_quarter" in data.tags and "speaker-verification" in data.tags
    metrics = {result.metric_type: result for result in data.eval_results}
    assert set(metrics) == {"eer", "min_dcf", "cllr"}
    assert metrics["eer"].metric_value == pytest.approx(2.3456) and metrics["cllr"].metric_value == 0.2345
    assert metrics["min_dcf"].metric_args == {"p_target": 0.05}
    for result in data.eval_results:
        assert (result.task_type, result.dataset_type, result.dataset_name) == \
            ("speaker-verification", "voxceleb", "veri_test2.txt")
    assert "Calibrated LLRs: Cllr 0.234 bits" in card.text and "## Usage" in card.text


def test_a_card_without_results_or_known_data_has_no_model_index(tmp_path):
    run = fake_run(tmp_path / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = export(run, tmp_path / "exported", license="cc-by-4.0", datasets=["my/speakers"])
    data = ModelCard.load(folder / "README.md").data
    assert data.license == "cc-by-4.0" and data.datasets == ["my/speakers"] and data.eval_results is None
    assert "Not evaluated." in (folder / "README.md").read_text()


def test_results_written_before_llrs_give_eer_and_min_dcf(tmp_path):
    old = {key: RESULTS[key] for key in ("EER", "minDCF", "n_trials", "threshold", "verification_file")}
    data = ModelCard.load(exported_run(tmp_path, old) / "README.md").data
    assert {result.metric_type for result in data.eval_results} == {"eer", "min_dcf"}


@pytest.mark.parametrize("change, message", [
    ({"EER": "2.3"}, r"results.json: EER must be a finite number in \[0, 100\], got .2.3."),
    ({"EER": None}, r"results.json: EER must be a finite number"),
    ({"n_trials": 1.5}, r"results.json: n_trials must be an integer"),
    ({"Cllr": float("inf")}, r"results.json: Cllr must be a finite number"),
    ({"DCF": {"0.01": {"actual": "x"}}}, r"results.json: DCF: 0.01: actual must be"),
    ({"DCF": []}, r"results.json: DCF must be an object"),
])
def test_malformed_results_are_named_with_the_file_and_key(tmp_path, change, message):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({**RESULTS, **change}))
    with pytest.raises(ValueError, match=message):
        read_results(path)


def test_export_and_convert_take_license_and_datasets(tmp_path):
    run = fake_run(tmp_path / "run")
    out = tmp_path / "cli"
    subprocess.run([sys.executable, "-m", "speechbrain_tdy.cli", "export", str(run), str(out), "--license", "mit",
                    "--dataset", "voxceleb", "--dataset", "my/speakers"], check=True, capture_output=True)
    data = ModelCard.load(out / "README.md").data
    assert data.license == "mit" and data.datasets == ["voxceleb", "my/speakers"]
