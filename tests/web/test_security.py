"""The server's gate: the bearer token (missing, wrong, in the query string), reads off
loopback, the Host check, the body cap, and no secret in any response or page."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from web_support import served

import otpy
from otpy.errors import ConfigurationError
from otpy.web import is_loopback

SECRET = "sk-ant-api03-THISISNOTAREALKEY0123456789"
OPTION_SECRET = "hunter2-very-secret-password"


def test_mutating_requests_need_the_token_and_reads_on_loopback_do_not() -> None:
    with served() as s:
        path = f"/api/actors/{s.rt.name}.steps/suspend"
        missing = s.anonymous.post(path)
        assert missing.status_code == 401
        assert missing.json() == {
            "error": "this request needs the server's token: send Authorization: Bearer <token>",
            "status": 401,
        }
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = s.anonymous.post(path, headers={"Authorization": "Bearer not-the-token"})
        assert (
            wrong.status_code == 401 and wrong.json()["error"] == "the token is not this server's"
        )
        basic = s.anonymous.post(path, headers={"Authorization": f"Basic {s.server.token}"})
        assert basic.status_code == 401 and "Bearer <token>" in basic.json()["error"]
        for query in ("token", "access_token", "api_key"):
            in_query = s.anonymous.post(path, params={query: s.server.token})
            assert in_query.status_code == 401, query
        for method in ("put", "delete", "patch"):
            assert s.anonymous.request(method, "/api/jobs").status_code == 401
        assert s.anonymous.get("/api/jobs").status_code == 200
        assert s.client.post(path).json()["suspended"] is True
        assert s.client.post(f"/api/actors/{s.rt.name}.steps/resume").status_code == 200


def test_a_given_token_is_the_one_and_the_config_can_give_it() -> None:
    with served(token="a-token-of-my-own-choosing") as s:
        assert s.server.token == "a-token-of-my-own-choosing"
        response = s.anonymous.post(
            "/api/agent/chat",
            json={"message": "hi"},
            headers={"Authorization": "Bearer a-token-of-my-own-choosing"},
        )
        assert response.status_code == 202
    with served({"web": {"token": "configured-token-0123456789"}}) as s:
        assert s.server.token == "configured-token-0123456789"


def test_the_host_header_must_name_loopback_on_a_loopback_server() -> None:
    with served() as s:
        rebound = s.anonymous.get("/api/jobs", headers={"Host": "evil.example:80"})
        assert rebound.status_code == 400 and "unexpected Host" in rebound.json()["error"]
        for host in ("localhost", f"localhost:{s.server.port}", f"127.0.0.1:{s.server.port}"):
            assert s.anonymous.get("/api/jobs", headers={"Host": host}).status_code == 200


def test_request_bodies_are_capped() -> None:
    with served(max_body=1000) as s:
        big = s.client.post("/api/agent/chat", json={"message": "x" * 2000})
        assert big.status_code == 413 and "1000 bytes" in big.json()["error"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the cap applies as it streams
            yield b'{"message": "'
            for _ in range(20):
                yield b"y" * 100
            yield b'"}'

        streamed = s.client.post(
            "/api/agent/chat", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413 and "1000 bytes" in streamed.json()["error"]
        assert s.client.post("/api/agent/chat", json={"message": "small"}).status_code == 202


def test_no_token_off_loopback_is_refused_and_with_one_every_request_needs_it() -> None:
    with otpy.start({"name": "web-offloop", "jobs_store": ":memory:", "plugins": False}) as rt:
        with pytest.raises(ConfigurationError, match=r"refusing to serve on '0\.0\.0\.0' without"):
            rt.serve(host="0.0.0.0")
        server = rt.serve(host="0.0.0.0", token="an-off-loopback-token-0123")
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for path in ("/api/jobs", "/api/tree", "/openapi.json", "/metrics", "/api/events"):
                assert client.get(path).status_code == 401, path
            assert client.get("/api/jobs", params={"token": server.token}).status_code == 401
            auth = {"Authorization": f"Bearer {server.token}"}
            assert client.get("/api/jobs", headers=auth).status_code == 200
            shell = client.get("/")  # the page itself: no data, loaded before it can send a header
            assert shell.status_code == 200 and server.token not in shell.text
            assert client.get("/static/app.js").status_code == 200
            assert client.get("/api/jobs", headers={"Host": "far.example"}).status_code == 401


def test_is_loopback() -> None:
    assert all(map(is_loopback, ("127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]")))
    assert not any(map(is_loopback, ("0.0.0.0", "::", "10.0.0.1", "example.com", "")))


def test_a_taken_port_is_a_configuration_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with (
            otpy.start({"name": "web-taken", "jobs_store": ":memory:", "plugins": False}) as rt,
            pytest.raises(ConfigurationError, match=f"port {port}"),
        ):
            rt.serve(port=port)


def test_no_secret_in_any_response_or_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    config = {
        "providers": {
            "simulated": {},
            "claude": {
                "type": "anthropic",
                "api_key": SECRET,
                "options": {"base_url": f"http://user:{OPTION_SECRET}@127.0.0.1:9/"},
            },
        }
    }
    with served(config) as s:
        for message in (SECRET, f"my api_key={OPTION_SECRET} leaked"):
            reply = s.client.post("/api/agent/chat", json={"message": message}).json()
            s.rt.chat.wait(reply["id"], 10)
        pages = ["/", "/static/app.js", "/static/style.css", "/openapi.json", "/metrics"]
        schema = s.client.get("/openapi.json").json()
        pages += [
            path
            for path, operations in schema["paths"].items()
            if "get" in operations and "{" not in path and path != "/api/events"
        ]
        pages += [
            f"/api/actors/{s.rt.name}.providers",
            f"/api/agent/runs/{s.rt.chat.recent(1)[0].id}",
        ]
        seen = 0
        for path in pages:
            response = s.client.get(path)
            assert response.status_code == 200, path
            assert SECRET not in response.text and OPTION_SECRET not in response.text, path
            seen += 1
        providers = {p["name"]: p for p in s.client.get("/api/providers").json()["providers"]}
        assert providers["claude"]["config"]["api_key"] == "[REDACTED]"
        assert seen >= 12
