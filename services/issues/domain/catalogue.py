"""The category catalogue: the five problem categories (DOMAIN.md) and their subcategories.

``categories.toml`` names them so that a community can tune the subcategories without a release;
:mod:`services.issues.rules_files` reads the file and :func:`catalogue_from_dict` validates it.
Each subcategory is also an Open311 service (``service_code = <category>.<subcategory>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.errors import Invalid
from shared.events import CATEGORIES

from .policy import PolicyError


@dataclass(frozen=True)
class Subcategory:
    """One kind of problem within a category (an Open311 service)."""

    code: str
    name: str
    description: str


@dataclass(frozen=True)
class Template:
    """A short text the console prefills, in Chinese and English ({} marks what the person fills in)."""

    zh: str
    en: str


#: The templates a category may carry: the case's resolution and the feedback to the 12345 hotline.
TEMPLATE_KINDS = ("resolution", "feedback")


@dataclass(frozen=True)
class CategoryInfo:
    """One of the five categories, its names in English and Chinese, its subcategories and its
    response templates (by kind: ``resolution``, ``feedback``)."""

    code: str
    name: str
    name_zh: str
    subcategories: tuple[Subcategory, ...]
    templates: tuple[tuple[str, Template], ...] = ()


@dataclass(frozen=True)
class Catalogue:
    """The five categories and their subcategories; each subcategory is an Open311 service."""

    categories: tuple[CategoryInfo, ...]

    def get(self, category: str) -> CategoryInfo | None:
        """The category with this code (None when unknown)."""
        return next((c for c in self.categories if c.code == category), None)

    def has(self, category: str, subcategory: str | None) -> bool:
        """Whether the category exists and, when one is named, has this subcategory."""
        info = self.get(category)
        return info is not None and (subcategory is None or any(s.code == subcategory for s in info.subcategories))

    def check(self, category: str, subcategory: str | None) -> None:
        """Refuse a subcategory the category does not have (422 naming ``subcategory`` and the known ones)."""
        if not self.has(category, subcategory):
            known = ", ".join(self.subcategory_codes(category))
            raise Invalid(f"unknown subcategory {subcategory!r} of {category}; one of {known}", field="subcategory")

    def subcategory_codes(self, category: str) -> list[str]:
        """The codes of a category's subcategories, in catalogue order."""
        info = self.get(category)
        return [s.code for s in info.subcategories] if info else []

    def services(self) -> list[tuple[CategoryInfo, Subcategory]]:
        """Every (category, subcategory) pair: the Open311 services."""
        return [(c, s) for c in self.categories for s in c.subcategories]

    def service(self, service_code: str) -> tuple[CategoryInfo, Subcategory] | None:
        """The category and subcategory behind an Open311 service code (None when unknown)."""
        category, _, sub = service_code.partition(".")
        info = self.get(category)
        if info is None:
            return None
        found = next((s for s in info.subcategories if s.code == sub), None)
        return (info, found) if found else None


def service_code(category: str, subcategory: str | None) -> str:
    """The Open311 service code of a category and subcategory."""
    return f"{category}.{subcategory or 'other'}"


def catalogue_from_dict(raw: dict[str, Any]) -> Catalogue:
    """Build and validate a :class:`Catalogue` from the parsed TOML (every category, no other)."""
    cats = []
    for code in CATEGORIES:
        entry = raw.get(code)
        if entry is None:
            raise PolicyError(f"category {code} is missing from the catalogue")
        subs = tuple(
            Subcategory(str(s["code"]), str(s.get("name", s["code"])), str(s.get("description", "")))
            for s in entry.get("sub", [])
        )
        cats.append(
            CategoryInfo(
                code,
                str(entry.get("name", code)),
                str(entry.get("name_zh", "")),
                subs,
                _templates(code, entry.get("templates", {})),
            )
        )
    extra = set(raw) - set(CATEGORIES)
    if extra:
        raise PolicyError(f"unknown categories in the catalogue: {sorted(extra)}")
    return Catalogue(tuple(cats))


def _templates(category: str, raw: Any) -> tuple[tuple[str, Template], ...]:
    """A category's templates: each kind of TEMPLATE_KINDS at most once, each with a zh and an en text."""
    if not isinstance(raw, dict):
        raise PolicyError(f"{category}.templates must be a table")
    unknown = set(raw) - set(TEMPLATE_KINDS)
    if unknown:
        raise PolicyError(f"{category}.templates: unknown kinds {sorted(unknown)}; one of {', '.join(TEMPLATE_KINDS)}")
    out = []
    for kind in TEMPLATE_KINDS:
        if kind not in raw:
            continue
        text = raw[kind]
        if (
            not isinstance(text, dict)
            or set(text) != {"zh", "en"}
            or not all(isinstance(v, str) and v for v in text.values())
        ):
            raise PolicyError(f"{category}.templates.{kind} must have a zh and an en text, nothing else")
        out.append((kind, Template(zh=text["zh"], en=text["en"])))
    return tuple(out)
