"""Every command that writes files keeps the files it did not write (issue 28): files of its own
naming pattern survive byte for byte, a link where an output or temporary goes is never written
through, and a second run at the same time either completes too or stops at once naming the lock."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch
from helpers import ROOT, fake_run, fill_weights, folder_contents, run_script, write_voice

from speechbrain_tdy.cli import main as speechbrain_tdy
from speechbrain_tdy.export import model_folder as model_folder_module
from speechbrain_tdy.export import onnx_graph
from speechbrain_tdy.inference.gallery import SpeakerGallery
from speechbrain_tdy.inference.onnx_backend import OnnxEmbeddingModel
from speechbrain_tdy.storage.embeddings_file import read_embeddings


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """A list file of six short recordings and their ids."""
    root = tmp_path_factory.mktemp("audio")
    paths = [write_voice(root / f"u{i}.wav", 0.6 + 0.1 * i, seed=i) for i in range(6)]
    (root / "list.txt").write_text("\n".join(paths) + "\n")
    return root / "list.txt", [os.path.splitext(p)[0] for p in paths]


def fails(*argv):
    """The ``error: ...`` message with which ``speechbrain-tdy ARGV`` stops."""
    with pytest.raises(SystemExit) as stopped:
        speechbrain_tdy([str(arg) for arg in argv])
    assert str(stopped.value.code).startswith("error: ")
    return str(stopped.value.code)


# embed ------------------------------------------------------------------------------------


def test_embed_keeps_a_report_and_files_it_did_not_write(model_folder, recordings, tmp_path):
    listing, ids = recordings
    users = {"emb.bad_files.txt": b"my notes on bad files\n", "emb.parts/readme.txt": b"mine",
             "other.npz": b"not embeddings"}
    for name, data in users.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(data)
    assert "emb.bad_files.txt exists and is not a bad-files report" in fails(
        "embed", model_folder, listing, tmp_path / "emb.npz", "--num-workers", "0")
    assert not (tmp_path / "emb.npz").exists()
    (tmp_path / "emb.bad_files.txt").unlink()
    speechbrain_tdy(["embed", str(model_folder), str(listing), str(tmp_path / "emb.npz"), "--num-workers", "0"])
    assert sorted(read_embeddings(tmp_path / "emb.npz")) == sorted(ids)
    assert "other.npz: not an embeddings file" in fails("embed", model_folder, listing, tmp_path / "other.npz")
    del users["emb.bad_files.txt"]
    assert {name: (tmp_path / name).read_bytes() for name in users} == users
    assert sorted(folder_contents(tmp_path)) == sorted([*users, "emb.npz"])


def test_embed_never_writes_through_a_link(model_folder, recordings, tmp_path):
    listing, ids = recordings
    (tmp_path / "elsewhere").mkdir()
    outside = tmp_path / "elsewhere" / "old.npz"
    subset = tmp_path / "subset.txt"
    subset.write_text("".join(listing.read_text().splitlines(keepends=True)[:2]))
    speechbrain_tdy(["embed", str(model_folder), str(subset), str(outside), "--num-workers", "0"])
    before = outside.read_bytes()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "emb.npz").symlink_to(outside)  # an embeddings file of ours, behind a link
    assert "emb.npz is a symbolic link" in fails("embed", model_folder, listing, tmp_path / "out" / "emb.npz")
    assert outside.read_bytes() == before and folder_contents(tmp_path / "out") == {"emb.npz": f"-> {outside}"}


def test_a_second_embed_run_into_the_same_output_stops_at_once_naming_the_lock(model_folder, recordings, tmp_path):
    listing, _ = recordings
    out, lock = tmp_path / "emb.npz", tmp_path / "emb.npz.lock"
    lock.write_text("pid 1 on elsewhere\n")  # held by another run
    start = time.monotonic()
    message = fails("embed", model_folder, listing, out, "--num-workers", "0")
    assert time.monotonic() - start < 10  # the model is loaded, nothing embedded
    assert f"{lock} exists: another speechbrain-tdy embed is writing this output (pid 1 on elsewhere)" in message
    assert f"remove {lock}" in message and folder_contents(tmp_path) == {"emb.npz.lock": b"pid 1 on elsewhere\n"}


def test_two_embed_processes_at_once_leave_every_id(model_folder, recordings, tmp_path):
    """The issue's case: two runs into one .npz; one reported success with ids missing, the other crashed."""
    listing, ids = recordings
    out = tmp_path / "emb.npz"
    command = [sys.executable, "-m", "speechbrain_tdy.cli", "embed", str(model_folder), str(listing), str(out),
               "--batch-size", "1", "--num-workers", "0"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    for code, stderr in results:
        assert code == 0 or (f"{out}.lock exists" in stderr and "Traceback" not in stderr), stderr
    assert any(code == 0 for code, _ in results)
    assert sorted(read_embeddings(out)) == sorted(ids)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.npz"]


# gallery ----------------------------------------------------------------------------------


def test_gallery_commands_keep_files_of_the_matrix_pattern(model_folder, recordings, tmp_path):
    _, ids = recordings
    gallery = tmp_path / "speakers"
    gallery.mkdir()
    users = {"embeddings-mine.npz": b"user data", "embeddings-0123456789abcdef.npz": b"more", "notes.txt": b"x"}
    for name, data in users.items():
        (gallery / name).write_bytes(data)
    for name, wav in (("alice", ids[0]), ("bob", ids[1]), ("alice", ids[2])):
        speechbrain_tdy(["gallery", str(model_folder), str(gallery), "enroll", name, wav + ".wav"])
    speechbrain_tdy(["gallery", str(model_folder), str(gallery), "remove", "bob"])
    assert {name: (gallery / name).read_bytes() for name in users} == users
    index = json.loads((gallery / "gallery.json").read_text())
    assert sorted(folder_contents(gallery)) == sorted([*users, "gallery.json", index["embeddings_file"]])
    assert SpeakerGallery.load(gallery).names == ["alice"]


def test_gallery_never_writes_through_a_link(model_folder, recordings, tmp_path):
    _, ids = recordings
    elsewhere = tmp_path / "elsewhere"
    speechbrain_tdy(["gallery", str(model_folder), str(elsewhere), "enroll", "alice", ids[0] + ".wav"])
    before = folder_contents(elsewhere)
    gallery = tmp_path / "speakers"
    gallery.mkdir()
    index = json.loads((elsewhere / "gallery.json").read_text())
    shutil.copyfile(elsewhere / index["embeddings_file"], gallery / index["embeddings_file"])
    (gallery / "gallery.json").symlink_to(elsewhere / "gallery.json")
    assert "gallery.json is a symbolic link" in fails("gallery", model_folder, gallery, "enroll", "bob",
                                                       ids[1] + ".wav")
    assert folder_contents(elsewhere) == before and (gallery / "gallery.json").is_symlink()


def test_a_second_gallery_command_stops_at_once_naming_the_lock(model_folder, recordings, tmp_path):
    _, ids = recordings
    gallery = tmp_path / "speakers"
    speechbrain_tdy(["gallery", str(model_folder), str(gallery), "enroll", "alice", ids[0] + ".wav"])
    (gallery / "gallery.lock").write_text("pid 1 on elsewhere\n")  # held by another command
    before = folder_contents(gallery)
    for command in (["enroll", "bob", ids[1] + ".wav"], ["remove", "alice"]):
        message = fails("gallery", model_folder, gallery, *command)
        assert f"{gallery / 'gallery.lock'} exists: another gallery command" in message
    assert folder_contents(gallery) == before


# convert and export -----------------------------------------------------------------------


@pytest.fixture
def appears_while_checking(monkeypatch):
    """Run ``action()`` while a model folder is being checked, before it is put in place."""
    check = model_folder_module.check_model_folder

    def install(action):
        def check_then_act(folder, reference, *args, **kwargs):
            check(folder, reference, *args, **kwargs)
            action()

        monkeypatch.setattr(model_folder_module, "check_model_folder", check_then_act)

    return install


def test_export_keeps_a_folder_made_while_it_ran(tmp_path, appears_while_checking):
    run = fake_run(tmp_path / "run")
    out = tmp_path / "model"

    def users_folder():
        out.mkdir()
        (out / "README.md").write_text("my model card")  # a model-folder file name
        (out / "thesis.txt").write_text("years of work")

    appears_while_checking(users_folder)
    assert "model appeared while it was being written" in fails("export", run, out)
    assert folder_contents(out) == {"README.md": b"my model card", "thesis.txt": b"years of work"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "run"]


def test_export_overwrite_checks_the_folder_when_it_replaces_it(tmp_path, appears_while_checking):
    run = fake_run(tmp_path / "run")
    out = tmp_path / "model"
    speechbrain_tdy(["export", str(run), str(out)])
    before = folder_contents(out)
    appears_while_checking(lambda: (out / "notes.txt").write_text("added while the export ran"))
    assert "model exists and is not a model folder" in fails("export", run, out, "--overwrite")
    assert folder_contents(out) == {**before, "notes.txt": b"added while the export ran"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "run"]


def test_convert_keeps_the_folder_of_a_second_run_that_finished_first(reference_fixture, model_folder, tmp_path,
                                                                      appears_while_checking):
    state = fill_weights({name: torch.zeros(shape) for name, shape in reference_fixture["keys"]},
                         reference_fixture["gain"])
    checkpoint = tmp_path / "model000000100.model"
    torch.save({f"__S__.{key}": value for key, value in state.items()}, checkpoint)
    out = tmp_path / "model"
    appears_while_checking(lambda: shutil.copytree(model_folder, out))  # what a second run, done first, leaves
    message = fails("convert", checkpoint, out, "--model", "TDy_ResNet34_quarter", "--encoder-type", "AVG",
                    "--n-mels", "40")
    assert "model appeared while it was being written" in message
    assert folder_contents(out) == folder_contents(model_folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "model000000100.model"]


def test_export_never_writes_through_a_link(tmp_path, model_folder):
    run = fake_run(tmp_path / "run")
    target = shutil.copytree(model_folder, tmp_path / "elsewhere")
    before = folder_contents(target)
    (tmp_path / "link").symlink_to(target)
    for extra in ((), ("--overwrite",)):
        assert "link is a symbolic link" in fails("export", run, tmp_path / "link", *extra)
    assert folder_contents(target) == before and (tmp_path / "link").is_symlink()


# onnx -------------------------------------------------------------------------------------


def test_onnx_keeps_a_file_it_did_not_write(model_folder, tmp_path):
    pytest.importorskip("onnxruntime")
    folder = shutil.copytree(model_folder, tmp_path / "model")
    (folder / "embedding_model.onnx").write_bytes(b"my own graph")
    assert "embedding_model.onnx already exists; pass --overwrite" in fails("onnx", folder)
    assert "embedding_model.onnx exists and is not an ONNX embedding graph" in fails("onnx", folder, "--overwrite")
    assert (folder / "embedding_model.onnx").read_bytes() == b"my own graph"
    assert folder_contents(folder) == {**folder_contents(model_folder), "embedding_model.onnx": b"my own graph"}


def test_onnx_never_writes_through_a_link(model_folder, tmp_path):
    pytest.importorskip("onnxruntime")
    folder = shutil.copytree(model_folder, tmp_path / "model")
    outside = tmp_path / "precious.txt"
    outside.write_text("precious")
    (folder / "embedding_model.onnx.partial").symlink_to(outside)  # the exporter's former temporary name
    speechbrain_tdy(["onnx", str(folder)])
    (tmp_path / "out.onnx").symlink_to(outside)
    assert "out.onnx is a symbolic link" in fails("onnx", folder, tmp_path / "out.onnx")
    assert outside.read_text() == "precious" and (tmp_path / "out.onnx").is_symlink()
    assert (folder / "embedding_model.onnx.partial").is_symlink()
    OnnxEmbeddingModel(folder / "embedding_model.onnx")  # a graph onnxruntime runs


def test_two_onnx_exports_at_once_both_complete(model_folder, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    folder = shutil.copytree(model_folder, tmp_path / "model")
    check = onnx_graph.check_export
    calls = []

    def second_export_meanwhile(model, onnx_model, name):
        calls.append(name)
        if len(calls) == 1:
            speechbrain_tdy(["onnx", str(folder), "--overwrite"])
        check(model, onnx_model, name)

    monkeypatch.setattr(onnx_graph, "check_export", second_export_meanwhile)
    speechbrain_tdy(["onnx", str(folder), "--overwrite"])
    assert len(calls) == 2
    OnnxEmbeddingModel(folder / "embedding_model.onnx")  # a graph onnxruntime runs
    assert sorted(folder_contents(folder)) == sorted([*folder_contents(model_folder), "embedding_model.onnx"])


# the recipe and the tools -----------------------------------------------------------------


def test_verify_keeps_files_it_did_not_write_and_never_writes_through_a_link(tiny_corpus, tmp_path):
    run = fake_run(tmp_path / "run")
    (run / "verification").mkdir()
    outside = tmp_path / "results.json"
    outside.write_text('{"mine": true}')
    (run / "threshold.json").write_text('{"my": "threshold"}')
    (run / "verification" / "det.png").write_bytes(b"my figure")
    (run / "verification" / "results.json").symlink_to(outside)
    before = folder_contents(run)
    result = run_script("verify.py", "hparams/verification.yaml",
                        {"data_folder": tiny_corpus, "train_output_folder": run}, check=False)
    assert result.returncode != 0 and "error: " in result.stderr and "Traceback" not in result.stderr
    assert "results.json is a symbolic link" in result.stderr
    assert folder_contents(run) == before and outside.read_text() == '{"mine": true}'


def test_mini_corpus_writes_only_into_a_new_or_empty_folder(tmp_path):
    out = tmp_path / "corpus"
    (out / "wav" / "id00001").mkdir(parents=True)
    (out / "wav" / "id00001" / "mine.wav").write_bytes(b"my recording")
    (out / "veri_test.txt").write_text("my trials\n")
    before = folder_contents(out)
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "mini_corpus.py"), str(out), "--speakers", "6",
                             "--utterances", "2", "--durations", "1", "1.2"], capture_output=True, text=True)
    assert result.returncode != 0 and "corpus already exists" in result.stderr and "Traceback" not in result.stderr
    assert folder_contents(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]

