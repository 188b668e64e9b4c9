from datetime import date

import pytest

from calpads.run_scope import RunScope, ScopeError, current_academic_year, param_specs


def test_current_academic_year_turns_on_july_first():
    assert current_academic_year(date(2026, 6, 30)) == "2025-2026"
    assert current_academic_year(date(2026, 7, 1)) == "2026-2027"


def test_defaults_cover_the_whole_academic_year():
    s = RunScope.from_params("sprg", {"academic_year": "2025-2026"}, today=date(2026, 1, 5))
    assert (s.start_date, s.end_date) == (date(2025, 7, 1), date(2026, 6, 30))
    assert s.record_type == "SPRG" and s.mode == "submission" and s.submission == "eoy2"
    assert s.year_id == 35  # PowerSchool counts years from 1990-1991


@pytest.mark.parametrize("params, message", [
    ({"academic_year": "2025-2027"}, "consecutive"),
    ({"academic_year": "2025-2026", "start_date": "2026-02-30"}, "start_date"),
    ({"academic_year": "2025-2026", "start_date": "2026-03-01", "end_date": "2026-02-01"}, "before"),
    ({"academic_year": "2025-2026", "end_date": "2026-07-15"}, "not inside"),
    ({"academic_year": "2025-2026", "submission": "custom"}, "no programs"),
    ({"academic_year": "2025-2026", "schools": ["0000001' OR 1=1 --"]}, "schools"),
    ({"academic_year": "2025-2026", "mode": "delete_everything"}, "mode"),
])
def test_bad_params_are_rejected_with_the_param_named(params, message):
    with pytest.raises(ScopeError, match=message):
        RunScope.from_params("SPRG", params, today=date(2026, 1, 5))


def test_save_history_is_never_on_in_non_submission_mode():
    s = RunScope.from_params("SPRG", {"academic_year": "2025-2026", "mode": "non_submission",
                                      "save_history": True}, today=date(2026, 1, 5))
    assert s.save_history is False


def test_round_trip_through_xcom_dict():
    s = RunScope.from_params("SPRG", {"academic_year": "2025-2026", "schools": ["1234567"], "submission": "custom",
                                      "programs": ["122"]}, today=date(2026, 1, 5))
    assert RunScope.from_dict(s.to_dict()) == s


def test_param_schema_rejects_injection_in_school_codes():
    import jsonschema

    spec = param_specs(date(2026, 1, 5))["schools"]
    schema = {k: v for k, v in spec.items() if k not in ("default", "title", "description")}
    jsonschema.validate(["1234567"], schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(["0000001' OR 1=1 --"], schema)


# -- strict scope: values the district and CALPADS know ---------------------------------------------------------
def test_an_unknown_program_code_is_refused_with_the_known_codes_listed():
    with pytest.raises(ScopeError) as info:
        RunScope.from_params("SPRG", {"academic_year": "2025-2026", "submission": "custom", "programs": ["999"]},
                             today=date(2026, 1, 5))
    assert "programs: 999 is not an Education Program Code" in str(info.value)
    assert "101, 108, 113, 122" in str(info.value)          # the CALPADS code set (layouts/code_sets.yaml)
    # 185 (TK) is a CALPADS code: accepted, and simply never extracted
    assert RunScope.from_params("SPRG", {"academic_year": "2025-2026", "submission": "custom", "programs": ["185"]},
                                today=date(2026, 1, 5)).programs == ("185",)


@pytest.mark.parametrize("year", ["9998-9999", "1999-2000", "2029-2030"])
def test_an_academic_year_outside_2000_to_two_years_ahead_is_refused(year):
    # today 2026-01-05 is in 2025-2026: two years ahead is 2027-2028
    with pytest.raises(ScopeError, match="outside the years a run may cover .2000-2001 to 2027-2028."):
        RunScope.from_params("SPRG", {"academic_year": year}, today=date(2026, 1, 5))


def test_the_param_form_refuses_an_out_of_range_academic_year():
    import jsonschema

    spec = param_specs(date(2026, 1, 5))["academic_year"]
    schema = {k: v for k, v in spec.items() if k not in ("default", "title", "description")}
    for ok in ("2000-2001", "2025-2026", "2027-2028"):
        jsonschema.validate(ok, schema)
        RunScope.from_params("SPRG", {"academic_year": ok}, today=date(2026, 1, 5))
    for bad in ("9998-9999", "1999-2000", "2028-2029", "2025-2027", "2025-2026x"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    assert spec["default"] == "2025-2026"


def test_allow_enrolled_deletes_is_off_unless_asked_and_survives_xcom():
    assert RunScope.from_params("SPRG", {"academic_year": "2025-2026"}, today=date(2026, 1, 5)).allow_enrolled_deletes \
        is False
    s = RunScope.from_params("SPRG", {"academic_year": "2025-2026", "allow_enrolled_deletes": True},
                             today=date(2026, 1, 5))
    assert s.allow_enrolled_deletes is True and RunScope.from_dict(s.to_dict()) == s


# -- the trigger form: optional lists, the calendar's default submission ------------------------------------------
def test_optional_lists_allow_null_so_the_form_marks_them_optional():
    specs = param_specs(date(2026, 1, 5))
    for name in ("programs", "schools", "subdistricts", "students"):
        assert "null" in specs[name]["type"] and specs[name]["type"][0] == "array"
        assert RunScope.from_params("SPRG", {"academic_year": "2025-2026", name: None},
                                    today=date(2026, 1, 5)).to_dict()[name] == []
    assert "null" not in specs["academic_year"]["type"]


@pytest.mark.parametrize("today, expected", [
    (date(2025, 9, 30), "eoy2"),      # before Census Day 2025 (Oct 1)
    (date(2025, 10, 1), "fall1"),     # the window opens
    (date(2025, 12, 15), "fall1"),    # December: certification past, amendment window open
    (date(2026, 1, 23), "fall1"),     # the amendment window closes (calendar.yaml)
    (date(2026, 1, 24), "eoy2"),
    (date(2026, 6, 1), "eoy2"),
    (date(2026, 10, 7), "fall1"),     # 2026-27: no published dates: from Census Day (first Wednesday, Oct 7)
    (date(2026, 10, 6), "eoy2"),
])
def test_the_default_submission_follows_the_calpads_calendar(today, expected):
    spec = param_specs(today)["submission"]
    assert spec["default"] == "calendar" and spec["values_display"]["calendar"].endswith(f"(today: {expected})")
    year = current_academic_year(today)
    assert RunScope.from_params("SPRG", {"academic_year": year, "submission": "calendar"}, today=today).submission \
        == expected
    assert RunScope.from_params("SPRG", {"academic_year": year}, today=today).submission == "eoy2"   # no param


def test_by_the_calendar_is_the_run_years_window_on_the_runs_date():
    # December 2026: 2026-27's Fall 1 window is open, 2025-26's closed in January
    dec = date(2026, 12, 6)
    for year, expected in (("2026-2027", "fall1"), ("2025-2026", "eoy2")):
        assert RunScope.from_params("SPRG", {"academic_year": year, "submission": "calendar"}, today=dec) \
            .submission == expected


def test_a_configured_default_year_is_the_forms_default_and_is_checked():
    assert param_specs(date(2026, 12, 6), "2025-2026")["academic_year"]["default"] == "2025-2026"
    assert param_specs(date(2026, 12, 6))["academic_year"]["default"] == "2026-2027"
    with pytest.raises(ScopeError):
        param_specs(date(2026, 12, 6), "2025-2027")
