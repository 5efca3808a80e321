"""Subcommands of `holepunch` that live outside cli.py (to keep that module small)."""
