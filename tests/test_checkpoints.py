"""Checkpoints cannot be silently corrupted: digests, the previous checkpoint kept, and a byte-flip sweep."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from physnn._atomic import atomic_write
from physnn.devices import ReferenceDevice
from physnn.errors import CheckpointError
from physnn.training import Backprop, fit, load_checkpoint, physical_network
from physnn.training._checkpoint import save_checkpoint, verified_state

X, Y = torch.randn(16, 4, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 2


def build() -> Backprop:
    return Backprop(physical_network([ReferenceDevice(4)], [4], route="autograd", drive="tanh", seed=0), lr=1e-2)


def run(out, epochs: int = 2, resume: bool = False):
    return fit(build(), (X, Y), epochs=epochs, out_dir=out, resume=resume, progress=False, plot=False)


def test_fit_keeps_the_last_two_checkpoints_and_resumes_from_the_previous(tmp_path):
    run(tmp_path, epochs=3)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 3
    assert load_checkpoint(tmp_path / "checkpoint.prev.pt")["epoch"] == 2
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt is empty.*mv .*checkpoint\.prev\.pt"):
        run(tmp_path, epochs=4, resume=True)
    os.replace(tmp_path / "checkpoint.prev.pt", tmp_path / "checkpoint.pt")  # what the message says to do
    assert len(run(tmp_path, epochs=4, resume=True).history) == 4


def test_a_crash_between_the_two_renames_resumes_from_the_previous_checkpoint(tmp_path):
    run(tmp_path, epochs=2)
    os.replace(tmp_path / "checkpoint.pt", tmp_path / "checkpoint.prev.pt")
    assert len(run(tmp_path, epochs=3, resume=True).history) == 3


@pytest.mark.parametrize("damage", ["empty", "truncated", "text", "header only", "bad version"])
def test_damaged_checkpoints_name_the_file(tmp_path, damage):
    run(tmp_path)
    path = tmp_path / "checkpoint.pt"
    good = path.read_bytes()
    header = good[:good.index(b"\n") + 1]
    path.write_bytes({"empty": b"", "truncated": good[:len(good) // 2], "text": b"hello\n", "header only": header,
                      "bad version": header.replace(b" 2 ", b" 9 ") + good[len(header):]}[damage])
    with pytest.raises(CheckpointError, match=str(path)):
        run(tmp_path, resume=True)


def test_every_single_byte_flip_is_refused(tmp_path):
    """Flip each byte of a real fit checkpoint in turn (all of them): not one loads."""
    run(tmp_path)
    path = tmp_path / "checkpoint.pt"
    good = path.read_bytes()
    assert 4000 < len(good) < 60000
    loaded = []
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 0xFF
        try:
            verified_state(bytes(bad), path)  # what load_checkpoint does after reading the file
            loaded.append(i)
        except CheckpointError:
            pass
    assert loaded == []
    assert verified_state(good, path)["epoch"] == load_checkpoint(path)["epoch"] == 2


def test_payload_never_unpickles_arbitrary_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with pytest.raises(CheckpointError, match="torch cannot read it"):
        save_checkpoint(tmp_path / "c.pt", {"x": Evil()})
        load_checkpoint(tmp_path / "c.pt")


def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a.txt", lambda f: f.write(b"x"))
        run(tmp_path / "run")
    finally:
        os.umask(old)
    for path in [tmp_path / "a.txt", *(tmp_path / "run").iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path


def test_processed_audio_and_downloads_follow_the_umask(tmp_path):
    import numpy as np

    from physnn.data import _paths
    from physnn.devices.audio.wavio import write_wav

    old = os.umask(0o027)
    try:
        write_wav(tmp_path / "out.wav", np.zeros((1, 100)), 44100)
        source = tmp_path / "source.bin"
        source.write_bytes(b"data")
        _paths._download(source.as_uri(), tmp_path / "fetched.bin", None)
    finally:
        os.umask(old)
    for name in ("out.wav", "fetched.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name
