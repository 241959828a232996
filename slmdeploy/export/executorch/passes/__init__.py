"""Edge-dialect graph passes run before partitioning, one per file.

Where the source transforms (``transforms/``) change the eager model, these rewrite what
``torch.export`` leaves behind with a dynamic sequence length: shapes written with symbols
that the XNNPACK partitioner refuses although the delegate could run them. Each keeps the
program's meaning; the parity check proves it.
"""

from slmdeploy.export.executorch.passes.identity_expand import drop_identity_expands
from slmdeploy.export.executorch.passes.static_view_shapes import static_view_shapes

DELEGABLE_SHAPES = [static_view_shapes, drop_identity_expands]

__all__ = ["DELEGABLE_SHAPES", "drop_identity_expands", "static_view_shapes"]
