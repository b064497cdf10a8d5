"""Every console template compiles, and every label it names exists in both languages."""

from __future__ import annotations

import re

from services.console.web.i18n import catalogue
from services.console.web.render import ENV, TEMPLATES


def test_every_template_compiles() -> None:
    names = sorted(p.name for p in TEMPLATES.glob("*.html"))
    assert names, "no templates found"
    for name in names:
        ENV.get_template(name)  # raises TemplateSyntaxError on a broken one


def test_every_label_a_template_names_is_in_the_catalogue() -> None:
    labels = catalogue()
    named = {
        key for path in TEMPLATES.glob("*.html") for key in re.findall(r"\bt\('([a-z0-9_]+)'\s*[,)]", path.read_text())
    }
    assert named, "the templates name no labels"
    assert sorted(named - set(labels)) == []
