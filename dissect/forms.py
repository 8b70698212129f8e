"""The web form that starts a run: its parameter fields come from dissect.parameters (the same
as the API's and `manage.py dissect`'s)."""

from django import forms

from dissect.models import ImageSet, Network
from dissect.parameters import RUN_PARAMETERS


class RunForm(forms.Form):
    network = forms.ModelChoiceField(queryset=Network.objects.all(), to_field_name="name")
    image_set = forms.ModelChoiceField(queryset=ImageSet.objects.all(), to_field_name="name")
    layers = forms.CharField(
        help_text="Comma-separated layer names, e.g. conv5,pool5 (aliases or module paths).",
        max_length=500,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields.update(RUN_PARAMETERS.form_fields())
        # Left empty, top-K is the default adapted to the image set's size (the run page says so).
        top_k, default = self.fields["top_k"], RUN_PARAMETERS["top_k"].default
        top_k.initial = None
        top_k.widget.attrs["placeholder"] = f"{default}, adapted to the image set"
        top_k.help_text = (
            f"Top images kept per unit. Empty: {default}, lowered for image sets under 10 images "
            "per top image (docs/pipeline.md)."
        )

    def run_kwargs(self) -> dict:
        """Keyword arguments of services.run_create (empty parameters take their defaults)."""
        data = {
            "network": self.cleaned_data["network"],
            "image_set": self.cleaned_data["image_set"],
            "layers": [name.strip() for name in self.cleaned_data["layers"].split(",")],
        }
        return {**data, **RUN_PARAMETERS.form_values(self.cleaned_data)}
