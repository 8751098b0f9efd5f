"""The five services' OpenAPI schemas, checked in beside the web app that is typed from them.

``python -m opsmeter_console.schemas --write`` rewrites them (then ``npm run gen:api`` in
services/console/web regenerates the TypeScript types); the tests fail when either drifts.
"""

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "web" / "src" / "api" / "openapi"


def _factories() -> dict[str, Callable[[], object]]:
    from opsmeter_alerting.main import create_app as alerting
    from opsmeter_billing.main import create_app as billing
    from opsmeter_ingest.main import create_app as gateway
    from opsmeter_policy.main import create_app as policy
    from opsmeter_reporting.main import create_app as reporting

    return {"gateway": gateway, "policy": policy, "alerting": alerting, "billing": billing, "reporting": reporting}


def service_schemas() -> dict[str, str]:
    """Each proxied service's OpenAPI document as the stable JSON text that is checked in."""
    schemas: dict[str, str] = {}
    for name, factory in _factories().items():
        app = factory()
        fastapi_app = app if isinstance(app, FastAPI) else getattr(app, "app", None)
        if not isinstance(fastapi_app, FastAPI):
            raise TypeError(f"{name}: create_app() wraps no FastAPI app")
        document: dict[str, Any] = fastapi_app.openapi()
        schemas[name] = json.dumps(document, indent=2, sort_keys=True) + "\n"
    return schemas


def main(argv: list[str]) -> int:
    schemas = service_schemas()
    if "--write" in argv:
        SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
        for name, text in schemas.items():
            (SCHEMA_DIR / f"{name}.json").write_text(text)
        print(f"wrote {len(schemas)} schemas to {SCHEMA_DIR}")
        return 0
    stale = [
        n
        for n, t in schemas.items()
        if not (SCHEMA_DIR / f"{n}.json").is_file() or (SCHEMA_DIR / f"{n}.json").read_text() != t
    ]
    print("stale: " + ", ".join(stale) if stale else "up to date")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
