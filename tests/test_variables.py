"""Dynamic variables (API spec D.5): value conversion, layer resolution, rendering and system variables."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from voxline.llm.variables import (
    SystemVariables,
    render,
    render_deep,
    resolve_variables,
    to_variable_value,
)


def utc_ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Epoch milliseconds of a UTC wall-clock time."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


def system_at(now_ms: int, **fields: object) -> SystemVariables:
    return SystemVariables(now_ms=lambda: now_ms, **fields)  # type: ignore[arg-type]


# --- to_variable_value ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", "text"),
        ("", ""),
        (True, "true"),
        (False, "false"),
        (3, "3"),
        (-7, "-7"),
        (0, "0"),
        (2.5, "2.5"),
        (3.0, "3"),
        (0.1, "0.1"),
        ({"a": 1, "b": [True, None]}, '{"a":1,"b":[true,null]}'),
        ([1, "x"], '[1,"x"]'),
        ({"name": "Zoë"}, '{"name":"Zoë"}'),
        (None, ""),
    ],
)
def test_to_variable_value(value: object, expected: str) -> None:
    assert to_variable_value(value) == expected


# --- resolve_variables ----------------------------------------------------------------------------------


def test_resolution_order_override_beats_call_beats_default() -> None:
    defaults = {"a": "default-a", "b": "default-b", "c": "default-c"}
    call_values = {"b": "call-b", "c": "call-c"}
    overrides = {"c": "override-c"}
    assert resolve_variables(defaults, call_values, overrides) == {
        "a": "default-a",
        "b": "call-b",
        "c": "override-c",
    }


def test_none_value_does_not_hide_lower_layer() -> None:
    resolved = resolve_variables({"a": "default-a", "b": "default-b"}, {"a": None, "b": "call-b"}, {"b": None})
    assert resolved == {"a": "default-a", "b": "call-b"}


def test_empty_string_is_a_value_and_hides_lower_layer() -> None:
    assert resolve_variables({"a": "default-a"}, {"a": ""}, None) == {"a": ""}
    assert resolve_variables({"a": "default-a"}, {"a": "call-a"}, {"a": ""}) == {"a": ""}


def test_none_layers_and_none_only_keys() -> None:
    assert resolve_variables(None, None, None) == {}
    assert resolve_variables({"x": None}, None, None) == {}


def test_resolution_converts_values_to_strings() -> None:
    resolved = resolve_variables({"n": 3}, {"flag": True, "obj": {"k": [1, 2]}}, {"f": 2.5})
    assert resolved == {"n": "3", "flag": "true", "obj": '{"k":[1,2]}', "f": "2.5"}


# --- render: basic rules --------------------------------------------------------------------------------


def test_simple_substitution() -> None:
    assert render("Hello {{user_name}}!", {"user_name": "Ann"}) == "Hello Ann!"


def test_whitespace_inside_braces_is_trimmed() -> None:
    values = {"name": "Ann"}
    assert render("{{ name }}|{{name  }}|{{\tname\n}}", values) == "Ann|Ann|Ann"


def test_missing_variable_left_verbatim() -> None:
    assert render("Hello {{user_name}}", {}) == "Hello {{user_name}}"
    assert render("Hello {{ user_name }}", {"other": "x"}) == "Hello {{ user_name }}"


def test_empty_string_value_replaced_by_nothing() -> None:
    assert render("Hello {{user_name}}!", {"user_name": ""}) == "Hello !"


def test_repeated_and_adjacent_placeholders() -> None:
    assert render("{{a}}{{b}}{{a}}", {"a": "1", "b": "2"}) == "121"


def test_template_without_placeholders_unchanged() -> None:
    text = "plain { text } with } braces {"
    assert render(text, {"text": "X"}) == text


def test_substituted_values_are_not_re_expanded() -> None:
    values = {"evil": "{{secret}}", "secret": "TOP", "first": "{{", "second": "secret}}"}
    assert render("say {{evil}}", values) == "say {{secret}}"
    assert render("{{first}}{{second}}", values) == "{{secret}}"


def test_value_injected_into_outer_name_is_not_expanded() -> None:
    values = {"tz": "{{secret}}", "secret": "Europe/London"}
    system = system_at(utc_ms(2024, 7, 4, 6, 30))
    assert render("{{current_time_{{tz}}}}", values, system) == "{{current_time_{{secret}}}}"


# --- render: nesting ------------------------------------------------------------------------------------


def test_nested_user_variables_inner_first() -> None:
    values = {"lang": "fr", "greeting_fr": "Bonjour", "greeting_en": "Hello"}
    assert render("{{greeting_{{lang}}}}", values) == "Bonjour"
    assert render("{{ greeting_{{ lang }} }}", values) == "Bonjour"


def test_nested_missing_inner_keeps_whole_placeholder() -> None:
    assert render("{{greeting_{{lang}}}}", {"greeting_fr": "Bonjour"}) == "{{greeting_{{lang}}}}"


def test_nested_resolved_inner_but_missing_outer_shows_inner_value() -> None:
    assert render("{{greeting_{{lang}}}}", {"lang": "de"}) == "{{greeting_de}}"


def test_nested_timezone_variable() -> None:
    system = system_at(utc_ms(2024, 7, 4, 6, 30))
    values = {"my_timezone": "Europe/London"}
    expected = "Thursday, July 4, 2024 at 7:30 AM BST"
    assert render("{{current_time_{{my_timezone}}}}", values, system) == expected
    assert render("{{current_time_{{my_timezone}} }}", values, system) == expected


def test_triple_braces_use_innermost_pair() -> None:
    assert render("{{{x}}}", {"x": "V"}) == "{V}"
    assert render("{{{x}}}", {}) == "{{{x}}}"


# --- render: user values vs system variables ------------------------------------------------------------


def test_user_value_named_like_system_variable_wins() -> None:
    system = system_at(utc_ms(2024, 1, 1), call_id="call_real")
    assert render("{{call_id}}", {"call_id": "mine"}, system) == "mine"
    assert render("{{call_id}}", {}, system) == "call_real"


def test_user_empty_value_wins_over_system_variable() -> None:
    system = system_at(utc_ms(2024, 1, 1), call_id="call_real")
    assert render("[{{call_id}}]", {"call_id": ""}, system) == "[]"


def test_system_variables_unused_without_system() -> None:
    assert render("{{call_id}} {{current_time}}", {}) == "{{call_id}} {{current_time}}"


# --- render: pathological input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{{",
        "}}",
        "{{}}",
        "{{ }}",
        "{{{",
        "}}}",
        "{{a",
        "a}}",
        "}}{{",
        "{{a}}}}",
        "{{{{a}}",
        "{ {a} }",
    ],
)
def test_unbalanced_and_empty_braces_kept_verbatim(template: str) -> None:
    assert render(template, {"b": "B"}) == template


def test_unbalanced_braces_around_valid_placeholder() -> None:
    assert render("{{ {{a}}", {"a": "A"}) == "{{ A"
    assert render("{{a}} }}", {"a": "A"}) == "A }}"
    assert render("{{a}}}}", {"a": "A"}) == "A}}"


def test_many_open_braces_returns_verbatim() -> None:
    template = "{{" * 10000
    assert render(template, {"x": "y"}) == template


@pytest.mark.parametrize(
    "template",
    [
        "{{" * 50000 + "}}" * 50000,
        "{" * 100001 + "x" + "}" * 100001,
        "{{x}}" * 50000 + "{{",
        "{{" + "a" * 200000 + "}}",
    ],
)
def test_huge_inputs_finish(template: str) -> None:
    result = render(template, {})
    assert result == template


def test_deep_nesting_resolves_innermost_only() -> None:
    depth = 20000
    result = render("{{" * depth + "x" + "}}" * depth, {"x": "y"})
    assert result == "{{" * (depth - 1) + "y" + "}}" * (depth - 1)


def test_huge_value_is_inserted() -> None:
    value = "v" * 1_000_000
    assert render("<{{big}}>", {"big": value}) == f"<{value}>"


# --- render_deep ----------------------------------------------------------------------------------------


def test_render_deep_on_nested_structures() -> None:
    obj = {
        "{{key}}": "{{a}}",
        "list": ["{{a}}", 1, None, {"inner": "x{{b}}y"}],
        "tuple": ("{{b}}", 2.5),
        "flag": True,
    }
    result = render_deep(obj, {"a": "A", "b": "B", "key": "K"})
    assert result == {
        "{{key}}": "A",
        "list": ["A", 1, None, {"inner": "xBy"}],
        "tuple": ("B", 2.5),
        "flag": True,
    }
    assert isinstance(result["tuple"], tuple)
    assert obj["list"][0] == "{{a}}"  # input not mutated


def test_render_deep_scalars_and_system() -> None:
    system = system_at(utc_ms(2024, 1, 1), call_id="call_9")
    assert render_deep("{{call_id}}", {}, system) == "call_9"
    assert render_deep(42, {}) == 42
    assert render_deep(None, {}) is None


# --- system variables: time -----------------------------------------------------------------------------


def test_current_time_winter_pst() -> None:
    system = system_at(utc_ms(2024, 1, 11, 23, 5))
    assert render("{{current_time}}", {}, system) == "Thursday, January 11, 2024 at 3:05 PM PST"


def test_current_time_summer_pdt() -> None:
    system = system_at(utc_ms(2024, 7, 4, 6, 30))
    assert render("{{current_time}}", {}, system) == "Wednesday, July 3, 2024 at 11:30 PM PDT"


def test_current_time_midnight_and_noon() -> None:
    assert system_at(utc_ms(2024, 1, 12, 8, 7)).lookup("current_time") == "Friday, January 12, 2024 at 12:07 AM PST"
    assert system_at(utc_ms(2024, 1, 11, 20, 0)).lookup("current_time") == "Thursday, January 11, 2024 at 12:00 PM PST"


def test_current_time_with_timezone() -> None:
    system = system_at(utc_ms(2024, 3, 28, 12, 46))
    assert system.lookup("current_time_Australia/Sydney") == "Thursday, March 28, 2024 at 11:46 PM AEDT"
    assert system.lookup("current_time_UTC") == "Thursday, March 28, 2024 at 12:46 PM UTC"
    assert render("{{ current_time_Europe/London }}", {}, system) == "Thursday, March 28, 2024 at 12:46 PM GMT"


@pytest.mark.parametrize(
    "name",
    [
        "current_time_Mars/Olympus",
        "current_time_",
        "current_time_America",
        "current_time_../etc/passwd",
        "current_time_/etc/localtime",
        "current_hour_Nowhere/Land",
        "current_calendar_Nowhere/Land",
    ],
)
def test_unknown_timezone_left_verbatim(name: str) -> None:
    system = system_at(utc_ms(2024, 1, 1))
    assert system.lookup(name) is None
    assert render("at {{" + name + "}}", {}, system) == "at {{" + name + "}}"


def test_nested_unknown_timezone_left_verbatim_with_inner_value() -> None:
    system = system_at(utc_ms(2024, 1, 1))
    assert render("{{current_time_{{tz}}}}", {"tz": "Not/AZone"}, system) == "{{current_time_Not/AZone}}"


@pytest.mark.parametrize(
    ("utc_hour", "utc_minute", "expected"),
    [(11, 30, "3.5"), (23, 0, "15"), (17, 20, "9.33"), (8, 0, "0"), (8, 45, "0.75"), (7, 59, "23.98")],
)
def test_current_hour_fractional(utc_hour: int, utc_minute: int, expected: str) -> None:
    system = system_at(utc_ms(2024, 1, 11, utc_hour, utc_minute))  # PST = UTC-8
    assert render("{{current_hour}}", {}, system) == expected


def test_current_hour_with_timezone() -> None:
    system = system_at(utc_ms(2024, 1, 11, 11, 30))
    assert system.lookup("current_hour_Asia/Kolkata") == "17"  # UTC+5:30
    assert system.lookup("current_hour_UTC") == "11.5"


def test_current_calendar_fourteen_days_across_dst_change() -> None:
    system = system_at(utc_ms(2024, 11, 1, 19, 0))  # noon PDT, Friday; DST ends Sunday Nov 3
    lines = render("{{current_calendar}}", {}, system).split("\n")
    assert len(lines) == 14
    assert lines[0] == "Friday, November 1, 2024 PDT (Today)"
    assert lines[1] == "Saturday, November 2, 2024 PDT"
    assert lines[2] == "Sunday, November 3, 2024 PST"
    assert lines[13] == "Thursday, November 14, 2024 PST"
    assert sum(line.endswith(" (Today)") for line in lines) == 1


def test_current_calendar_uses_local_date_of_timezone() -> None:
    system = system_at(utc_ms(2024, 11, 1, 6, 0))  # 23:00 Oct 31 in Los Angeles, 15:00 Nov 1 in Tokyo
    assert system.lookup("current_calendar").split("\n")[0] == "Thursday, October 31, 2024 PDT (Today)"
    tokyo = system.lookup("current_calendar_Asia/Tokyo").split("\n")
    assert tokyo[0] == "Friday, November 1, 2024 JST (Today)"
    assert tokyo[-1] == "Thursday, November 14, 2024 JST"
    assert len(tokyo) == 14


def test_clock_is_read_at_render_time() -> None:
    now = [utc_ms(2024, 1, 11, 11, 30)]
    system = SystemVariables(now_ms=lambda: now[0])
    assert system.lookup("current_hour") == "3.5"
    now[0] = utc_ms(2024, 1, 11, 12, 0)
    assert system.lookup("current_hour") == "4"


# --- system variables: session and call -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed_ms", "expected"),
    [
        (0, "0 seconds"),
        (999, "0 seconds"),
        (1_000, "1 second"),
        (45_999, "45 seconds"),
        (60_000, "1 minute 0 seconds"),
        (65_000, "1 minute 5 seconds"),
        (1_230_000, "20 minutes 30 seconds"),
        (3_661_000, "1 hour 1 minute 1 second"),
        (7_207_000, "2 hours 0 minutes 7 seconds"),
    ],
)
def test_session_duration_format(elapsed_ms: int, expected: str) -> None:
    start = utc_ms(2024, 1, 1)
    system = system_at(start + elapsed_ms, started_at_ms=start)
    assert render("{{session_duration}}", {}, system) == expected
    assert render("{{session_duration_ms}}", {}, system) == str(elapsed_ms)


def test_session_duration_before_start_or_without_start_is_zero() -> None:
    assert system_at(utc_ms(2024, 1, 1)).lookup("session_duration") == "0 seconds"
    assert system_at(utc_ms(2024, 1, 1)).lookup("session_duration_ms") == "0"
    early = system_at(utc_ms(2024, 1, 1), started_at_ms=utc_ms(2024, 1, 1, 0, 0, 5))
    assert early.lookup("session_duration_ms") == "0"


def test_call_and_session_identity_variables() -> None:
    system = system_at(utc_ms(2024, 1, 1), call_id="call_abc")
    assert render("{{call_id}}|{{call_type}}|{{session_type}}", {}, system) == "call_abc|web_call|voice"
    phone = system_at(utc_ms(2024, 1, 1), call_type="phone_call")
    assert phone.lookup("call_type") == "phone_call"


def test_agent_states() -> None:
    system = system_at(utc_ms(2024, 1, 1), current_agent_state="greeting", previous_agent_state="intro")
    assert render("{{previous_agent_state}} -> {{current_agent_state}}", {}, system) == "intro -> greeting"
    fresh = system_at(utc_ms(2024, 1, 1))
    assert render("{{previous_agent_state}}", {}, fresh) == "{{previous_agent_state}}"


def test_lookup_unknown_name_is_none() -> None:
    system = system_at(utc_ms(2024, 1, 1))
    for name in ("user_name", "current_times", "current_timezone", "call_ids", "", "session_duration_s"):
        assert system.lookup(name) is None


def test_default_clock_is_wall_clock() -> None:
    before = int(datetime.now(UTC).timestamp() * 1000)
    value = int(SystemVariables(started_at_ms=before - 5_000).lookup("session_duration_ms") or "-1")
    assert 5_000 <= value < 65_000
