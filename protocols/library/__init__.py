"""Ready-made protocol files; see README.md in this folder."""

from importlib.resources import files
from importlib.resources.abc import Traversable


def library_files() -> list[Traversable]:
    """Every protocol file of the library, sorted by name."""
    folder = files(__name__)
    return sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".yaml")),
        key=lambda entry: entry.name,
    )
