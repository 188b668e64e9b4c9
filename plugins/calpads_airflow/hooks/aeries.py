"""Aeries SIS API v5 hook (AERIES-CERT certificate header).

The source client is calpads.sources.aeries_api (its docstring has the field mapping).
Docs: request header AERIES-CERT and DatabaseYear
https://support.aeries.com/support/solutions/articles/14000113681-aeries-api-building-a-request ;
/api/v5/systeminfo, /api/v5/schools/{sc} (LOC.DNR = do not report)
https://support.aeries.com/support/solutions/articles/14000113682-aeries-api-school-related-end-points ;
/api/v5/schools/{sc}/students with StartingRecord/EndingRecord
https://support.aeries.com/support/solutions/articles/14000113683-aeries-api-student-related-end-points ;
/api/v5/schools/{sc}/enrollment/0/year/{yyyy}
https://support.aeries.com/support/solutions/articles/14000113684-aeries-api-attendance-and-enrollment-related-end-points
"""

from __future__ import annotations

from typing import Any, ClassVar

from calpads_airflow.hooks.base import SisApiHook, retry_fields


class AeriesHook(SisApiHook):
    """Connection: Host = the district's Aeries URL up to the api folder
    (https://district.aeries.net/admin), Password = the vendor certificate
    (Aeries: Security > API Security > the product's certificate)."""

    default_conn_name = "sis_aeries"   # also its pool
    conn_type = "calpads_aeries"
    hook_name = "Aeries SIS v5 (CALPADS)"
    source = "aeries_api"
    client_class = "calpads.sources.aeries_api:AeriesClient"
    flow_system = "Aeries API v5"
    read_permission = "the vendor certificate's read permission on the security areas"
    CONN_FIELDS: ClassVar[dict[str, dict[str, Any]]] = {
        **retry_fields(),
        "database_year": {"label": "Database year", "description": "YYYY of the school year's first half; blank = "
                          "the district's default year.", "schema": {"type": ["string", "null"]}},
        "subdistricts": {"label": "Sub-districts", "description": "JSON {\"SchoolCode\": \"sub-district\"}; "
                         "Aeries has no sub-district on the school record.", "schema": {"type": ["object", "null"]}},
        "exit_reasons": {"label": "Exit reasons", "description": "JSON {\"Aeries code\": \"CALPADS code\"}, as "
                         "Aeries's CALPADS Code Translation page (SENR 1.26).", "schema": {"type": ["object", "null"]}},
        "absence_codes": {"label": "Absence codes", "description": "JSON {\"Aeries code\": \"CALPADS category\"} "
                          "(STAS and LEAP; docs/sis-sources.md).", "schema": {"type": ["object", "null"]}},
    }
    UI_BEHAVIOUR: ClassVar[dict[str, Any]] = {
        "hidden_fields": ["schema", "port", "login", "extra"],
        "relabeling": {"host": "Aeries URL", "password": "AERIES-CERT certificate"},
        "placeholders": {"host": "https://district.aeries.net/admin"},
    }

    @classmethod
    def base_url(cls, conn: Any) -> str:
        """The Aeries URL up to the api folder: a host typed with its trailing /api works too."""
        return super().base_url(conn).removesuffix("/api")
