"""Sources: one module per kind of input, each yielding work items and owning its pairing rules.

A source turns the command line's inputs into a :class:`~lpipscli.sources.base.SourcePlan`: the pairs
to score (grouped as :class:`~lpipscli.io.dataset.Chunk` work items: one reference and its distorted
versions), what already failed during planning, and a torch ``Dataset`` that decodes the items in
DataLoader workers. Adding a kind of input is one module here plus one entry in :data:`SOURCES`.
"""

from __future__ import annotations

from lpipscli.sources.base import PlanContext, Source, SourcePlan

#: kind -> "module:class"; :func:`open_source` picks the kind from the run configuration
SOURCES = {
    "folders": "lpipscli.sources.folders:FolderSource",
    "pairlist": "lpipscli.sources.pairlist:PairListSource",
    "video": "lpipscli.sources.video:VideoSource",
}


def source_kind(config) -> str:
    """Which source a run configuration asks for."""
    if config.pairs is not None:
        return "pairlist"
    if config.video is not None:
        return "video"
    return "folders"


def open_source(config) -> Source:
    """The source for a run configuration (nothing is decoded yet)."""
    import importlib

    module, _, name = SOURCES[source_kind(config)].partition(":")
    return getattr(importlib.import_module(module), name)(config)


__all__ = ["SOURCES", "PlanContext", "Source", "SourcePlan", "open_source", "source_kind"]
