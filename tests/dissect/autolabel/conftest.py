"""Fixtures of the color world (tests/color_world.py): known ground truth, a hand-made network."""

from tests.color_world import color_net, color_world  # noqa: F401  (pytest finds fixtures by name)
