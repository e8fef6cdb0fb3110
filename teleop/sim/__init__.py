"""The embedded MuJoCo tabletop (``TabletopEnv``) and its scripted operator (``ScriptedOperator``).

Importing this package sets ``MUJOCO_GL=egl`` unless already set (headless CPU rendering).
"""

from teleop.sim.tabletop import TabletopConfig, TabletopEnv

__all__ = ["TabletopConfig", "TabletopEnv"]
