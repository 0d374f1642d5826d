"""One log format for every process; a swapped and closed stderr never breaks logging."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from servicekit.logs import HANDLER_NAME, configure_logging


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_with_the_shared_keys(restore_root, monkeypatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    configure_logging("INFO", as_json=True)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("svc").exception("failed %s", "here")
    doc = json.loads(out.getvalue().splitlines()[-1])
    assert doc["message"] == "failed here" and doc["level"] == "ERROR"
    assert doc["logger"] == "svc" and doc["thread"] == "MainThread"
    assert doc["time"].endswith("+00:00") and "ValueError: boom" in doc["exc"]


def test_configuring_twice_keeps_one_handler_and_the_hosts_own(restore_root) -> None:
    root = logging.getLogger()
    host = logging.NullHandler()
    root.addHandler(host)
    configure_logging()
    configure_logging()
    ours = [h for h in root.handlers if h.get_name() == HANDLER_NAME]
    assert len(ours) == 1 and host in root.handlers


def test_stderr_swapped_and_closed_after_configuration(restore_root, monkeypatch) -> None:
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging("INFO", as_json=False)
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("svc").warning("still logged")
    assert "still logged" in second.getvalue()
