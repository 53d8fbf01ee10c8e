import os
import tempfile

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _temp_files_under_basetemp(tmp_path_factory):
    """Anything that asks for a temporary file without a tmp_path (``tempfile``, libraries such as
    ``datasets``, subprocesses through ``TMPDIR``) writes under pytest's base temp folder, which the
    retention settings in pyproject.toml clean, instead of leaving it in the system temp folder."""
    folder = tmp_path_factory.mktemp("tempfile", numbered=False)
    saved_env, saved_tempdir = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = str(folder), str(folder)
    yield folder
    tempfile.tempdir = saved_tempdir
    if saved_env is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved_env


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
