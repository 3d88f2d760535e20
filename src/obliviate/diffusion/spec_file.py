"""The file that marks a saved tiny shapes pipeline and records its :class:`ShapesSpec`.

:mod:`obliviate.diffusion.tiny` writes it next to the diffusers files and
:mod:`obliviate.diffusion.pipeline` reads it back when loading (docs/diffusion.md).
"""

SPEC_FILE = "obliviate_shapes.json"
