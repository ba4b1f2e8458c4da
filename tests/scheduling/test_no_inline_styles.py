"""No inline styles anywhere: the CSP (style-src 'self' + nonce) refuses style attributes,
and each one is a violation in the browser (the booking panel's typeahead once caused 20).
Templates and the portal's scripts are read as text; the browser tests watch the rest."""

from __future__ import annotations

import re
from pathlib import Path

PORTAL = Path(__file__).resolve().parents[2] / "portal"

# A style attribute in markup (not data-style or the like), a <style> element, and the ways a
# script writes inline style.
IN_MARKUP = re.compile(r"""(?<![\w.-])style\s*=\s*["']|<style\b""", re.IGNORECASE)
IN_SCRIPT = re.compile(r"""\.style\b|setAttribute\(\s*["']style["']|cssText|insertRule""")


def _offences(paths, pattern) -> list[str]:
    found = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(PORTAL)}:{number}: {line.strip()}")
    return found


def test_no_template_has_a_style_attribute_or_element():
    templates = sorted((PORTAL / "templates").rglob("*.html"))
    assert templates
    assert _offences(templates, IN_MARKUP) == []


def test_no_script_of_the_portal_sets_inline_styles():
    scripts = sorted((PORTAL / "static" / "js").rglob("*.js"))
    assert scripts
    assert _offences(scripts, IN_SCRIPT) == []


def test_the_checks_find_what_they_look_for():
    assert IN_MARKUP.search('<div style="top: 3px">') and IN_MARKUP.search("<style nonce=x>")
    assert IN_MARKUP.search("   style='color: red'>")  # an attribute on a line of its own
    assert not IN_MARKUP.search('<div data-style="x" class="btn {{ wording.style }}">')
    assert not IN_MARKUP.search('{%- set style = {"ok": "text-bg-success"} -%}')
    assert IN_SCRIPT.search('option.style.top = "3px";')
    assert IN_SCRIPT.search("el.setAttribute('style', 'x')")
