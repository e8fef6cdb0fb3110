"""Converters between demoforge episodes and external dataset formats (LeRobot, robomimic, replay buffers)."""
