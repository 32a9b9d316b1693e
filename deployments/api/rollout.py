"""GET …/deployments/<n>/rollout/: what a terminal needs to follow a rollout live."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import rollout_state, selectors
from .serializers import DeploymentEventSerializer
from .views import project_for


class RolloutQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(min_value=0, max_value=2**63 - 1, default=0, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=rollout_state.EVENTS_MAX,
                                     default=rollout_state.EVENTS_MAX, required=False)


class PhaseSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    status = serializers.ChoiceField(choices=["pending", "current", "done", "skipped", "failed", "stopped",
                                              "not-reached"])
    started = serializers.DateTimeField(allow_null=True)
    duration = serializers.FloatField(allow_null=True, help_text="Seconds; null while it runs.")
    note = serializers.CharField(allow_blank=True)


class StepSerializer(serializers.Serializer):
    weight = serializers.IntegerField()
    wait = serializers.FloatField(allow_null=True, help_text="Seconds; null: held until promoted.")


class RolloutSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    state = serializers.CharField()
    failure_reason = serializers.CharField(allow_blank=True)
    revision = serializers.CharField()
    is_live = serializers.BooleanField()
    is_final = serializers.BooleanField()
    phases = PhaseSerializer(many=True)
    weights = serializers.DictField(child=serializers.IntegerField(),
                                    help_text="Percent of traffic per revision, as this rollout set it.")
    steps = StepSerializer(many=True, help_text="The canary steps (empty: a plain switch).")
    step = serializers.IntegerField(help_text="The step (0-based) the rollout is at.")
    waiting_step = serializers.IntegerField(allow_null=True, help_text="The step it waits at or holds, else null.")
    holding = serializers.BooleanField(help_text="Held until someone promotes or aborts it.")
    step_until = serializers.DateTimeField(allow_null=True, help_text="When the current step's wait ends.")
    events = DeploymentEventSerializer(many=True, help_text="Timeline events after `after`, oldest first.")
    last_event_id = serializers.IntegerField(help_text="Pass it as `after` to get only newer events.")


class DeploymentRollout(APIView):
    """A rollout's phases, traffic split, steps and hold, with the timeline's events after
    `?after=<event id>` (viewer). `switchback deploy --watch` polls it."""

    @extend_schema(parameters=[
        OpenApiParameter("after", OpenApiTypes.INT, description="Only events with a larger id (default 0: all)."),
        OpenApiParameter("limit", OpenApiTypes.INT,
                         description=f"At most this many events (1-{rollout_state.EVENTS_MAX})."),
    ], responses={200: RolloutSerializer})
    def get(self, request, slug: str, number: int):
        project = project_for(request, slug, "view")
        deployment = selectors.deployment_get(project=project, number=number)
        query = RolloutQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        state = rollout_state.rollout_state_get(deployment=deployment, **query.validated_data)
        return Response(RolloutSerializer(state).data)
