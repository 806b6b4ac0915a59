"""Entrypoints: the composition root (bootstrap), the Flask app, the CLI and the worker."""
