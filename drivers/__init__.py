"""Instrument ports and the drivers of real instruments (pyvisa, pyserial, Modbus)."""
