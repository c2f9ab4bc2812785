import factory
from django.contrib.auth import get_user_model

from datasets_app.curation.content import content_hash
from datasets_app.models import Dataset, Example, Membership, Role, Workspace


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests-1")


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Workspace {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    workspace = factory.SubFactory(WorkspaceFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.ANNOTATOR


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Dataset {n}")


class ExampleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Example

    dataset = factory.SubFactory(DatasetFactory)
    prompt = factory.Sequence(lambda n: f"Question number {n}?")
    response = factory.Sequence(lambda n: f"Answer number {n}.")
    content_hash = factory.LazyAttribute(lambda o: content_hash(prompt=o.prompt, response=o.response))


def runs_on(dataset: Dataset, *statuses: str) -> list:
    """Fine-tuning runs trained on a snapshot of `dataset`, one per status (rows only: no file, no worker)."""
    from training_app.models import DatasetVersion, TrainingRun

    snapshot = DatasetVersion.objects.create(
        dataset=dataset, number=1, file="snapshots/x.jsonl", content_hash="x", n_train=1, n_validation=1
    )
    return [TrainingRun.objects.create(snapshot=snapshot, base_model="smollm2-tiny-random", status=s) for s in statuses]
