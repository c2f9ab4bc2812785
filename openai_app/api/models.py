"""GET /v1/models, GET and DELETE /v1/models/{model}: base models and the workspace's fine-tuned ones."""

from rest_framework.request import Request
from rest_framework.response import Response

from datasets_app.models import Role
from openai_app import catalog
from openai_app.api.common import V1View, page
from openai_app.api.errors import OpenAIError, model_not_found
from training_app.services import run_model_delete


class ModelListView(V1View):
    def get(self, request: Request) -> Response:
        models = catalog.model_list(workspace=self.access(request).workspace)
        return Response(page([model.as_dict() for model in models]))


class ModelDetailView(V1View):
    def get(self, request: Request, model: str) -> Response:
        return Response(_model(request, model).as_dict())

    def delete(self, request: Request, model: str) -> Response:
        """Delete a fine-tuned model (lead keys): its artifact goes; the run stays on the dashboard."""
        found = _model(request, model)
        access = self.access(request)
        access.require(Role.LEAD)
        if found.run is None:
            raise OpenAIError(
                f"The model '{model}' is a base model; only fine-tuned models can be deleted.",
                status_code=403,
                param="model",
                code="insufficient_permissions",
            )
        run_model_delete(run=found.run, user=access.user)
        return Response({"id": found.id, "object": "model", "deleted": True})


def _model(request: Request, model: str) -> catalog.ModelInfo:
    found = catalog.model_get(workspace=request.auth.workspace, model=model)
    if found is None:
        raise model_not_found(model)
    return found
