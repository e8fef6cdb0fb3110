"""Green-screen options on simulator episodes: per-frame backgrounds from a folder of user images, seeded
crops, the matte blur inside ``generate``, bad background folders, and the coverage factor in the catalog.

The backgrounds are images written into the test's folder: solid colours, so the keyed region of a
composite shows which file it got (where ``a = 1`` the composite is ``x - key + background``, so
``out - x + key`` is the background wherever nothing clipped), and a gradient, which shows the crop.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import imagecodecs
import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from cli_helpers import demoforge, refused
from curation.augment import augment_store
from curation.greenscreen import COVERAGE_FACTOR, GreenScreen, GreenScreenParams, coverage_factors, parse_key
from curation.textures import FolderBank, read_image, resize_bilinear
from toolkit.episode import Episode, EpisodeMeta
from toolkit.errors import DemoforgeError
from toolkit.spec import DatasetSpec, Feature
from toolkit.store import Store

FRONT = "observation.images.front"
MASK = "observation.mask.front.greenscreen"
# Mid-range colours, far from each other and from the screen's green, written as png and jpg.
SOLIDS = {"a_red.png": (200, 60, 60), "b_blue.png": (60, 70, 200), "c_yellow.jpg": (190, 180, 50),
          "d_violet.jpg": (150, 40, 160)}


@pytest.fixture(scope="module")
def source(tmp_path_factory, sim_store, block):
    """Two recorded episodes (30 steps) with the front and wrist cameras at 60 x 80."""
    config = {"cameras": ("front", "wrist"), "height": 60, "width": 80}
    return sim_store(tmp_path_factory.mktemp("gsopt") / "src.zarr", [block(count=2, config=config, max_steps=30)])


@pytest.fixture(scope="module")
def solid_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("solids")
    for name, colour in SOLIDS.items():
        image = np.full((40 + len(name), 90, 3), colour, np.uint8)  # sizes differ: crops differ too
        encoded = imagecodecs.png_encode(image) if name.endswith(".png") else imagecodecs.jpeg8_encode(image, level=95)
        (folder / name).write_bytes(encoded)
    return folder


@pytest.fixture(scope="module")
def gradient_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gradient")
    y, x = np.mgrid[0:90, 0:160]
    image = np.stack([x * 255 // 159, np.full_like(x, 90), y * 255 // 89], -1).astype(np.uint8)
    (folder / "gradient.png").write_bytes(imagecodecs.png_encode(image))
    return folder


def _generate(store: Store, seed: int = 0, **params) -> tuple[Episode, dict]:
    """The first synthetic episode of the store's first episode, front camera only, no spill."""
    aug = GreenScreen(GreenScreenParams(cameras=("front",), spill=0.0, **params))
    (sample,) = aug.generate(store.read(store.ids()[0]), store.spec, seed)
    return sample.episode, sample.params


def _implied_backgrounds(source: Episode, synthetic: Episode, key: np.ndarray) -> list[np.ndarray]:
    """Per frame: the background shown at fully keyed pixels, (n, 3) int, where no channel clipped."""
    out = []
    for x, y, a in zip(source.data[FRONT], synthetic.data[FRONT], synthetic.data[MASK]):
        y = y.astype(int)
        shown = y - x.astype(int) + key.astype(int)
        keep = (a == 255) & (y > 0).all(-1) & (y < 255).all(-1)
        assert keep.sum() > 100  # the screen is in view
        out.append(shown[keep])
    return out


def _solid_colours(folder) -> dict[str, tuple[int, ...]]:
    """Each file's colour as the bank decodes it (jpeg moves a solid colour by a level or two)."""
    colours = {}
    for name in SOLIDS:
        image = read_image(folder / name)
        assert (image == image[0, 0]).all()
        colours[name] = tuple(int(c) for c in image[0, 0])
    return colours


def _colour_of_frame(shown: np.ndarray, colours: dict[str, tuple[int, ...]]) -> str:
    """The file whose colour every keyed pixel of the frame shows."""
    found = {tuple(c) for c in np.unique(shown, axis=0)}
    assert len(found) == 1, f"a solid background shows {len(found)} colours"
    (colour,) = found
    (name,) = [n for n, c in colours.items() if c == colour]
    return name


# ------------------------------------------------------------------------------ per-frame backgrounds
def test_per_frame_backgrounds_come_from_the_folder(source, solid_folder) -> None:
    """--per-frame: each frame shows one of the folder's images, the one its provenance names, and the
    frames of one episode show different ones; without it every frame shows the same one."""
    colours = _solid_colours(solid_folder)
    src = source.read(source.ids()[0])
    per_frame, params = _generate(source, backgrounds=str(solid_folder), per_frame=True)
    key = parse_key(params["key"]["front"])
    shown = [_colour_of_frame(s, colours) for s in _implied_backgrounds(src, per_frame, key)]
    assert shown == params["background"]["front"]["per_frame"]
    assert len(set(shown)) >= 3  # 4 files, 30 frames

    fixed, params = _generate(source, backgrounds=str(solid_folder), per_frame=False)
    shown = {_colour_of_frame(s, colours) for s in _implied_backgrounds(src, fixed, key)}
    assert shown == {params["background"]["front"]["id"]}
    assert params["background"]["front"]["kind"] == "image"


def test_crops_are_seeded_and_what_provenance_says(source, gradient_folder) -> None:
    """One gradient image: the keyed region shows exactly the crop in the provenance, resized to the frame;
    the crop's side is within --scale of the largest crop of the frame's aspect; same seed, same bytes."""
    src = source.read(source.ids()[0])
    image = read_image(gradient_folder / "gradient.png")
    h, w = src.data[FRONT].shape[1:3]
    largest = min(image.shape[0] / h, image.shape[1] / w)
    crops = []
    for seed in (0, 0, 1, 2):
        episode, params = _generate(source, seed, backgrounds=str(gradient_folder), scale=(0.5, 0.8))
        y, x, ch, cw = params["background"]["front"]["crop"]
        assert 0 <= y and y + ch <= image.shape[0] and 0 <= x and x + cw <= image.shape[1]
        assert 0.5 - 0.02 <= ch / (h * largest) <= 0.8 + 0.02 and 0.5 - 0.02 <= cw / (w * largest) <= 0.8 + 0.02
        background = resize_bilinear(image[y:y + ch, x:x + cw], h, w).astype(int)
        key = parse_key(params["key"]["front"])
        for x_t, y_t, a_t in zip(src.data[FRONT], episode.data[FRONT], episode.data[MASK]):
            full = a_t == 255
            expected = np.clip(x_t.astype(int) - key + background, 0, 255)
            assert np.array_equal(y_t[full], expected[full])
        crops.append((params["background"]["front"]["crop"], episode))
    (crop0, ep0), (crop0b, ep0b), (crop1, ep1), (crop2, _) = crops
    assert crop0 == crop0b and all(np.array_equal(ep0.data[n], ep0b.data[n]) for n in ep0.data)
    assert crop1 != crop0 or crop2 != crop0
    assert not np.array_equal(ep0.data[FRONT], ep1.data[FRONT])


def test_per_frame_crops_differ_and_are_seeded(source, gradient_folder) -> None:
    """One image, --per-frame: frames still get different backgrounds (their own crops); same seed, same
    bytes."""
    src = source.read(source.ids()[0])
    first, params = _generate(source, 5, backgrounds=str(gradient_folder), per_frame=True)
    again, _ = _generate(source, 5, backgrounds=str(gradient_folder), per_frame=True)
    assert all(np.array_equal(first.data[n], again.data[n]) for n in first.data)
    assert set(params["background"]["front"]["per_frame"]) == {"gradient.png"}
    shown = _implied_backgrounds(src, first, parse_key(params["key"]["front"]))
    means = {tuple(np.round(s.mean(0)).astype(int)) for s in shown}
    assert len(means) >= len(shown) // 2


# --------------------------------------------------------------------------------------- blur
def test_blur_sigma_softens_the_matte_edge_only(source) -> None:
    """blur_sigma inside generate: many more soft matte values, all within the blur's reach of the
    unblurred matte's edges; farther away the matte is the unblurred one (0 or 255); pixels the blurred
    matte gives to the foreground (0) keep their colour."""
    src = source.read(source.ids()[0])
    sharp, _ = _generate(source, 3)
    soft, _ = _generate(source, 3, blur_sigma=1.5)
    a, b = sharp.data[MASK], soft.data[MASK]

    def n_soft(m: np.ndarray) -> int:
        return int(((m > 0) & (m < 255)).sum())

    edges = np.zeros(a.shape, bool)
    edges[:, :, 1:] |= a[:, :, 1:] != a[:, :, :-1]
    edges[:, 1:, :] |= a[:, 1:, :] != a[:, :-1, :]
    reach = int(4 * 1.5 + 0.5) + 1
    near = binary_dilation(edges, np.ones((1, 2 * reach + 1, 2 * reach + 1), bool))
    print(f"soft matte values: sharp {n_soft(a)}, blurred {n_soft(b)}; edge pixels {int(edges.sum())}")
    assert n_soft(b) > max(4 * n_soft(a), edges.sum())
    assert np.array_equal(a[~near], b[~near]) and set(np.unique(b[~near])) <= {0, 255}
    kept = b == 0
    assert np.array_equal(soft.data[FRONT][kept], src.data[FRONT][kept])


# --------------------------------------------------------------------------------- bad folders
def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_bad_background_folder_is_a_one_line_error_naming_it(tmp_path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(DemoforgeError) as error:
        GreenScreen(GreenScreenParams(backgrounds=str(missing)))
    assert str(missing) in _one_line(error) and "not a folder" in str(error.value)

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    with pytest.raises(DemoforgeError) as error:
        GreenScreen(GreenScreenParams(backgrounds=str(empty)))
    assert str(empty) in _one_line(error) and "no readable" in str(error.value)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "garbage.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    good_png = imagecodecs.png_encode(np.full((20, 30, 3), 128, np.uint8))
    (broken / "truncated.png").write_bytes(good_png[: len(good_png) // 2])
    (broken / "folder.png").mkdir()  # a directory with an image's name
    with pytest.raises(DemoforgeError) as error:
        FolderBank(broken)
    message = _one_line(error)
    assert str(broken) in message and "garbage.jpg" in message and "truncated.png" in message

    (broken / "z_good.png").write_bytes(good_png)  # one readable image: the unreadable ones are skipped
    assert [name for name, _ in FolderBank(broken).images] == ["z_good.png"]


def test_command_line_bad_folder_and_coverage_hint(tmp_path, source) -> None:
    """The command line: an image-less folder is refused in one line naming it; a run says where the
    coverage is, and the catalog filters on it."""
    empty = tmp_path / "no images"
    empty.mkdir()
    line = refused("augment", "greenscreen", source.root, "--out", tmp_path / "x.zarr", "--backgrounds", empty)
    assert str(empty) in line and "no readable" in line
    proc = demoforge("augment", "greenscreen", source.root, "--out", tmp_path / "y.zarr", "--cameras", "front",
                     "--limit", "1")
    assert f"factors.{COVERAGE_FACTOR}.front" in proc.stdout
    out = Store.open(tmp_path / "y.zarr")
    assert len(out.ids(f"factors.{COVERAGE_FACTOR}.front > 0.1")) == 1


# ------------------------------------------------------------------------------------ coverage
def test_coverage_is_a_catalog_factor(source, tmp_path) -> None:
    """Each synthetic episode carries its keyed fraction per camera as factor greenscreen_coverage.<cam>
    (= the saved matte's mean / 255, = the provenance's coverage); the catalog filters on it; the source's
    own factors are kept, and the source episode is not changed."""
    aug = GreenScreen(GreenScreenParams(copies=2))
    summary = augment_store(source, tmp_path / "gs.zarr", aug, seed=1)
    out = Store.open(tmp_path / "gs.zarr")
    values = {}
    for episode_id in summary.ids:
        episode = out.read(episode_id)
        origin = source.read(episode.meta.provenance["source_id"])
        for cam in ("front", "wrist"):
            value = episode.meta.factors[f"{COVERAGE_FACTOR}.{cam}"]
            matte = episode.data[f"observation.mask.{cam}.greenscreen"]
            assert value == episode.meta.provenance["params"]["coverage"][cam] == round(float(matte.mean()) / 255, 4)
        kept = {k: v for k, v in episode.meta.factors.items() if not k.startswith(COVERAGE_FACTOR)}
        assert kept == origin.meta.factors
        values[episode_id] = episode.meta.factors[f"{COVERAGE_FACTOR}.front"]
    print(f"front coverage: {sorted(values.values())}")
    assert all(0.1 < v < 0.9 for v in values.values())  # the backdrop fills part of the front view
    middle = float(np.median(list(values.values())))
    column = f"factors.{COVERAGE_FACTOR}.front"
    assert set(out.ids(f"{column} >= {middle}")) == {i for i, v in values.items() if v >= middle}
    assert set(out.ids(f"{column} > 0")) == set(summary.ids) and out.ids(f"{column} > 1") == []

    episode = source.read(source.ids()[0])
    before = dict(episode.meta.factors)
    list(aug.generate(episode, source.spec, 0))
    assert episode.meta.factors == before


def test_coverage_zero_without_a_screen_and_safe_factor_names() -> None:
    """A camera that never sees a screen (no key found) is left as it is, coverage 0; camera names become
    valid factor names."""
    rng = np.random.default_rng(0)
    scene = np.linspace(60, 200, 32)[None, :, None] * np.array([1.0, 0.9, 0.8])  # a brown-grey ramp, no green
    frames = np.clip(scene + rng.normal(0, 3, (4, 24, 32, 3)), 0, 255).astype(np.uint8)
    feature = "observation.images.wrist cam"
    spec = DatasetSpec(fps=10, features={feature: Feature("uint8", (24, 32, 3), "image")})
    episode = Episode(data={feature: frames}, meta=EpisodeMeta(task="t", factors={"object_color": "red"}))
    (sample,) = GreenScreen().generate(episode, spec, 0)
    assert np.array_equal(sample.episode.data[feature], frames)
    assert sample.params["coverage"] == {"wrist cam": 0.0} and sample.params["key"] == {"wrist cam": None}
    assert sample.episode.meta.factors == {"object_color": "red", f"{COVERAGE_FACTOR}.wrist_cam": 0.0}
    sample.episode.meta.validated()  # the schema's factor-name pattern
    assert coverage_factors({"a/b\nc": 0.5}) == {f"{COVERAGE_FACTOR}.a_b_c": 0.5}
