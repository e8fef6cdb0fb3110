"""Green-screen augmentation: the GreenAug worked check, fast vs reference, ground truth from the sim
(keyed mask vs segmentation; composite vs a render with the texture on the backdrop), and the runner."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import imagecodecs
import mujoco
import numpy as np
import pytest

from curation.augment import augment_store
from curation.greenscreen import (GreenScreen, GreenScreenParams, Keyer, cbcr, composite, estimate_key, matte,
                                  parse_key, prepare_backdrop, reference_composite)
from curation.textures import FolderBank, ProceduralBank, crop_resize
from teleop.sim import scene
from teleop.sim.tabletop import TabletopConfig, TabletopEnv
from toolkit.errors import DemoforgeError
from toolkit.store import Store

BACKDROP = scene.MASK_IDS["backdrop"]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_worked_check_from_reference() -> None:
    """curation_methods.md §11: key #439f82 -> (Cb, Cr) = (1.52, -43.13) with delta 0.5; tola 30 / tolb 35."""
    key = parse_key("#439f82")
    kcb, kcr = cbcr(key)
    assert (kcb + 0.5, kcr + 0.5) == pytest.approx((1.52, -43.13), abs=0.01)
    pixels = np.array([[[60, 160, 130], [0, 177, 64], [200, 50, 50]]], np.uint8)
    cb, cr = cbcr(pixels)
    assert np.hypot(cb - kcb, cr - kcr)[0] == pytest.approx([4.0, 45.1, 121.5], abs=0.1)
    assert matte(pixels, key, 30, 35)[0].tolist() == [255, 0, 0]


def test_keyer_equals_reference_byte_for_byte() -> None:
    """The table settles most pixels, the exact formula the rest: composite and matte equal the reference's
    (matte = rint(255 a)) for keys all over the colour space, soft bands from 0 to 20 wide (0: a hard
    threshold), pixels all around each key. ``composite`` from the uint8 matte is the formula with alpha
    quantised to 1/255, exactly, so within 1 grey level of the reference."""
    rng = np.random.default_rng(0)
    soft = 0
    for trial in range(24):
        key = rng.integers(0, 256, 3).astype(np.uint8)
        tola = float(rng.uniform(0, 40))
        tolb = tola + (0.0 if trial % 6 == 0 else float(rng.uniform(0.5, 20)))
        image = np.clip(key + rng.normal(0, rng.uniform(5, 60), (48, 64, 3)), 0, 255).astype(np.uint8)
        image[:8] = rng.integers(0, 256, (8, 64, 3))
        background = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        ref, alpha = reference_composite(image, key, tola, tolb, background)
        out, m = Keyer(key, tola, tolb)(image, prepare_backdrop(background, key))
        assert np.array_equal(out, ref), trial
        assert np.array_equal(m, np.rint(alpha * 255).astype(np.uint8)), trial
        assert np.array_equal(matte(image, key, tola, tolb), m), trial
        from_matte = composite(image, m, background, key)
        assert np.abs(from_matte.astype(int) - ref).max() <= 1, trial
        a = (m / 255.0)[..., None]  # the formula with the matte's alpha, quantised to 1/255
        quantised = np.rint(np.clip(image - a * key.astype(float) + a * background, 0, 255)).astype(np.uint8)
        assert np.array_equal(from_matte, quantised), trial
        soft += int(((alpha > 0) & (alpha < 1)).sum())
    assert soft > 5000  # the soft band is exercised


def test_keyer_matte_exact_over_a_grid_of_every_colour() -> None:
    """Every 3rd level of R, G and B (636,056 colours, 0 and 255 included), GreenAug's key and tolerances."""
    levels = np.arange(0, 256, 3, dtype=np.uint8)
    colours = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(len(levels), -1, 3)
    key = parse_key("#439f82")
    _, alpha = reference_composite(colours, key, 30, 35, colours)
    assert np.array_equal(matte(colours, key, 30, 35), np.rint(alpha * 255).astype(np.uint8))


def test_estimate_key_on_camera_like_green_screen() -> None:
    """A 'real' screen: uneven lighting (luma 0.6-1.1), sensor noise, a grey robot with a green fringe."""
    rng = np.random.default_rng(1)
    h, w = 120, 160
    shade = np.linspace(0.6, 1.1, w)[None, :, None]
    screen = np.array([70, 165, 95]) * shade + rng.normal(0, 4, (h, w, 3))
    truth = np.ones((h, w), bool)
    truth[40:100, 50:110] = False
    screen[40:100, 50:110] = [120, 118, 125]
    screen[40:100, 50] = [90, 150, 100]  # green spill on the robot's edge
    truth[40:100, 50] = False
    frames = np.clip(screen, 0, 255).astype(np.uint8)[None]
    key = estimate_key(frames)
    screen_median = np.median(frames[0][truth], axis=0)  # 0.85 x the nominal colour: the mean shading
    assert key is not None and np.abs(key - screen_median).max() <= 6
    keyed = matte(frames[0], key, 30, 35) >= 128
    assert iou(keyed, truth) > 0.97


def _render_episode(seeds: range, height: int = 240, width: int = 320, **config) -> list[dict]:
    env = TabletopEnv(TabletopConfig(cameras=("front",), height=height, width=width, depth=False,
                                     pointcloud_cameras=(), **config))
    try:
        return [env.reset(s) for s in seeds]
    finally:
        env.close()


def test_keyed_mask_matches_sim_segmentation() -> None:
    """The green screen is the backdrop (segmentation id 2); the table and floor are not keyed."""
    ious = []
    for obs in _render_episode(range(6)):
        image, seg = obs["observation.images.front"], obs["observation.mask.front"]
        key = estimate_key(image[None])
        keyed = matte(image, key, 30, 35) >= 128
        ious.append(iou(keyed, seg == BACKDROP))
    print(f"sim key IoU min {min(ious):.4f} mean {np.mean(ious):.4f}")
    assert min(ious) >= 0.98


def _unlit_view(env: TabletopEnv) -> np.ndarray:
    """The backdrop's texture as the front camera sees it, without lighting: what a background image
    composited behind the scene stands for (emission 1, every light off)."""
    m = env.model
    m.mat_emission[:] = 1.0
    m.light_active[:] = 0
    m.vis.headlight.active = 0
    m.vis.headlight.ambient[:] = 0
    opt = mujoco.MjvOption()
    opt.geomgroup[scene.HIDDEN_GROUP] = 0
    with mujoco.Renderer(m, env.config.height, env.config.width) as r:
        r.update_scene(env.data, camera="front", scene_option=opt)
        return r.render().copy()


def test_composite_matches_render_with_textured_backdrop() -> None:
    """Composite of the green render over the texture vs the same scene rendered with that texture on
    the backdrop. Tolerance: mean absolute error <= 6 grey levels in the keyed region. Why not ~0: the
    renderer multiplies the texture by the light at each pixel, GreenAug's composite adds the screen's
    shading deviation from the key (x - key) instead; the background is the texture as the camera sees it
    (the same scene with lights off), scaled by the screen's mean light."""
    seed, h, w = 3, 240, 320
    texture = ProceduralBank(128).make("perlin", 7)
    green = _render_episode(range(seed, seed + 1), h, w)[0]
    env = TabletopEnv(TabletopConfig(cameras=("front",), height=h, width=w, depth=False,
                                     pointcloud_cameras=(), backdrop_texture=texture))
    try:
        lit = env.reset(seed)
        background = _unlit_view(env)
    finally:
        env.close()
    image = green["observation.images.front"]
    truth = green["observation.mask.front"] == BACKDROP
    assert (lit["observation.mask.front"] == green["observation.mask.front"]).all()
    key = estimate_key(image[None])
    # The renderer multiplies the texture by the light; the backdrop's albedo is (0, 1, 0), so the key's
    # green over 255 is the mean light on the screen: a background photographed under the same light.
    background = np.clip(background * (key[1] / 255.0) + 0.5, 0, 255).astype(np.uint8)
    a = matte(image, key, 30, 35)
    out = composite(image, a, background, key)
    region = (a == 255) & truth
    err = np.abs(out.astype(int) - lit["observation.images.front"].astype(int))[region]
    raw = np.abs(image.astype(int) - lit["observation.images.front"].astype(int))[region]
    print(f"composite vs textured render: MAE {err.mean():.2f} (green render vs textured: {raw.mean():.2f})")
    assert err.mean() <= 6
    assert (out[~region & (a == 0)] == image[~region & (a == 0)]).all()  # foreground untouched


def test_backgrounds_seeded_and_folder(tmp_path) -> None:
    bank = ProceduralBank(64)
    a = [bank.draw(np.random.default_rng(5)) for _ in range(2)]
    assert a[0][1] == a[1][1] and np.array_equal(a[0][0], a[1][0])
    bg, crop = crop_resize(a[0][0], 48, 64, (0.5, 1.0), np.random.default_rng(0))
    assert bg.shape == (48, 64, 3) and bg.dtype == np.uint8 and len(crop) == 4
    with pytest.raises(DemoforgeError, match=str(tmp_path)):
        FolderBank(tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DemoforgeError, match="no readable"):
        FolderBank(tmp_path)
    (tmp_path / "a.png").write_bytes(imagecodecs.png_encode(np.full((20, 30, 3), 200, np.uint8)))
    image, info = FolderBank(tmp_path).draw(np.random.default_rng(0))
    assert info == {"kind": "image", "id": "a.png"} and image.shape == (20, 30, 3)


def test_bad_params_are_one_line_errors() -> None:
    for params in (GreenScreenParams(key="green"), GreenScreenParams(tola=40, tolb=35),
                   GreenScreenParams(copies=0), GreenScreenParams(scale=(0.0, 1.0))):
        with pytest.raises(DemoforgeError):
            GreenScreen(params)


@pytest.fixture(scope="module")
def camera_store(tmp_path_factory, sim_store, block):
    config = {"cameras": ("front",), "height": 120, "width": 160}
    return sim_store(tmp_path_factory.mktemp("gs") / "src.zarr", [block(count=2, config=config, max_steps=40)])


def test_augment_store_provenance_count_determinism(camera_store, tmp_path) -> None:
    aug = GreenScreen(GreenScreenParams(copies=2))
    s1 = augment_store(camera_store, tmp_path / "a.zarr", aug, seed=3)
    s2 = augment_store(camera_store, tmp_path / "b.zarr", aug, seed=3)
    s3 = augment_store(camera_store, tmp_path / "c.zarr", aug, seed=4)
    assert s1.generated == len(camera_store.ids()) * 2 == s2.generated
    out1, out2, out3 = Store.open(tmp_path / "a.zarr"), Store.open(tmp_path / "b.zarr"), Store.open(tmp_path / "c.zarr")
    assert "observation.mask.front.greenscreen" in out1.spec.features
    e1, e2, e3 = out1.read(s1.ids[0]), out2.read(s2.ids[0]), out3.read(s3.ids[0])
    prov = e1.meta.provenance
    assert prov["augmentation"] == "greenscreen/2" and prov["source_id"] in camera_store.ids()
    assert prov["params"]["key"]["front"].startswith("#") and prov["params"]["tola"] == 30.0
    assert prov["params"]["background"]["front"]["id"]
    for name in e1.data:
        assert np.array_equal(e1.data[name], e2.data[name]), name
    assert not np.array_equal(e1.data["observation.images.front"], e3.data["observation.images.front"])


def test_changes_only_where_matte_says_background(camera_store) -> None:
    source = camera_store.read(camera_store.ids()[0])
    for spill in (0.0, 0.5):
        aug = GreenScreen(GreenScreenParams(spill=spill, per_frame=spill > 0))
        (sample,) = aug.generate(source, camera_store.spec, seed=0)
        data = sample.episode.data
        for name, arr in source.data.items():
            if name != "observation.images.front":
                assert np.array_equal(arr, data[name]), name
        alpha = data["observation.mask.front.greenscreen"]
        seg = source.data["observation.mask.front"]
        assert iou(alpha >= 128, seg == BACKDROP) >= 0.98
        changed = (data["observation.images.front"] != source.data["observation.images.front"]).any(-1)
        if spill == 0:
            assert not (changed & (alpha == 0)).any()
        else:  # spill suppression touches only foreground pixels whose chroma is near the key's
            key = parse_key(sample.params["key"]["front"])
            cb, cr = cbcr(source.data["observation.images.front"])
            kcb, kcr = cbcr(key)
            near = np.hypot(cb - kcb, cr - kcr) < 2 * aug.params.tolb
            spilled = changed & (alpha == 0)
            assert spilled.any() and not (spilled & ~near).any()
            print(f"spill suppression changed {spilled.mean():.4f} of the pixels outside the matte")
