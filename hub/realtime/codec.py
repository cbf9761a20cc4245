"""orjson as the JSON module of Socket.IO and Engine.IO packets (both call dumps/loads only)."""

from __future__ import annotations

from typing import Any

import orjson


class OrjsonModule:
    """Duck-types the `json` module: python-socketio passes `separators=`, which orjson's compact
    output already satisfies."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return orjson.dumps(obj, default=str).decode()

    @staticmethod
    def loads(text: str | bytes, **_: Any) -> Any:
        return orjson.loads(text)


orjson_json = OrjsonModule()
