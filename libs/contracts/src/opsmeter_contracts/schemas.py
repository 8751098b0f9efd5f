"""JSON Schemas of every event, generated from the models and checked in under ``libs/contracts/schemas``.

Run ``python -m opsmeter_contracts.schemas --write`` after changing an event.
"""

import json
import sys
from pathlib import Path
from typing import Any

from opsmeter_contracts import registry

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def generated_schemas() -> dict[str, dict[str, Any]]:
    schemas: dict[str, dict[str, Any]] = {}
    for model in registry.registered():
        event_type = model.model_fields["type"].default
        version = model.model_fields["version"].default
        schema = model.model_json_schema(mode="serialization")
        schema["$id"] = f"https://schemas.opsmeter.io/events/{event_type}.v{version}.json"
        schemas[f"{event_type}.v{version}.json"] = schema
    return schemas


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    if "--write" in argv:
        SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
        for name, schema in generated_schemas().items():
            (SCHEMA_DIR / name).write_text(render(schema))
        print(f"wrote {len(registry.registered())} schemas to {SCHEMA_DIR}")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
