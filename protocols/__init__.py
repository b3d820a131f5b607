"""The protocol language and the step engine: pure code, no I/O, clock injected."""
