"""The run: its directory, its configuration checked against the registries, the objects built
from it, its checkpoints and an image folder's split. Training and inference both use it.

Import the modules themselves (``fastmeta.run.directory``, ``fastmeta.run.build``, ...): this
package imports nothing, so checking a configuration stays free of torch.
"""
