"""The `turnout` command: one module per command group; `main` parses and dispatches."""

from turnout.cli.main import main

__all__ = ["main"]
