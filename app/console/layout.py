"""What every console page's layout needs: the sections of the navigation bar, each shown only when
its page exists (the console's pages are added section by section)."""

from flask import current_app, request, url_for

from app.console import bp

# The navigation bar: (endpoint, label), in the order shown.
SECTIONS = (
    ("console.dashboard", "首页"),
    ("console.members", "党员"),
    ("console.activities", "活动"),
    ("console.orglife", "组织生活"),
    ("console.notices", "通知"),
    ("console.wishes", "心愿"),
    ("console.points", "积分"),
)


def section_links() -> list[dict]:
    """The sections whose endpoint exists, with their address and whether the page is in them."""
    links = []
    for endpoint, label in SECTIONS:
        if endpoint not in current_app.view_functions:
            continue  # the section's pages are not built (yet): no link to a 404
        url = url_for(endpoint)
        here = request.endpoint == endpoint or (
            endpoint != "console.dashboard" and (request.endpoint or "").startswith(endpoint + "_"))
        links.append({"url": url, "label": label, "active": here})
    return links


def link_to(endpoint: str, **values) -> str | None:
    """The address of `endpoint`, or None when no such page exists (a template hides the link)."""
    if endpoint not in current_app.view_functions:
        return None
    return url_for(endpoint, **values)


@bp.context_processor
def layout_helpers() -> dict:
    return {"section_links": section_links, "link_to": link_to}
