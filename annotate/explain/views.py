"""Explain pages: upload an image (or pick a demo image) -> scenes + localized concepts, and the
crowd-vs-automatic agreement report of a run. Thin: one form, one service or selector, a template."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from django import forms
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, render

from annotate.explain import selectors
from annotate.explain.services import ExplainError, explain_image
from annotate.explain.uploads import MAX_UPLOAD_BYTES, UploadRefused, load_upload
from core.access import requires
from dissect import selectors as dissect_selectors
from dissect.models import DissectionRun, Image, Network

LABEL_CHOICES = [
    ("both", "crowd and automatic"),
    ("crowd", "crowd only"),
    ("auto", "automatic only"),
]
DEMO_IMAGES = 12


class ExplainForm(forms.Form):
    network = forms.ModelChoiceField(queryset=Network.objects.none(), to_field_name="name")
    labels = forms.ChoiceField(choices=LABEL_CHOICES, initial="both", widget=forms.RadioSelect)
    min_iou = forms.FloatField(min_value=0.0, max_value=1.0, required=False)
    image = forms.FileField(required=False)
    demo_image = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, networks=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["network"].queryset = Network.objects.filter(pk__in=[n.pk for n in networks])

    def clean(self):
        data = super().clean()
        if data.get("min_iou") is None and "min_iou" not in self.errors:
            data["min_iou"] = selectors.DEFAULT_MIN_IOU  # left empty: Network Dissection's level
        if not data.get("image") and not data.get("demo_image"):
            raise forms.ValidationError(
                "Choose an image to upload, or pick one of the demo images."
            )
        return data


def load_form_image(form: ExplainForm):
    """The PIL image the form names: the checked upload or a stored image set's file."""
    from dissect.images import BadImageError, load_rgb

    upload = form.cleaned_data.get("image")
    if upload:
        return load_upload(upload, filename=upload.name, size_bytes=upload.size), upload.name
    image = (
        Image.objects.select_related("image_set").filter(pk=form.cleaned_data["demo_image"]).first()
    )
    if image is None:
        raise UploadRefused("that demo image no longer exists; pick another one")
    try:
        return load_rgb(Path(image.image_set.root) / image.path), image.path
    except BadImageError as exc:
        raise UploadRefused(str(exc)) from exc


def _demo_images(network: Network | None) -> list[Image]:
    """A few images of the image set the network's labels come from, where its units fire."""
    if network is None:
        return []
    run = selectors.labels_run(network=network)
    if run is None or run.image_set_id is None:
        return []
    return selectors.demo_images(run=run, limit=DEMO_IMAGES)


@requires("explain.use")
def page(request):
    networks = selectors.explain_networks()
    initial_network = networks[0] if networks else None
    result, error, status = None, "", 200
    if request.method == "POST":
        form = ExplainForm(request.POST, request.FILES, networks=networks)
        if form.is_valid():
            initial_network = form.cleaned_data["network"]
            try:
                image, name = load_form_image(form)
                result = explain_image(
                    network=form.cleaned_data["network"],
                    image=image,
                    source=form.cleaned_data["labels"],
                    min_iou=form.cleaned_data["min_iou"],
                )
                result["name"] = Path(name).name
            except (UploadRefused, ExplainError) as exc:
                error, status = str(exc), 400
        else:
            status = 400
    else:
        chosen = request.GET.get("network")
        initial_network = next((n for n in networks if n.name == chosen), initial_network)
        form = ExplainForm(
            initial={
                "network": initial_network.name if initial_network else None,
                "labels": "both",
                "min_iou": selectors.DEFAULT_MIN_IOU,
            },
            networks=networks,
        )
    context = {
        "form": form,
        "networks": networks,
        "network": initial_network,
        "network_notes": selectors.network_notes(network=initial_network)
        if initial_network
        else [],
        # Every listed network's notes, so the page can swap them when the choice changes.
        "notes_by_network": {n.name: selectors.network_notes(network=n) for n in networks},
        "demo_images": _demo_images(initial_network),
        "result": result,
        "error": error,
        "max_mb": MAX_UPLOAD_BYTES // (1024 * 1024),
    }
    return render(request, "explain/page.html", context, status=status)


@requires("explain.use")
def image_file(request, image_id: int):
    """A stored image set's file (the demo images offered on the page)."""
    image = get_object_or_404(
        Image.objects.select_related("image_set"), pk=image_id, status=Image.Status.OK
    )
    root = Path(image.image_set.root).resolve()
    path = (root / image.path).resolve()
    if root not in path.parents or not path.is_file():
        raise Http404("image file not found")
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(open(path, "rb"), content_type=content_type)  # noqa: SIM115 - closed by Django


@requires("explain.use")
def agreement(request, run_id: int):
    """Crowd vs automatic labels of a run, per layer; plus the units that could seed gold units."""
    run = get_object_or_404(DissectionRun.objects.select_related("network", "image_set"), pk=run_id)
    context = {
        "run": run,
        "rows": selectors.crowd_auto_agreement(run=run),
        "auto_summary": dissect_selectors.auto_labels_by_layer(run=run),
        "gold": dissect_selectors.gold_unit_candidates(run=run)[:50],
    }
    return render(request, "explain/agreement.html", context)
