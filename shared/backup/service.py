"""The backup function's requests (``{"action": ...}``) and their dispatch, shared with agentctl."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from shared.auth.invoker import Invoker, require_operator
from shared.backup.gapic import Database
from shared.backup.jobs import Backups, Progress, _quiet
from shared.backup.restore import Restorer, Target
from shared.settings import Settings

Sink = Annotated[
    str | None,
    Field(
        None,
        pattern=r"^[a-z][a-z0-9-]{0,31}$",
        description="the name of a configured destination (default: NGX_BACKUP_SINK)",
    ),
]
BackupId = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}$")
]


class _Call(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sink: Sink = None


class RunCall(_Call):
    action: Literal["run"]
    collections: list[Annotated[str, Field(pattern=r"^[^/]{1,1500}$")]] | None = Field(
        None, min_length=1, max_length=100
    )

    @field_validator("collections")
    @classmethod
    def _not_reserved(cls, value: list[str] | None) -> list[str] | None:
        if value and any(name.startswith("__") for name in value):
            raise ValueError("collection ids starting with '__' are reserved")
        return value


class ListCall(_Call):
    action: Literal["list"]


class VerifyCall(_Call):
    action: Literal["verify"]
    backup_id: BackupId | None = Field(None, description="default: the newest complete backup")


class RestoreCall(_Call):
    action: Literal["restore"]
    backup_id: BackupId
    target_project: str | None = Field(None, min_length=1, max_length=64)
    target_database: str | None = Field(None, min_length=1, max_length=64)
    prefix: str = Field("", max_length=100, pattern=r"^[^/]*$")
    mode: Literal["only-missing", "overwrite"] = "only-missing"
    dry_run: bool = False
    force: bool = False

    @field_validator("prefix")
    @classmethod
    def _prefix_not_reserved(cls, value: str) -> str:
        if value.startswith("__"):
            raise ValueError("a prefix starting with '__' would make reserved collection ids")
        return value


class PruneCall(_Call):
    action: Literal["prune"]
    keep_last: int | None = Field(None, ge=1, le=10_000)
    keep_days: int | None = Field(None, ge=0, le=36_500)
    dry_run: bool = False


class BackupCall(RootModel[RunCall | ListCall | VerifyCall | RestoreCall | PruneCall]):
    root: Annotated[
        RunCall | ListCall | VerifyCall | RestoreCall | PruneCall, Field(discriminator="action")
    ]


async def perform(
    settings: Settings, call: BackupCall, invoker: Invoker, progress: Progress = _quiet
) -> dict[str, Any]:
    """Run one action for ``invoker``; the JSON report."""
    request = call.root
    backups = Backups(settings, progress)
    if isinstance(request, RunCall):
        manifest = await backups.run(request.sink, request.collections, who=invoker.email)
        return {
            "action": "run",
            **manifest.model_dump(mode="json", exclude={"shards"}),
            "shards": len(manifest.shards),
        }
    if isinstance(request, ListCall):
        return {"action": "list", "backups": await backups.list(request.sink)}
    if isinstance(request, VerifyCall):
        return {"action": "verify", **await backups.verify(request.backup_id, request.sink)}
    if isinstance(request, PruneCall):
        report = await backups.prune(
            request.sink, request.keep_last, request.keep_days, request.dry_run
        )
        return {"action": "prune", **report}
    require_operator(invoker, "restore")
    target = Target(
        Database(
            request.target_project or settings.project_id,
            request.target_database or settings.firestore_database,
        ),
        request.prefix,
    )
    report = await Restorer(settings, progress).restore(
        backups.sink(request.sink),
        request.backup_id,
        target,
        mode=request.mode,
        dry_run=request.dry_run,
        force=request.force,
    )
    return {"action": "restore", **report}
