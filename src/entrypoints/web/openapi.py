"""The OpenAPI 3.1 document, generated from the views' declared shapes, and the /docs page.

Each view declares its operation with ``@operation(...)``: the query and body models it parses
with, the response model per status, its headers and security. ``openapi_document(app)`` walks
the app's URL map, so a route without a declaration fails the document (and the tests), and the
statuses every route may answer (a malformed body, an unknown id, a refused query) are added
from what the route takes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from attrs import field, frozen
from flask import Blueprint, Flask, current_app, jsonify
from flask import Response as FlaskResponse
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from werkzeug.routing import Rule

from entrypoints.web import schemas
from entrypoints.web.ids import IdConverter

bp = Blueprint("docs", __name__)
_STATIC = Path(__file__).parent / "static"

HTML: Literal["html"] = "html"
# A page's refusal: its own HTML page, or the app's problem when the request never reaches the
# view (an id the converter refuses: 404; a control character in the query: 422).
HTML_OR_PROBLEM: Literal["html-or-problem"] = "html-or-problem"
# A response body: a model, an HTML page, (media type, schema) for anything else, or none.
Body = type[BaseModel] | Literal["html", "html-or-problem"] | tuple[str, Mapping[str, Any]] | None
F = TypeVar("F", bound=Callable[..., Any])

_REF = "#/components/schemas/{model}"
_ATTRIBUTE = "__openapi__"


@frozen(kw_only=True)
class Header:
    name: str
    description: str
    required: bool = False
    schema: Mapping[str, Any] = field(factory=lambda: {"type": "string"})


@frozen(kw_only=True)
class Operation:
    summary: str
    responses: Mapping[int, tuple[str, Body]]
    query: type[BaseModel] | None = None
    # query parameters whose text is JSON, with the model it must satisfy (the tRPC input)
    query_json: Mapping[str, type[BaseModel]] = field(factory=dict)
    body: type[BaseModel] | None = None
    body_required: bool = True
    raw_body: bool = False  # a signed webhook: any JSON object, checked by the signature
    headers: tuple[Header, ...] = ()
    security: bool = False  # a bearer token (manage or admin token)
    session: bool = False  # the session cookie of a signed-in user (with X-CSRF-Token)
    form: Mapping[str, Any] | None = None  # an application/x-www-form-urlencoded body schema
    description: str | None = None
    # OpenAPI links from a status: name -> (endpoint, {parameter: runtime expression})
    links: Mapping[int, Mapping[str, tuple[str, Mapping[str, str]]]] = field(factory=dict)


def operation(
    summary: str,
    *,
    responses: Mapping[int, tuple[str, Body]],
    query: type[BaseModel] | None = None,
    query_json: Mapping[str, type[BaseModel]] | None = None,
    body: type[BaseModel] | None = None,
    body_required: bool = True,
    raw_body: bool = False,
    headers: tuple[Header, ...] = (),
    security: bool = False,
    session: bool = False,
    form: Mapping[str, Any] | None = None,
    description: str | None = None,
    links: Mapping[int, Mapping[str, tuple[str, Mapping[str, str]]]] | None = None,
) -> Callable[[F], F]:
    """Declare a view's operation for the document (the view parses with the same models)."""
    op = Operation(
        summary=summary,
        responses=responses,
        query=query,
        query_json=query_json or {},
        body=body,
        body_required=body_required,
        raw_body=raw_body,
        headers=headers,
        security=security,
        session=session,
        form=form,
        description=description,
        links=links or {},
    )

    def mark(view: F) -> F:
        setattr(view, _ATTRIBUTE, op)
        return view

    return mark


def problem(description: str) -> tuple[str, Body]:
    return description, schemas.Problem


WEBHOOK_RESPONSES: Mapping[int, tuple[str, Body]] = {
    200: ("received (or ignored: an unknown event type)", schemas.Received),
    400: problem("invalid_signature / invalid_payload"),
}


def _path(rule: Rule) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)


def _path_parameters(rule: Rule) -> list[dict[str, Any]]:
    params = []
    for name, converter in rule._converters.items():
        if isinstance(converter, IdConverter):
            schema = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
        else:
            schema = {
                "type": "string",
                "minLength": 1,
                "pattern": "^[^/" + schemas.PARAMETER_PATTERN.removeprefix("^[^"),
            }
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def _query_parameters(model: type[BaseModel], refs: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=_REF, mode="validation")
    for name, definition in schema.get("$defs", {}).items():
        refs.setdefault(name, definition)
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema["properties"].items():
        prop = _without_null(dict(prop))
        description = prop.pop("description", None)
        prop.pop("title", None)
        prop.pop("default", None)
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if description:
            param["description"] = description
        params.append(param)
    return params


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter is absent, never null: drop pydantic's ``null`` branch."""
    branches = schema.get("anyOf")
    if isinstance(branches, list):
        rest = [b for b in branches if b != {"type": "null"}]
        if len(rest) == 1:
            schema = {**{k: v for k, v in schema.items() if k != "anyOf"}, **rest[0]}
        else:
            schema = {**schema, "anyOf": rest}
    return schema


def _content(media: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    return {media: {"schema": dict(schema)}}


def openapi_document(app: Flask) -> dict[str, Any]:
    """The document for every route of ``app``; raises LookupError for an undeclared view."""
    ops: list[tuple[Rule, str, Operation]] = []
    models: set[tuple[type[BaseModel], Literal["validation", "serialization"]]] = {
        (schemas.Problem, "serialization")
    }
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        op = getattr(view, _ATTRIBUTE, None)
        if not isinstance(op, Operation):
            raise LookupError(f"{rule.endpoint} declares no @operation")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            ops.append((rule, method.lower(), op))
        if op.body is not None:
            models.add((op.body, "validation"))
        for query_model in op.query_json.values():
            models.add((query_model, "validation"))
        for _, body in op.responses.values():
            if isinstance(body, type):
                models.add((body, "serialization"))

    ordered = sorted(models, key=lambda m: (m[0].__name__, m[1]))
    mapping, definitions = models_json_schema(ordered, ref_template=_REF)
    components: dict[str, Any] = dict(definitions.get("$defs", {}))

    def ref(model: type[BaseModel], mode: Literal["validation", "serialization"]) -> Any:
        return mapping[(model, mode)]

    paths: dict[str, dict[str, Any]] = {}
    for rule, method, op in ops:
        parameters = _path_parameters(rule)
        if op.query is not None:
            parameters += _query_parameters(op.query, components)
        for param in parameters:
            json_model = op.query_json.get(param["name"])
            if json_model is not None and param["in"] == "query":
                inner = ref(json_model, "validation")
                wrapped = {"type": "object", "required": ["json"], "properties": {"json": inner}}
                param.pop("schema", None)
                param["content"] = _content("application/json", {"anyOf": [inner, wrapped]})
        for header in op.headers:
            parameters.append(
                {
                    "name": header.name,
                    "in": "header",
                    "required": header.required,
                    "description": header.description,
                    "schema": dict(header.schema),
                }
            )
        responses: dict[str, Any] = {}
        for status, (description, shape) in sorted(_all_responses(rule, op).items()):
            answer: dict[str, Any] = {"description": description}
            if shape == HTML:
                answer["content"] = _content("text/html", {"type": "string"})
            elif shape == HTML_OR_PROBLEM:
                answer["content"] = {
                    **_content("text/html", {"type": "string"}),
                    **_content("application/problem+json", ref(schemas.Problem, "serialization")),
                }
            elif shape is schemas.Problem:
                answer["content"] = _content(
                    "application/problem+json", ref(schemas.Problem, "serialization")
                )
            elif isinstance(shape, type):
                answer["content"] = _content("application/json", ref(shape, "serialization"))
            elif isinstance(shape, tuple):
                answer["content"] = _content(*shape)
            if status in op.links:
                answer["links"] = {
                    name: {"operationId": endpoint, "parameters": dict(parameters)}
                    for name, (endpoint, parameters) in op.links[status].items()
                }
            responses[str(status)] = answer
        item: dict[str, Any] = {
            "operationId": f"{rule.endpoint}.{method}" if _shared(rule) else rule.endpoint,
            "summary": op.summary,
            "responses": responses,
        }
        if op.description:
            item["description"] = op.description
        if parameters:
            item["parameters"] = parameters
        if op.body is not None:
            item["requestBody"] = {
                "required": op.body_required,
                "content": _content("application/json", ref(op.body, "validation")),
            }
        elif op.raw_body:
            item["requestBody"] = {
                "required": True,
                "content": _content("application/json", {"type": "object"}),
            }
        elif op.form is not None:
            item["requestBody"] = {
                "required": True,
                "content": _content("application/x-www-form-urlencoded", op.form),
            }
        none: list[str] = []
        security = ([{"bearer": none}] if op.security else []) + (
            [{"session": none}] if op.session else []
        )
        if security:
            item["security"] = security
        paths.setdefault(_path(rule), {})[method] = item

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Practitioner booking service",
            "version": "0.1.0",
            "description": "Book a practitioner, pay with Stripe Checkout, manage the booking.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "manage token (shown once at booking) or admin token",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "booking_session",
                    "description": "set by /auth/callback; state-changing requests also send "
                    "X-CSRF-Token (from GET /api/me)",
                },
            },
        },
    }


def _shared(rule: Rule) -> bool:
    """Whether the rule's endpoint serves more than one method (its ids need the method)."""
    return len((rule.methods or set()) - {"HEAD", "OPTIONS"}) > 1


def _all_responses(rule: Rule, op: Operation) -> dict[int, tuple[str, Body]]:
    """The declared responses plus what the app answers for any route that takes input."""
    out: dict[int, tuple[str, Body]] = {}
    if op.body is not None or op.raw_body:
        out[400] = problem("bad_request: the body is not a JSON object")
        out[413] = problem("payload_too_large")
    if op.body is not None:
        out[415] = problem("unsupported_media_type: send application/json")
        out[422] = problem("validation_error: errors names each refused field")
    # Any route: a query parameter or path segment with a control character is refused.
    out.setdefault(422, problem("validation_error: errors names each refused parameter"))
    if rule.arguments:
        out[404] = problem("not_found: no such id")
    if op.security or op.session:
        out[401] = problem("unauthorized: no or a wrong token, or not signed in")
    out.update(op.responses)
    return out


@functools.cache
def _read(name: str) -> str:
    return (_STATIC / name).read_text(encoding="utf-8")


def _static(name: str, mimetype: str) -> FlaskResponse:
    response = FlaskResponse(_read(name), mimetype=mimetype)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/openapi.json")
@operation(
    "This document", responses={200: ("OpenAPI 3.1", ("application/json", {"type": "object"}))}
)
def openapi_json() -> FlaskResponse:
    document = current_app.extensions.get("booking.openapi")
    if document is None:
        document = openapi_document(current_app)
        current_app.extensions["booking.openapi"] = document
    return jsonify(document)


@bp.get("/docs")
@operation("This document, rendered", responses={200: ("HTML page", HTML)})
def docs_page() -> FlaskResponse:
    # The page and its script are files (no inline script, so it runs under a CSP of
    # ``default-src 'self'``); they fetch nothing but /openapi.json from this server.
    return _static("docs.html", "text/html")


@bp.get("/docs/docs.js")
@operation(
    "The script of /docs", responses={200: ("JavaScript", ("text/javascript", {"type": "string"}))}
)
def docs_script() -> FlaskResponse:
    return _static("docs.js", "text/javascript")


@bp.get("/docs/docs.css")
@operation("The style sheet of /docs", responses={200: ("CSS", ("text/css", {"type": "string"}))})
def docs_style() -> FlaskResponse:
    return _static("docs.css", "text/css")
