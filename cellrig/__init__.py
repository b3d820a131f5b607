"""cellrig: a cell tester for battery research labs.

The distribution has one import package with four subpackages, each in a top-level folder of
the repository: ``cellrig.protocols`` (the protocol language and the step engine),
``cellrig.drivers`` (instrument ports and drivers), ``cellrig.simulators`` (the bench model and
wire emulators) and ``cellrig.daemon`` (the station service and the CLI).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cellrig")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
