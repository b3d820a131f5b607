"""The bench model (cell, chamber, jig) and wire-level emulators of real instruments."""
