"""Frames and thumbnails as URLs (never base64 in a callback), JPEG-encoded on demand and cached.

Routes::

    /media/<dataset>/<episode>/thumb.jpg              middle frame of the first camera, 160 px wide
    /media/<dataset>/<episode>/<feature>/<index>.jpg  one camera frame
    /media/<anything else>                            404

Each path part is looked up among the opened datasets, their committed episodes and their image
features; anything else is a 404, so no request reaches a file outside the opened stores. Replies carry
an ETag and ``Cache-Control: max-age``, so scrubbing back over frames costs the server nothing.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from threading import Lock

import imagecodecs
import numpy as np
from flask import Blueprint, Response, abort, current_app, request

from dashboard.data import Dataset, Library, NotFound
from toolkit.errors import DemoforgeError
from toolkit.scores import revision

THUMB_WIDTH = 160
JPEG_QUALITY = 85
CACHE_ITEMS = 2048
MAX_AGE = 3600

media = Blueprint("demoforge_media", __name__)
_cache: OrderedDict[tuple, bytes] = OrderedDict()
_cache_lock = Lock()


def _library() -> Library:
    return current_app.config["DEMOFORGE_LIBRARY"]


def _cached(key: tuple, make) -> bytes:  # noqa: ANN001 - a zero-argument callable returning bytes
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    data = make()
    with _cache_lock:
        _cache[key] = data
        while len(_cache) > CACHE_ITEMS:
            _cache.popitem(last=False)
    return data


def encode_jpeg(image: np.ndarray) -> bytes:
    return bytes(imagecodecs.jpeg_encode(np.ascontiguousarray(image), level=JPEG_QUALITY))


def read_frame(ds: Dataset, episode_id: str, feature: str, index: int) -> np.ndarray:
    """One camera frame (H, W, 3) uint8; ``NotFound`` for an unknown episode, feature or index."""
    if feature not in ds.cameras():
        raise NotFound(f"{ds.name}: no camera '{feature}'")
    try:
        array = ds.store.array(episode_id, feature)
    except DemoforgeError:
        raise NotFound(f"{ds.name}: no episode '{episode_id}'") from None
    if not 0 <= index < array.shape[0]:
        raise NotFound(f"{ds.name}/{episode_id}: frame {index} outside 0..{array.shape[0] - 1}")
    return np.asarray(array[index])


def thumbnail(ds: Dataset, episode_id: str) -> bytes:
    """The middle frame of the first camera, shrunk by striding to about ``THUMB_WIDTH`` pixels wide."""
    cameras = ds.cameras()
    if not cameras:
        raise NotFound(f"{ds.name}: no cameras")
    entry = ds.store.entry(episode_id) if episode_id in ds.store else None
    if entry is None or entry["length"] == 0:
        raise NotFound(f"{ds.name}: no episode '{episode_id}'")
    key = ("thumb", str(ds.path), episode_id, revision(entry))

    def make() -> bytes:
        frame = read_frame(ds, episode_id, cameras[0], entry["length"] // 2)
        step = max(1, frame.shape[1] // THUMB_WIDTH)
        return encode_jpeg(frame[::step, ::step])

    return _cached(key, make)


def frame_jpeg(ds: Dataset, episode_id: str, feature: str, index: int) -> bytes:
    try:
        rev = revision(ds.store.entry(episode_id))
    except DemoforgeError:
        raise NotFound(f"{ds.name}: no episode '{episode_id}'") from None
    key = ("frame", str(ds.path), episode_id, rev, feature, index)
    return _cached(key, lambda: encode_jpeg(read_frame(ds, episode_id, feature, index)))


def _reply(data: bytes) -> Response:
    r = Response(data, mimetype="image/jpeg")
    r.set_etag(hashlib.md5(data).hexdigest())
    r.cache_control.max_age = MAX_AGE
    r.cache_control.public = True
    return r.make_conditional(request)


@media.route("/media/<dataset>/<episode_id>/thumb.jpg")
def thumb_route(dataset: str, episode_id: str) -> Response:
    try:
        return _reply(thumbnail(_library().get(dataset), episode_id))
    except NotFound:
        abort(404)


@media.route("/media/<dataset>/<episode_id>/<feature>/<int:index>.jpg")
def frame_route(dataset: str, episode_id: str, feature: str, index: int) -> Response:
    try:
        return _reply(frame_jpeg(_library().get(dataset), episode_id, feature, index))
    except NotFound:
        abort(404)


@media.route("/media/", defaults={"rest": ""})
@media.route("/media/<path:rest>")
def no_media(rest: str) -> Response:
    """Anything else under /media/ (``..``, an encoded ``/``, a negative index) is a 404, not the app's page
    that the catch-all page route would answer with."""
    abort(404)
