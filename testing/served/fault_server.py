"""A stub of vLLM's OpenAI server that injects faults, for the fault tests only (everything
else runs against a real ``vllm serve``).

It answers ``/health``, ``/version``, ``/v1/models`` and ``/v1/chat/completions`` the way vLLM
does, except where the request's user message names a fault: ``fault=500``, ``fault=429``,
``fault=400``, ``fault=garbage`` (a 200 whose body is not JSON), ``fault=truncated`` (a body cut
short, the connection closed), ``fault=slow`` (an answer after ``slow_seconds``), or
``fault=500x2`` / ``fault=429x1`` (that fault for the first N attempts, then a good answer).
``die_after=N`` makes the server die after N good answers: it stops listening and drops every
connection, as a crashed server does. Every chat request is recorded in ``requests``.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "stub-model"
ADAPTER = "stub-lora"
FAULT = re.compile(r"fault=(\w+?)(?:x(\d+))?\b")


def answer_for(query: str) -> str:
    return f"answer to: {query}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    block_on_close = False
    stub: FaultServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as vLLM (uvicorn)
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, value: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(value).encode(), headers)

    def _drop(self) -> None:
        """Close the connection without an answer (a crashed server)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self) -> None:
        stub = self.server.stub
        if stub.dead:
            return self._drop()
        if self.path == "/health":
            return self._send(stub.health_status, b"")
        if self.path == "/version":
            return self._json(200, {"version": "0.0.stub"})
        if self.path == "/v1/models":
            if not stub.authorized(self.headers.get("Authorization")):
                return self._json(401, {"error": "Unauthorized"})
            return self._json(
                200,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": MODEL,
                            "root": "/models/stub",
                            "parent": None,
                            "max_model_len": 4096,
                        },
                        {"id": ADAPTER, "root": "/adapters/stub", "parent": MODEL},
                    ],
                },
            )
        self._json(404, {"error": {"message": "Not Found"}})

    def do_POST(self) -> None:
        stub = self.server.stub
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if stub.dead:
            return self._drop()
        if not stub.authorized(self.headers.get("Authorization")):
            return self._json(401, {"error": "Unauthorized"})
        query = body["messages"][0]["content"]
        with stub.lock:
            stub.requests.append(body)
            stub.attempts[query] += 1
            attempt = stub.attempts[query]
        match = FAULT.search(query) if stub.faults else None
        fault = match.group(1) if match else None
        if match and match.group(2) and attempt > int(match.group(2)):
            fault = None  # a transient fault: it has happened often enough
        if fault == "500":
            return self._json(500, {"error": {"message": "boom", "type": "InternalServerError"}})
        if fault == "429":
            return self._json(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
        if fault == "400":
            return self._json(
                400, {"error": {"message": "This model's maximum context length is 4096 tokens"}}
            )
        if fault == "garbage":
            return self._send(200, b"{this is not json")
        if fault == "truncated":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"choices": [{"mess')
            self.wfile.flush()
            return self._drop()
        if fault == "slow":
            time.sleep(stub.slow_seconds)
        self._json(
            200,
            {
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer_for(query)},
                        "finish_reason": "stop",
                    }
                ],
            },
        )
        with stub.lock:
            stub.answered += 1
            if stub.die_after is not None and stub.answered >= stub.die_after:
                stub.die()


class FaultServer:
    """``with FaultServer() as stub:`` serves on 127.0.0.1 (a free port) in threads."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.attempts: Counter[str] = Counter()
        self.answered = 0
        self.lock = threading.Lock()
        self.faults = True  # False: every request answers well (the "fixed" server)
        self.slow_seconds = 5.0
        self.health_status = 200
        self.api_key: str | None = None
        self.die_after: int | None = None
        self.dead = False
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.stub = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def authorized(self, header: str | None) -> bool:
        return self.api_key is None or header == f"Bearer {self.api_key}"

    def die(self) -> None:
        """Stop listening (new connections are refused) and drop every open one."""
        if self.dead:
            return
        self.dead = True
        threading.Thread(target=self._close, daemon=True).start()  # shutdown() blocks

    def _close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self.dead:
            self.dead = True
            self._close()
