"""`TagSelection`: which tags a run reads, as Dagster run config shared by every per-tag asset.

It mirrors `batch/selection.TagFilter` field for field, so the UI form carries descriptions while the reading
code stays free of Dagster; an asset adds its own fields by subclassing (recorded_values' `shards`).
"""

import dataclasses

import dagster as dg
from pydantic import Field

from pi_platform.batch import selection


class TagSelection(dg.Config):
    """Which tags the run reads: `batch/selection.TagFilter` as Dagster run config (UI form, descriptions)."""

    tags: list[str] = Field(default_factory=list, description="explicit tag names")
    name_filter: str = Field(selection.TagFilter.name_filter, description="PI name filter with * and ? wildcards, e.g. 'PLANT1.*'")
    af_template: str | None = Field(None, description="only tags referenced by attributes of elements of this AF template")
    attribute_category: str | None = Field(None, description="only tags referenced by attributes in this category")
    af_database: str | None = Field(None, description="AF database for the AF filters (default: all)")

    def tag_filter(self) -> selection.TagFilter:
        names = {field.name for field in dataclasses.fields(selection.TagFilter)}
        return selection.TagFilter(**{k: v for k, v in self.model_dump().items() if k in names})
