"""Afterschool (expanded learning) data: import, gate, staging, reconciliation with the SIS,
validated write-back of participation into the SIS, and attendance recovery.

Functions other builders call (e.g. STAS 13.24, LEAP 26.07):
- ``calpads.afterschool.recovery.recovered_days(ar_sessions, absences, students)``: AR days per student
  (10-day cap, never more than recoverable absences), one row per student.
- ``calpads.afterschool.store.AfterschoolStore(engine).staged(lea, academic_year)``: the platform's export as
  afterschool_sync gated it (sessions, registrations, held-back rows); the one reader of afterschool data.
"""

PROGRAMS = ("ELO-P", "ASES", "21CCLC", "AR")
EXPANDED_LEARNING_PROGRAMS = ("ELO-P", "ASES", "21CCLC")   # LEAP program 194
ATTENDANCE_COLUMNS = ("student_number", "ssid", "school_code", "session_date", "minutes", "program")
REGISTRATION_COLUMNS = ("student_number", "ssid", "program", "registration_date")
PARTICIPATION_TABLE = "U_AFTERSCHOOL_PARTICIPATION"
