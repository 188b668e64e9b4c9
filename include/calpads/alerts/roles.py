"""Who gets which email, by the integration guide's roles ("Afterschool program staff ... IT/data
administrators ... CALPADS coordinators ... Software vendors"). Each role's list is an Airflow Variable of
comma-separated addresses; a blank one falls back to the integration team's list, so a district that sets
only ``integration_team_emails`` gets every email there (calpads_airflow.notifiers.recipients)."""

TEAM_VARIABLE = "integration_team_emails"
ROLE_VARIABLES = {"it": "it_emails", "coordinator": "calpads_coordinator_emails",
                  "afterschool": "afterschool_staff_emails"}
ROLE_WORDS = {"it": "district IT", "coordinator": "CALPADS coordinator", "afterschool": "afterschool program staff"}
