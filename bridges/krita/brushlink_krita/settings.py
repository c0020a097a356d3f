"""Where the plugin keeps its state: connection settings in Krita's config, the last
prompt and options in the document itself (an annotation saved inside the .kra)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from krita import Krita
from PyQt5.QtCore import QByteArray

from .core import home
from .options import KritaJob

GROUP = "brushlink"
ANNOTATION = "brushlink/options"


@dataclass
class Settings:
    url: str = ""  # empty: this machine's server, as BRUSHLINK_HOME's config names it
    token: str = ""  # empty: the token file in BRUSHLINK_HOME
    timeout: float = 0.0  # seconds the API waits for a job; 0: no limit

    def resolved_url(self) -> str:
        return self.url.strip() or home.default_url()

    def resolved_token(self) -> str | None:
        return self.token.strip() or home.read_token()

    @classmethod
    def load(cls) -> Settings:
        app = Krita.instance()
        try:
            timeout = float(app.readSetting(GROUP, "timeout", "0") or 0)
        except ValueError:
            timeout = 0.0
        return cls(
            url=app.readSetting(GROUP, "url", ""),
            token=app.readSetting(GROUP, "token", ""),
            timeout=timeout,
        )

    def save(self) -> None:
        app = Krita.instance()
        app.writeSetting(GROUP, "url", self.url)
        app.writeSetting(GROUP, "token", self.token)
        app.writeSetting(GROUP, "timeout", str(self.timeout))


def save_to_document(document, job: KritaJob) -> None:
    """Keep the last prompt and options with the document (they travel inside the .kra)."""
    data = json.dumps(job.to_dict()).encode("utf-8")
    document.setAnnotation(ANNOTATION, "brushlink: last prompt and options", QByteArray(data))


def load_from_document(document) -> KritaJob | None:
    if ANNOTATION not in document.annotationTypes():
        return None
    try:
        data = json.loads(bytes(document.annotation(ANNOTATION)).decode("utf-8"))
    except ValueError:
        return None
    return KritaJob.from_dict(data)
