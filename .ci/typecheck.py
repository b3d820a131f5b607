"""Run mypy (strict) on the cellrig package as it is installed: a tree of links maps the
top-level folders to their import names, because mypy does not follow the editable-install
finder that maps ``cellrig.protocols`` to ``protocols/`` and so on."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUBPACKAGES = ("protocols", "drivers", "simulators", "daemon")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="cellrig-mypy-") as stage:
        package = Path(stage) / "cellrig"
        package.mkdir()
        for entry in (ROOT / "cellrig").iterdir():
            if entry.suffix in (".py", ".typed"):
                (package / entry.name).symlink_to(entry)
        for name in SUBPACKAGES:
            (package / name).symlink_to(ROOT / name, target_is_directory=True)
        command = [
            sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
            "--cache-dir", str(ROOT / ".mypy_cache"), "-p", "cellrig",
        ]
        result = subprocess.run(command, cwd=stage, env={**os.environ, "MYPYPATH": stage},
                                check=False)
        return result.returncode


if __name__ == "__main__":
    sys.exit(main())
