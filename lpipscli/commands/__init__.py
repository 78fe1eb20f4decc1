"""Sub-commands that live outside cli.py (imported lazily; nothing here imports torch at import time)."""
