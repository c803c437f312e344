"""Every v3 list-calls filter, proven against real SQLite and PostgreSQL databases.

The repository-level tests insert call rows directly (so every filterable column can take any
value) and drive `CallService.list_v3`, the code `POST /v3/list-calls` runs. One short HTTP test
checks the same path end to end through a running server.
"""

import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import insert as sa_insert

from tests.conftest import custom_llm_agent
from tests.servers import ServerProcess, create_pg_database, drop_pg_database
from voxline.calls.service import CallService
from voxline.calls.tokens import AccessTokens
from voxline.clock import SystemClock
from voxline.errors import BadRequest
from voxline.schemas.call import ListCallsRequest, ListCallsResponse
from voxline.store.agents import AgentRepository
from voxline.store.calls import CALLS, CallRecord, CallRepository
from voxline.store.database import Database
from voxline.store.migrate import upgrade_to_head
from voxline.store.objects import LocalObjectStore
from voxline.store.paging import encode_key

BACKENDS = ["sqlite", "postgresql"]
on_session_loop = pytest.mark.asyncio(loop_scope="session")

ALPHA, BETA, GAMMA = "agent_alpha", "agent_beta", "agent_gamma"


# --- a real database per backend ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def open_service(backend: str, tmp: Path) -> AsyncIterator[tuple[Database, CallService]]:
    """A migrated, empty database of `backend` and a CallService over it; dropped afterwards."""
    pg_url: str | None = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp}/t.db"
    else:
        pg_url = create_pg_database()
        url = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
    db = Database(url)
    try:
        await upgrade_to_head(db)
        clock = SystemClock()
        service = CallService(
            CallRepository(db),
            AgentRepository(db, clock),
            LocalObjectStore(tmp),
            AccessTokens(b"x" * 32),
            clock,
            join_timeout_ms=30_000,
            ice_servers=[],
        )
        yield db, service
    finally:
        await db.dispose()
        if pg_url is not None:
            drop_pg_database(pg_url)


def make_call(call_id: str, created_at: int, **fields: Any) -> CallRecord:
    values: dict[str, Any] = {
        "call_type": "web_call",
        "agent_id": ALPHA,
        "agent_version": 0,
        "call_status": "ended",
        "disconnection_reason": None,
        "start_timestamp": None,
        "end_timestamp": None,
        "duration_ms": None,
        "join_deadline": created_at + 30_000,
        "token_nonce": "0123456789abcdef",
        "user_sentiment": None,
        "call_successful": None,
        "in_voicemail": None,
        "data_storage_setting": "everything",
        "call_metadata": None,
        "dynamic_variables": None,
        "data": {},
        "config": {},
    }
    values.update(fields)
    return CallRecord(call_id=call_id, created_at=created_at, **values)


async def insert(db: Database, rows: list[CallRecord]) -> None:
    values = [row.values() for row in rows]
    await db.write(lambda conn: conn.execute(sa_insert(CALLS), values))


# --- the data set the filter tests run against ---------------------------------------------------

QUOTE_KEY = 'say "hi"'

ROWS: list[CallRecord] = [
    make_call(
        "call_a1",
        1000,
        agent_id=ALPHA,
        agent_version=0,
        call_status="ended",
        disconnection_reason="user_hangup",
        user_sentiment="Positive",
        call_successful=True,
        in_voicemail=False,
        start_timestamp=1000,
        end_timestamp=61000,
        duration_ms=60000,
        call_metadata={
            "customer": "Alice",
            "tier": "gold",
            "score": 5,
            "ratio": 0.5,
            "vip": True,
            "nested": {"x": 1},
            "my key": "spaced",
            QUOTE_KEY: "quoted",
        },
        dynamic_variables={"name": "Alice", "city": "Paris"},
        data={"transcript": "Agent: hi\n", "agent_name": "Alpha"},
    ),
    make_call(
        "call_a2",
        2000,
        agent_id=ALPHA,
        agent_version=1,
        call_status="ended",
        disconnection_reason="agent_hangup",
        user_sentiment="Negative",
        call_successful=False,
        in_voicemail=False,
        data_storage_setting="everything_except_pii",
        start_timestamp=2000,
        end_timestamp=32000,
        duration_ms=30000,
        call_metadata={"customer": "alice b", "tier": "silver", "score": "5", "vip": False, "my key": "other"},
        dynamic_variables={"name": "Bob"},
    ),
    make_call(
        "call_a3",
        3000,
        agent_id=ALPHA,
        agent_version=2,
        call_status="error",
        disconnection_reason="error_llm_websocket_open",
        start_timestamp=3000,
        end_timestamp=3000,
        duration_ms=0,
        call_metadata={"customer": "Carol", "score": 10, "vip": "true"},
    ),
    make_call(
        "call_b1",
        4000,
        agent_id=BETA,
        agent_version=0,
        call_status="ended",
        disconnection_reason="voicemail_reached",
        user_sentiment="Neutral",
        call_successful=False,
        in_voicemail=True,
        data_storage_setting="basic_attributes_only",
        start_timestamp=4000,
        end_timestamp=14000,
        duration_ms=10000,
        call_metadata={"customer": "Dave_%", "score": -2.5, "tier": "gold"},
        dynamic_variables={"name": "Dave", "city": "Berlin"},
    ),
    make_call(
        "call_b2",
        5000,
        agent_id=BETA,
        agent_version=3,
        call_status="ongoing",
        start_timestamp=5000,
        call_metadata={},
        dynamic_variables={"name": "Eve"},
    ),
    make_call("call_b3", 6000, agent_id=BETA, agent_version=3, call_status="registered", join_deadline=36000),
    make_call(
        "call_g1",
        7000,
        agent_id=GAMMA,
        agent_version=0,
        call_status="not_connected",
        disconnection_reason="dial_failed",
        end_timestamp=7000,
        call_metadata={"customer": "Frank", "score": 7, "tier": None},
        dynamic_variables={"city": "Paris"},
    ),
    make_call(
        "call_g2",
        8000,
        agent_id=GAMMA,
        agent_version=1,
        call_status="ended",
        disconnection_reason="inactivity",
        user_sentiment="Unknown",
        call_successful=True,
        in_voicemail=False,
        start_timestamp=8000,
        end_timestamp=128000,
        duration_ms=120000,
        call_metadata={"customer": "Grace", "score": 1000.0, "nested": {"x": 2}},
        dynamic_variables={},
    ),
]
ALL = {row.call_id for row in ROWS}
IN_CREATION_ORDER = [row.call_id for row in sorted(ROWS, key=lambda r: r.created_at)]


@dataclass
class Store:
    backend: str
    db: Database
    service: CallService

    async def list(self, **request: Any) -> ListCallsResponse:
        return await self.service.list_v3(ListCallsRequest.model_validate(request))

    async def ids(self, **criteria: Any) -> set[str]:
        """The ids of every call matching `filter_criteria=criteria` (one page big enough for all)."""
        response = await self.list(filter_criteria=criteria, limit=1000)
        assert not response.has_more
        return {item.call_id for item in response.items}


@pytest.fixture(scope="module", params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Store]:
    async with open_service(request.param, tmp_path_factory.mktemp("calls-db")) as (db, service):
        await insert(db, ROWS)
        yield Store(request.param, db, service)


def s(*names: str) -> set[str]:
    return {f"call_{n}" for n in names}


def string(op: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "op": op, "value": value, **extra}


def number(op: str, value: float, **extra: Any) -> dict[str, Any]:
    return {"type": "number", "op": op, "value": value, **extra}


def between(low: float, high: float, **extra: Any) -> dict[str, Any]:
    return {"type": "range", "op": "bt", "value": [low, high], **extra}


def enum(*values: str, **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "op": "in", "value": list(values), **extra}


def boolean(value: bool, **extra: Any) -> dict[str, Any]:
    return {"type": "boolean", "op": "eq", "value": value, **extra}


def present(key: str, op: str = "pr") -> dict[str, Any]:
    return {"type": "present", "op": op, "key": key}


# --- top-level filters ---------------------------------------------------------------------------


@on_session_loop
async def test_no_filter_lists_every_call(store: Store) -> None:
    assert await store.ids() == ALL
    assert {item.call_id for item in (await store.list()).items} == ALL


@pytest.mark.parametrize(
    ("agents", "expected"),
    [
        ([{"agent_id": ALPHA}], s("a1", "a2", "a3")),
        ([{"agent_id": ALPHA, "version": [0, 2]}], s("a1", "a3")),
        ([{"agent_id": ALPHA, "version": [7]}], set()),
        ([{"agent_id": ALPHA, "version": [1]}, {"agent_id": BETA}], s("a2", "b1", "b2", "b3")),
        ([{"agent_id": BETA, "version": [3]}, {"agent_id": GAMMA, "version": [0]}], s("b2", "b3", "g1")),
        ([{"agent_id": ALPHA}, {"agent_id": BETA}, {"agent_id": GAMMA}], ALL),
        ([{"agent_id": "agent_nobody"}], set()),
        ([], set()),
    ],
)
@on_session_loop
async def test_agent_filter_ors_agents_and_restricts_versions(
    store: Store, agents: list[dict[str, Any]], expected: set[str]
) -> None:
    assert await store.ids(agent=agents) == expected


@pytest.mark.parametrize(
    ("call_id_filter", "expected"),
    [
        (string("eq", "call_a1"), s("a1")),
        (string("ne", "call_a1"), ALL - s("a1")),
        (string("sw", "call_a"), s("a1", "a2", "a3")),
        (string("ew", "1"), s("a1", "b1", "g1")),
        (string("co", "b"), s("b1", "b2", "b3")),
        (string("eq", "call_zz"), set()),
        (enum("call_a1", "call_g2", "call_missing"), s("a1", "g2")),
        (enum(), set()),
    ],
)
@on_session_loop
async def test_call_id_filter_supports_string_ops_and_enum(
    store: Store, call_id_filter: dict[str, Any], expected: set[str]
) -> None:
    assert await store.ids(call_id=call_id_filter) == expected


@pytest.mark.parametrize(
    ("field", "values", "expected"),
    [
        ("call_status", ["ended"], s("a1", "a2", "b1", "g2")),
        ("call_status", ["ongoing", "registered"], s("b2", "b3")),
        ("call_status", ["error", "not_connected"], s("a3", "g1")),
        ("call_status", [], set()),
        # this server stores web calls only (a phone_call row could not even be listed)
        ("call_type", ["phone_call"], set()),
        ("call_type", ["web_call"], ALL),
        ("call_type", ["web_call", "phone_call"], ALL),
        ("call_type", [], set()),
        ("disconnection_reason", ["user_hangup", "agent_hangup"], s("a1", "a2")),
        ("disconnection_reason", ["dial_failed"], s("g1")),
        ("disconnection_reason", ["manual_stopped"], set()),
        ("user_sentiment", ["Positive", "Neutral"], s("a1", "b1")),
        ("user_sentiment", ["Unknown"], s("g2")),
        ("data_storage_setting", ["basic_attributes_only", "everything_except_pii"], s("a2", "b1")),
        ("data_storage_setting", ["everything"], ALL - s("a2", "b1")),
    ],
)
@on_session_loop
async def test_enum_filters_match_any_listed_value(
    store: Store, field: str, values: list[str], expected: set[str]
) -> None:
    assert await store.ids(**{field: enum(*values)}) == expected


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("call_successful", True, s("a1", "g2")),
        ("call_successful", False, s("a2", "b1")),
        ("in_voicemail", True, s("b1")),
        ("in_voicemail", False, s("a1", "a2", "g2")),
    ],
)
@on_session_loop
async def test_boolean_filters_match_only_calls_with_that_analysis_value(
    store: Store, field: str, value: bool, expected: set[str]
) -> None:
    assert await store.ids(**{field: boolean(value)}) == expected


# start: a1 1000, a2 2000, a3 3000, b1 4000, b2 5000, g2 8000 (b3, g1: none)
# end:   a1 61000, a2 32000, a3 3000, b1 14000, g1 7000, g2 128000 (b2, b3: none)
# duration: a1 60000, a2 30000, a3 0, b1 10000, g2 120000 (b2, b3, g1: none)
# A call without the value never matches a comparison (SQL semantics), not even `ne`.
NUMBER_CASES = [
    ("start_timestamp", number("eq", 3000), s("a3")),
    ("start_timestamp", number("ne", 3000), s("a1", "a2", "b1", "b2", "g2")),
    ("start_timestamp", number("gt", 3000), s("b1", "b2", "g2")),
    ("start_timestamp", number("ge", 3000), s("a3", "b1", "b2", "g2")),
    ("start_timestamp", number("lt", 3000), s("a1", "a2")),
    ("start_timestamp", number("le", 3000), s("a1", "a2", "a3")),
    ("start_timestamp", between(2000, 5000), s("a2", "a3", "b1", "b2")),
    ("start_timestamp", between(5000, 2000), set()),
    ("end_timestamp", number("eq", 7000), s("g1")),
    ("end_timestamp", number("ne", 3000), s("a1", "a2", "b1", "g1", "g2")),
    ("end_timestamp", number("gt", 14000), s("a1", "a2", "g2")),
    ("end_timestamp", number("ge", 32000), s("a1", "a2", "g2")),
    ("end_timestamp", number("lt", 7000), s("a3")),
    ("end_timestamp", number("le", 14000), s("a3", "b1", "g1")),
    ("end_timestamp", between(3000, 32000), s("a2", "a3", "b1", "g1")),
    ("duration_ms", number("eq", 0), s("a3")),
    ("duration_ms", number("ne", 0), s("a1", "a2", "b1", "g2")),
    ("duration_ms", number("gt", 30000), s("a1", "g2")),
    ("duration_ms", number("ge", 30000), s("a1", "a2", "g2")),
    ("duration_ms", number("lt", 30000), s("a3", "b1")),
    ("duration_ms", number("le", 30000), s("a2", "a3", "b1")),
    ("duration_ms", between(10000, 60000), s("a1", "a2", "b1")),
]


@pytest.mark.parametrize(("field", "flt", "expected"), NUMBER_CASES)
@on_session_loop
async def test_number_and_range_filters_on_timestamps_and_duration(
    store: Store, field: str, flt: dict[str, Any], expected: set[str]
) -> None:
    assert await store.ids(**{field: flt}) == expected


@pytest.mark.parametrize(
    ("field", "flt", "expected"),
    [
        ("duration_ms", number("gt", 29999.5), s("a1", "a2", "g2")),
        ("duration_ms", number("lt", 0.5), s("a3")),
        ("duration_ms", number("eq", 30000.5), set()),
        ("duration_ms", between(9999.5, 10000.5), s("b1")),
        ("start_timestamp", number("le", 2999.9), s("a1", "a2")),
    ],
)
@on_session_loop
async def test_number_filters_accept_fractional_values(
    store: Store, field: str, flt: dict[str, Any], expected: set[str]
) -> None:
    """The wire type is `number`: 29999.5 is a valid bound for an integer column."""
    assert await store.ids(**{field: flt}) == expected


@on_session_loop
async def test_timestamp_filters_accept_epoch_millisecond_values(store: Store) -> None:
    """Real timestamps are 13-digit integers; the filter value arrives as a float."""
    assert await store.ids(start_timestamp=number("ge", 1_703_302_407_333)) == set()
    assert await store.ids(end_timestamp=between(0, 1_703_302_407_333)) == ALL - s("b2", "b3")


# --- metadata / dynamic_variables keyed filters ----------------------------------------------------

# metadata customer: a1 "Alice", a2 "alice b", a3 "Carol", b1 "Dave_%", g1 "Frank", g2 "Grace" (b2 {}, b3 none)
# metadata score: a1 5, a2 "5" (string), a3 10, b1 -2.5, g1 7, g2 1000.0
METADATA_CASES = [
    # strings
    ([string("eq", "Alice", key="customer")], s("a1")),
    ([string("ne", "Alice", key="customer")], s("a2", "a3", "b1", "g1", "g2")),
    ([string("sw", "Da", key="customer")], s("b1")),
    ([string("ew", "e", key="customer")], s("a1", "g2")),
    ([string("co", "ar", key="customer")], s("a3")),
    ([string("co", "ice", key="customer")], s("a1", "a2")),
    ([string("eq", "Nobody", key="customer")], set()),
    ([string("eq", "Alice", key="missing")], set()),
    # LIKE wildcards in the value are literal characters
    ([string("co", "_", key="customer")], s("b1")),
    ([string("ew", "_%", key="customer")], s("b1")),
    ([string("co", "%", key="customer")], s("b1")),
    ([string("sw", "A%", key="customer")], set()),
    # keys with a space and with double quotes
    ([string("eq", "spaced", key="my key")], s("a1")),
    ([string("ne", "spaced", key="my key")], s("a2")),
    ([present("my key")], s("a1", "a2")),
    ([string("eq", "quoted", key=QUOTE_KEY)], s("a1")),
    ([present(QUOTE_KEY)], s("a1")),
    ([present(QUOTE_KEY, "np")], ALL - s("a1")),
    # numbers: only JSON numbers match, the string "5" of a2 never does
    ([number("eq", 5, key="score")], s("a1")),
    ([number("ne", 5, key="score")], s("a3", "b1", "g1", "g2")),
    ([number("gt", 5, key="score")], s("a3", "g1", "g2")),
    ([number("ge", 5, key="score")], s("a1", "a3", "g1", "g2")),
    ([number("lt", 5, key="score")], s("b1")),
    ([number("le", 5, key="score")], s("a1", "b1")),
    ([number("eq", -2.5, key="score")], s("b1")),
    ([number("eq", 1000, key="score")], s("g2")),
    ([between(0, 10, key="score")], s("a1", "a3", "g1")),
    ([between(-3, 0, key="score")], s("b1")),
    ([number("eq", 0.5, key="ratio")], s("a1")),
    ([number("gt", 0, key="customer")], set()),
    ([number("eq", 1, key="vip")], set()),
    ([number("ge", 0, key="nested")], set()),
    # booleans: only JSON booleans match, the string "true" of a3 never does
    ([boolean(True, key="vip")], s("a1")),
    ([boolean(False, key="vip")], s("a2")),
    ([boolean(True, key="customer")], set()),
    # enums
    ([enum("gold", "silver", key="tier")], s("a1", "a2", "b1")),
    ([enum("gold", key="tier")], s("a1", "b1")),
    ([enum(key="tier")], set()),
    # presence (a JSON null counts as absent)
    ([present("tier")], s("a1", "a2", "b1")),
    ([present("tier", "np")], s("a3", "b2", "b3", "g1", "g2")),
    ([present("nested")], s("a1", "g2")),
    ([present("customer", "np")], s("b2", "b3")),
    # several keyed filters are AND-ed
    ([enum("gold", key="tier"), number("gt", 0, key="score")], s("a1")),
    ([present("score"), present("tier", "np")], s("a3", "g1", "g2")),
]


@pytest.mark.parametrize(("filters", "expected"), METADATA_CASES)
@on_session_loop
async def test_metadata_filters(store: Store, filters: list[dict[str, Any]], expected: set[str]) -> None:
    assert await store.ids(metadata=filters) == expected


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        # the number 5 (a1) is not the string "5" (a2); JSON true (a1) is not the string "true" (a3)
        ([string("eq", "5", key="score")], s("a2")),
        ([string("sw", "5", key="score")], s("a2")),
        ([string("eq", "true", key="vip")], s("a3")),
        ([enum("5", "true", key="score")], s("a2")),
    ],
)
@on_session_loop
async def test_string_filters_match_only_string_values_on_every_backend(
    store: Store, filters: list[dict[str, Any]], expected: set[str]
) -> None:
    """Mirror of "a string '5' is not the number 5": a number or boolean is not a string either.

    Both backends must give the same answer; they differ when JSON values are compared as text.
    """
    assert await store.ids(metadata=filters) == expected


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([string("sw", "al", key="customer")], s("a2")),
        ([string("sw", "Al", key="customer")], s("a1")),
        ([string("co", "ALICE", key="customer")], set()),
        ([string("ew", "E", key="customer")], set()),
    ],
)
@on_session_loop
async def test_string_pattern_filters_are_case_sensitive_on_every_backend(
    store: Store, filters: list[dict[str, Any]], expected: set[str]
) -> None:
    """`eq` is case-sensitive everywhere, so `sw`/`ew`/`co` must be too (SQLite's LIKE is not)."""
    assert await store.ids(metadata=filters) == expected


@on_session_loop
async def test_call_id_pattern_filter_is_case_sensitive(store: Store) -> None:
    assert await store.ids(call_id=string("sw", "CALL_")) == set()


# dynamic variables: a1 {name Alice, city Paris}, a2 {name Bob}, b1 {name Dave, city Berlin},
# b2 {name Eve}, g1 {city Paris}, g2 {} (a3, b3: none)
@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([string("eq", "Alice", key="name")], s("a1")),
        ([string("ne", "Alice", key="name")], s("a2", "b1", "b2")),
        ([string("sw", "D", key="name")], s("b1")),
        ([string("ew", "e", key="name")], s("a1", "b1", "b2")),
        ([string("co", "o", key="name")], s("a2")),
        ([string("eq", "Paris", key="city")], s("a1", "g1")),
        ([enum("Paris", "Berlin", key="city")], s("a1", "b1", "g1")),
        ([present("city")], s("a1", "b1", "g1")),
        ([present("city", "np")], s("a2", "a3", "b2", "b3", "g2")),
        ([present("name"), present("city", "np")], s("a2", "b2")),
        ([number("eq", 5, key="name")], set()),
        ([boolean(True, key="name")], set()),
    ],
)
@on_session_loop
async def test_dynamic_variable_filters(store: Store, filters: list[dict[str, Any]], expected: set[str]) -> None:
    assert await store.ids(dynamic_variables=filters) == expected


@on_session_loop
async def test_metadata_and_dynamic_variable_filters_do_not_read_each_other(store: Store) -> None:
    assert await store.ids(metadata=[string("eq", "Paris", key="city")]) == set()
    assert await store.ids(dynamic_variables=[string("eq", "gold", key="tier")]) == set()


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        (
            {
                "agent": [{"agent_id": ALPHA}],
                "call_status": enum("ended"),
                "metadata": [number("ge", 5, key="score")],
            },
            s("a1"),
        ),
        (
            {"call_status": enum("ended"), "duration_ms": number("ge", 30000), "call_successful": boolean(True)},
            s("a1", "g2"),
        ),
        (
            {
                "agent": [{"agent_id": ALPHA}, {"agent_id": BETA}],
                "dynamic_variables": [present("name")],
                "metadata": [enum("gold", key="tier")],
                "start_timestamp": between(0, 10_000),
            },
            s("a1", "b1"),
        ),
        ({"call_id": string("sw", "call_g"), "in_voicemail": boolean(False)}, s("g2")),
        ({"call_status": enum("ended"), "user_sentiment": enum("Negative"), "call_successful": boolean(True)}, set()),
    ],
)
@on_session_loop
async def test_combined_filters_are_anded(store: Store, criteria: dict[str, Any], expected: set[str]) -> None:
    assert await store.ids(**criteria) == expected


# --- order, totals, items ------------------------------------------------------------------------


@on_session_loop
async def test_sort_order_both_ways(store: Store) -> None:
    descending = await store.list(limit=100)
    ascending = await store.list(limit=100, sort_order="ascending")
    assert [i.call_id for i in ascending.items] == IN_CREATION_ORDER
    assert [i.call_id for i in descending.items] == IN_CREATION_ORDER[::-1]


@on_session_loop
async def test_include_total_counts_all_matches_not_the_page(store: Store) -> None:
    page = await store.list(filter_criteria={"call_status": enum("ended")}, limit=2, include_total=True)
    assert [i.call_id for i in page.items] == ["call_g2", "call_b1"]
    assert page.has_more and page.pagination_key
    assert page.total == 4
    assert (await store.list(limit=2)).total is None
    empty = await store.list(filter_criteria={"call_status": enum()}, include_total=True)
    assert (empty.items, empty.has_more, empty.pagination_key, empty.total) == ([], False, None, 0)


@on_session_loop
async def test_list_items_carry_filtered_fields_but_no_transcript(store: Store) -> None:
    response = await store.list(filter_criteria={"call_id": string("eq", "call_a1")})
    (item,) = response.items
    wire = item.to_wire()
    assert "transcript" not in wire
    assert wire["agent_name"] == "Alpha"
    assert wire["metadata"]["customer"] == "Alice"
    assert wire["retell_llm_dynamic_variables"] == {"name": "Alice", "city": "Paris"}
    assert (wire["agent_id"], wire["agent_version"], wire["call_status"]) == (ALPHA, 0, "ended")
    assert wire["access_token"]


@on_session_loop
async def test_skip_offsets_into_the_sorted_list(store: Store) -> None:
    page = await store.list(skip=2, limit=3, sort_order="ascending", include_total=True)
    assert [i.call_id for i in page.items] == IN_CREATION_ORDER[2:5]
    assert page.has_more and page.total == len(ROWS)
    last = await store.list(skip=6, limit=3, sort_order="ascending")
    assert [i.call_id for i in last.items] == IN_CREATION_ORDER[6:]
    assert not last.has_more and last.pagination_key is None
    beyond = await store.list(skip=100)
    assert beyond.items == [] and not beyond.has_more


@on_session_loop
async def test_skip_with_pagination_key_is_a_bad_request(store: Store) -> None:
    first = await store.list(limit=2)
    assert first.pagination_key
    with pytest.raises(BadRequest):
        await store.list(skip=1, pagination_key=first.pagination_key)
    with pytest.raises(BadRequest):
        await store.list(skip=0, pagination_key=first.pagination_key)


@pytest.mark.parametrize(
    "key",
    [
        "not a key!",
        encode_key(1, 2, 3),
        encode_key("yesterday", "call_a1"),
        encode_key(None, "call_a1"),
        encode_key(1000, 5),
        encode_key({"a": 1}, "call_a1"),
    ],
)
@on_session_loop
async def test_forged_pagination_key_is_a_bad_request(store: Store, key: str) -> None:
    """A key this server did not issue is the client's mistake (400), never a database error."""
    with pytest.raises(BadRequest):
        await store.list(pagination_key=key)


@pytest.mark.parametrize(
    "criteria",
    [
        {"metadata": [string("eq", "a\x00b", key="customer")]},
        {"metadata": [string("co", "\x00", key="customer")]},
        {"metadata": [present("cust\x00omer")]},
        {"metadata": [number("eq", 5, key="sc\x00ore")]},
        {"dynamic_variables": [enum("\x00", key="name")]},
        {"call_id": string("eq", "call_\x00")},
        {"call_id": enum("call_a1\x00")},
        {"agent": [{"agent_id": ALPHA, "version": [2**31]}]},
        {"agent": [{"agent_id": ALPHA, "version": [2**63]}]},
        {"agent": [{"agent_id": "agent_\x00"}]},
        {"duration_ms": number("gt", 1e300)},
        {"start_timestamp": between(-1e300, -1e299)},
        {"end_timestamp": number("eq", 2**63)},
    ],
)
@on_session_loop
async def test_extreme_filter_values_match_nothing_or_are_bad_requests(store: Store, criteria: dict[str, Any]) -> None:
    """NUL characters, integers past the column type and huge numbers are the client's problem:
    they match nothing (or are rejected with BadRequest), never a database error (a 500)."""
    try:
        matched = await store.ids(**criteria)
    except (BadRequest, ValidationError):  # a ValidationError is the API's 400
        return
    assert matched == set()


@pytest.mark.parametrize("skip", [2**31, 2**63, 2**64])
@on_session_loop
async def test_huge_skip_is_an_empty_page_or_a_bad_request(store: Store, skip: int) -> None:
    try:
        page = await store.list(skip=skip)
    except (BadRequest, ValidationError):  # a ValidationError is the API's 400
        return
    assert (page.items, page.has_more, page.pagination_key) == ([], False, None)


# --- pagination over many rows, many sharing one created_at ---------------------------------------


async def walk(store: Store, **request: Any) -> tuple[list[str], int]:
    """All ids, page by page, following pagination_key; also the number of pages."""
    seen: list[str] = []
    key: str | None = None
    for pages in itertools.count(1):
        page = await store.list(**request, pagination_key=key) if key else await store.list(**request)
        assert len(page.items) <= request["limit"]
        seen += [i.call_id for i in page.items]
        if not page.has_more:
            assert page.pagination_key is None
            return seen, pages
        assert page.pagination_key and len(page.items) == request["limit"]
        key = page.pagination_key
    raise AssertionError("unreachable")


@pytest.fixture(scope="module", params=BACKENDS)
async def crowded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Store]:
    """41 calls: 25 created in the same millisecond, the rest spread around them."""
    async with open_service(request.param, tmp_path_factory.mktemp("crowded-db")) as (db, service):
        rows = [
            make_call(f"call_same_{i:02d}", 50_000, duration_ms=i, agent_version=i % 2)
            for i in (7, 3, 24, 0, 11, 19, 5, 1, 22, 9, 14, 2, 17, 20, 6, 13, 4, 23, 10, 15, 8, 21, 12, 18, 16)
        ]
        rows += [make_call(f"call_early_{i:02d}", 10_000 + i, duration_ms=100 + i) for i in range(8)]
        rows += [make_call(f"call_late_{i:02d}", 90_000 - i, duration_ms=200 + i, agent_version=1) for i in range(8)]
        await insert(db, rows)
        yield Store(request.param, db, service)


@pytest.mark.parametrize("sort_order", ["ascending", "descending"])
@pytest.mark.parametrize("limit", [1, 4, 7, 25, 41, 50])
@on_session_loop
async def test_pagination_walks_every_call_once_in_order(crowded: Store, sort_order: str, limit: int) -> None:
    everything = await crowded.list(limit=1000, sort_order=sort_order)
    expected = [i.call_id for i in everything.items]
    assert len(expected) == 41
    seen, pages = await walk(crowded, limit=limit, sort_order=sort_order)
    assert seen == expected
    assert len(set(seen)) == len(seen)
    assert pages == max(1, -(-41 // limit))


@on_session_loop
async def test_pagination_order_is_created_at_then_call_id(crowded: Store) -> None:
    listed = [i.call_id for i in (await crowded.list(limit=1000, sort_order="ascending")).items]
    early = [f"call_early_{i:02d}" for i in range(8)]
    same = sorted(f"call_same_{i:02d}" for i in range(25))
    late = [f"call_late_{i:02d}" for i in reversed(range(8))]
    assert listed == early + same + late
    descending = [i.call_id for i in (await crowded.list(limit=1000)).items]
    assert descending == listed[::-1]


@pytest.mark.parametrize("sort_order", ["ascending", "descending"])
@on_session_loop
async def test_pagination_with_a_filter_keeps_the_filter_on_every_page(crowded: Store, sort_order: str) -> None:
    request = {"filter_criteria": {"agent": [{"agent_id": ALPHA, "version": [1]}]}, "sort_order": sort_order}
    expected = [i.call_id for i in (await crowded.list(**request, limit=1000)).items]
    # odd duration among the "same" rows (12 of them) plus the 8 "late" rows
    assert len(expected) == 20
    seen, pages = await walk(crowded, **request, limit=3)
    assert seen == expected and pages == 7
    total = await crowded.list(**request, limit=3, include_total=True)
    assert total.total == 20


@on_session_loop
async def test_pagination_key_of_one_order_continues_in_that_order(crowded: Store) -> None:
    for sort_order in ("ascending", "descending"):
        everything = [i.call_id for i in (await crowded.list(limit=1000, sort_order=sort_order)).items]
        first = await crowded.list(limit=10, sort_order=sort_order)
        second = await crowded.list(limit=10, sort_order=sort_order, pagination_key=first.pagination_key)
        assert [i.call_id for i in first.items + second.items] == everything[:20]


# --- the same through HTTP ------------------------------------------------------------------------


@pytest.fixture
def http_calls(api: httpx.Client) -> Iterator[tuple[str, str, list[str]]]:
    """Two agents; three calls on the first (two of them for customer c1), one on the second."""
    agent = str(custom_llm_agent(api, agent_name="list-filters")["agent_id"])
    other = str(custom_llm_agent(api, agent_name="list-filters-other")["agent_id"])
    made: list[str] = []
    for agent_id, metadata in (
        (agent, {"customer": "c1", "n": 1}),
        (agent, {"customer": "c2", "n": 2}),
        (agent, {"customer": "c1", "n": 3}),
        (other, {"customer": "c1", "n": 4}),
    ):
        response = api.post(
            "/v3/create-web-call",
            json={"agent_id": agent_id, "metadata": metadata, "retell_llm_dynamic_variables": {"who": "tester"}},
        )
        assert response.status_code == 201, response.text
        made.append(response.json()["call_id"])
        time.sleep(0.005)  # distinct created_at, so "newest first" is unambiguous
    yield agent, other, made
    for call_id in made:
        api.delete(f"/v2/delete-call/{call_id}")


@pytest.mark.slow
def test_http_list_calls_filters_by_agent_and_metadata(
    server: ServerProcess, api: httpx.Client, http_calls: tuple[str, str, list[str]]
) -> None:
    agent, other, made = http_calls
    body: dict[str, Any] = {
        "filter_criteria": {
            "agent": [{"agent_id": agent}],
            "metadata": [{"type": "string", "op": "eq", "key": "customer", "value": "c1"}],
        },
        "limit": 1,
        "include_total": True,
    }
    first = api.post("/v3/list-calls", json=body)
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["has_more"] is True and page["total"] == 2
    assert isinstance(page["pagination_key"], str) and page["pagination_key"]
    (item,) = page["items"]
    assert item["call_id"] == made[2]  # newest first
    assert item["metadata"] == {"customer": "c1", "n": 3}
    assert item["agent_id"] == agent and item["call_type"] == "web_call" and item["access_token"]
    assert item["retell_llm_dynamic_variables"] == {"who": "tester"}
    for field in ("transcript", "transcript_object", "transcript_with_tool_calls"):
        assert field not in item

    second = api.post("/v3/list-calls", json={**body, "pagination_key": page["pagination_key"]})
    assert second.status_code == 200, second.text
    rest = second.json()
    assert [i["call_id"] for i in rest["items"]] == [made[0]]
    assert rest["has_more"] is False and "pagination_key" not in rest and rest["total"] == 2

    both_agents = api.post(
        "/v3/list-calls",
        json={
            "filter_criteria": {
                "agent": [{"agent_id": agent}, {"agent_id": other}],
                "metadata": [{"type": "number", "op": "ge", "key": "n", "value": 2}],
            },
            "sort_order": "ascending",
        },
    )
    assert both_agents.status_code == 200, both_agents.text
    assert [i["call_id"] for i in both_agents.json()["items"]] == made[1:]
    assert "total" not in both_agents.json()

    conflict = api.post("/v3/list-calls", json={**body, "skip": 1, "pagination_key": page["pagination_key"]})
    assert conflict.status_code == 400
    assert conflict.json()["status"] == "error"


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_http_nul_character_in_one_calls_metadata_does_not_break_filters_for_all(
    make_server: Any, backend: str
) -> None:
    """A NUL stored in one call's metadata (PostgreSQL `json` keeps it as the escape \\u0000,
    which its `->`/`->>` operators refuse to turn into text) must not make every metadata filter
    over the table fail. The server may reject such metadata (400) or store and filter it."""
    srv = make_server(backend).start()
    with srv.client() as api:
        agent = str(custom_llm_agent(api)["agent_id"])
        plain = api.post("/v3/create-web-call", json={"agent_id": agent, "metadata": {"tier": "gold"}})
        assert plain.status_code == 201, plain.text
        for metadata in ({"tier": "gold", "note": "a\x00b"}, {"tier": "gold", "k\x00": 1}):
            poisoned = api.post("/v3/create-web-call", json={"agent_id": agent, "metadata": metadata})
            assert poisoned.status_code in (201, 400), poisoned.text
        listed = api.post(
            "/v3/list-calls",
            json={"filter_criteria": {"metadata": [{"type": "string", "op": "eq", "key": "tier", "value": "gold"}]}},
        )
        assert listed.status_code == 200, listed.text
        assert plain.json()["call_id"] in {i["call_id"] for i in listed.json()["items"]}
