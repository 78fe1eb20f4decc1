"""Typer commands that live in their own module (registered in :mod:`lpipscli.cli`)."""
