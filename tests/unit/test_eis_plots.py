"""Nyquist and Bode plots are written as PNG files, with the fits drawn over the spectra."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cellrig.daemon.eis_circuit import DEFAULT_CIRCUIT, Circuit
from cellrig.daemon.eis_fit import fit_spectrum
from cellrig.daemon.eis_plots import bode_png, nyquist_png
from cellrig.protocols.rig import Spectrum

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def spectrum(interface_ohm: float) -> Spectrum:
    frequency = np.geomspace(1e5, 0.1, 36)
    z = Circuit(DEFAULT_CIRCUIT).impedance(frequency, [0.02, interface_ohm, 3e-3, 0.85, 0.01])
    return Spectrum(frequency, z.real, z.imag)


def read_png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_nyquist_of_a_series_with_fits(tmp_path: Path) -> None:
    spectra = [spectrum(0.2), spectrum(0.4)]
    fits = [fit_spectrum(s) for s in spectra]
    path = nyquist_png(tmp_path / "plots" / "nyquist.png", spectra, fits,
                       labels=["2 MPa", "1 MPa"], title="cell-1 at 25 degC")
    assert path == tmp_path / "plots" / "nyquist.png"
    assert read_png_size(path) == (720, 600)


def test_bode_without_fits(tmp_path: Path) -> None:
    path = bode_png(tmp_path / "bode.png", [spectrum(0.2)])
    assert read_png_size(path) == (720, 720)
    assert path.stat().st_size > 10_000
