"""HTTP endpoints over real sockets: metrics negotiation, health, landing page, the task API."""

from __future__ import annotations

import gzip
import socket

import pytest
import requests
from prometheus_client import CollectorRegistry

from exporter.exposition import Exposition
from exporter.store import TaskStore
from exporter.web.http import MAX_BODY_BYTES, ExporterHTTPServer
from exporter.web.routes import Routes
from tests.constants import APP

TOKEN = "test-token-123"


@pytest.fixture
def server():
    store = TaskStore()
    store.add((APP, "configured"), "flag")
    ready = {"value": False}
    app = Routes(store, Exposition(store, CollectorRegistry()), ready=lambda: ready["value"], api_token=lambda: TOKEN)
    http = ExporterHTTPServer(("127.0.0.1", 0), app).start()
    http.store, http.ready_flag = store, ready
    yield http
    http.stop()


def auth(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def test_metrics_served_as_text_and_gzip(server):
    plain = requests.get(server.url + "/metrics", timeout=5)
    assert plain.status_code == 200
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'tiw_push_task_status{sdk_app_id="1400000001",status="PREPARED",task_id="configured"} 0.0' in plain.text
    raw = requests.get(server.url + "/metrics", headers={"Accept-Encoding": "gzip"}, timeout=5, stream=True)
    assert raw.headers["Content-Encoding"] == "gzip"
    assert b"tiw_exporter_tracked_tasks 1.0" in gzip.decompress(raw.raw.read())


def test_health_and_readiness(server):
    assert requests.get(server.url + "/-/healthy", timeout=5).status_code == 200
    assert requests.get(server.url + "/-/ready", timeout=5).status_code == 503
    server.ready_flag["value"] = True
    assert requests.get(server.url + "/-/ready", timeout=5).status_code == 200


def test_landing_page_lists_tasks_and_links(server):
    page = requests.get(server.url + "/", timeout=5)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert 'href="/metrics"' in page.text and "configured" in page.text


def test_add_list_and_delete_a_task(server):
    body = {"sdk_app_id": APP, "task_id": "fromapi"}
    created = requests.post(server.url + "/api/v1/tasks", json=body, headers=auth(), timeout=5)
    assert created.status_code == 201
    assert created.json()["sources"] == ["api"]
    assert requests.post(server.url + "/api/v1/tasks", json=body, headers=auth(), timeout=5).status_code == 200
    listed = requests.get(server.url + "/api/v1/tasks", timeout=5).json()["tasks"]
    assert {(t["sdk_app_id"], t["task_id"]) for t in listed} == {(APP, "configured"), (APP, "fromapi")}
    one = requests.get(server.url + f"/api/v1/tasks/{APP}/fromapi", timeout=5)
    assert one.json()["status"] == "UNKNOWN"
    deleted = requests.delete(server.url + f"/api/v1/tasks/{APP}/fromapi", headers=auth(), timeout=5)
    assert deleted.status_code == 200
    assert server.store.get((APP, "fromapi")) is None


def test_configured_task_cannot_be_deleted_through_the_api(server):
    answer = requests.delete(server.url + f"/api/v1/tasks/{APP}/configured", headers=auth(), timeout=5)
    assert answer.status_code == 409
    assert "flag" in answer.json()["error"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}])
def test_writes_need_the_bearer_token(server, headers):
    answer = requests.post(server.url + "/api/v1/tasks", json={"sdk_app_id": APP, "task_id": "x"}, headers=headers,
                           timeout=5)
    assert answer.status_code == 401
    assert server.store.get((APP, "x")) is None


def test_writes_are_forbidden_without_a_configured_token():
    store = TaskStore()
    app = Routes(store, Exposition(store, CollectorRegistry()), ready=lambda: True)
    http = ExporterHTTPServer(("127.0.0.1", 0), app).start()
    try:
        answer = requests.post(http.url + "/api/v1/tasks", json={"sdk_app_id": APP, "task_id": "x"},
                               headers=auth(), timeout=5)
        assert answer.status_code == 403
        assert "no API token configured" in answer.json()["error"]
    finally:
        http.stop()


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"sdk_app_id": 1}', b'{"sdk_app_id": 0, "task_id": "a"}',
    b'{"sdk_app_id": 1, "task_id": "bad id"}', b'{"sdk_app_id": 1, "task_id": "a", "extra": 1}',
    b'{"sdk_app_id": true, "task_id": "a"}', b"\xff\xfe", b'{"sdk_app_id": 1e400, "task_id": "a"}',
])
def test_bad_bodies_get_400_with_a_json_error(server, body):
    answer = requests.post(server.url + "/api/v1/tasks", data=body, headers=auth(), timeout=5)
    assert answer.status_code == 400
    assert answer.json()["error"]
    assert len(server.store) == 1


def test_oversized_body_is_refused(server):
    answer = requests.post(server.url + "/api/v1/tasks", data=b"x" * (MAX_BODY_BYTES + 1), headers=auth(),
                           timeout=5)
    assert answer.status_code == 413


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/nope", 404), ("PUT", "/metrics", 405), ("POST", "/metrics", 405),
    ("DELETE", "/api/v1/tasks/abc/def", 400), ("DELETE", "/api/v1/tasks/1/2/3/4", 404),
    ("DELETE", "/api/v1/tasks/bogus/1/abc", 400),
])
def test_unknown_paths_and_methods(server, method, path, status):
    answer = requests.request(method, server.url + path, headers=auth(), timeout=5)
    assert answer.status_code == status
    assert answer.json()["error"]


def test_garbage_request_line_does_not_break_the_server(server):
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=5) as raw:
        raw.sendall(b"\x00\x01garbage\r\n\r\n")
        raw.recv(1024)
    assert requests.get(server.url + "/-/healthy", timeout=5).status_code == 200
