"""No code under ``libs/`` or ``services/`` reaches into another library's private parts (STYLE: speed through
libraries, not around them): no aiokafka batch builder internals, no hand-set pydantic instance state, no
subclass of a server's protocol, no hand-written C."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = [
    r"\._builder\b",
    r"_relative_offset",
    r"__pydantic_fields_set__",
    r"__pydantic_extra__",
    r"__pydantic_private__",
    r"object\.__setattr__\(",
    r"\bclass \w+\(\s*(HttpToolsProtocol|H11Protocol)\s*\)",
    r"producer\.client\.cluster",
    r"\._closed\b",
]


def _sources() -> list[Path]:
    found: list[Path] = []
    for top in ("libs", "services"):
        for path in (ROOT / top).rglob("*"):
            if path.suffix in {".py", ".c", ".h", ".pyx"} and "/tests/" not in str(path.relative_to(ROOT)):
                found.append(path)
    return found


def test_no_source_touches_a_private_attribute_of_another_library() -> None:
    sources = _sources()
    assert sources
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sources
        if path.suffix == ".py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for pattern in FORBIDDEN
        if re.search(pattern, line)
    ]
    assert hits == []


def test_there_is_no_hand_written_c() -> None:
    assert [p.relative_to(ROOT) for p in _sources() if p.suffix in {".c", ".h", ".pyx"}] == []
    assert not (ROOT / "libs" / "wire").exists()
