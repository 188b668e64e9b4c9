"""Who gets which email, by the integration guide's roles ("Afterschool program staff ... IT/data
administrators ... CALPADS coordinators ... Software vendors"). Each role's list is an Airflow Variable of
comma-separated addresses; a blank one falls back to the integration team's list, so a district that sets
only ``integration_team_emails`` gets every email there (calpads_airflow.notifiers.recipients)."""

from collections.abc import Callable, Iterable, Sequence

TEAM_VARIABLE = "integration_team_emails"
ROLE_VARIABLES = {"it": "it_emails", "coordinator": "calpads_coordinator_emails",
                  "afterschool": "afterschool_staff_emails"}
def addresses_for(roles: Iterable[str], team: Sequence[str], role_list: Callable[[str], Sequence[str]]) -> list[str]:
    """The addresses for these roles (none: the team), each role's own list or, when blank, the team's; once each."""
    roles = tuple(roles)
    if not roles:
        return list(team)
    out: list[str] = []
    for role in roles:
        out += list(role_list(role)) or list(team)
    return list(dict.fromkeys(out))


ROLE_WORDS = {"it": "district IT", "coordinator": "CALPADS coordinator", "afterschool": "afterschool program staff"}
