import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _temp_files_under_basetemp(tmp_path_factory):
    """Anything that asks for a temporary file without a tmp_path (``tempfile``, libraries such as
    ``datasets``, subprocesses through ``TMPDIR``) writes under pytest's base temp folder, which the
    retention settings in pyproject.toml clean, instead of leaving it in the system temp folder."""
    global _BASETEMP
    folder = tmp_path_factory.mktemp("tempfile", numbered=False)
    _BASETEMP = folder.parent
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


@pytest.fixture()
def one_thread(_seed_and_threads):
    """One torch thread for the test (``_seed_and_threads`` sets the default back for the next one):
    frame-sized ops, LSTMs and small convs run faster on one thread than on two contended ones. A
    module asks for it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    torch.set_num_threads(1)


_BASETEMP: Path | None = None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """Remove the temp folders of earlier, finished runs (``pytest-N`` below ours without pytest's
    ``.lock``, which a running session holds): pytest's retention count spares an older failed run's
    folder once a later run passed. A failed run keeps its own folder until the next run finishes."""
    match = re.fullmatch(r"pytest-(\d+)", _BASETEMP.name) if _BASETEMP is not None else None
    if match is None or session.config.option.basetemp:
        return
    for sibling in _BASETEMP.parent.glob("pytest-*"):
        number = re.fullmatch(r"pytest-(\d+)", sibling.name)
        if (number is None or int(number.group(1)) >= int(match.group(1)) or sibling.is_symlink()
                or (sibling / ".lock").exists()):
            continue
        shutil.rmtree(sibling, ignore_errors=True)
