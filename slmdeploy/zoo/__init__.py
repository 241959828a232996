"""Built-in SLM architectures: published configs, instantiated with random weights.

Latency and memory depend on the architecture, not on the weight values, so a zoo
entry is just the model's published Hugging Face ``config.json`` kept as data
(``zoo/models/<name>.json``) with where it came from.
"""

from slmdeploy.zoo.registry import ZooEntry, get, names

__all__ = ["ZooEntry", "get", "names"]
