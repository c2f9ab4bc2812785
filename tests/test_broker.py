"""The embedded broker (filesystem://, project/broker.py) under load, with real worker processes.

Each test runs its workers and producers on a broker folder of its own, whatever broker the suite is configured for.
"""

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from kombu import Connection, Exchange, Queue

from tests.worker import WorkerProcess, wait_for

INCLUDE = ["--include", "tests.broker_load"]


def broker_env(broker_dir: Path) -> dict[str, str]:
    return {"CELERY_BROKER_URL": "filesystem://", "CELERY_BROKER_DIR": str(broker_dir)}


def start_producers(broker_dir: Path, out: Path, prefixes: list[str], threads: int, count: int) -> list:
    env = {**os.environ, **broker_env(broker_dir)}
    return [
        subprocess.Popen(
            [sys.executable, "-m", "tests.broker_load", str(out), prefix, str(threads), str(count)],
            cwd=settings.BASE_DIR,
            env=env,
        )
        for prefix in prefixes
    ]


def messages(broker_dir: Path) -> list[Path]:
    return sorted((broker_dir / "queue").glob("*.default.msg"))


@pytest.mark.worker
@pytest.mark.django_db
def test_many_producers_and_two_workers_on_one_folder_run_every_message_exactly_once(tmp_path):
    broker_dir, out = tmp_path / "broker", tmp_path / "out"
    out.mkdir()
    workers = [
        WorkerProcess("default", env=broker_env(broker_dir), args=INCLUDE, name=f"broker-{os.getpid()}-{n}")
        for n in range(2)
    ]
    try:
        # 4 processes x 3 threads x 80 messages of 100 kB, published while both workers poll the folder
        producers = start_producers(broker_dir, out, [f"p{n}" for n in range(4)], threads=3, count=80)
        assert [producer.wait(timeout=120) for producer in producers] == [0, 0, 0, 0]
        expected = {f"p{p}-{t}-{n}" for p in range(4) for t in range(3) for n in range(80)}

        def dead() -> list[WorkerProcess]:
            return [worker for worker in workers if worker.process.poll() is not None]

        def all_ran() -> bool:
            return len(list(out.iterdir())) == len(expected) and not messages(broker_dir)

        wait_for(lambda: dead() or all_ran(), timeout=120)
        assert not dead(), "".join(dead()[0].log[-20:])
    finally:
        for worker in workers:
            worker.stop()

    runs = {path.name: path.read_bytes() for path in out.iterdir()}
    assert set(runs) == expected
    assert {key for key, marks in runs.items() if marks != b"x"} == set()  # none ran twice
    logs = ["".join(worker.log) for worker in workers]
    assert all("succeeded" in log for log in logs)  # both workers took messages from the folder
    assert not any("Unrecoverable error" in log for log in logs)
    assert not list((broker_dir / "bad").iterdir())


@pytest.mark.worker
@pytest.mark.django_db
def test_a_message_file_cut_short_is_set_aside_and_the_worker_runs_the_next_one(tmp_path):
    broker_dir, out = tmp_path / "broker", tmp_path / "out"
    out.mkdir()
    # a message whose writer died half-way, and an empty one, are the oldest in the queue
    (producer,) = start_producers(broker_dir, out, ["cut"], threads=1, count=1)
    assert producer.wait(timeout=60) == 0
    (whole,) = messages(broker_dir)
    data, queue = whole.read_bytes(), whole.name.partition(".")[2]
    whole.unlink()
    (whole.parent / f"0_cut.{queue}").write_bytes(data[: len(data) // 2])
    (whole.parent / f"0_empty.{queue}").write_bytes(b"")

    worker = WorkerProcess("default", env=broker_env(broker_dir), args=INCLUDE, name=f"broker-{os.getpid()}-cut")
    try:
        (producer,) = start_producers(broker_dir, out, ["good"], threads=1, count=1)
        assert producer.wait(timeout=60) == 0
        wait_for(lambda: (out / "good-0-0").exists(), timeout=60)
        assert worker.process.poll() is None
    finally:
        worker.stop()

    assert sorted(path.name for path in out.iterdir()) == ["good-0-0"]
    assert sorted(path.name.partition(".")[0] for path in (broker_dir / "bad").iterdir()) == ["0_cut", "0_empty"]
    assert "cannot be decoded" in "".join(worker.log)


def declare(folder: Path, queue: str, start) -> None:
    options = {"data_folder_in": str(folder / "queue"), "data_folder_out": str(folder / "queue")}
    with Connection("filesystem://", transport_options={**options, "control_folder": str(folder / "control")}) as conn:
        channel = conn.default_channel
        start.wait()
        Queue(queue, Exchange("tasks"), routing_key=queue)(channel).declare()


def test_queues_declared_by_many_processes_at_once_all_stay_bound(tmp_path):
    # As on a fresh `make run`: web workers, the worker and beat declare their queues on one exchange at once.
    context = multiprocessing.get_context("fork")
    for trial in range(10):
        folder, start = tmp_path / str(trial), context.Event()
        (folder / "queue").mkdir(parents=True)
        declarers = [context.Process(target=declare, args=(folder, f"q{n}", start)) for n in range(12)]
        for process in declarers:
            process.start()
        start.set()
        for process in declarers:
            process.join(timeout=60)
        assert [process.exitcode for process in declarers] == [0] * 12
        table = json.loads((folder / "control" / "tasks.exchange").read_text())
        assert sorted(queue for _, _, queue in table) == sorted(f"q{n}" for n in range(12))
