"""Documents to models and back: the one place that knows BSON ids and datetimes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from bson import ObjectId
from bson.errors import InvalidId
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def new_id() -> str:
    """Ids are stored as 24-hex strings, not BSON ObjectIds: nx-27017 fails to match ObjectId
    values in count_documents, aggregation and non-_id fields (docs/store-backends.md), and
    strings behave the same on every backend."""
    return str(ObjectId())


def parse_id(value: object) -> str | None:
    """The canonical form of an id from a path or body, or None: callers turn None into 'not found'."""
    if not isinstance(value, str) or len(value) != 24:
        return None
    try:
        return str(ObjectId(value))
    except (InvalidId, TypeError):
        return None


def now() -> datetime:
    """UTC now at millisecond precision, the precision BSON keeps, so a write reads back equal."""
    stamp = datetime.now(UTC)
    return stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)


def _plain(value: Any) -> Any:
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def from_document(model: type[M], document: dict[str, Any]) -> M:
    data = _plain(document)
    data["id"] = data.pop("_id")
    return model.model_validate(data)


def to_document(model: BaseModel) -> dict[str, Any]:
    """A model as a document: `id` becomes `_id`."""
    data = model.model_dump(mode="python")
    if "id" in data:
        data["_id"] = data.pop("id")
    return data


def epoch_ms(stamp: datetime) -> int:
    """Datetimes are also stored as integer milliseconds where aggregations filter on them:
    nx-27017 compares datetimes wrongly inside `$match` (docs/store-backends.md)."""
    return int(stamp.timestamp() * 1000)
