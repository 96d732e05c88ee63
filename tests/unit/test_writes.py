"""The one rule for writing files (speechbrain_tdy.storage.atomic) and the writers built on it:
fresh temporaries, create-or-refuse claims, replace-time ownership checks, no deletion by pattern, locks."""
import json
import os
import stat

import numpy as np
import pytest
import torch
from helpers import folder_contents

from speechbrain_tdy.inference import gallery as gallery_module
from speechbrain_tdy.inference.gallery import SpeakerGallery
from speechbrain_tdy.storage.atomic import (
    UMASK,
    LockedError,
    OutputExistsError,
    Replaceable,
    UnsafeOutputError,
    atomic_folder,
    atomic_path,
    exclusive_lock,
    starts_with,
    write_text_atomically,
)
from speechbrain_tdy.storage.checkpoints import AtomicCheckpointer
from speechbrain_tdy.storage.embeddings_file import NpzOutput, save_embeddings

OURS = Replaceable("a file of ours (first line 'ours')", starts_with("ours\n"))
FOLDER_OF_OURS = Replaceable("a folder of ours (only *.ours files)",
                             lambda folder: all(p.suffix == ".ours" and p.is_file() for p in folder.iterdir()))


# Files ------------------------------------------------------------------------------------


def test_a_new_file_gets_the_usual_permissions_and_no_temporary_is_left(tmp_path):
    write_text_atomically(tmp_path / "out.txt", "new")
    assert (tmp_path / "out.txt").read_text() == "new"
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o666 & ~UMASK
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_an_existing_file_is_refused_unless_its_content_proves_it_ours(tmp_path):
    theirs, ours = tmp_path / "theirs.txt", tmp_path / "ours.txt"
    theirs.write_text("a user's notes\n")
    ours.write_text("ours\nold\n")
    for replace in (None, OURS):
        with pytest.raises(OutputExistsError, match="theirs.txt"):
            write_text_atomically(theirs, "ours\nnew\n", replace)
    with pytest.raises(OutputExistsError, match="ours.txt already exists"):
        write_text_atomically(ours, "ours\nnew\n")
    write_text_atomically(ours, "ours\nnew\n", OURS)
    assert theirs.read_text() == "a user's notes\n" and ours.read_text() == "ours\nnew\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours.txt", "theirs.txt"]


def test_ownership_is_checked_again_when_the_file_is_replaced(tmp_path):
    """A file that stops being ours while the new one is written (check, then act) is kept."""
    target = tmp_path / "out.txt"
    target.write_text("ours\n")
    with pytest.raises(OutputExistsError, match="is not a file of ours"):
        with atomic_path(target, OURS) as partial:
            partial.write_text("ours\nnew\n")
            target.write_text("the user's, written meanwhile\n")
    assert target.read_text() == "the user's, written meanwhile\n" and len(list(tmp_path.iterdir())) == 1


def test_a_file_created_meanwhile_is_not_replaced(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(OutputExistsError, match="appeared while it was being written"):
        with atomic_path(target) as partial:
            partial.write_text("ours")
            target.write_text("another run's")
    assert target.read_text() == "another run's" and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("replace", [None, OURS])
def test_a_symlink_destination_is_refused_and_its_target_untouched(tmp_path, replace):
    outside = tmp_path / "outside.txt"
    outside.write_text("ours\nprecious\n")  # even a file of ours is not written through a link
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "out.txt").symlink_to(outside)
    with pytest.raises(UnsafeOutputError, match="symbolic link"):
        write_text_atomically(folder / "out.txt", "ours\nnew\n", replace)
    assert outside.read_text() == "ours\nprecious\n" and (folder / "out.txt").is_symlink()
    assert [p.name for p in folder.iterdir()] == ["out.txt"]


def test_temporaries_have_fresh_names_and_a_swapped_one_is_not_renamed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "out.txt.partial").symlink_to(outside)  # where a fixed temporary name would be
    with atomic_path(folder / "out.txt", OURS) as first, atomic_path(folder / "out.txt", OURS) as second:
        assert first != second and first.name.startswith(".out.txt.") and first.name.endswith(".partial.txt")
        first.write_text("ours\nfirst\n")
        second.write_text("ours\nsecond\n")
    assert (folder / "out.txt").read_text() == "ours\nfirst\n" and outside.read_text() == "precious"
    with pytest.raises(UnsafeOutputError, match="was replaced while it was written"):
        with atomic_path(folder / "new.txt") as partial:
            partial.write_text("ours")
            partial.unlink()
            partial.symlink_to(outside)
    assert outside.read_text() == "precious" and not (folder / "new.txt").exists()


# Folders ----------------------------------------------------------------------------------


def test_a_folder_is_claimed_by_its_rename_absent_or_empty(tmp_path):
    (tmp_path / "empty").mkdir()
    for name in ("new", "empty"):
        with atomic_folder(tmp_path / name) as staging:
            (staging / "a.ours").write_text("a")
        assert folder_contents(tmp_path / name) == {"a.ours": b"a"}
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o777 & ~UMASK
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "new"]


def test_a_folder_created_meanwhile_is_not_replaced(tmp_path):
    """convert/export once checked the output folder at the start and deleted what was there at the end."""
    target = tmp_path / "out"
    with pytest.raises(OutputExistsError, match="out appeared while it was being written"):
        with atomic_folder(target) as staging:
            (staging / "a.ours").write_text("new")
            target.mkdir()
            (target / "thesis.txt").write_text("years of work")
    assert folder_contents(target) == {"thesis.txt": b"years of work"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_replaced_folder_is_checked_when_replaced_and_only_its_files_deleted(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "a.ours").write_text("old")
    with pytest.raises(OutputExistsError, match="out exists and is not a folder of ours"):
        with atomic_folder(target, FOLDER_OF_OURS) as staging:
            (staging / "a.ours").write_text("new")
            (target / "notes.txt").write_text("added meanwhile")
    assert folder_contents(target) == {"a.ours": b"old", "notes.txt": b"added meanwhile"}
    (target / "notes.txt").unlink()
    with atomic_folder(target, FOLDER_OF_OURS) as staging:
        (staging / "b.ours").write_text("new")
    assert folder_contents(target) == {"b.ours": b"new"} and [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_link_or_file_where_a_folder_goes_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a.ours").write_text("kept")
    (tmp_path / "link").symlink_to(elsewhere)
    (tmp_path / "file").write_text("kept")
    for name, error in (("link", UnsafeOutputError), ("file", OutputExistsError)):
        with pytest.raises(error, match=name):
            with atomic_folder(tmp_path / name, FOLDER_OF_OURS):
                pass
    assert folder_contents(elsewhere) == {"a.ours": b"kept"} and (tmp_path / "file").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "file", "link"]


# Locks ------------------------------------------------------------------------------------


def test_a_lock_stops_a_second_holder_and_names_itself_and_the_holder(tmp_path):
    lock = tmp_path / "out.lock"
    with exclusive_lock(lock, "test run"):
        assert f"pid {os.getpid()}" in lock.read_text()
        with pytest.raises(LockedError, match=rf"{lock} exists: another test run .*pid {os.getpid()}.* remove {lock}"):
            with exclusive_lock(lock, "test run"):
                pass
        assert lock.is_file()
    assert not lock.exists()


def test_a_lock_is_removed_only_by_its_creator_and_never_taken_through_a_link(tmp_path):
    lock = tmp_path / "out.lock"
    with exclusive_lock(lock, "test run"):
        lock.unlink()  # removed by hand as stale, then taken by another run
        lock.write_text("another run's lock")
    assert lock.read_text() == "another run's lock"
    lock.unlink()
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    lock.symlink_to(outside)
    with pytest.raises(LockedError):
        with exclusive_lock(lock, "test run"):
            pass
    assert outside.read_text() == "precious" and lock.is_symlink()


# Writers built on it ----------------------------------------------------------------------


def test_embeddings_parts_get_unique_names_and_only_merged_parts_are_deleted(tmp_path):
    fingerprint = np.ones(4, dtype=np.float32)
    output = NpzOutput(tmp_path / "emb.npz", fingerprint)
    output.write(["a"], np.zeros((1, 4)))
    output.write(["b"], np.ones((1, 4)))
    parts = sorted(p.name for p in output.parts.iterdir())
    assert len(parts) == 2 and parts[0] != parts[1]
    (output.parts / "readme.txt").write_text("the user's")
    output.close(["a", "b"])
    assert sorted(np.load(tmp_path / "emb.npz")["ids"].tolist()) == ["a", "b"]
    assert folder_contents(output.parts) == {"readme.txt": b"the user's"}


def test_an_embeddings_file_of_another_model_or_format_is_refused_before_any_work(tmp_path):
    save_embeddings(tmp_path / "other.npz", ["a"], np.zeros((1, 4)), np.zeros(4))
    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="holds embeddings of another model"):
        NpzOutput(tmp_path / "other.npz", np.ones(4))
    with pytest.raises(ValueError, match=r"plain.npz: not an embeddings file .*no embeddings, fingerprint, ids"):
        NpzOutput(tmp_path / "plain.npz", np.ones(4))


def test_a_gallery_save_killed_between_matrix_and_index_leaves_no_orphan_after_the_next(tmp_path, monkeypatch):
    folder = tmp_path / "g"
    folder.mkdir()
    (folder / "embeddings-mine.npz").write_bytes(b"the user's")
    gallery = SpeakerGallery()
    gallery.add("a", torch.ones(1, 4))
    gallery.save(folder)
    gallery.add("b", torch.zeros(1, 4) + 0.5)
    writes = []

    def killed_at_the_index(path, text, replace=None):
        writes.append(json.loads(text))
        if len(writes) == 2:  # the intent is written, the matrix too; the new index is not
            raise KeyboardInterrupt
        write_text_atomically(path, text, replace)

    with monkeypatch.context() as patched:
        patched.setattr(gallery_module, "write_text_atomically", killed_at_the_index)
        with pytest.raises(KeyboardInterrupt):
            gallery.save(folder)
    orphan = writes[0]["unused_files"][-1]["file"]
    assert (folder / orphan).is_file() and SpeakerGallery.load(folder).names == ["a"]
    gallery.remove("b")
    gallery.add("c", torch.ones(1, 4))
    gallery.save(folder)
    index = json.loads((folder / "gallery.json").read_text())
    assert sorted(p.name for p in folder.iterdir()) == sorted(["embeddings-mine.npz", "gallery.json",
                                                               index["embeddings_file"]])
    assert (folder / "embeddings-mine.npz").read_bytes() == b"the user's"
    assert SpeakerGallery.load(folder).names == ["a", "c"]


def test_a_gallery_index_not_of_our_format_is_refused(tmp_path):
    (tmp_path / "gallery.json").write_text('{"my": "settings"}')
    gallery = SpeakerGallery()
    gallery.add("a", torch.ones(1, 4))
    with pytest.raises(OutputExistsError, match="gallery.json exists and is not a speaker gallery index"):
        gallery.save(tmp_path)
    assert (tmp_path / "gallery.json").read_text() == '{"my": "settings"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gallery.json"]


def test_partial_checkpoints_are_deleted_only_when_their_files_prove_them(tmp_path):
    checkpointer = AtomicCheckpointer(tmp_path, {"model": torch.nn.Linear(2, 2)})
    killed = tmp_path / ".partial-CKPT+2026-01-01+00-00-00+00"
    killed.mkdir()
    (killed / "CKPT.yaml").write_text("end-of-epoch: true\n")
    users = tmp_path / ".partial-CKPT+mine"
    users.mkdir()
    (users / "notes.txt").write_text("kept")
    checkpointer.save_checkpoint()
    assert not killed.exists() and folder_contents(users) == {"notes.txt": b"kept"}
