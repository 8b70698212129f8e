"""Run pages: list, new run, run status (polled), layer grid of montages, unit page.

Thin: permissions, one service or selector call, a template. Only researchers and admins see
dissection results (annotators see units only through their labeling tasks, unbiased).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.access import requires
from dissect import selectors, services
from dissect.forms import RunForm
from dissect.models import DissectionRun, Layer, Unit


@requires("run.view")
def run_list(request):
    runs = Paginator(selectors.run_list(), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "dissect/run_list.html",
        {
            "runs": runs,
            "networks": selectors.network_list(),
            "image_sets": selectors.image_set_list(),
        },
    )


@requires("run.create")
def run_create(request):
    form = RunForm(request.POST or None, initial=request.GET or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = services.run_create(**form.run_kwargs(), created_by=request.user)
            services.run_start(run=run, background=True)
        except services.PipelineError as exc:  # shown on the form, beside its field
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"Run {run.pk} started.")
            return redirect("dissect:run-detail", run_id=run.pk)
    networks = {n.name: list(n.layer_aliases) for n in selectors.network_list()}
    return render(request, "dissect/run_form.html", {"form": form, "network_layers": networks})


def _run(run_id: int) -> DissectionRun:
    return get_object_or_404(
        DissectionRun.objects.select_related("network", "image_set"), pk=run_id
    )


@requires("run.view")
def run_detail(request, run_id: int):
    run = _run(run_id)
    bad = Paginator(selectors.run_bad_images(run=run), 100).get_page(request.GET.get("bad"))
    return render(
        request,
        "dissect/run_detail.html",
        {
            "run": run,
            "status": selectors.run_status(run=run),
            "layers": selectors.run_layers(run=run),
            "bad_images": bad,
        },
    )


@requires("run.view")
def run_status(request, run_id: int):
    return JsonResponse(selectors.run_status(run=_run(run_id)))


@require_POST
@requires("run.control")
def run_cancel(request, run_id: int):
    # A refusal (PipelineConflict) goes back to the page as a message: core.errors middleware.
    services.run_cancel(run=_run(run_id), actor=request.user)
    messages.success(request, f"Run {run_id} cancelled; stored shards are kept for a resume.")
    return redirect("dissect:run-detail", run_id=run_id)


@require_POST
@requires("run.control")
def run_resume(request, run_id: int):
    services.run_resume(run=_run(run_id), background=True, actor=request.user)
    messages.success(request, f"Run {run_id} resumed from its stored shards.")
    return redirect("dissect:run-detail", run_id=run_id)


@requires("run.view")
def layer_detail(request, run_id: int, layer_name: str):
    run = _run(run_id)
    try:
        layer = selectors.layer_get(run=run, name=layer_name)
    except Layer.DoesNotExist:
        raise Http404(f"run {run_id} has no layer {layer_name}") from None
    units = selectors.layer_units_page(layer=layer, page=request.GET.get("page"))
    return render(
        request, "dissect/layer_detail.html", {"run": run, "layer": layer, "units": units}
    )


@requires("run.view")
def unit_detail(request, run_id: int, layer_name: str, index: int):
    run = _run(run_id)
    try:
        layer = selectors.layer_get(run=run, name=layer_name)
        unit = selectors.unit_get(layer=layer, index=index)
    except (Layer.DoesNotExist, Unit.DoesNotExist):
        raise Http404(f"run {run_id} has no unit {layer_name}#{index}") from None
    previous, following = selectors.unit_neighbors(unit=unit)
    return render(
        request,
        "dissect/unit_detail.html",
        {
            "run": run,
            "layer": layer,
            "unit": unit,
            "top_images": selectors.unit_images(unit=unit, kind="top"),
            "control_images": selectors.unit_images(unit=unit, kind="control"),
            "labels": selectors.unit_labels(unit=unit),
            "previous": previous,
            "next": following,
            "recipe": run.parameters.get("segmentation", ""),
        },
    )


@requires("run.view")
def auto_label_counts(request, run_id: int):
    """The counts behind every automatic label of the run as CSV (one row per unit x category:
    label, IoU, intersection, unit area, label area, threshold), like NetDissect's tally."""
    from django.http import HttpResponse

    from dissect.services.extraction import auto_label_counts as counts
    from dissect.services.extraction import auto_label_counts_csv

    run = _run(run_id)
    rows = counts(run=run, layer=request.GET.get("layer") or None)
    if not rows:
        raise Http404(f"run {run_id} has no automatic-label counts")
    response = HttpResponse(auto_label_counts_csv(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="run-{run_id}-auto-label-counts.csv"'
    return response
