"""The station service: configuration, jobs, store, safety, sinks, control plane and the CLI."""
