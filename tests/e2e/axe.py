"""axe-core in the browser tests: the WCAG A and AA rules (2.0, 2.1 and 2.2) run on a loaded page.

axe-core 4.14.1, vendored in ``tests/e2e/vendor/axe-core/`` (README.txt there says how to update).

The pages' Content-Security-Policy runs no inline script, so a ``<script>`` tag added to the page
(``page.add_script_tag``) is refused. ``page.evaluate`` is not: Playwright sends it over the
DevTools protocol, which the page's policy does not govern, and axe defines ``window.axe`` in the
page's own world, where it sees the document as a visitor's browser does.

    assert_accessible(page, "the booking form with errors")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE_JS = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"

# The rules of WCAG 2.0, 2.1 and 2.2 at levels A and AA; best-practice and AAA rules are not run.
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa")

# How many offending elements of one rule the failure message shows; the rest are counted.
SHOWN_NODES = 3

RUN_AXE = """async ([exclude, tags, waived]) => {
  const context = exclude.length
    ? {include: [document], exclude: exclude.map((selector) => [selector])}
    : document;
  const results = await window.axe.run(context, {
    runOnly: {type: "tag", values: tags},
    resultTypes: ["violations"],
  });
  // A waiver covers one rule on the elements its selector matches, and nothing else.
  return results.violations
    .map((violation) => ({
      ...violation,
      nodes: violation.nodes.filter((node) => {
        const selector = waived[violation.id];
        const element = selector && document.querySelector(node.target[0]);
        return !(element && element.matches(selector));
      }),
    }))
    .filter((violation) => violation.nodes.length > 0);
}"""


@cache
def axe_source() -> str:
    # Wrapped in a function so that Playwright calls it rather than guessing whether the file's
    # text is an expression; axe attaches itself to ``window`` either way.
    return "() => {\n" + AXE_JS.read_text(encoding="utf-8") + "\n}"


def axe_violations(
    page: Page, *, exclude: Sequence[str] = (), waive: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """axe's violations of the WCAG A/AA rules on the page as it is now, as axe reports them
    (``id``, ``impact``, ``help``, ``helpUrl``, ``nodes``…).

    ``exclude``: CSS selectors of elements left out of every rule. ``waive``: rule id → CSS
    selector of the elements whose breach of that one rule is accepted, for markup we cannot
    change (a third-party widget's); each use says why where it is made.
    """
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    violations: list[dict[str, Any]] = page.evaluate(
        RUN_AXE, [list(exclude), list(WCAG_TAGS), dict(waive or {})]
    )
    return violations


def describe(violations: Sequence[dict[str, Any]]) -> str:
    """One paragraph per rule: id, impact and help, then the first few elements (selector and
    HTML) that break it."""
    lines: list[str] = []
    for violation in violations:
        nodes = violation["nodes"]
        lines.append(
            f"- {violation['id']} ({violation['impact']}): {violation['help']}"
            f" [{len(nodes)} element{'s' if len(nodes) != 1 else ''}] {violation['helpUrl']}"
        )
        for node in nodes[:SHOWN_NODES]:
            target = " ".join(str(part) for part in node["target"])
            lines.append(f"    {target}: {node['html']}")
            summary = node.get("failureSummary")
            if summary:
                lines.extend(f"      {line}" for line in summary.splitlines())
        if len(nodes) > SHOWN_NODES:
            lines.append(f"    … and {len(nodes) - SHOWN_NODES} more")
    return "\n".join(lines)


def assert_accessible(
    page: Page,
    what: str,
    *,
    exclude: Sequence[str] = (),
    waive: Mapping[str, str] | None = None,
) -> None:
    """Fail, naming each broken rule and the elements that break it, unless axe finds no
    violation of the WCAG A/AA rules on the page. ``what`` names the page and its state;
    ``exclude`` and ``waive`` as for :func:`axe_violations`."""
    violations = axe_violations(page, exclude=exclude, waive=waive)
    if violations:
        raise AssertionError(
            f"{what} ({page.url}): {len(violations)} accessibility rule"
            f"{'s' if len(violations) != 1 else ''} broken\n{describe(violations)}"
        )
