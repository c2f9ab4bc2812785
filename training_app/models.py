"""Dataset snapshots, fine-tuning runs, their metrics, logs and evaluations."""

from django.conf import settings
from django.db import models

from datasets_app.models import Dataset, Dispatched, Example, TimeStamped


class DatasetVersion(TimeStamped):
    """The approved pairs of a dataset frozen at a moment as an immutable file: its training pairs with a seeded
    train/validation split, and its evaluation pairs, which runs are scored on and never train on."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    file = models.FileField(upload_to="snapshots/%Y/%m/", max_length=500)
    content_hash = models.CharField(max_length=64)
    seed = models.IntegerField(default=42)
    validation_fraction = models.FloatField(default=0.1)
    n_train = models.PositiveIntegerField()
    n_validation = models.PositiveIntegerField()
    n_eval = models.PositiveIntegerField(default=0, help_text="Evaluation pairs: scored on, never trained on.")
    eval_hash = models.CharField(
        max_length=64,
        blank=True,
        help_text="A hash of the evaluation pairs' content, whatever their order; empty without evaluation pairs.",
    )
    eval_overlap = models.PositiveIntegerField(
        default=0, help_text="Training pairs whose prompt repeats or nearly repeats an evaluation pair's."
    )
    kind = models.CharField(
        max_length=20, help_text="The dataset's kind when frozen; it decides the evaluation metric."
    )

    class Meta:
        ordering = ["dataset", "-number"]
        constraints = [models.UniqueConstraint(fields=["dataset", "number"], name="unique_snapshot_number")]

    def __str__(self) -> str:
        return f"{self.dataset.name} v{self.number}"

    @property
    def n_total(self) -> int:
        return self.n_train + self.n_validation + self.n_eval


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class Objective(models.TextChoices):
    SFT = "sft", "Supervised (SFT)"
    DPO = "dpo", "Preference: DPO"
    ORPO = "orpo", "Preference: ORPO (reference-free)"


PREFERENCE_OBJECTIVES = (Objective.DPO, Objective.ORPO)


class TrainingRun(TimeStamped, Dispatched):
    """One fine-tuning run; the row is the source of truth, not the broker."""

    snapshot = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="runs")
    base_model = models.CharField(max_length=100)
    method = models.CharField(
        max_length=10, default="lora",
        choices=[("lora", "LoRA"), ("full", "Full fine-tune"), ("qlora", "QLoRA (4-bit base)")],
    )  # fmt: skip
    objective = models.CharField(
        max_length=10, choices=Objective.choices, default=Objective.SFT,
        help_text="sft: supervised pairs; dpo or orpo: chosen over rejected answers of a preference snapshot.",
    )  # fmt: skip
    init_run = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="continued_by",
        help_text="A succeeded LoRA run whose model (merged) this run starts from instead of the base model.",
    )  # fmt: skip
    hyperparameters = models.JSONField(default=dict)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    phase = models.CharField(max_length=40, blank=True, help_text="What a running run is doing now.")
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    eta_seconds = models.FloatField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    first_step_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    device = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True)
    traceback_tail = models.TextField(blank=True)
    artifact = models.FileField(upload_to="artifacts/%Y/%m/", blank=True, max_length=500)
    summary = models.JSONField(default=dict, blank=True, help_text="Tokens, truncation, speed, final losses.")
    evaluation = models.JSONField(
        default=dict, blank=True, help_text='{"source": "eval_set" or "validation", "before": {...}, "after": {...}}'
    )
    # Each claim by a worker is an attempt; a run whose worker died is queued again, to resume from its last
    # checkpoint, until max_attempts have started.
    attempt = models.PositiveSmallIntegerField(default=0, help_text="Attempts started so far.")
    max_attempts = models.PositiveSmallIntegerField(default=3)
    attempts = models.JSONField(
        default=list, blank=True, help_text="Every attempt: number, worker, steps, start, end and why it ended."
    )
    checkpoints = models.JSONField(default=list, blank=True, help_text='The last two: [{"step", "file"}], newest last.')
    micro_batch = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Examples per forward pass, once an out-of-memory retry lowered it."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="run_status_heartbeat")]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def progress(self) -> float:
        if self.status == RunStatus.SUCCEEDED:
            return 1.0
        return self.step / self.total_steps if self.total_steps else 0.0


class RunMetric(models.Model):
    """One training step's numbers, or one epoch's validation loss."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    epoch = models.FloatField(default=0)
    loss = models.FloatField(null=True, blank=True)
    val_loss = models.FloatField(null=True, blank=True)
    learning_rate = models.FloatField(null=True, blank=True)
    grad_norm = models.FloatField(null=True, blank=True)
    tokens_per_s = models.FloatField(null=True, blank=True)
    # preference runs (dpo, orpo): the step's batch, chosen against rejected answers
    reward_margin = models.FloatField(null=True, blank=True)
    reward_accuracy = models.FloatField(null=True, blank=True)
    logp_chosen = models.FloatField(null=True, blank=True)
    logp_rejected = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "step", "id"]
        indexes = [models.Index(fields=["run", "step"], name="metric_run_step")]

    def __str__(self) -> str:
        return f"run {self.run_id} step {self.step}"


class RunLog(models.Model):
    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="logs")
    line = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "id"]

    def __str__(self) -> str:
        return self.line[:80]


class EvalItem(models.Model):
    """One evaluated prompt (of the snapshot's evaluation set, or its validation split when that set is empty) with
    the base and the fine-tuned model's answers, linked back to its pair."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="eval_items")
    example = models.ForeignKey(Example, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    prompt = models.TextField()
    reference = models.TextField(blank=True)
    rejected = models.TextField(blank=True, help_text="Preference snapshots: the rejected answer (reference: chosen).")
    blocked = models.BooleanField(null=True, help_text="Guardrail datasets: whether the prompt is on a blocked topic.")
    before_output = models.TextField(blank=True)
    after_output = models.TextField(blank=True)
    before_ok = models.BooleanField(null=True)
    after_ok = models.BooleanField(null=True)
    before_prefers_chosen = models.BooleanField(
        null=True, help_text="Preference snapshots: the starting model scores the chosen answer above the rejected one."
    )
    after_prefers_chosen = models.BooleanField(null=True, help_text="The same for the trained model.")

    class Meta:
        ordering = ["run", "id"]

    def __str__(self) -> str:
        return self.prompt[:60]


class FailureDraft(TimeStamped):
    """A draft training pair made from a failed evaluated prompt, for annotators to finish (training_app/failures.py).

    At most one per evaluated prompt and target dataset (the prompt belongs to one run), so sending a run's failures
    again creates nothing new, even from two requests at once. Deleting the draft deletes this link with it.
    """

    eval_item = models.ForeignKey(EvalItem, on_delete=models.CASCADE, related_name="drafts")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    example = models.OneToOneField(Example, on_delete=models.CASCADE, related_name="+")
    paraphrased = models.BooleanField(help_text="The prompt is a model's rewording; else the evaluated prompt as is.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["eval_item", "id"]
        constraints = [models.UniqueConstraint(fields=["eval_item", "dataset"], name="unique_failure_draft")]

    def __str__(self) -> str:
        return f"pair {self.example_id} from evaluated prompt {self.eval_item_id}"


class PlaygroundStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Generating"
    SUCCEEDED = "succeeded", "Answered"
    FAILED = "failed", "Failed"


class PlaygroundRequest(TimeStamped, Dispatched):
    """A playground prompt answered by a worker (the web process never loads a model); a job row like a run's."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="playground_requests")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    prompt = models.TextField()
    max_new_tokens = models.PositiveIntegerField(default=128)
    status = models.CharField(max_length=20, choices=PlaygroundStatus.choices, default=PlaygroundStatus.QUEUED)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    base_output = models.TextField(blank=True)
    fine_tuned_output = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "started_at"], name="playground_status_started")]

    def __str__(self) -> str:
        return self.prompt[:60]

    @property
    def finished(self) -> bool:
        return self.status in (PlaygroundStatus.SUCCEEDED, PlaygroundStatus.FAILED)


class ABStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Generating"
    READY = "ready", "Ready to judge"
    FAILED = "failed", "Failed"


class ABItem(TimeStamped, Dispatched):
    """One prompt shown to one person with two models' answers, blind (training_app/judging/).

    A model is named `run:<id>` (a run's fine-tuned model) or `base:<name>` (a base model); `pair` is the two names
    sorted, so run 5 against run 7 is the same pair as 7 against 5. Which model wrote side a and side b is kept
    here and never sent to the person judging. An evaluation prompt's answers are copied from the runs' evaluated
    prompts (ready at once); a typed prompt is answered by a worker, like a playground request.
    """

    token = models.CharField(max_length=32, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    run = models.ForeignKey(
        TrainingRun, on_delete=models.CASCADE, related_name="ab_items", help_text="The run whose page asked for it."
    )
    against = models.ForeignKey(
        TrainingRun, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        help_text="The other run; null: the base model.",
    )  # fmt: skip
    pair = models.CharField(max_length=250)
    prompt = models.TextField()
    prompt_hash = models.CharField(max_length=64, help_text="sha256 of the prompt: one item per person, pair, prompt.")
    typed = models.BooleanField(default=False, help_text="A prompt the person typed, not an evaluation prompt.")
    a_model = models.CharField(max_length=120)
    b_model = models.CharField(max_length=120)
    a_output = models.TextField(blank=True)
    b_output = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=ABStatus.choices, default=ABStatus.READY)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "pair", "prompt_hash"], name="unique_ab_item_per_person")
        ]
        indexes = [
            models.Index(fields=["pair"], name="ab_item_pair"),
            models.Index(fields=["status", "started_at"], name="ab_item_status_started"),
        ]

    def __str__(self) -> str:
        return self.prompt[:60]


class ABChoice(models.TextChoices):
    A = "a", "Answer 1 is better"
    B = "b", "Answer 2 is better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"


class ABVote(TimeStamped):
    """A person's verdict on one blind pair of answers, with their own better answer if they wrote one; kept for
    preference data. One per item: the item says which model each side was."""

    item = models.OneToOneField(ABItem, on_delete=models.CASCADE, related_name="vote")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    choice = models.CharField(max_length=10, choices=ABChoice.choices)
    rewrite = models.TextField(blank=True, help_text="The voter's own better answer (E on the judging page).")

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.choice} on {self.item_id}"


class VoteSide(models.TextChoices):
    A = "a", "Answer 1"
    B = "b", "Answer 2"
    REWRITE = "rewrite", "The voter's rewrite"


class VotePair(TimeStamped):
    """A preference pair made from a blind vote (training_app/judging/preferences.py): which side became the chosen
    answer and which the rejected one. A decisive vote makes one pair (winner over loser), a rewrite two (over each
    answer); at most one per vote, target dataset and rejected side, so making pairs from the same votes again
    creates nothing new, even from two requests at once. Two voters with the same verdict share one pair."""

    vote = models.ForeignKey(ABVote, on_delete=models.CASCADE, related_name="pairs")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="+")
    chosen = models.CharField(max_length=10, choices=VoteSide.choices)
    rejected = models.CharField(max_length=10, choices=VoteSide.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["vote", "id"]
        constraints = [models.UniqueConstraint(fields=["vote", "dataset", "rejected"], name="unique_vote_pair")]

    def __str__(self) -> str:
        return f"pair {self.example_id} from vote {self.vote_id} ({self.chosen} over {self.rejected})"
