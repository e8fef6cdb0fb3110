"""The media routes with Flask's test client: frames come from the opened stores' committed episodes and
nothing else. Traversal (``..``, encoded ``%2e%2e`` and ``%2f``, backslashes, absolute paths), unknown
datasets, episodes and features, non-image features and out-of-range frames are all 404, and an audit hook
on the interpreter's file opens proves no request read a file outside the opened store, although honeypots
sit right beside it: a store nobody opened, a committed episode folder ``../../honeypot`` away, and an
uncommitted episode inside the store.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from toolkit.sample import sample_episodes, sample_spec
from toolkit.store import Store

CAMERA = "observation.images.front"
_opened: list[str] | None = None  # file paths opened (or listed) while recording, from any thread


def _audit(event: str, args: tuple) -> None:
    if _opened is not None and event in ("open", "os.listdir", "os.scandir") and args:
        path = args[0]
        if isinstance(path, (str, bytes, os.PathLike)):
            _opened.append(os.path.abspath(os.fsdecode(path)))


sys.addaudithook(_audit)  # once per process (a hook cannot be removed); records only inside ``reads``


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("routes").resolve()  # the paths the app opens are resolved
    spec = sample_spec(cameras=1, height=48, width=64, depth=True)
    with Store.create(root / "store.zarr", spec) as store:
        store.append_many(sample_episodes(spec, 2, seed=0))
    with Store.create(root / "secret.zarr", spec) as secret:  # on disk beside it, never opened
        secret.append_many(sample_episodes(spec, 1, seed=1))
    episode = root / "store.zarr" / "episodes" / "000000"
    shutil.copytree(episode, root / "honeypot")  # a committed episode at episodes/../../honeypot
    partial = root / "store.zarr" / "episodes" / "000099"  # whole arrays, but never committed
    shutil.copytree(episode, partial)
    doc = json.loads((partial / "zarr.json").read_text())
    del doc["attributes"]["demoforge"]["committed"]
    (partial / "zarr.json").write_text(json.dumps(doc))
    return root


@pytest.fixture(scope="module")
def client(root, app_factory):
    app = app_factory([root / "store.zarr"])
    yield app.server.test_client()
    app.server.config["DEMOFORGE_LIBRARY"].close()


def reads(client, url: str, root: Path) -> tuple:  # noqa: ANN001 - a Flask test client
    """GET ``url``; returns the response and the files under ``root`` the request opened."""
    global _opened
    _opened = []
    try:
        response = client.get(url)
    finally:
        opened, _opened = _opened, None
    return response, [p for p in opened if p.startswith(str(root) + os.sep)]


def test_frames_and_thumbnails_come_from_the_store(client, root):
    with Store.open(root / "store.zarr") as store:
        frame = np.asarray(store.array("000001", CAMERA)[3])
    response, opened = reads(client, f"/media/store/000001/{CAMERA}/3.jpg", root)
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    image = imagecodecs.jpeg_decode(response.data)
    assert image.shape == frame.shape == (48, 64, 3)
    assert np.abs(image.astype(int) - frame).mean() < 6  # the stored frame, JPEG-encoded
    assert opened and all(p.startswith(str(root / "store.zarr")) for p in opened), opened  # the hook sees reads
    assert response.cache_control.max_age > 0
    again = client.get(f"/media/store/000001/{CAMERA}/3.jpg", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    thumb = client.get("/media/store/000000/thumb.jpg")
    assert thumb.status_code == 200 and imagecodecs.jpeg_decode(thumb.data).shape[2] == 3


BAD = [
    # traversal, plain and encoded: '..', '%2e%2e', '%2f' (a '/' inside one part), backslashes, absolute paths
    "/media/../store.zarr/zarr.json",
    "/media/store/../../honeypot/thumb.jpg",
    "/media/%2e%2e/%2e%2e/etc/passwd",
    "/media/%2E%2E/store/000000/thumb.jpg",
    "/media/store/%2e%2e/thumb.jpg",
    "/media/store/%2e/thumb.jpg",
    "/media/store/..%2f..%2fhoneypot/thumb.jpg",
    f"/media/store/..%2F..%2Fhoneypot/{CAMERA}/0.jpg",
    "/media/store/%2e%2e%2f%2e%2e%2fhoneypot/thumb.jpg",
    "/media/store/000000/%2e%2e/0.jpg",
    "/media/store/000000/..%2f..%2f..%2fzarr.json/0.jpg",
    f"/media/store/000000/{CAMERA}/..%2f..%2fzarr.json",
    "/media/store/..%5c..%5choneypot/thumb.jpg",
    "/media/store/%2fetc%2fpasswd/thumb.jpg",
    "/media/..%2fsecret.zarr/000000/thumb.jpg",
    "/media/store/.staging/thumb.jpg",
    # unknown or unopened datasets, episodes, features
    "/media/secret/000000/thumb.jpg",
    "/media/secret.zarr/000000/thumb.jpg",
    "/media/store.zarr/000000/thumb.jpg",
    "/media/nope/000000/thumb.jpg",
    "/media/store/999999/thumb.jpg",
    "/media/store/000099/thumb.jpg",  # uncommitted
    f"/media/store/000099/{CAMERA}/0.jpg",
    "/media/store/000000/nope/0.jpg",
    "/media/store/000000/observation.state/0.jpg",  # not a camera
    "/media/store/000000/observation.depth.front/0.jpg",
    # frames out of range or malformed
    f"/media/store/000000/{CAMERA}/{{length}}.jpg",
    f"/media/store/000000/{CAMERA}/99999999999999.jpg",
    f"/media/store/000000/{CAMERA}/-1.jpg",
    f"/media/store/000000/{CAMERA}/1e3.jpg",
    f"/media/store/000000/{CAMERA}/0.png",
    "/media/",
    "/media/store",
]


@pytest.mark.parametrize("url", BAD)
def test_bad_media_urls_are_404_and_read_nothing_outside_the_store(client, root, url):
    with Store.open(root / "store.zarr") as store:
        url = url.format(length=store.entry("000000")["length"])
    response, opened = reads(client, url, root)
    assert response.status_code == 404, (url, response.status_code, response.data[:200])
    outside = [p for p in opened if not p.startswith(str(root / "store.zarr") + os.sep)]
    assert not outside, f"{url} read {outside}"
