"""The web form that starts a run (the same parameters as `manage.py dissect`)."""

from django import forms

from dissect import services
from dissect.models import ImageSet, Network


class RunForm(forms.Form):
    network = forms.ModelChoiceField(queryset=Network.objects.all(), to_field_name="name")
    image_set = forms.ModelChoiceField(queryset=ImageSet.objects.all(), to_field_name="name")
    layers = forms.CharField(
        help_text="Comma-separated layer names, e.g. conv5,pool5 (aliases or module paths).",
        max_length=500,
    )
    top_k = forms.IntegerField(min_value=1, max_value=1000, initial=services.DEFAULTS["top_k"])
    controls = forms.IntegerField(min_value=0, max_value=100, initial=services.DEFAULTS["controls"])
    shard_size = forms.IntegerField(min_value=1, initial=services.DEFAULTS["shard_size"])
    segmentation = forms.ChoiceField(
        choices=[(s, s) for s in services.SEGMENTATIONS], initial=services.DEFAULTS["segmentation"]
    )
    receptive_field = forms.BooleanField(
        required=False, help_text="Measure each layer's empirical receptive field (slow)."
    )
    device = forms.ChoiceField(choices=[(d, d) for d in services.DEVICES], initial="auto")
    tile_px = forms.IntegerField(min_value=16, max_value=512, initial=services.DEFAULTS["tile_px"])

    def run_kwargs(self) -> dict:
        data = dict(self.cleaned_data)
        data["layers"] = [name.strip() for name in data["layers"].split(",") if name.strip()]
        return data
