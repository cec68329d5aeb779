"""Fixtures: a tiny run (experts de, en and a MoE language pl), its Transcriber, a live server."""
from __future__ import annotations

from pathlib import Path

import pytest

from serving_helpers import LiveServer, make_run, transcriber_for


@pytest.fixture(scope="session")
def tiny_run(tiny_dir, tmp_path_factory) -> Path:
    return make_run(tiny_dir, tmp_path_factory.mktemp("serving") / "tiny-run")


@pytest.fixture()
def transcriber(tiny_run):
    return transcriber_for(tiny_run)


@pytest.fixture()
def live_server():
    servers = []

    def _start(app) -> LiveServer:
        s = LiveServer(app).__enter__()
        servers.append(s)
        return s

    yield _start
    for s in servers:
        s.__exit__(None, None, None)
