"""Property-based API tests: schemathesis drives every operation of the live server's OpenAPI
document and checks that no response is a 5xx, and that every status code, content type and body
is one the document declares. Runs against a real server on SQLite and on PostgreSQL.

The last tests run the same harness against a deliberately broken toy API, proving that each
check really fails the test (a harness that cannot fail proves nothing).
"""

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.models import APIOperation, Case
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import BaseOpenAPISchema

from tests.conftest import custom_llm_agent
from tests.servers import ServerProcess
from voxline.api.app import create_app

# FastAPI documents its API as OpenAPI 3.1, which schemathesis 3.x supports behind this switch.
schemathesis.experimental.OPEN_API_3_1.enable()

CHECKS = (not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance)
MAX_EXAMPLES = 20
HTTP_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


def _operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every documented operation, read from the app's own OpenAPI document."""
    document = create_app().openapi()
    return [
        (method.upper(), path) for path, item in document["paths"].items() for method in item if method in HTTP_METHODS
    ]


OPERATIONS = _operations()


def check_operation(
    operation: APIOperation,
    base_url: str,
    headers: dict[str, str],
    *,
    max_examples: int = MAX_EXAMPLES,
    seeds: "Seeds | None" = None,
) -> None:
    """Send `max_examples` generated requests to `operation`; raise on the first check that fails.

    With `seeds`, about half the requests name real objects instead of random ids, so they reach
    the code behind the 404. Hypothesis shrinks a failing request to a minimal reproduction.
    """
    strategy = operation.as_strategy()
    if seeds is not None:
        strategy = st.tuples(strategy, st.booleans()).map(lambda pair: seeds.apply(pair[0]) if pair[1] else pair[0])

    with requests.Session() as session:

        @settings(
            max_examples=max_examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            print_blob=False,
        )
        @given(case=strategy)
        def send(case: Case) -> None:
            case.call_and_validate(base_url=base_url, session=session, headers=headers, checks=CHECKS, timeout=15)

        send()


@dataclass
class Seeds:
    """Real objects on the server under test, swapped into generated requests."""

    llm_id: str
    agent_id: str
    call_id: str
    voice_id: str = "piper-joe"

    def apply(self, case: Case) -> Case:
        ids = {"llm_id": self.llm_id, "agent_id": self.agent_id, "call_id": self.call_id, "voice_id": self.voice_id}
        for name in case.path_parameters or {}:
            if name in ids:
                case.path_parameters[name] = ids[name]  # type: ignore[index]
        if isinstance(case.body, dict):
            if "agent_id" in case.body:  # create-web-call, register-call
                case.body["agent_id"] = self.agent_id
            if "response_engine" in case.body:  # create-agent, update-agent
                case.body["response_engine"] = {"type": "retell-llm", "llm_id": self.llm_id}
        return case


@pytest.fixture
def seeds(api: httpx.Client) -> Seeds:
    """A fresh LLM, agent and web call for each operation (an operation may delete them)."""
    llm = api.post("/create-retell-llm", json={"general_prompt": "You are a test."})
    assert llm.status_code == 201, llm.text
    agent = custom_llm_agent(api, agent_name="schemathesis")
    call = api.post("/v3/create-web-call", json={"agent_id": agent["agent_id"], "metadata": {"k": 1}})
    assert call.status_code == 201, call.text
    return Seeds(llm.json()["llm_id"], str(agent["agent_id"]), call.json()["call_id"])


@pytest.fixture(scope="module")
def server_log(server: ServerProcess) -> list[str]:
    """The server's output so far (`ServerProcess` keeps reading it while the server runs)."""
    return server.output


@pytest.fixture(scope="module")
def live_schema(server: ServerProcess, server_log: list[str]) -> BaseOpenAPISchema:
    assert server.api_key
    return schemathesis.from_uri(
        server.base_url + "/openapi.json",
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {server.api_key}"},
    )


@pytest.mark.slow
def test_live_schema_documents_every_operation(live_schema: BaseOpenAPISchema) -> None:
    live = {(op.ok().method.upper(), op.ok().path) for op in live_schema.get_all_operations()}
    assert live == set(OPERATIONS)


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms_to_its_schema(
    server: ServerProcess, server_log: list[str], live_schema: BaseOpenAPISchema, seeds: Seeds, method: str, path: str
) -> None:
    operation = live_schema[path][method]
    logged = len(server_log)
    try:
        check_operation(operation, server.base_url, {"Authorization": f"Bearer {server.api_key}"}, seeds=seeds)
    except Exception as exc:
        tail = "".join(server_log[logged:])[-4000:]
        raise AssertionError(f"{method} {path} on {server.backend}: {exc}\n\nserver log (end):\n{tail}") from exc


# --- inputs schemathesis found that break the server, pinned as explicit cases -------------------
# Random generation finds these only sometimes within MAX_EXAMPLES; here they run every time.

INT32_OVER = 2**31  # first value past PostgreSQL INTEGER (the version columns)
INT64_OVER = 2**63  # first value past SQLite INTEGER / PostgreSQL BIGINT
NUL = "\x00"
FORGED_KEYS = {
    "string position": "WyJ4IiwieSJd",  # ["x", "y"]
    "null position": "W251bGwsInkiXQ",  # [null, "y"]
    "huge position": "WzExODA1OTE2MjA3MTc0MTEzMDM0MjQsInkiXQ",  # [2**70, "y"]
}


def edge_requests(seeds: Seeds) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(name, method, path, httpx kwargs) of requests that must get a 4xx, never a 5xx."""
    agent, llm = seeds.agent_id, seeds.llm_id
    engine = {"type": "retell-llm", "llm_id": llm}
    cases: list[tuple[str, str, str, dict[str, Any]]] = []
    for label, big in (("int32+1", INT32_OVER), ("int64+1", INT64_OVER)):
        cases += [
            (f"get-agent version {label}", "GET", f"/get-agent/{agent}", {"params": {"version": big}}),
            (
                f"update-agent version {label}",
                "PATCH",
                f"/update-agent/{agent}",
                {"params": {"version": big}, "json": {}},
            ),
            (f"get-retell-llm version {label}", "GET", f"/get-retell-llm/{llm}", {"params": {"version": big}}),
            (
                f"update-retell-llm version {label}",
                "PATCH",
                f"/update-retell-llm/{llm}",
                {"params": {"version": big}, "json": {}},
            ),
            (
                f"create-agent-version base_version {label}",
                "POST",
                f"/create-agent-version/{agent}",
                {"json": {"base_version": big}},
            ),
            (
                f"delete-agent-version version {label}",
                "DELETE",
                f"/delete-agent-version/{agent}",
                {"params": {"version": big}},
            ),
            (
                f"publish-agent-version version {label}",
                "POST",
                f"/publish-agent-version/{agent}",
                {"json": {"version": big}},
            ),
            (
                f"create-web-call agent_version {label}",
                "POST",
                "/v3/create-web-call",
                {"json": {"agent_id": agent, "agent_version": big}},
            ),
            (
                f"create-agent response_engine.version {label}",
                "POST",
                "/create-agent",
                {"json": {"voice_id": "piper-joe", "response_engine": {**engine, "version": big}}},
            ),
            (
                f"v3 list-calls agent version {label}",
                "POST",
                "/v3/list-calls",
                {"json": {"filter_criteria": {"agent": [{"agent_id": agent, "version": [big]}]}}},
            ),
            (f"v3 list-calls skip {label}", "POST", "/v3/list-calls", {"json": {"skip": big}}),
            (
                f"v2 list-calls version {label}",
                "POST",
                "/v2/list-calls",
                {"json": {"filter_criteria": {"version": [big]}}},
            ),
            (
                f"v2 list-calls duration threshold {label}",
                "POST",
                "/v2/list-calls",
                {"json": {"filter_criteria": {"duration_ms": {"lower_threshold": big}}}},
            ),
        ]
    for label, key in FORGED_KEYS.items():
        cases += [
            (f"v3 list-calls pagination_key {label}", "POST", "/v3/list-calls", {"json": {"pagination_key": key}}),
            (f"v2 list-agents pagination_key {label}", "POST", "/v2/list-agents", {"params": {"pagination_key": key}}),
            (
                f"v2 list-retell-llms pagination_key {label}",
                "GET",
                "/v2/list-retell-llms",
                {"params": {"pagination_key": key}},
            ),
            (
                f"list-agent-versions pagination_key {label}",
                "GET",
                f"/list-agent-versions/{agent}",
                {"params": {"pagination_key": key}},
            ),
        ]
    cases += [
        ("get-agent id with NUL", "GET", "/get-agent/agent_%00", {}),
        ("get-retell-llm id with NUL", "GET", "/get-retell-llm/llm_%00", {}),
        ("get-call id with NUL", "GET", "/v2/get-call/call_%00", {}),
        ("delete-agent id with NUL", "DELETE", "/delete-agent/agent_%00", {}),
        (
            "create-agent agent_name with NUL",
            "POST",
            "/create-agent",
            {
                "json": {
                    "voice_id": "piper-joe",
                    "agent_name": f"a{NUL}b",
                    "response_engine": {"type": "retell-llm", "llm_id": llm},
                }
            },
        ),
        (
            "v3 list-calls metadata filter value with NUL",
            "POST",
            "/v3/list-calls",
            {"json": {"filter_criteria": {"metadata": [{"type": "string", "op": "eq", "key": "k", "value": NUL}]}}},
        ),
    ]
    return cases


EDGE_NAMES = [name for name, *_ in edge_requests(Seeds("llm_x", "agent_x", "call_x"))]


@pytest.mark.slow
@pytest.mark.parametrize("name", EDGE_NAMES)
def test_edge_input_is_a_client_error_not_a_server_error(
    api: httpx.Client, server_log: list[str], seeds: Seeds, name: str
) -> None:
    (method, path, kwargs) = next(rest for n, *rest in edge_requests(seeds) if n == name)
    logged = len(server_log)
    response = api.request(method, path, **kwargs)
    tail = "".join(server_log[logged:])[-1500:]
    assert response.status_code < 500, f"{method} {path} {kwargs} -> {response.status_code}\n{tail}"
    if response.status_code >= 400:
        assert response.json()["status"] == "error"


# --- the harness fails on a broken API ------------------------------------------------------------

OK_BODY = {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}
TOY_PATHS = ("/fine", "/server-error", "/undocumented-status", "/wrong-shape", "/wrong-content-type")
TOY_SCHEMA: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "toy", "version": "1"},
    "paths": {
        path: {
            "get": {
                "parameters": [{"name": "q", "in": "query", "required": False, "schema": {"type": "integer"}}],
                "responses": {
                    "200": {"description": "ok", "content": {"application/json": {"schema": OK_BODY}}},
                    "400": {"description": "bad", "content": {"application/json": {"schema": {"type": "object"}}}},
                },
            }
        }
        for path in TOY_PATHS
    },
}


class BrokenApi(BaseHTTPRequestHandler):
    """Each path breaks the contract in one way (except `/fine`)."""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        replies: dict[str, tuple[int, str, bytes]] = {
            "/openapi.json": (200, "application/json", json.dumps(TOY_SCHEMA).encode()),
            "/fine": (200, "application/json", b'{"id": 1}'),
            "/server-error": (500, "application/json", b'{"status": "error", "message": "boom"}'),
            "/undocumented-status": (418, "application/json", b'{"id": 1}'),
            "/wrong-shape": (200, "application/json", b'{"id": "one"}'),
            "/wrong-content-type": (200, "text/plain", b"id=1"),
        }
        status, content_type, body = replies.get(path, (404, "application/json", b"{}"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def broken_api() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BrokenApi)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def broken_schema(broken_api: str) -> BaseOpenAPISchema:
    return schemathesis.from_uri(broken_api + "/openapi.json", base_url=broken_api)


def test_harness_passes_a_conforming_operation(broken_api: str, broken_schema: BaseOpenAPISchema) -> None:
    check_operation(broken_schema["/fine"]["GET"], broken_api, {}, max_examples=5)


@pytest.mark.parametrize(
    ("path", "complaint"),
    [
        ("/server-error", "Server error"),
        ("/undocumented-status", "Undocumented HTTP status code"),
        ("/wrong-shape", "Response violates schema"),
        ("/wrong-content-type", "Undocumented Content-Type"),
    ],
)
def test_harness_fails_a_broken_operation(
    broken_api: str, broken_schema: BaseOpenAPISchema, path: str, complaint: str
) -> None:
    with pytest.raises(AssertionError) as failure:
        check_operation(broken_schema[path]["GET"], broken_api, {}, max_examples=5)
    assert complaint in str(failure.value)
