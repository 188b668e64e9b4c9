"""The paragraph a listed LEA's DAG docs open with (calpads.leas): which of its own settings replace the
connections, Variables and settings the DAG's text names for the single LEA. Parse time only: no Variable is read,
so a publish root left to the default shows as ``<calpads_publish_root>/<code>``."""

from __future__ import annotations

from calpads.leas import LeaConfig

ROLE_LISTS = {"it": "it_emails", "coordinator": "calpads_coordinator_emails", "afterschool": "afterschool_staff_emails"}


def publish_root_words(lea: LeaConfig) -> str:
    return lea.publish_root or f"<calpads_publish_root>/{lea.code}"


def afterschool_words(lea: LeaConfig) -> str:
    if lea.afterschool_drop_path:
        return f"the folder `{lea.afterschool_drop_path}`"
    if lea.afterschool_conn_id:
        return f"the connection `{lea.afterschool_conn_id}`"
    return f"the folder `<afterschool_drop_path>/{lea.code}`"


def emails_words(lea: LeaConfig, role: str = "team") -> str:
    found = lea.emails.get(role) or lea.emails.get("team") or ()
    return ", ".join(found) or "(none)"


def lea_doc(lea: LeaConfig, *, sis_conn: str, does: str, names: dict[str, str]) -> str:
    """``does``: what the DAG reads and writes of the LEA, in words; ``names``: what the text below says (a
    connection, Variable or setting) -> what this LEA uses instead. Empty for the single LEA."""
    if not lea.listed:
        return ""
    rows = "\n".join(f"| `{said}` | {used} |" for said, used in names.items())
    return (f"\n**LEA {lea.code}: {lea.name}.** This DAG reads only this LEA's SIS (connection `{sis_conn}`), "
            f"{does} (the LEA file, docs/leas.md). Where the text below names the single LEA's settings, read "
            f"this LEA's own:\n\n| The text says | LEA {lea.code} uses |\n|---|---|\n{rows}\n")


def common_names(lea: LeaConfig) -> dict[str, str]:
    """The settings every listed LEA's DAG replaces: SIS, store, publish root, recipients."""
    names = {"sis_db": f"`{lea.sis_conn_id}` ({lea.sis_source})",
             "calpads_store": f"`{lea.store_conn_id}` (its own rows, keyed by LEA {lea.code})",
             "calpads_publish_root": f"`{publish_root_words(lea)}`",
             "integration_team_emails": emails_words(lea)}
    names.update({variable: emails_words(lea, role) for role, variable in ROLE_LISTS.items()})
    return names
