"""docker-compose.yml cannot run here (no Docker engine); read it the way Compose would."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("web", "worker", "trainer")


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_service_the_readme_names_exists():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Deployment", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^- `(\w+)`", section, flags=re.MULTILINE))
    assert {"db", "redis", "web", "worker", "trainer"} <= named
    assert named <= set(compose()["services"])


def test_app_services_share_one_database_and_broker():
    services = compose()["services"]
    urls = {
        (services[name]["environment"]["DATABASE_URL"], services[name]["environment"]["CELERY_BROKER_URL"])
        for name in APP_SERVICES
    }
    assert len(urls) == 1
    database, broker = urls.pop()
    assert database.startswith("postgres://")
    assert "@db:" in database
    assert broker.startswith("redis://redis:")


def test_app_services_share_one_redis_cache_apart_from_the_broker():
    services = compose()["services"]
    caches = {services[name]["environment"]["CACHE_URL"] for name in (*APP_SERVICES, "beat")}
    assert len(caches) == 1
    cache = caches.pop()
    assert cache.startswith("redis://redis:")
    # clearing the cache empties its whole Redis database: never the one the queues live in
    assert cache != services["web"]["environment"]["CELERY_BROKER_URL"]


def test_app_services_are_built_from_one_dockerfile_and_differ_only_by_command():
    services = compose()["services"]
    assert {services[name]["build"] for name in APP_SERVICES} == {"."}
    assert "gunicorn" in services["web"]["command"]
    assert "-Q default" in services["worker"]["command"]
    assert "-Q training" in services["trainer"]["command"]
    assert "--prefetch-multiplier 1" in services["trainer"]["command"]
    assert (ROOT / "Dockerfile").exists()


def test_secrets_come_from_the_environment():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "DJANGO_SECRET_KEY: ${DJANGO_SECRET_KEY:?" in text
