"""OpenAPI 3.1, generated from the routes' own Operations and pydantic models."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema

from handlers.http import Operation
from hub.schemas.common import ErrorEnvelope

_REF_TEMPLATE = "#/components/schemas/{model}"
_ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing, invalid or expired token",
    403: "Not allowed for this role or owner",
    404: "Not found (or not visible to the caller)",
    409: "Conflict",
    413: "Body over 1 MiB",
    422: "Validation error",
    429: "Rate limited",
    503: "Database unavailable",
}


class _Schemas:
    """Collects component schemas; every model is referenced, none inlined twice."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def ref(self, annotation: Any, mode: str) -> dict[str, Any]:
        adapter = annotation if isinstance(annotation, TypeAdapter) else TypeAdapter(annotation)
        schema = adapter.json_schema(ref_template=_REF_TEMPLATE, mode=mode, schema_generator=GenerateJsonSchema)  # type: ignore[arg-type]
        self.components.update(schema.pop("$defs", {}))
        if "title" in schema and schema.get("type") == "object":
            name = schema["title"]
            self.components[name] = schema
            return {"$ref": _REF_TEMPLATE.format(model=name)}
        return schema


def _parameters(path: str, query: type[BaseModel] | None, schemas: _Schemas) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in _path_names(path)
    ]
    if query is not None:
        schema = query.model_json_schema(ref_template=_REF_TEMPLATE)
        schemas.components.update(schema.pop("$defs", {}))
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            parameters.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    return parameters


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def build_spec(operations: Iterable[Operation], *, title: str, version: str) -> dict[str, Any]:
    schemas = _Schemas()
    error_ref = schemas.ref(ErrorEnvelope, "serialization")
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        responses: dict[str, Any] = {}
        success: dict[str, Any] = {"description": op.summary}
        if op.response is not None:
            success["content"] = {"application/json": {"schema": schemas.ref(op.response, "serialization")}}
        if op.path.endswith(("/markets", "/products", "/orders", "/users")) and op.method == "get":
            success["headers"] = {"X-Total-Count": {"schema": {"type": "integer"}, "description": "All matches"}}
        responses[str(op.status)] = success
        for status, description in op.also.items():
            responses[str(status)] = {**success, "description": description}
        codes = set(op.errors) | {429, 503} | ({401} if op.auth else set()) | ({422} if op.body or op.query else set())
        if op.body:
            codes |= {400, 413}
        for code in sorted(codes):
            responses[str(code)] = {
                "description": _ERROR_TEXT.get(code, "Error"),
                "content": {"application/json": {"schema": error_ref}},
            }
        operation: dict[str, Any] = {
            "summary": op.summary,
            "operationId": f"{op.method}_{op.path}".replace("/", "_").replace("{", "").replace("}", ""),
            "tags": [op.tag],
            "responses": responses,
        }
        parameters = _parameters(op.path, op.query, schemas)
        for name, header in op.headers.items():
            parameters.append({"name": name, "in": "header", "required": False, "description": header.description,
                               "schema": schemas.ref(header.annotation, "validation")})  # fmt: skip
        if parameters:
            operation["parameters"] = parameters
        if op.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schemas.ref(op.body, "validation")}},
            }
        if op.auth:
            operation["security"] = [{"bearerAuth": []}]
        paths.setdefault(op.path, {})[op.method] = operation
    spec = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
    return _titled_components(spec)


def _titled_components(spec: dict[str, Any]) -> dict[str, Any]:
    """Nested models are keyed by class name; the public models (hub/schemas/public.py, `OrderPublic`) go by
    their title (`Order`), the name the contract gives them."""
    components: dict[str, Any] = spec["components"]["schemas"]
    renames = {name: schema["title"] for name, schema in components.items() if name.endswith("Public")}
    if not renames:
        return spec
    text = orjson.dumps(spec).decode()
    for name, title in renames.items():
        text = text.replace(f'"{_REF_TEMPLATE.format(model=name)}"', f'"{_REF_TEMPLATE.format(model=title)}"')
    renamed: dict[str, Any] = orjson.loads(text)
    schemas = renamed["components"]["schemas"]
    renamed["components"]["schemas"] = {renames.get(name, name): schema for name, schema in schemas.items()}
    return renamed
