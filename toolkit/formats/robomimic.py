"""robomimic HDF5: export episodes as robomimic reads them, and import any robomimic file.

Layout written (robomimic ``docs/datasets/overview.md`` and its ``SequenceDataset``)::

    /data                       attrs: total (int), env_args (JSON: env_name, env_version, type, env_kwargs),
                                       demoforge_spec, demoforge_layout (JSON, ignored by robomimic)
      /demo_<i>                 i = 0, 1, ... in export order; attrs: num_samples, demoforge_meta [, demoforge_id]
        actions   (N, A)        the ``action`` feature, unchanged (robomimic expects [-1, 1]; see the summary)
        rewards   (N,)          ``next.reward`` (or the only ``*reward`` scalar), else zeros
        dones     (N,)          ``next.done`` when present, else 1 on the last step only
        states    (N, 0)        empty: robomimic's "empty or dummy values" for data not from robosuite
        obs/<key> (N, ...)      every other feature; images gzip-compressed with one chunk per frame
        next_obs/<key>          only with ``next_obs=True`` (obs shifted by one, the last step repeated)
        action_dict/<key>       further action features, if any
    /mask/<filter_key>          at the FILE ROOT: byte strings naming demos (train / valid / custom)

Feature name -> robomimic obs key (``obs_key``): drop the ``observation.`` prefix, turn
``images.<cam>`` into ``<cam>_image`` and ``depth.<cam>`` into ``<cam>_depth`` (robosuite's names, which
robomimic's configs list under ``rgb`` / ``depth``), then replace ``.`` with ``_``:
``observation.images.front -> front_image``, ``observation.state -> state``,
``observation.depth.front -> front_depth``. The exact mapping, the spec and each episode's metadata are
stored as JSON attributes, so our own files import back unchanged.

robomimic's default training config sets ``train.hdf5_load_next_obs = True``: either export with
``next_obs=True`` or set that flag to False (behaviour cloning does not use ``next_obs``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from toolkit.episode import Episode, EpisodeMeta, check_episode
from toolkit.errors import DemoforgeError, FormatError, one_line
from toolkit.formats.dtypes import portable_dtype
from toolkit.formats.keys import check_distinct
from toolkit.formats.keys import flat_key as obs_key
from toolkit.formats.staging import staged
from toolkit.formats.summary import ExportSummary
from toolkit.spec import DatasetSpec, Feature

FORMAT = "robomimic"
DEMO_NAME = re.compile(r"^demo_(\d+)$")
ENV_TYPES = {1: "robosuite", 2: "gym", 3: "ig_momart"}
# Readable by HDF5 1.12 (h5py 3.7, pinned by diffusion_policy and robomimic's era), whatever HDF5 we run.
LIBVER = ("earliest", "v112")


def _layout(spec: DatasetSpec, out: Path) -> tuple[dict[str, str], list[str]]:
    """Feature name -> path inside a demo group, and the features left out (text)."""
    layout: dict[str, str] = {}
    skipped: list[str] = []
    actions = spec.of_kind("action")
    main = "action" if "action" in actions else (actions[0] if len(actions) == 1 else None)
    if main is None:
        raise FormatError(
            f"{out}: the spec has {'no action feature' if not actions else f'action features {actions} but none named action'}; "
            "robomimic needs one for 'actions'"
        )
    layout[main] = "actions"
    for name in actions:
        if name != main:
            layout[name] = "action_dict/" + name.removeprefix("action.").replace(".", "_")
    scalars = spec.of_kind("scalar")
    reward = "next.reward" if "next.reward" in scalars else None
    if reward is None:
        rewards = [n for n in scalars if n.endswith("reward")]
        reward = rewards[0] if len(rewards) == 1 else None
    if reward is not None and spec.features[reward].shape in ((), (1,)):
        layout[reward] = "rewards"
    if "next.done" in spec.features and spec.features["next.done"].shape in ((), (1,)):
        layout["next.done"] = "dones"
    for name, f in spec.features.items():
        if name in layout:
            continue
        if f.dtype == "string":
            skipped.append(f"feature '{name}': text features have no robomimic equivalent")
            continue
        layout[name] = "obs/" + obs_key(name)
    check_distinct(layout, out, "robomimic '{}'")
    return layout, skipped


def _write_array(group: h5py.Group, path: str, array: np.ndarray) -> None:
    if array.ndim >= 3:
        # images, depth, point clouds: one gzip chunk per frame, as robomimic's own image datasets
        group.create_dataset(path, data=array, chunks=(1, *array.shape[1:]), compression="gzip", compression_opts=4)
    else:
        group.create_dataset(path, data=array)


def _write_masks(f: h5py.File, masks: dict[str, list[str]]) -> None:
    for key, demos in masks.items():
        f.create_dataset(f"mask/{key}", data=np.array(demos, dtype="S"))


def _split(n: int, ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded train/valid split of ``n`` demos; ``ratio`` is the validation fraction, as robomimic's split_train_val."""
    n_valid = int(ratio * n)
    if n >= 2:
        n_valid = min(max(n_valid, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    valid = sorted(int(i) for i in order[:n_valid])
    train = sorted(int(i) for i in order[n_valid:])
    return train, valid


def export_robomimic(
    spec: DatasetSpec,
    episodes: Iterable[Episode],
    out: Path,
    *,
    env_name: str = "demoforge",
    env_type: int = 2,
    filter_keys: dict[str, list[int]] | None = None,
    train_val_split: float | None = None,
    seed: int = 0,
    next_obs: bool = False,
    overwrite: bool = False,
) -> ExportSummary:
    """Write ``episodes`` (streamed, one in memory at a time) to the robomimic HDF5 file ``out``.

    ``filter_keys`` maps a mask name to episode indices (export order); ``train_val_split`` (the
    validation fraction, e.g. 0.1) adds ``mask/train`` and ``mask/valid`` chosen with ``seed``.
    The file is written under a temporary name and renamed when complete, so ``out`` is either the
    old file or the whole new one. Actions are written unchanged; the summary warns when they leave [-1, 1].
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FormatError(f"{out}: already exists (pass overwrite=True to replace it)")
    if env_type not in ENV_TYPES:
        raise FormatError(f"{out}: env_type {env_type} is not a robomimic EnvType (1 robosuite, 2 gym, 3 ig_momart)")
    if train_val_split is not None and not 0.0 < train_val_split < 1.0:
        raise FormatError(f"{out}: train_val_split {train_val_split} must be between 0 and 1 (the validation fraction)")
    filter_keys = dict(filter_keys or {})
    if train_val_split is not None and {"train", "valid"} & set(filter_keys):
        raise FormatError(f"{out}: filter_keys 'train'/'valid' conflict with train_val_split; give one or the other")
    for key in filter_keys:
        if not key or "/" in key:
            raise FormatError(f"{out}: filter key '{key}' must be a non-empty name without '/'")
    spec = spec.validated(f"{out} spec")
    layout, skipped = _layout(spec, out)
    summary = ExportSummary(out=out, format=FORMAT, skipped=skipped)
    exported = spec.subset(layout)
    action_name = next(n for n, p in layout.items() if p == "actions")
    lo, hi, outside = np.inf, -np.inf, 0

    with staged(out) as tmp:
        with h5py.File(tmp, "w", libver=LIBVER) as f:
            data = f.create_group("data")
            for i, episode in enumerate(episodes):
                episode = check_episode(episode, spec, f"{out} episode {i}")
                n = episode.length
                demo = data.create_group(f"demo_{i}")
                for name, path in layout.items():
                    array = episode.data[name]
                    if path in ("rewards", "dones"):
                        array = array.reshape(n)
                    _write_array(demo, path, array)
                    if next_obs and path.startswith("obs/"):
                        _write_array(demo, "next_obs/" + path[4:], np.concatenate([array[1:], array[-1:]]))
                if "rewards" not in layout.values():
                    demo.create_dataset("rewards", data=np.zeros(n, np.float32))
                if "dones" not in layout.values():
                    dones = np.zeros(n, np.int64)
                    dones[-1] = 1
                    demo.create_dataset("dones", data=dones)
                demo.create_dataset("states", data=np.zeros((n, 0), np.float32))
                demo.attrs["num_samples"] = n
                demo.attrs["demoforge_meta"] = json.dumps(episode.meta.to_dict())
                if episode.id is not None:
                    demo.attrs["demoforge_id"] = episode.id
                actions = episode.data[action_name]
                if actions.size:
                    lo, hi = min(lo, float(np.nanmin(actions))), max(hi, float(np.nanmax(actions)))
                    outside += int(bool(np.any(np.abs(actions) > 1.0)))
                summary.episodes += 1
                summary.frames += n
            if summary.episodes == 0:
                raise FormatError(f"{out}: no episodes to export")
            names = [f"demo_{i}" for i in range(summary.episodes)]
            masks: dict[str, list[str]] = {}
            for key, indices in filter_keys.items():
                bad = [i for i in indices if not 0 <= int(i) < summary.episodes]
                if bad:
                    raise FormatError(
                        f"{out}: filter key '{key}' names episodes {bad}, but only 0..{summary.episodes - 1} were exported"
                    )
                masks[key] = [names[int(i)] for i in sorted(set(indices))]
            if train_val_split is not None:
                train, valid = _split(summary.episodes, train_val_split, seed)
                masks["train"] = [names[i] for i in train]
                masks["valid"] = [names[i] for i in valid]
            _write_masks(f, masks)
            env_args = {"env_name": env_name, "env_version": "demoforge", "type": env_type, "env_kwargs": {}}
            # robomimic's converters write these last, once every demo is in place
            data.attrs["total"] = summary.frames
            data.attrs["env_args"] = json.dumps(env_args)
            data.attrs["demoforge_spec"] = json.dumps(exported.to_dict())
            data.attrs["demoforge_layout"] = json.dumps(layout)
    if outside:
        summary.warnings.append(
            f"actions ('{action_name}') range [{lo:.4g}, {hi:.4g}] leaves [-1, 1] in {outside} of {summary.episodes} "
            "episodes; robomimic expects normalized actions and they were written unchanged"
        )
    return summary


# ----------------------------------------------------------------------------------------------- import


def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise FormatError(f"{path}: no such file")
    if path.is_dir():
        raise FormatError(f"{path}: is a directory, expected a robomimic .hdf5 file")
    if not h5py.is_hdf5(path):
        raise FormatError(f"{path}: not an HDF5 file (no HDF5 signature); expected a robomimic .hdf5 file")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise FormatError(f"{path}: cannot open as HDF5 ({one_line(e)}); the file is truncated or damaged") from None


def _json_attr(path: Path, obj: h5py.HLObject, name: str) -> Any:
    raw = obj.attrs[name]
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    try:
        return json.loads(raw)
    except (TypeError, ValueError) as e:
        raise FormatError(f"{path}: {obj.name} attribute '{name}' is not valid JSON ({e})") from None


def _small_attrs(group: h5py.Group, skip: set[str]) -> dict[str, Any]:
    """A demo's attributes that fit in metadata: short strings and numbers (not robosuite's model XML)."""
    out: dict[str, Any] = {}
    for key, value in group.attrs.items():
        if key in skip:
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, (str, int, float, bool)) and len(str(value)) <= 4096:
            out[key] = value
    return out


def _guess_obs(key: str, dset: h5py.Dataset) -> tuple[str, Feature] | None:
    """Feature name and feature for a foreign ``obs/<key>``, or None when demoforge has no kind for it."""
    dtype = portable_dtype(dset.dtype)
    if dtype is None:
        return None
    step = tuple(int(s) for s in dset.shape[1:])
    if dtype == np.uint8 and len(step) == 3 and step[-1] in (1, 3):
        stem = re.sub(r"_(image|rgb)$", "", key) or key
        return f"observation.images.{stem}", Feature("uint8", step, "image", ("height", "width", "channels"))
    if "depth" in key and len(step) in (2, 3) and dtype.kind in "fu":
        stem = re.sub(r"_depth$", "", key) or key
        depth_dtype = "uint16" if dtype.kind == "u" else "float32"
        return f"observation.depth.{stem}", Feature(depth_dtype, step, "depth")
    if dtype.kind == "f" and len(step) == 2 and step[-1] in (3, 6):
        return f"observation.{key}", Feature(dtype.name, step, "pointcloud")
    if "mask" in key and len(step) in (2, 3) and dtype.name in ("uint8", "uint16", "int32", "bool"):
        return f"observation.{key}", Feature(dtype.name, step, "mask")
    if dtype.kind == "f" and len(step) == 1:
        return f"observation.{key}", Feature(dtype.name, step, "state")
    if len(step) <= 1:
        return f"observation.{key}", Feature(dtype.name, step, "scalar")
    return None


@dataclass
class RobomimicSource:
    """A robomimic file opened for import: ``spec``, ``len()``, and episodes read lazily by iteration."""

    path: Path
    spec: DatasetSpec
    demos: list[str]
    filter_keys: dict[str, list[str]]
    env_args: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    layout: dict[str, str] = field(default_factory=dict)  # feature name -> dataset path inside a demo group
    task: str | None = None
    ours: bool = False

    def __len__(self) -> int:
        return len(self.demos)

    def __iter__(self) -> Iterator[Episode]:
        with _open(self.path) as f:
            for index, demo in enumerate(self.demos):
                yield self._episode(f[f"data/{demo}"], demo, index)

    def _read(self, group: h5py.Group, path: str, feature: Feature, n: int) -> np.ndarray:
        try:
            array = group[path][()]
        except (OSError, KeyError) as e:
            raise FormatError(
                f"{self.path}: {group.name}/{path}: cannot read ({one_line(e)}); the file is truncated or damaged"
            ) from None
        array = np.asarray(array).astype(feature.numpy_dtype, copy=False)
        return array.reshape((n, *feature.shape))

    def _episode(self, group: h5py.Group, demo: str, index: int) -> Episode:
        n = int(group.attrs["num_samples"])
        data = {name: self._read(group, self.layout[name], f, n) for name, f in self.spec.features.items()}
        episode_id = None
        if self.ours and "demoforge_meta" in group.attrs:
            raw = _json_attr(self.path, group, "demoforge_meta")
            meta = EpisodeMeta.from_dict(raw, f"{self.path}: {group.name} demoforge_meta")
            if "demoforge_id" in group.attrs:
                episode_id = str(group.attrs["demoforge_id"])
            if self.task:
                meta.task = self.task
        else:
            extra = _small_attrs(group, {"num_samples", "model_file"})
            masks = sorted(k for k, names in self.filter_keys.items() if demo in names)
            if masks:
                extra["robomimic_filter_keys"] = masks
            meta = EpisodeMeta(task=self.task or "unknown task", extra=extra)
        meta.origin = {"format": FORMAT, "path": str(self.path), "episode": demo}
        return Episode(data=data, meta=meta, id=episode_id)


def _check_demo(path: Path, data: h5py.Group, demo: str) -> int:
    group = data[demo]
    if not isinstance(group, h5py.Group):
        raise FormatError(f"{path}: data/{demo} is a dataset, expected a demo group")
    if "num_samples" not in group.attrs:
        raise FormatError(f"{path}: data/{demo}: attribute 'num_samples' is missing (robomimic needs it on every demo)")
    n = int(np.asarray(group.attrs["num_samples"]).reshape(-1)[0])
    if "actions" not in group:
        raise FormatError(f"{path}: data/{demo}/actions is missing (robomimic needs an (N, A) actions dataset)")
    length = group["actions"].shape[0] if group["actions"].shape else 0
    if length != n:
        raise FormatError(f"{path}: data/{demo}/actions has {length} steps, but attribute num_samples is {n}")
    return n


def read_robomimic(path: Path, *, task: str | None = None, fps: float | None = None) -> RobomimicSource:
    """Open a robomimic HDF5 file (ours or anyone's) for import; checks its structure now, reads arrays lazily.

    Foreign files: ``obs/*`` become features (uint8 (N,H,W,C) -> image ``observation.images.<key>``,
    ``*depth*`` -> depth, float (N,D) -> state ``observation.<key>``), ``actions`` -> ``action``,
    ``rewards`` -> ``next.reward`` (float32 (1,)), ``dones`` -> ``next.done`` (bool (1,)); ``states`` and
    ``next_obs`` are not imported. The task is ``task`` or ``env_args['env_name']``; fps is ``fps`` or
    ``env_kwargs['control_freq']`` or 20 (robosuite's default). Files we wrote come back with their own
    spec and metadata. Every episode's ``meta.origin`` names the file and demo.
    """
    path = Path(path)
    with _open(path) as f:
        if "data" not in f or not isinstance(f["data"], h5py.Group):
            raise FormatError(f"{path}: no 'data' group; a robomimic file keeps its demos under data/demo_<i>")
        data = f["data"]
        names = list(data.keys())
        for name in names:
            if not DEMO_NAME.match(name):
                raise FormatError(f"{path}: data/{name}: demo names must be demo_<int> (robomimic sorts them by the number)")
        demos = sorted(names, key=lambda s: int(s[5:]))
        lengths = {demo: _check_demo(path, data, demo) for demo in demos}
        env_args: dict[str, Any] = {}
        if "env_args" in data.attrs:
            env_args = _json_attr(path, data, "env_args")
            if not isinstance(env_args, dict):
                raise FormatError(f"{path}: data attribute 'env_args' must be a JSON object")
        filter_keys: dict[str, list[str]] = {}
        if "mask" in f and isinstance(f["mask"], h5py.Group):
            for key, dset in f["mask"].items():
                if isinstance(dset, h5py.Dataset):
                    filter_keys[key] = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in dset[()].reshape(-1)]
        warnings: list[str] = []
        empty = [d for d in demos if lengths[d] == 0]
        if empty:
            warnings.append(f"{len(empty)} demos with num_samples 0 are skipped: {empty[:5]}")
            demos = [d for d in demos if lengths[d] > 0]
        if not demos:
            raise FormatError(f"{path}: data holds no demo with samples")
        env_task = env_args.get("env_name") if isinstance(env_args.get("env_name"), str) else None
        if "demoforge_spec" in data.attrs and "demoforge_layout" in data.attrs:
            source = _ours(path, data, demos, task)
        else:
            source = _foreign(path, data, demos, env_args, fps, warnings)
            source.task = task or env_task or "unknown task"
        source.filter_keys = filter_keys
        source.env_args = env_args
        source.warnings = warnings + source.warnings
        return source


def _ours(path: Path, data: h5py.Group, demos: list[str], task: str | None) -> RobomimicSource:
    try:
        spec = DatasetSpec.from_dict(_json_attr(path, data, "demoforge_spec"), f"{path}: data attribute demoforge_spec")
    except DemoforgeError as e:
        raise FormatError(str(e)) from None
    layout = _json_attr(path, data, "demoforge_layout")
    if not isinstance(layout, dict) or set(layout) != set(spec.features):
        raise FormatError(f"{path}: data attribute 'demoforge_layout' must map every feature of demoforge_spec to a dataset")
    for demo in demos:
        n = int(data[demo].attrs["num_samples"])
        for name, rel in layout.items():
            if rel not in data[demo]:
                raise FormatError(f"{path}: data/{demo}/{rel} is missing (feature '{name}')")
            shape = data[demo][rel].shape
            if not shape or shape[0] != n:
                raise FormatError(f"{path}: data/{demo}/{rel} has {shape[0] if shape else 0} steps, but num_samples is {n}")
    return RobomimicSource(path=path, spec=spec, demos=demos, filter_keys={}, env_args={}, layout=layout, task=task, ours=True)


def _foreign(
    path: Path, data: h5py.Group, demos: list[str], env_args: dict[str, Any], fps: float | None, warnings: list[str]
) -> RobomimicSource:
    first = data[demos[0]]
    features: dict[str, Feature] = {}
    layout: dict[str, str] = {}
    if "obs" in first:
        for key, dset in first["obs"].items():
            if not isinstance(dset, h5py.Dataset):
                continue
            guess = _guess_obs(key, dset)
            if guess is None:
                warnings.append(f"obs/{key} {dset.dtype}{list(dset.shape[1:])} has no demoforge kind and is not imported")
                continue
            name, feature = guess
            if name in features:
                name = f"observation.{key}"
            features[name], layout[name] = feature, f"obs/{key}"
    actions = first["actions"]
    action_dtype = actions.dtype.name if actions.dtype.name in ("float32", "float64") else "float32"
    features["action"] = Feature(action_dtype, tuple(int(s) for s in actions.shape[1:]) or (1,), "action")
    layout["action"] = "actions"
    if "action_dict" in first:
        for key, dset in first["action_dict"].items():
            if isinstance(dset, h5py.Dataset) and dset.dtype.kind == "f" and dset.ndim == 2:
                dtype = dset.dtype.name if dset.dtype.name in ("float32", "float64") else "float32"
                features[f"action.{key}"] = Feature(dtype, (int(dset.shape[1]),), "action")
                layout[f"action.{key}"] = f"action_dict/{key}"
    if "rewards" in first:
        features["next.reward"], layout["next.reward"] = Feature("float32", (1,), "scalar"), "rewards"
    if "dones" in first:
        features["next.done"], layout["next.done"] = Feature("bool", (1,), "scalar"), "dones"
    if "states" in first and first["states"].ndim == 2 and first["states"].shape[1] > 0:
        warnings.append("'states' (simulator states) are not imported")
    if "next_obs" in first:
        warnings.append("'next_obs' is not imported (it repeats obs shifted by one step)")
    for demo in demos:
        group, n = data[demo], int(data[demo].attrs["num_samples"])
        for name, rel in layout.items():
            if rel not in group:
                raise FormatError(f"{path}: data/{demo}/{rel} is missing ({demos[0]} has it)")
            dset, feature = group[rel], features[name]
            if not dset.shape or dset.shape[0] != n:
                steps = dset.shape[0] if dset.shape else 0
                raise FormatError(f"{path}: data/{demo}/{rel} has {steps} steps, but num_samples is {n}")
            if int(np.prod(dset.shape[1:], dtype=np.int64)) != int(np.prod(feature.shape, dtype=np.int64)):
                raise FormatError(
                    f"{path}: data/{demo}/{rel} has step shape {list(dset.shape[1:])}, {demos[0]} has {list(feature.shape)}"
                )
    env_kwargs = env_args.get("env_kwargs") if isinstance(env_args.get("env_kwargs"), dict) else {}
    if fps is None:
        control = env_kwargs.get("control_freq")
        fps = float(control) if isinstance(control, (int, float)) and control > 0 else 20.0
    robots = env_kwargs.get("robots")
    robot_type = robots if isinstance(robots, str) else (str(robots[0]) if isinstance(robots, list) and robots else None)
    try:
        spec = DatasetSpec(fps=fps, features=features, robot_type=robot_type).validated(f"{path}: imported spec")
    except DemoforgeError as e:
        raise FormatError(str(e)) from None
    return RobomimicSource(path=path, spec=spec, demos=demos, filter_keys={}, env_args=env_args, layout=layout)
