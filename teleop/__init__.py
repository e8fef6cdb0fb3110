"""Teleoperation: devices, environments (the embedded MuJoCo tabletop), the recorder. Depends on toolkit."""
