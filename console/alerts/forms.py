"""The rule form: what each kind needs, destinations that can be reached, secrets by name."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

from console.alerts.models import AlertRule, Channel, Kind

NEEDS_TARGET = {
    Kind.FAILURES: "the workflow name",
    Kind.QUEUE_AGE: "the queue",
    Kind.NO_EXECUTOR: "the application version",
}
# An environment variable's name. Also what keeps a pasted secret out of the database: a key
# rarely looks like SHOUTING_SNAKE_CASE, so the form refuses it and says why.
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,99}")
_web_address = URLValidator(schemes=["http", "https"])


class AlertRuleForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = AlertRule
        fields = [
            "name",
            "kind",
            "target",
            "threshold",
            "window_seconds",
            "rate",
            "channel",
            "destination",
            "secret_env",
            "reminder_minutes",
            "enabled",
        ]
        labels = {
            "target": "Workflow, queue, version or schedule",
            "window_seconds": "Window / limit (seconds)",
            "rate": "Threshold is a failure rate in %",
            "secret_env": "Signing key: environment variable name",
            "reminder_minutes": "Remind every (minutes, 0 = never)",
        }
        help_texts = {
            "target": "failures: workflow name; queue age: queue; no executor: application "
            "version; schedule missed: schedule (blank: any); PENDING too long: workflow name "
            "(blank: any)",
            "threshold": "fires when the reading is above it: a count, a rate in %, or "
            "seconds (queue age, schedule grace)",
            "window_seconds": "failures: counted over this window; PENDING too long: the limit",
            "destination": "webhook: an http(s) URL; e-mail: addresses, comma-separated",
            "secret_env": "the worker reads the HMAC-SHA256 key from this variable "
            "(X-Waymark-Signature); never paste the key itself",
        }
        widgets = {"destination": forms.TextInput(attrs={"size": 60})}

    def clean_secret_env(self) -> str:
        name = str(self.cleaned_data.get("secret_env", "")).strip()
        if name and not ENV_NAME.fullmatch(name):
            raise ValidationError(
                "Give the name of an environment variable (like ALERT_WEBHOOK_KEY) that holds "
                "the key, not the key itself."
            )
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind")
        if kind in NEEDS_TARGET and not str(data.get("target", "")).strip():
            self.add_error("target", f"This kind of rule needs {NEEDS_TARGET[Kind(kind)]}.")
        if data.get("threshold") is not None and data["threshold"] < 0:
            self.add_error("threshold", "A threshold is 0 or more.")
        if data.get("rate") and kind == Kind.FAILURES and (data.get("threshold") or 0) > 100:
            self.add_error("threshold", "A failure rate is between 0 and 100 %.")
        if data.get("window_seconds") == 0:
            self.add_error("window_seconds", "A window is at least one second.")
        destination = str(data.get("destination", "")).strip()
        if destination:
            try:
                if data.get("channel") == Channel.EMAIL:
                    for address in destination.split(","):
                        validate_email(address.strip())
                else:
                    _web_address(destination)
            except ValidationError:
                what = "e-mail addresses" if data.get("channel") == Channel.EMAIL else "URL"
                self.add_error("destination", f"That is not a valid {what}.")
        return data
