"""Dashboard forms: they parse and validate; services do the writing."""

from __future__ import annotations

import json

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator

from ..envvars import env_parse_lines
from ..errors import ValidationError as DomainValidationError
from ..gates.rules import gates_validate
from ..models import Project, Role
from ..strategies import strategy_validate
from ..windows import window_validate

SETTINGS_FIELDS = [
    "name", "repository", "production_branch", "clone_url", "runtime", "cluster", "router", "image_template",
    "dockerfile", "port", "replicas", "memory_mb", "cpus", "startup_probe_path", "readiness_probe_path",
    "liveness_probe_path",
    "probe_period_seconds", "probe_timeout_seconds", "probe_failure_threshold", "probe_success_threshold",
    "probe_initial_delay_seconds", "ready_timeout_seconds", "drain_seconds", "keep_warm_seconds",
    "watch_seconds", "keep_images", *Project.ROUTING_FIELDS,
]


class ProjectSettingsForm(forms.ModelForm):
    strategy_json = forms.CharField(
        label="Strategy", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text='Empty: switch all at once when ready. Canary: {"steps": [{"weight": 10, "wait": 60}, '
                  '{"weight": 50, "wait": null}]} (null holds until promoted). Scheduled: '
                  '{"at": "2026-12-03T14:00", "tz": "Europe/Berlin"} (built and warmed now, switched then).')
    deploy_window_json = forms.CharField(
        label="Deploy window", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text='Empty: merges switch any time. {"tz": "Europe/Berlin", "days": ["mon", "tue", "wed", "thu"], '
                  '"from": "09:00", "to": "16:00", "freeze": [{"from": "2026-12-20", "to": "2027-01-04", '
                  '"reason": "year-end"}]}: outside it a merge is built and warmed, then waits. Rollbacks never wait.')
    gate_error_rate = forms.BooleanField(
        label="Roll back if the error rate exceeds 2% or is 5x the stable's", required=False,
        help_text="Checked at each canary step and in the watch window after the switch.")
    gate_latency = forms.BooleanField(
        label="Roll back if latency exceeds 2x the stable's", required=False,
        help_text="p95 where the metrics give it (Prometheus); HAProxy's mean response time on one host.")
    gates_json = forms.CharField(
        label="Gate settings", required=False, widget=forms.Textarea(attrs={"rows": 2}),
        help_text='Optional: {"max_error_rate": 2, "error_ratio": 5, "latency_ratio": 2, "min_requests": 20, '
                  '"failures": 2, "interval": 1} (percent, x the stable, requests per window, failed checks in '
                  'a row, seconds). The checkboxes above turn the gates on.')
    env_set = forms.CharField(
        label="Set environment variables", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="NAME=value, one per line; adds or replaces. Values are write-only: they are never shown again.")
    env_remove = forms.MultipleChoiceField(label="Remove", required=False, widget=forms.CheckboxSelectMultiple)
    webhook_secret_new = forms.CharField(
        label="Webhook secret", required=False, strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave empty to keep the current secret.")
    git_token_new = forms.CharField(
        label="HTTPS access token", required=False, strip=False, max_length=500,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Write-only: a read-only token for a private https:// repository (sent as an Authorization "
                  "header, never in the URL). Leave empty to keep the current one.")
    git_token_remove = forms.BooleanField(label="Remove the access token", required=False)

    class Meta:
        model = Project
        fields = SETTINGS_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = sorted(self.instance.env or {})
        self.fields["env_remove"].choices = [(n, n) for n in names]
        clusters = sorted(settings.SWITCHBACK.get("KUBE_CLUSTERS", {}))
        current = [self.instance.cluster] if self.instance.cluster and self.instance.cluster not in clusters else []
        self.fields["cluster"].widget = forms.Select(
            choices=[("", "The platform's own cluster")] + [(c, c) for c in clusters + current])
        # Empty means the default value: forms posted before routing existed stay valid.
        self.fields["canary_header_value"].required = False
        if not self.is_bound:
            self.initial["strategy_json"] = json.dumps(self.instance.strategy) if self.instance.strategy else ""
            self.initial["deploy_window_json"] = (json.dumps(self.instance.deploy_window)
                                                  if self.instance.deploy_window else "")
            gates = dict(self.instance.gates or {})
            self.initial["gate_error_rate"] = bool(gates.pop("error_rate", False))
            self.initial["gate_latency"] = bool(gates.pop("latency", False))
            self.initial["gates_json"] = json.dumps(gates) if gates else ""
        self._limits_from_the_model()

    def _limits_from_the_model(self) -> None:
        """The browser's min/max are the server's: the model's validators and the operator's
        caps (SWITCHBACK_MAX_MEMORY_MB, SWITCHBACK_MAX_CPUS), checked by this form as well."""
        caps = {"memory_mb": settings.SWITCHBACK.get("MAX_MEMORY_MB"), "cpus": settings.SWITCHBACK.get("MAX_CPUS")}
        for name, field in self.fields.items():
            if not isinstance(field, forms.IntegerField | forms.FloatField):
                continue
            low = high = None
            for validator in Project._meta.get_field(name).validators:
                if isinstance(validator, MinValueValidator):
                    low = validator.limit_value if low is None else max(low, validator.limit_value)
                elif isinstance(validator, MaxValueValidator):
                    high = validator.limit_value if high is None else min(high, validator.limit_value)
            if low is not None:
                field.min_value = low
                field.widget.attrs["min"] = low
                field.validators.append(MinValueValidator(low))
            if high is not None:
                field.max_value = high
                field.widget.attrs["max"] = high
                field.validators.append(MaxValueValidator(high))
            if caps.get(name) is not None:
                # The browser stops at the cap; the server's own check says which setting caps it.
                field.widget.attrs["max"] = caps[name] if high is None else min(high, caps[name])
            if isinstance(field, forms.FloatField):
                field.widget.attrs["step"] = "any"

    def _post_clean(self):
        # Model validation is the service's job (project_update runs full_clean); skip the
        # ModelForm's own pass so the instance the view holds is never half-changed.
        pass

    def _json_setting(self, name: str, *, what: str, validate):
        """A JSON text field: parsed, handed to the domain's validator, its errors as the field's."""
        text = self.cleaned_data[name].strip()
        try:
            return validate(json.loads(text) if text else {})
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}).") from exc
        except RecursionError as exc:
            raise forms.ValidationError(f"Not {what}: the JSON is nested too deeply.") from exc
        except DomainValidationError as exc:
            raise forms.ValidationError(exc.message) from exc

    def clean_strategy_json(self):
        return self._json_setting("strategy_json", what="a strategy", validate=strategy_validate)

    def clean_deploy_window_json(self):
        return self._json_setting("deploy_window_json", what="a deploy window", validate=window_validate)

    def clean_canary_header_value(self):
        return self.cleaned_data["canary_header_value"] or "always"

    def clean_gates_json(self):
        def validate(value):
            if not isinstance(value, dict):
                raise forms.ValidationError('Give an object such as {"max_error_rate": 1}.')
            if {"error_rate", "latency"} & set(value):
                raise forms.ValidationError("Turn the gates on with the checkboxes.")
            return gates_validate(value)

        return self._json_setting("gates_json", what="gate settings", validate=validate)

    def clean_env_set(self):
        try:
            return env_parse_lines(self.cleaned_data["env_set"])
        except DomainValidationError as exc:
            raise forms.ValidationError(exc.message) from exc

    def changes(self, *, current_env: dict) -> dict:
        """The fields to hand to services.project_update."""
        data = {name: self.cleaned_data[name] for name in SETTINGS_FIELDS}
        data["strategy"] = self.cleaned_data["strategy_json"]
        data["deploy_window"] = self.cleaned_data["deploy_window_json"]
        gates = dict(self.cleaned_data["gates_json"])
        gates.update({k: True for k in ("error_rate", "latency") if self.cleaned_data[f"gate_{k}"]})
        data["gates"] = gates if {"error_rate", "latency"} & set(gates) else {}
        env = {k: v for k, v in (current_env or {}).items() if k not in set(self.cleaned_data["env_remove"])}
        env.update(self.cleaned_data["env_set"])
        data["env"] = env
        if self.cleaned_data["webhook_secret_new"]:
            data["webhook_secret"] = self.cleaned_data["webhook_secret_new"]
        if self.cleaned_data["git_token_new"]:
            data["git_token"] = self.cleaned_data["git_token_new"]
        elif self.cleaned_data["git_token_remove"]:
            data["git_token"] = ""
        return data


class ProjectCreateForm(forms.Form):
    """A new project: where its code is and how it runs; the rest keeps sane defaults."""

    name = forms.CharField(max_length=100)
    slug = forms.CharField(max_length=40, help_text="Lowercase letters, digits and hyphens; the app's host "
                                                    "name is <slug>.<base domain>.")
    repository = forms.CharField(max_length=200, required=False,
                                 help_text='As GitHub names it: "owner/name" (may stay empty for a file:// clone URL).')
    production_branch = forms.CharField(max_length=255, initial="main")
    clone_url = forms.CharField(max_length=500, required=False,
                                help_text="https://, ssh:// or git@host:owner/repo.git, without credentials; "
                                          "empty means the GitHub HTTPS URL.")
    runtime = forms.ChoiceField(choices=Project._meta.get_field("runtime").choices, initial="single-host")
    webhook_secret = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Write-only: the same secret goes into GitHub's webhook settings.")


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices)


class DeployForm(forms.Form):
    sha = forms.CharField(max_length=40, label="Commit sha")
    message = forms.CharField(max_length=10_000, required=False)


class PeriodForm(forms.Form):
    days = forms.TypedChoiceField(choices=[(7, "7 days"), (30, "30 days"), (90, "90 days"), (365, "1 year")],
                                  coerce=int, required=False, empty_value=30)
