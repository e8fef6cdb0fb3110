"""Curation passes and augmentations, and the runner that maps them over episodes. Depends on toolkit."""
