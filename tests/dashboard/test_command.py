"""``demoforge dashboard`` as a user runs it: serves the stores, refuses bad input in one line, stops on Ctrl-C."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request

from cli_helpers import refused

from toolkit.sample import sample_episodes, sample_spec
from toolkit.store import Store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def test_serves_the_store_until_ctrl_c(tmp_path):
    spec = sample_spec(cameras=1, height=32, width=48)
    path = tmp_path / "lab.zarr"
    with Store.create(path, spec) as store:
        ids = store.append_many(sample_episodes(spec, 3, seed=0))
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "toolkit.cli", "dashboard", str(path), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        status = None
        while time.time() < deadline:
            try:
                status, _ = _get(f"http://127.0.0.1:{port}/")
                break
            except OSError:
                time.sleep(0.3)
        assert status == 200
        status, jpeg = _get(f"http://127.0.0.1:{port}/media/lab/{ids[1]}/thumb.jpg")
        assert status == 200 and jpeg[:2] == b"\xff\xd8"
        assert _get(f"http://127.0.0.1:{port}/media/lab/999999/thumb.jpg")[0] == 404
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}/" in out
    assert "Traceback" not in err
    assert proc.returncode == 0 and "dashboard stopped" in out  # Ctrl-C is how a server is meant to stop


def test_bad_input_is_one_line(tmp_path):
    assert "no such store" in refused("dashboard", tmp_path / "missing.zarr")
    spec = sample_spec(cameras=1, height=32, width=48)
    with Store.create(tmp_path / "a.zarr", spec):
        pass
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert "already in use" in refused("dashboard", tmp_path / "a.zarr", "--port", str(port))


def test_exposing_warns(tmp_path):
    spec = sample_spec(cameras=1, height=32, width=48)
    with Store.create(tmp_path / "a.zarr", spec):
        pass
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "toolkit.cli", "dashboard", str(tmp_path / "a.zarr"), "--host",
                             "0.0.0.0", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    time.sleep(0.5)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if _get(f"http://127.0.0.1:{port}/")[0] == 200:
                break
        except OSError:
            time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    assert "warning: serving on 0.0.0.0" in out and "no login" in out
