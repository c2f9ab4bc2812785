"""Time to first token of /v1/chat/completions: the `openai` client, gunicorn, a Celery worker, on this machine.

    .venv/bin/python bench/chat_bench.py            # SmolLM2-135M-Instruct (the default model)
    .venv/bin/python bench/chat_bench.py --smoke    # the tiny random model, 2 requests: the same code

Starts gunicorn (1 process, 4 threads, as a web container runs it) and one worker on the default queue, on a
throwaway database (bench/import_bench.py's), makes a workspace API key, and asks through the official client.
The first request finds the worker cold (it loads the model); the next ones find it warm, which is what the
issue's target (under 1 s on CPU) is about. Time to first token is from the client's call to the first chunk
with text; it includes the queue, the worker's claim, rendering the prompt and the first forward pass, and the
polls on both sides (CHAT_FLUSH_S, CHAT_POLL_S). Streamed and plain answers are greedy, up to --tokens tokens.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from bench.import_bench import use_bench_database  # noqa: E402

MODEL, TINY = "smollm2-135m-instruct", "smollm2-tiny-random"
QUESTION = [{"role": "user", "content": "Give me three tips for a good night's sleep."}]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def gunicorn(port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "gunicorn", "project.wsgi", "--bind", f"127.0.0.1:{port}"]
    return subprocess.Popen([*command, "--workers", "1", "--threads", "4"], cwd=ROOT, stderr=subprocess.DEVNULL)


def wait_up(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def api_key() -> str:
    from django.contrib.auth import get_user_model

    from datasets_app.curation.services import workspace_create
    from openai_app.keys import api_key_create

    admin = get_user_model().objects.create_user("bench-admin")
    workspace = workspace_create(name="Bench", user=admin)
    return api_key_create(workspace=workspace, by=admin, name="bench", role="annotator")[1]


def streamed(client, model: str, tokens: int) -> dict:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    first, usage = None, None
    stream = client.chat.completions.create(
        model=model, messages=QUESTION, max_tokens=tokens, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - started
        usage = chunk.usage or usage
    total = time.perf_counter() - started
    return {"first": first or total, "total": total, "tokens": usage.completion_tokens if usage else 0}


def plain(client, model: str, tokens: int) -> dict:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    answer = client.chat.completions.create(model=model, messages=QUESTION, max_tokens=tokens, temperature=0)
    total = time.perf_counter() - started
    return {"first": None, "total": total, "tokens": answer.usage.completion_tokens}


def row(label: str, figures: dict) -> None:
    first = f"{figures['first']:.2f} s" if figures["first"] is not None else "-"
    rate = figures["tokens"] / figures["total"] if figures["total"] else 0
    print(f"| {label} | {first} | {figures['total']:.2f} s | {figures['tokens']} | {rate:.1f} tokens/s |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=MODEL, help=f"a base model of the registry (default {MODEL})")
    parser.add_argument("--requests", type=int, default=5, help="streamed requests on the warm worker (default 5)")
    parser.add_argument("--tokens", type=int, default=64, help="max_tokens of each answer (default 64)")
    parser.add_argument("--smoke", action="store_true", help="the tiny model, 2 requests of 8 tokens")
    args = parser.parse_args()
    if args.smoke:
        args.model, args.requests, args.tokens = TINY, 2, 8

    vendor = use_bench_database()
    import django

    django.setup()
    import openai
    from django.core.management import call_command

    from tests.worker import WorkerProcess

    call_command("migrate", verbosity=0)
    key = api_key()
    port = free_port()
    web = gunicorn(port)
    worker = WorkerProcess("default", name=f"chat-bench-{os.getpid()}")
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=600)
    try:
        wait_up(port)
        one, five, _ = os.getloadavg()
        print(f"{args.model} on {vendor}, {args.tokens} tokens per answer, load average {one:.1f} / {five:.1f}\n")
        print("| request | time to first token | total | tokens | speed |")
        print("|---|---|---|---|---|")
        row("streamed, cold worker (loads the model)", streamed(client, args.model, args.tokens))
        warm = [streamed(client, args.model, args.tokens) for _ in range(args.requests)]
        for n, figures in enumerate(warm, 1):
            row(f"streamed, warm worker #{n}", figures)
        row("plain (not streamed), warm worker", plain(client, args.model, args.tokens))
        median = statistics.median(figures["first"] for figures in warm)
        print(f"| median time to first token, warm worker ({len(warm)} requests) | {median:.2f} s | | | |")
    finally:
        client.close()
        worker.stop()
        web.terminate()
        web.wait(timeout=30)


if __name__ == "__main__":
    main()
