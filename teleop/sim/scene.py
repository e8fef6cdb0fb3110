"""MJCF for the embedded tabletop, written as a string (no asset files).

The model holds every body any episode may need (a box and a cylinder object, ``MAX_DISTRACTORS``
distractors); a reset picks which ones are live by moving geoms between visible group 0 and hidden
group ``HIDDEN_GROUP`` and switching their collisions, so the model and its renderer are built once.

Gripper frame (unrotated): z up, fingers hang down along -z and slide along +-y. The tool centre point
(site ``tcp``) sits between the fingertips, ``TCP_OFFSET`` below the gripper body origin.
"""

from __future__ import annotations

MAX_DISTRACTORS = 3
HIDDEN_GROUP = 3
FINGER_RANGE = 0.04  # metres per finger: 0 closed .. 0.04 open (8 cm between the fingers)
TCP_OFFSET = 0.07
TABLE_HALF = (0.4, 0.5, 0.4)  # table box half sizes; its top is at the episode's table height
BOX_HALF = 0.02  # the cube object: 4 cm
CYL_RADIUS, CYL_HALF = 0.02, 0.025  # the cylinder object
DISTRACTOR_HALF = 0.015

# Segmentation ids of observation.mask.* (uint8); documented in the spec's feature description.
MASK_IDS = {"background": 0, "table": 1, "backdrop": 2, "gripper": 3, "object": 4, "goal": 5,
            "distractor": 6, "floor": 7}


def build_mjcf(width: int, height: int, timestep: float = 0.005,
               backdrop_texture: tuple[int, int] | None = None) -> str:
    """The model; ``backdrop_texture`` = (height, width) adds a blank 2-D texture on the backdrop whose
    pixels the environment fills at run time (MJCF textures otherwise need a file)."""
    distractors = "\n".join(
        f"""    <body name="distractor{i}" pos="0 0 -1">
      <freejoint name="distractor{i}_joint"/>
      <geom name="distractor{i}" type="box" size="{DISTRACTOR_HALF} {DISTRACTOR_HALF} {DISTRACTOR_HALF}"
            mass="0.05" rgba="0.6 0.6 0.6 1"/>
    </body>"""
        for i in range(MAX_DISTRACTORS)
    )
    asset, material = "", ""
    if backdrop_texture is not None:
        th, tw = backdrop_texture
        asset = f"""  <asset>
    <texture name="backdrop" type="2d" builtin="flat" width="{tw}" height="{th}" rgb1="1 1 1"/>
    <material name="backdrop" texture="backdrop" specular="0" shininess="0"/>
  </asset>"""
        material = 'material="backdrop" '
    return f"""<mujoco model="demoforge_tabletop">
{asset}
  <compiler angle="degree"/>
  <option timestep="{timestep}" cone="elliptic" impratio="10"/>
  <visual>
    <global offwidth="{max(width, 64)}" offheight="{max(height, 64)}"/>
    <quality shadowsize="0" offsamples="0"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.2 0.2 0.2" specular="0 0 0"/>
    <map znear="0.01" zfar="20"/>
  </visual>
  <statistic extent="1.5" center="0 0 0.8"/>
  <default>
    <geom friction="0.5 0.005 0.0001" solref="0.01 1"/>
  </default>
  <worldbody>
    <light name="light" pos="0 0 2.5" dir="0 0 -1" directional="false" castshadow="false"
           diffuse="0.7 0.7 0.7" specular="0.1 0.1 0.1"/>
    <geom name="floor" type="plane" size="3 3 0.1" rgba="0.35 0.33 0.3 1" contype="0" conaffinity="0"/>
    <geom name="backdrop" type="box" pos="-0.7 0 1.0" size="0.01 2 1.2" rgba="0 1 0 1"
          {material}contype="0" conaffinity="0"/>
    <!-- A mocap body, so a reset can move the table top (and the goal on it) to the episode's height:
         collision data of static world geoms is not refreshed when geom_pos changes at run time. -->
    <body name="table" mocap="true" pos="0 0 0.75">
      <geom name="table" type="box" pos="0 0 -{TABLE_HALF[2]}" size="{TABLE_HALF[0]} {TABLE_HALF[1]} {TABLE_HALF[2]}"
            rgba="0.55 0.42 0.3 1" friction="0.4 0.005 0.0001"/>
      <geom name="goal" type="cylinder" pos="0 0 0.0008" size="0.035 0.0008" rgba="0.1 0.1 0.1 0.9"
            contype="0" conaffinity="0"/>
    </body>
    <camera name="front" pos="0.9 0 1.3" fovy="50" mode="fixed"/>
    <body name="object" pos="0 0 1">
      <freejoint name="object_joint"/>
      <geom name="object_box" type="box" size="{BOX_HALF} {BOX_HALF} {BOX_HALF}" mass="0.05" rgba="1 0 0 1"/>
      <geom name="object_cyl" type="cylinder" size="{CYL_RADIUS} {CYL_HALF}" mass="0.05" rgba="1 0 0 1"/>
    </body>
{distractors}
    <body name="mocap" mocap="true" pos="0 0 1.1"/>
    <body name="gripper" pos="0 0 1.1" gravcomp="1">
      <freejoint name="gripper_joint"/>
      <geom name="palm" type="box" size="0.02 0.065 0.012" mass="0.3" rgba="0.25 0.25 0.28 1"/>
      <site name="tcp" pos="0 0 -{TCP_OFFSET}" size="0.005" rgba="1 1 1 0" group="4"/>
      <camera name="wrist" pos="0.07 0 0.03" xyaxes="0 1 0 -0.883 0 0.469" fovy="75"/>
      <geom name="wrist_mount" type="box" pos="0.045 0 0.02" size="0.025 0.01 0.006" mass="0.01"
            rgba="0.25 0.25 0.28 1" contype="0" conaffinity="0"/>
      <body name="finger_left" gravcomp="1">
        <joint name="finger_left" type="slide" axis="0 1 0" range="0 {FINGER_RANGE}" damping="2"/>
        <geom name="finger_left" type="box" pos="0 0.006 -0.05" size="0.012 0.006 0.038" mass="0.02"
              rgba="0.8 0.8 0.82 1" friction="2 0.01 0.0001"/>
      </body>
      <body name="finger_right" gravcomp="1">
        <joint name="finger_right" type="slide" axis="0 -1 0" range="0 {FINGER_RANGE}" damping="2"/>
        <geom name="finger_right" type="box" pos="0 -0.006 -0.05" size="0.012 0.006 0.038" mass="0.02"
              rgba="0.8 0.8 0.82 1" friction="2 0.01 0.0001"/>
      </body>
    </body>
  </worldbody>
  <equality>
    <weld body1="mocap" body2="gripper" solref="0.01 1"/>
  </equality>
  <contact>
    <exclude body1="gripper" body2="finger_left"/>
    <exclude body1="gripper" body2="finger_right"/>
    <!-- fully closed on nothing, the fingers would touch and jam against each other -->
    <exclude body1="finger_left" body2="finger_right"/>
  </contact>
  <actuator>
    <position name="finger_left" joint="finger_left" kp="300" ctrlrange="0 {FINGER_RANGE}"/>
    <position name="finger_right" joint="finger_right" kp="300" ctrlrange="0 {FINGER_RANGE}"/>
  </actuator>
</mujoco>
"""
