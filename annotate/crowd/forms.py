"""Forms of the crowd pages: the answer (validated again in the service) and a new campaign."""

import re

from django import forms
from django.core.exceptions import ValidationError

from annotate.crowd.spec import CAMPAIGN_SPEC, VERIFICATION_SPEC
from core.concepts import CATEGORIES, CATEGORY_SLUGS
from core.concepts.store import CONCEPT_MAX_CHARS
from dissect.models import DissectionRun, Unit


class AnswerForm(forms.Form):
    """Raw answer fields; the service is the one place that judges them (so the API agrees)."""

    concept = forms.CharField(required=False, max_length=200, strip=True)
    category = forms.CharField(required=False, max_length=20)
    flagged = forms.TypedMultipleChoiceField(required=False, coerce=int, choices=[])
    active_seconds = forms.FloatField(required=False, min_value=0)

    def __init__(self, *args, tile_count: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["flagged"].choices = [(str(p), str(p)) for p in range(tile_count)]


_GOLD_LINE = re.compile(
    r"^\s*(?P<layer>[^#,\s]+)#(?P<index>\d+)\s*,\s*(?P<concept>[^,]+?)\s*,\s*(?P<category>\w+)\s*$"
)


class CampaignForm(forms.Form):
    run = forms.ModelChoiceField(queryset=DissectionRun.objects.none())
    layers = forms.CharField(
        help_text="Layer names of the run, separated by commas, e.g. conv3, pool5."
    )
    gold = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Gold units, one per line: layer#unit, concept, category (e.g. conv5#12, car, object).",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["run"].queryset = DissectionRun.objects.filter(
            status=DissectionRun.Status.DONE
        ).select_related("network")
        # The parameters come from CAMPAIGN_SPEC (the same as the API's and the command's).
        self.fields.update(
            CAMPAIGN_SPEC.form_fields(instructions={"widget": forms.Textarea(attrs={"rows": 4})})
        )
        self.fields.update(VERIFICATION_SPEC.form_fields())
        self.order_fields(["name", "run", "layers"])

    def campaign_kwargs(self) -> dict:
        """Keyword arguments of services.campaign_create (empty parameters take their defaults)."""
        data = self.cleaned_data
        return {
            "run": data["run"],
            "layers": data["layers"],
            "gold": data["gold"],
            **CAMPAIGN_SPEC.form_values(data),
            **VERIFICATION_SPEC.form_values(data),
        }

    def clean_layers(self) -> list[str]:
        return [x.strip() for x in self.cleaned_data["layers"].split(",") if x.strip()]

    def clean(self):
        data = super().clean()
        run, text = data.get("run"), data.get("gold") or ""
        gold: dict[int, tuple[str, str]] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            match = _GOLD_LINE.match(line)
            if not match or match["category"] not in CATEGORY_SLUGS:
                raise ValidationError(
                    {
                        "gold": f"line {number}: write layer#unit, concept, category with a category "
                        f"from {', '.join(CATEGORY_SLUGS)}."
                    }
                )
            if len(match["concept"]) > CONCEPT_MAX_CHARS:
                raise ValidationError(
                    {
                        "gold": f"line {number}: the concept is longer than {CONCEPT_MAX_CHARS} characters."
                    }
                )
            unit = (
                run
                and Unit.objects.filter(
                    layer__run=run, layer__name=match["layer"], index=int(match["index"])
                ).first()
            )
            if not unit:
                raise ValidationError(
                    {
                        "gold": f"line {number}: no unit {match['layer']}#{match['index']} in this run."
                    }
                )
            gold[unit.pk] = (match["concept"], match["category"])
        data["gold"] = gold
        return data


CATEGORY_CHOICES = CATEGORIES
