"""The tracking server: configuration, CLI, Twisted adapters, pipeline, storage."""
