"""The storage tests reuse the pipeline's tiny images and seeded network."""

from tests.dissect.pipeline.conftest import (  # noqa: F401 - fixtures
    image_folder,
    image_set,
    tiny_checkpoint,
    tiny_network,
)
