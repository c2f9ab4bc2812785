"""bench/smoke.sh, the runner CI uses so the bench scripts keep running: it fails on a bench that crashes or prints
no figures, and names it. Fake bench scripts in a temporary folder stand in for the real ones."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = 'import sys\nprint("| page | 12.5 ms |" if sys.argv[1:] == ["--smoke"] else "not a smoke run")\n'


def run_smoke(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603
        ["bash", str(ROOT / "bench" / "smoke.sh"), str(folder)],
        env={"PATH": "/usr/bin:/bin", "BENCH_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_benches_that_run_with_smoke_and_print_figures_pass(tmp_path):
    (tmp_path / "pages_bench.py").write_text(FIGURES)
    (tmp_path / "_helper.py").write_text("raise SystemExit('a helper is not a bench')\n")

    result = run_smoke(tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "| page | 12.5 ms |" in result.stdout
    assert "_helper.py" not in result.stdout


def test_a_bench_that_crashes_fails_the_run_and_is_named(tmp_path):
    (tmp_path / "pages_bench.py").write_text(FIGURES)
    (tmp_path / "broken_bench.py").write_text("import no_such_module_here\n")

    result = run_smoke(tmp_path)

    assert result.returncode != 0
    assert "broken_bench.py (exit 1)" in result.stderr
    assert "pages_bench.py" not in result.stderr


def test_a_bench_that_prints_no_figures_fails_the_run_and_is_named(tmp_path):
    (tmp_path / "pages_bench.py").write_text(FIGURES)
    (tmp_path / "quiet_bench.py").write_text('print("seeding 2,000 pairs ...")\nprint("| page | SQLite |")\n')

    result = run_smoke(tmp_path)

    assert result.returncode != 0
    assert "quiet_bench.py (no figures" in result.stderr
    assert "pages_bench.py" not in result.stderr


def test_a_folder_without_benches_fails(tmp_path):
    result = run_smoke(tmp_path)

    assert result.returncode != 0
    assert "no bench scripts" in result.stderr
