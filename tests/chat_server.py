"""A small OpenAI-compatible chat-completions server for tests: a real HTTP endpoint on 127.0.0.1.

It answers deterministically from the request, records every request, and can be told to fail,
so the HTTP generator backend and the jobs that use it are tested over a real socket.
"""

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

API_KEY = "sk-test-secret-key"


def answer_for(messages: list[dict]) -> str:
    """The reply the server gives: names the question and a digest of the whole conversation."""
    digest = hashlib.sha1(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:6]  # noqa: S324
    question = messages[-1]["content"].strip().splitlines()[-1][:80]
    return f"Here is a careful answer about: {question} (#{digest})"


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ChatHandler)
        self.requests: list[dict] = []
        self.failures: list[tuple[int, str]] = []  # (status, message) served before normal answers
        self.replies: list[str] = []  # answers served, in order, before the computed ones
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/v1"


class ChatHandler(BaseHTTPRequestHandler):
    server: ChatServer

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
            failure = self.server.failures.pop(0) if self.server.failures else None
            reply = self.server.replies.pop(0) if self.server.replies and not failure else None
        if failure:
            self._send(failure[0], {"error": {"message": failure[1]}})
        elif self.path != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
        elif self.headers.get("Authorization") != f"Bearer {API_KEY}":
            self._send(401, {"error": {"message": "Incorrect API key provided"}})
        else:
            content = reply if reply is not None else answer_for(body["messages"])
            self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})

    def _send(self, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def openai_settings(server: ChatServer) -> dict:
    """The GENERATORS entry that points the HTTP backend at this server."""
    return {
        "BACKEND": "datasets_app.blueprints.generators.OpenAIChatGenerator",
        "BASE_URL": server.base_url,
        "MODEL": "test-chat-model",
        "API_KEY": API_KEY,
        "TIMEOUT": 10,
        "LABEL": "Test chat server",
    }


def serving(server: ChatServer) -> Iterator[ChatServer]:
    """Serve on a background thread until the generator is closed, then free the port."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def chat_server():
    yield from serving(ChatServer())
