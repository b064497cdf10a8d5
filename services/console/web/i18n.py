"""The console's bilingual labels (zh-CN first, English by a switch), from ``labels/*.toml``."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

LANGUAGES = ("zh", "en")
LABELS_DIR = Path(__file__).resolve().parent.parent / "labels"


@cache
def catalogue() -> dict[str, dict[str, str]]:
    """Every label by key; a key defined twice, or missing a language, is an error at start-up."""
    labels: dict[str, dict[str, str]] = {}
    for path in sorted(LABELS_DIR.glob("*.toml")):
        for key, texts in tomllib.loads(path.read_text(encoding="utf-8")).items():
            if key in labels:
                raise ValueError(f"label {key} is defined twice ({path.name})")
            missing = [lang for lang in LANGUAGES if not texts.get(lang)]
            if missing:
                raise ValueError(f"label {key} in {path.name} has no {', '.join(missing)}")
            labels[key] = {lang: str(texts[lang]) for lang in LANGUAGES}
    return labels


class Translator:
    """``t(key)`` in one language; an unknown key shows itself (and a test finds it)."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else "zh"
        self._labels = catalogue()

    def __call__(self, key: str, **values: object) -> str:
        texts = self._labels.get(key)
        text = texts[self.lang] if texts else f"⟨{key}⟩"
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in self._labels
