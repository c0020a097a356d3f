"""docs/protocol.md lists exactly the messages and error codes the code knows."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from brushlink.plugin.errors import ERROR_CLASSES
from brushlink.plugin.frames import SLOTS
from brushlink.plugin.protocol import MESSAGES, PROTOCOL_VERSION

DOC = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()


def test_every_message_has_a_section_and_no_section_is_stale() -> None:
    documented = set(re.findall(r"^### `(\w+)`", DOC, re.M))
    assert documented == set(MESSAGES)


def test_each_message_section_names_its_direction_and_fields() -> None:
    for name, cls in MESSAGES.items():
        section = DOC.split(f"### `{name}`", 1)[1].split("\n### ", 1)[0]
        heading = (
            "## Client → server" if cls.direction == "client->server" else "## Server → client"
        )
        assert DOC.index(heading) < DOC.index(f"### `{name}`")
        for field in fields(cls):
            if field.name != "image":  # a preview's PNG travels in its binary frame
                assert f"`{field.name}`" in section, f"{name}.{field.name} is not documented"


def test_every_error_code_is_documented_and_none_is_invented() -> None:
    table = DOC.split("## Error codes", 1)[1].split("## Changelog", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", table, re.M))
    assert documented == set(ERROR_CLASSES) - {"error"}


def test_frame_slots_and_version_match() -> None:
    for name, code in SLOTS.items():
        assert f"`{code}` {name}" in DOC
    assert f"version {PROTOCOL_VERSION}" in DOC.splitlines()[0]


def test_every_link_between_the_documents_leads_somewhere() -> None:
    repo = Path(__file__).resolve().parents[1]
    broken = []
    for doc in [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(repo)} -> {target}")
    assert broken == []
