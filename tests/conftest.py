"""Shared test setup: tiny models run fastest on one thread, nothing may reach a model hub, nothing
compiles in the pytest process, and the user's own data folder is never written (a test that needs
a home of its own still sets one)."""
import atexit
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["AVATARCAM_HOME"] = tempfile.mkdtemp(prefix="avatarcam-tests-")
atexit.register(shutil.rmtree, os.environ["AVATARCAM_HOME"], True)

import torch  # noqa: E402

torch.set_num_threads(1)

import pytest  # noqa: E402

_MODULE_INIT = torch.nn.Module.__init__


@pytest.fixture(autouse=True)
def no_compiler_hooks_in_this_process():
    """torch.compile in the pytest process patches nn.Module.__init__ for good (dynamo's mutation
    guard); a later test building a model on a worker thread under that patch crashed the suite once
    under load. Tests that compile do it in a child process (tests/test_backends.py)."""
    yield
    assert torch.nn.Module.__init__ is _MODULE_INIT, "this test ran torch.compile in the pytest process: use a child"
