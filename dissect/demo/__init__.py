"""The demo world and the two small networks trained on it (issue 3). See docs/demo-world.md."""
