"""Validate JSON-like values against the schemas in ``schemas/`` and explain failures in one line."""

from __future__ import annotations

from typing import Any

import jsonschema

import schemas
from toolkit.errors import SchemaError


def _path_of(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def _best_error(errors: list[jsonschema.ValidationError]) -> jsonschema.ValidationError:
    # The deepest error names the precise field; oneOf/anyOf wrappers only say "not valid under any".
    return max(errors, key=lambda e: (len(e.absolute_path), -len(e.context or [])))


def validate(value: Any, schema_name: str, source: str) -> None:
    """Raise ``SchemaError`` naming ``source``, the failing field and the rule when ``value`` is invalid."""
    schema = schemas.load(schema_name)
    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(value))
    if not errors:
        return
    error = _best_error(errors)
    rule = error.message if len(error.message) <= 200 else error.message[:200] + "..."
    raise SchemaError(f"{source}: field '{_path_of(error)}' {rule} (rule: {schema_name} {error.validator})")
