"""Request and response bodies of the dataset and connection endpoints."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from itinera.common.xdm.models import SchemaRef


class DatasetIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    description: str = Field(default="", max_length=4096)
    schema_ref: SchemaRef = Field(alias="schemaRef")
    profile_enabled: bool = Field(default=False, alias="profileEnabled")


class SchemaRefOut(BaseModel):
    id: str
    contentType: str


class DatasetOut(BaseModel):
    id: str
    name: str
    description: str
    schemaRef: SchemaRefOut
    classId: str
    profileEnabled: bool
    sandbox: str
    createdAt: str


class ConnectionIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    description: str = Field(default="", max_length=4096)
    dataset_id: str = Field(alias="datasetId", min_length=1, max_length=128)
    source_name: str = Field(default="", alias="sourceName", max_length=256)


class ConnectionOut(BaseModel):
    id: str
    name: str
    description: str
    datasetId: str
    sourceName: str
    sandbox: str
    inletUrl: str
    batchInletUrl: str
    createdAt: str


class DatasetPage(BaseModel):
    items: list[DatasetOut]


class ConnectionPage(BaseModel):
    items: list[ConnectionOut]
