"""Files the library writes get the permissions of an ordinary new file (the umask), not the private
``0600`` that ``tempfile.mkstemp`` and safetensors' own atomic save leave: a model, checkpoint or cache
folder written for a team must stay readable by it."""
from __future__ import annotations

import os
import stat

import pytest
import torch

from audiotok.codecs import Codec
from audiotok.codecs.families import get_config
from audiotok.data.outputs import new_file_mode, write_atomic
from audiotok.distill.kmeans import KMeansUnits


@pytest.fixture
def group_readable_umask():
    before = os.umask(0o022)
    yield 0o644
    os.umask(before)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_file_mode_follows_the_umask(group_readable_umask):
    assert new_file_mode() == 0o644
    os.umask(0o077)
    assert new_file_mode() == 0o600


def test_saved_tokenizer_and_checkpoint_are_readable_like_new_files(tmp_path, group_readable_umask):
    pytest.importorskip("lightning")
    from audiotok.training.checkpointing import atomic_torch_save

    folder = Codec(get_config("speechtokenizer-tiny")).save_pretrained(tmp_path / "model")
    atomic_torch_save({"x": torch.zeros(2)}, tmp_path / "last.ckpt")
    for path in (folder / "model.safetensors", folder / "config.json", tmp_path / "last.ckpt"):
        assert mode(path) == group_readable_umask, f"{path.name}: {oct(mode(path))}"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]  # no temporaries


def test_write_atomic_and_kmeans_units(tmp_path, group_readable_umask):
    def private_writer(tmp):  # like mkstemp: 0600
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"data")
        os.close(fd)

    assert mode(write_atomic(tmp_path / "a.bin", private_writer)) == group_readable_umask
    units = KMeansUnits(torch.randn(4, 3), metadata={"k": 4})
    assert mode(units.save(tmp_path / "units.safetensors")) == group_readable_umask
