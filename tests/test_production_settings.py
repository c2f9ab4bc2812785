"""Production settings: no start without a secret key, one key file shared by every process, HTTPS behind the proxy,
and the compose stack's environment passes `manage.py check --deploy`."""

import json
import os
import re
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PRINT_KEY = "from django.conf import settings; print('key:', settings.SECRET_KEY)"


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """manage.py in a fresh process with only `env` (and PATH); DJANGO_* values given here win over any .env file."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def key_django_uses(*, debug: str, env_key: str, var_dir: Path) -> str:
    result = manage(
        "shell",
        "-c",
        PRINT_KEY,
        env={"DJANGO_DEBUG": debug, "DJANGO_SECRET_KEY": env_key, "INSTRUCTORY_VAR_DIR": str(var_dir)},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("key: ", 1)[1].strip()


def compose_environment(shell: dict[str, str]) -> dict[str, str]:
    """The app services' environment as `docker compose` would pass it, given the shell's variables."""

    def interpolate(match: re.Match) -> str:
        name, operator, argument = match.groups()
        if name in shell:
            return shell[name]
        assert operator != ":?", f"compose refuses to start without {name}"
        return argument or ""

    environment = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["web"]["environment"]
    return {
        name: re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", interpolate, str(value)) for name, value in environment.items()
    }


def test_without_a_key_or_key_file_django_refuses_to_start_and_names_the_variable(tmp_path):
    result = manage("check", env={"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "", "INSTRUCTORY_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY is not set" in result.stderr
    assert str(tmp_path / "secret_key") in result.stderr


def test_debug_alone_still_runs_on_a_development_key(tmp_path):
    assert key_django_uses(debug="1", env_key="", var_dir=tmp_path).startswith("insecure-local-key")


def test_make_creates_one_private_key_file_that_django_then_uses(tmp_path):
    shell = {key: value for key, value in os.environ.items() if key != "DJANGO_SECRET_KEY"}
    make = ["make", "-s", "secret-key", f"PYTHON={sys.executable}"]
    for _ in range(2):  # the second run keeps the first key
        subprocess.run(make, cwd=ROOT, env={**shell, "INSTRUCTORY_VAR_DIR": str(tmp_path)}, check=True, timeout=60)
    key_file = tmp_path / "secret_key"
    key = key_file.read_text()
    assert len(key) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [key_file]  # no temporary file left behind

    assert key_django_uses(debug="0", env_key="", var_dir=tmp_path) == key
    assert key_django_uses(debug="1", env_key="", var_dir=tmp_path) == key
    assert key_django_uses(debug="0", env_key="k" * 60, var_dir=tmp_path) == "k" * 60  # the variable wins


def cache_django_uses(*, var_dir: Path, cache_url: str | None = None) -> dict:
    env = {"DJANGO_DEBUG": "1", "DJANGO_SECRET_KEY": "", "INSTRUCTORY_VAR_DIR": str(var_dir)}
    if cache_url is not None:
        env["CACHE_URL"] = cache_url
    code = "import json; from django.conf import settings; print('cache:', json.dumps(settings.CACHES['default']))"
    result = manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.split("cache: ", 1)[1])


def test_every_process_on_a_machine_shares_one_cache_by_default_and_cache_url_names_another(tmp_path):
    # files in the var dir: the web server and its workers all read and write the same ones
    assert cache_django_uses(var_dir=tmp_path) == {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(tmp_path / "cache"),
    }
    assert cache_django_uses(var_dir=tmp_path, cache_url="redis://cache.internal:6379/1") == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://cache.internal:6379/1",
    }


def storage_django_uses(env: dict[str, str], var_dir: Path) -> dict:
    code = "import json; from django.conf import settings; print(json.dumps(settings.STORAGES['default']))"
    result = manage("shell", "-c", code, env={"DJANGO_DEBUG": "1", "INSTRUCTORY_VAR_DIR": str(var_dir), **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_s3_variables_put_every_file_in_the_bucket_and_storage_options_refine_them(tmp_path):
    # by default, files under MEDIA_ROOT
    assert storage_django_uses({"MEDIA_ROOT": str(tmp_path / "media")}, tmp_path) == {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "media")},
    }
    s3 = {"S3_BUCKET": "team-data", "S3_ENDPOINT_URL": "http://minio:9000", "S3_REGION": "eu-west-1",
          "S3_ACCESS_KEY_ID": "AKIA-TEST", "S3_SECRET_ACCESS_KEY": "not-in-any-file", "S3_PREFIX": "instructory",
          "S3_ADDRESSING_STYLE": "path", "S3_URL_EXPIRE_S": "60"}  # fmt: skip
    storage = storage_django_uses({**s3, "STORAGE_OPTIONS": '{"signature_version": "s3v4"}'}, tmp_path)
    assert storage == {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": "team-data", "endpoint_url": "http://minio:9000", "region_name": "eu-west-1",
            "access_key": "AKIA-TEST", "secret_key": "not-in-any-file", "location": "instructory",
            "addressing_style": "path", "querystring_expire": 60, "file_overwrite": False, "default_acl": None,
            "max_memory_size": 16 * 1024 * 1024, "signature_version": "s3v4",
        },
    }  # fmt: skip
    # without keys boto3 looks for them itself (an instance role, ~/.aws)
    bare = storage_django_uses({"S3_BUCKET": "team-data"}, tmp_path)["OPTIONS"]
    assert (bare["access_key"], bare["secret_key"], bare["endpoint_url"]) == (None, None, None)


def test_the_compose_stack_passes_check_deploy(tmp_path):
    environment = compose_environment(
        {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "DJANGO_ALLOWED_HOSTS": "instructory.example.com"}
    )
    for name in ("DJANGO_SECURE_PROXY_SSL_HEADER", "DJANGO_SSL_REDIRECT", "DJANGO_SECURE_COOKIES"):
        assert environment[name] == "1", name
    assert int(environment["DJANGO_HSTS_SECONDS"]) >= 31536000
    assert environment["TRUSTED_PROXY_COUNT"] == "1"
    assert "DJANGO_DEBUG" not in environment  # off by default
    # The check connects to no database or broker; only this machine's paths differ from the containers'.
    environment |= {"INSTRUCTORY_VAR_DIR": str(tmp_path), "MEDIA_ROOT": str(tmp_path / "media")}
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=environment)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.django_db
def test_behind_the_tls_proxy_plain_http_is_redirected_but_the_health_probe_is_not(client, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True

    plain = client.get("/accounts/login/")
    assert plain.status_code == 301
    assert plain["Location"] == "https://testserver/accounts/login/"

    secure = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"

    assert client.get("/healthz").json() == {"status": "ok"}
