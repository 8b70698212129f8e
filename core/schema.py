"""What the API schema says about errors: the one body of core.errors' handler, and the status
codes every write can answer with."""

from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """Every error body: what to change, and the input it concerns (null when none). A
    validation error also maps each bad field to its messages."""

    detail = serializers.CharField()
    field = serializers.CharField(allow_null=True)


def error_responses(*codes: int) -> dict:
    """``extend_schema(responses=...)`` entries for these error status codes."""
    return {code: ErrorSerializer for code in codes}


# A write: a bad value (400), not allowed (401/403), no such object (404), wrong state (409).
WRITE_ERRORS = error_responses(400, 401, 403, 404, 409)
READ_ERRORS = error_responses(400, 401, 403, 404)


_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_ERROR_TEXT = {
    "400": "A bad value: `field` names it, `detail` says what to give.",
    "401": "Not logged in (session) or no valid token.",
    "403": "Your role may not do this (core.access).",
    "404": "No such object (or not yours).",
}


def document_errors(result, generator, request, public):
    """SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]: every operation documents the error bodies
    of core.errors' handler: 400, 401 and 403 always, 404 where the path names an object. (409
    and 429 are declared by the operations that can answer them.)"""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault(
        "Error",
        {
            "type": "object",
            "description": ErrorSerializer.__doc__.split("\n\n")[0].replace("\n    ", " "),
            "properties": {
                "detail": {"type": "string"},
                "field": {"type": "string", "nullable": True},
            },
            "required": ["detail", "field"],
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    )
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            codes = ["400", "401", "403"] + (["404"] if "{" in path else [])
            for code in codes:
                operation["responses"].setdefault(
                    code,
                    {
                        "description": _ERROR_TEXT[code],
                        "content": {"application/json": {"schema": _ERROR_REF}},
                    },
                )
    return result
