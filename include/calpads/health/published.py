"""What integration_health publishes in ``<calpads_publish_root>/integration/``: the data-flow page
(``data_flows.html`` / ``.md``) and the latest checks (``health.json``, read by the deadline watch).

Through calpads.publish.target, like the CALPADS run folders: the publish root must already exist (a share
that is not mounted fails the task, PublishShareError, and is never replaced by a local folder); files are
0640 and the folder 0750 from their first byte, whatever the umask; each file is written under a temporary
name and renamed into place, so a reader never sees half of one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from calpads.failures import PublishShareError, failing_part
from calpads.publish import target

FOLDER = "integration"


def integration_folder(root: Any) -> Any:
    """``<root>/integration/``, created 0750 under a publish root that must exist."""
    target.check_root(root)
    folder = root / FOLDER
    with failing_part(PublishShareError, f"Publish failed: the folder {folder} could not be created"):
        target.ensure_folder(folder)
    return folder


def put_pages(root: Any, work: Path, pages: dict[str, str]) -> Any:
    """Publish each (name, text) of pages into ``<root>/integration/`` through an owner-only copy in the run's
    work folder. Returns the folder."""
    from calpads.afterschool.reports import write_private

    folder = integration_folder(root)
    for name, text in pages.items():
        local = write_private(work / FOLDER / name, text)
        with failing_part(PublishShareError, f"Publish failed: {folder / name} could not be written"):
            target.put_file(local, folder, name)
    return folder


def put_results(root: Any, data: dict[str, Any]) -> Any:
    """``<root>/integration/health.json`` (counts and check names only)."""
    folder = integration_folder(root)
    with failing_part(PublishShareError, f"Publish failed: {folder / 'health.json'} could not be written"):
        target.put_json(data, folder, "health.json")
    return folder / "health.json"
