"""Write the JSON Schema of the response documents for the sidebar's generated TypeScript types.

``python -m jupyter_orchestrate.schemas.export [PATH]`` writes :func:`json_schema` to PATH (default
``labextension/schema/documents.json`` of the source tree); ``npm run build:types`` in ``labextension/``
turns it into ``src/documents.ts`` (json-schema-to-typescript). ``tests/test_documents.py`` fails when the
checked-in schema and the models disagree, and ``npm run check:types`` when documents.ts and the schema do.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from jupyter_orchestrate.schemas.documents import DOCUMENTS
from jupyter_orchestrate.server.handlers import REQUESTS

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "labextension" / "schema" / "documents.json"

#: The models exported, each in the mode its JSON has: documents as the server writes them (serialization),
#: request bodies as it reads them (validation: fields with defaults may be left out).
#: Hook for the event stream: add the event models of ``jupyter_orchestrate.schemas.events`` to ``EXPORTED``
#: (serialization), then regenerate (``python -m jupyter_orchestrate.schemas.export && npm run build:types``).
EXPORTED: tuple[tuple[type[BaseModel], JsonSchemaMode], ...] = (
    *((model, "serialization") for model in DOCUMENTS),
    *((model, "validation") for model in REQUESTS),
)


class _Schema(GenerateJsonSchema):
    """Pydantic's JSON Schema of the JSON the server writes: every field required (the server writes each
    one, also when null or defaulted, unless a model's ``json_schema_extra`` says it may be absent), and no
    per-field titles or ``$ref`` siblings (json-schema-to-typescript would make each a type of its own)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def field_is_required(self, field: Any, total: bool) -> bool:
        return self.mode == "serialization" or super().field_is_required(field, total)

    def generate_definitions(self, inputs: Any) -> Any:
        keys, definitions = super().generate_definitions(inputs)
        return keys, {name: _bare_refs(d) for name, d in definitions.items()}


def _bare_refs(node: Any) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return {"$ref": node["$ref"]}
        return {key: _bare_refs(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_bare_refs(value) for value in node]
    return node


def json_schema() -> dict[str, Any]:
    """The JSON Schema of every exported model (:data:`EXPORTED`), under ``$defs`` by class name."""
    _, schema = models_json_schema(
        list(EXPORTED),
        title="jupyter-orchestrate documents",
        description="Generated from jupyter_orchestrate.schemas.documents; do not edit.",
        schema_generator=_Schema,
    )
    return schema


def schema_text() -> str:
    """:func:`json_schema` as the checked-in file holds it (indented, keys in model order, final newline)."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the schema to ``argv[0]`` (default :data:`SCHEMA_PATH`); returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else SCHEMA_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema_text(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
