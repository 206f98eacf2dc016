"""The OpenAPI 3.1 document of the API, made from the route declarations
(`web.routes`) and served at ``GET /api/openapi.json`` (no authentication: it
holds no data, only the shapes).

For each declared route: its path (``{id}`` parameters: integers), method,
summary (the handler's docstring), security (Basic, a Bearer API token or the session
cookie, unless ``auth="none"``), query parameters (the `web.routes.Query` model's fields, by
alias; repeatable ones are arrays, ``style: form, explode: true``), request body
(the `web.routes.JsonBody` model's JSON schema, or the `web.routes.Form` model as
``application/x-www-form-urlencoded``), the success response (the declared
response type's schema, or none for 204) and the error responses (``Error``: the
``{"status", "error", "message"}`` object).  Models are shared in
``components/schemas``.  The document is built once per route table and cached.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel, TypeAdapter

from web.routes import API, Call, Route, RouteTable, route
from web.schemas import ErrorOut

OPENAPI_VERSION = "3.1.0"
_REF = "#/components/schemas/{model}"
_ERROR_STATUSES = {400: "invalid input (the message names the field)",
                   401: "authentication required or wrong credentials",
                   403: "forbidden", 404: "no such resource", 405: "method not allowed",
                   409: "in use", 410: "gone", 413: "body too large",
                   415: "unsupported media type", 429: "too many attempts (Retry-After)",
                   500: "internal error", 502: "upstream failed", 503: "not available"}


class _Schemas:
    """JSON schemas of types, their models collected as components."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, kind: Any, mode: str = "serialization") -> dict[str, Any]:
        schema = TypeAdapter(kind).json_schema(ref_template=_REF, mode=mode)  # type: ignore[arg-type]
        self.components.update(schema.pop("$defs", {}))
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            self.components[kind.__name__] = schema
            return {"$ref": _REF.format(model=kind.__name__)}
        return schema


def _parameters(item: Route, schemas: _Schemas) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "integer", "minimum": 0, "maximum": 10 ** 18 - 1}}
        for name in item.path_params]
    if item.query is not None:
        properties = item.query.model_json_schema(mode="validation", by_alias=True,
                                                  ref_template=_REF).get("properties", {})
        for name, field in item.query.model_fields.items():
            alias = field.alias or name
            schema = dict(properties.get(alias, {}))
            description = schema.pop("description", None) or field.description
            schema.pop("title", None)
            schema.pop("default", None)
            branches = [b for b in schema.get("anyOf", []) if b != {"type": "null"}]
            if len(branches) == 1 and len(schema["anyOf"]) == 2:   # optional: absent, not null
                schema = {**{k: v for k, v in schema.items() if k != "anyOf"}, **branches[0]}
            parameter = {"name": alias, "in": "query", "required": field.is_required(),
                         "schema": schema}
            if description:
                parameter["description"] = description
            if schema.get("type") == "array":
                parameter.update(style="form", explode=True)
            parameters.append(parameter)
    return parameters


def _operation(item: Route, schemas: _Schemas) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": item.handler.__name__,
        "summary": item.summary,
        "tags": [item.path.split("/")[2]],
        "parameters": _parameters(item, schemas),
    }
    if item.auth != "none":
        operation["security"] = [{"basic": []}, {"bearer": []}, {"session": []}]
    if item.body is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": schemas.of(item.body, mode="validation")}}}
    if item.form is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": schemas.of(item.form,
                                                                      mode="validation")}}}
    success: dict[str, Any] = {"description": HTTP_REASONS.get(item.status, "success")}
    if item.status != 204 and item.response is not None:
        schema = schemas.of(item.response)
        success["content"] = {kind: {"schema": schema if kind != "application/geo+json"
                                     else {"type": "object"}} for kind in item.content_types}
    responses: dict[str, Any] = {str(item.status): success}
    statuses = {400, 500, *item.errors}
    if item.auth != "none":
        statuses |= {401, 429}
    if item.auth == "admin":
        statuses.add(403)
    if item.body is not None:
        statuses |= {413, 415}
    error = {"content": {"application/json": {"schema": schemas.of(ErrorOut)}}}
    for status in sorted(statuses):
        responses[str(status)] = {"description": _ERROR_STATUSES.get(status, "error"), **error}
    operation["responses"] = responses
    return operation


HTTP_REASONS = {200: "OK", 202: "Accepted", 204: "No Content"}


def openapi_document(table: RouteTable, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route in `table`."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for item in table.routes:
        paths.setdefault(item.path, {})[item.method.lower()] = _operation(item, schemas)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Tracker API", "version": version,
                 "description": "Traccar-compatible REST API of the Tracker server."},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer"},   # POST /api/session/token
                "session": {"type": "apiKey", "in": "cookie", "name": "JSESSIONID"},
            },
        },
    }


@functools.cache
def _cached(table: RouteTable, count: int, version: str) -> dict[str, Any]:
    return openapi_document(table, version)


@route("GET", "/api/openapi.json", response=dict[str, Any], auth="none")
async def get_openapi(call: Call) -> Any:
    """This document."""
    return _cached(API, len(API.routes), call.context.version)


__all__ = ["OPENAPI_VERSION", "get_openapi", "openapi_document"]
