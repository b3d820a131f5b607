"""The distribution installs and imports every subpackage, both as a regular install into a
fresh virtual environment and as an editable install.

Each fresh environment gets the test environment's site-packages appended to its path (for
the dependencies and the build backend), but not its editable finder, so the ``cellrig`` it
imports is the one installed here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SUBPACKAGES = ("cellrig.protocols", "cellrig.drivers", "cellrig.simulators", "cellrig.daemon")
IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "*.egg-info", "build", "dist", "__pycache__", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", ".hypothesis", "out",
)
PROBE = f"""
import json, cellrig, importlib
mods = {{name: importlib.import_module(name).__file__ for name in {SUBPACKAGES!r}}}
from cellrig.protocols.library import library_files
mods["library"] = [entry.name for entry in library_files()]
mods["version"] = cellrig.__version__
print(json.dumps(mods))
"""


def _fresh_venv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    (Path(site) / "outer_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _install(python: Path, source: Path, editable: bool) -> None:
    command = [str(python), "-m", "pip", "install", "--quiet", "--no-deps",
               "--no-build-isolation", "--no-index"]
    command += ["-e", str(source)] if editable else [str(source)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _probe(python: Path) -> dict[str, object]:
    result = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True,
                            check=False, cwd="/")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("editable", [False, True], ids=["regular", "editable"])
def test_install_imports_every_subpackage(tmp_path: Path, editable: bool) -> None:
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=IGNORE)
    python = _fresh_venv(tmp_path / "venv")
    _install(python, source, editable)
    found = _probe(python)
    for name in SUBPACKAGES:
        location = Path(str(found[name]))
        folder = name.split(".")[1]
        if editable:
            assert location == source / folder / "__init__.py", location
        else:
            assert "site-packages" in location.parts, location
            assert location.parent.name == folder
    library = found["library"]
    assert isinstance(library, list)
    assert library, "the protocol library was not installed with the package"
    assert found["version"] != "0.0.0+unknown"
    cli = python.parent / "cellrig"
    result = subprocess.run([str(cli), "library", "--quiet"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all valid" in result.stdout
