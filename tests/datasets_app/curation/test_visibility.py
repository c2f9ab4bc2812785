import pytest
from django.urls import reverse

from datasets_app.curation.selectors import dataset_list, example_get, workspace_list
from tests.factories import DatasetFactory, ExampleFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_users_see_only_their_workspaces(workspace, other_workspace, annotator, outsider):
    assert list(workspace_list(user=annotator)) == [workspace]
    assert list(workspace_list(user=outsider)) == [other_workspace]


def test_datasets_of_another_workspace_are_invisible(dataset, other_workspace, annotator, outsider):
    theirs = DatasetFactory(workspace=other_workspace, name="Secret plans")
    assert list(dataset_list(user=annotator)) == [dataset]
    assert list(dataset_list(user=outsider)) == [theirs]


def test_example_of_another_workspace_is_not_found(dataset, outsider):
    from django.http import Http404

    example = ExampleFactory(dataset=dataset)
    with pytest.raises(Http404):
        example_get(user=outsider, pk=example.pk)


def test_home_page_lists_only_my_datasets(client, dataset, other_workspace, annotator):
    DatasetFactory(workspace=other_workspace, name="Secret plans")
    ExampleFactory(dataset=dataset, status="approved")
    ExampleFactory(dataset=dataset, status="draft")
    client.force_login(annotator)
    page = client.get(reverse("home")).content.decode()
    assert "Guardrails" in page
    assert "1/2" in page
    assert "Secret plans" not in page


def test_home_page_needs_login(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_staff_in_admin_see_only_their_workspaces_rows(client, dataset, other_workspace, annotator):
    from django.contrib.auth.models import Permission

    secret = DatasetFactory(workspace=other_workspace, name="Secret plans")
    secret_example = ExampleFactory(dataset=secret, prompt="classified prompt")
    mine = ExampleFactory(dataset=dataset, prompt="my own prompt")
    annotator.is_staff = True
    annotator.save()
    annotator.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_dataset", "view_example", "change_example"])
    )
    client.force_login(annotator)
    datasets_page = client.get("/admin/datasets_app/dataset/").content.decode()
    assert "Guardrails" in datasets_page
    assert "Secret plans" not in datasets_page
    examples_page = client.get("/admin/datasets_app/example/").content.decode()
    assert "my own prompt" in examples_page
    assert "classified prompt" not in examples_page
    assert client.get(f"/admin/datasets_app/example/{secret_example.pk}/change/").status_code == 302
    assert client.get(f"/admin/datasets_app/example/{mine.pk}/change/").status_code == 200


def test_superuser_sees_everything_in_admin(client, dataset, other_workspace):
    DatasetFactory(workspace=other_workspace, name="Secret plans")
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    page = client.get("/admin/datasets_app/dataset/").content.decode()
    assert "Guardrails" in page
    assert "Secret plans" in page
