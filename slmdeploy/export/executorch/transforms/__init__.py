"""Source transforms applied to the eager model before torch.export, one per file.

Each rewrites a piece of the Hugging Face graph into a form the XNNPACK delegate takes
whole, so the program is not cut into many small delegate subgraphs (slow to lower,
slow to run). Each keeps the math of the module it replaces; the parity check proves it.
"""

from slmdeploy.export.executorch.transforms.attention import ATTENTION, causal_mask, use_grouped_attention
from slmdeploy.export.executorch.transforms.conv1d import replace_conv1d
from slmdeploy.export.executorch.transforms.rmsnorm import replace_rms_norms

__all__ = ["ATTENTION", "causal_mask", "replace_conv1d", "replace_rms_norms", "use_grouped_attention"]
