"""Report pages (researchers and admins) and exports (admins). Thin: parse the query, call one
selector or service, render a table + chart, or hand out the same data as CSV or SVG."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from annotate.crowd import selectors as crowd_selectors
from annotate.labels import plots, reports, tables
from core import csv_safe
from core.access import can, requires
from core.concepts.vocabulary import CATEGORY_KEYS, CATEGORY_LABELS
from dissect.storage import media_url


def _csv_response(table: tables.Table, filename: str) -> HttpResponse:
    header, rows = table
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    writer = csv_safe.writer(response, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return response


def _svg_response(svg: str, filename: str) -> HttpResponse:
    response = HttpResponse(svg, content_type="image/svg+xml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.svg"'
    return response


def _run_id(request, field: str = "run") -> int | None:
    value = request.GET.get(field, "")
    return int(value) if value.isdigit() else None


def _run_or_404(request, network: str):
    """The network's run (``?run=ID`` picks one); ReportError is a 404 (core.errors middleware)."""
    return reports.run_for_network(network=network, run_id=_run_id(request))


def run_picker(request, *, network: str, run, field: str = "run") -> dict:
    """Context for ``labels/_run_picker.html``: which run of ``network`` a report shows (``run``,
    from ``?<field>=`` or the newest run with crowd labels) and the runs to pick from. The
    picker is a GET form that keeps every other query parameter, so any report page that reads
    its run from ``?<field>=`` (``_run_or_404``) can use it; a page comparing networks gives each
    its own ``field``."""
    keep = [
        (key, value)
        for key, values in request.GET.lists()
        if key not in (field, "format", "page")
        for value in values
    ]
    return {
        "network": network,
        "run": run,
        "field": field,
        "id": f"run-picker-{field}",
        "choices": reports.report_run_choices(network=network),
        "chosen": request.GET.get(field, "") == str(run.pk),
        "keep": keep,
        "simulated": crowd_selectors.run_simulated_answers(run=run),
    }


def _layers(request) -> list[str] | None:
    return [x for x in request.GET.getlist("layer") if x] or None


def _page(request, *, template: str, table, svg: str, filename: str, context: dict):
    """Serve a report as HTML (table + chart), ?format=csv or ?format=svg."""
    fmt = request.GET.get("format", "html")
    if fmt == "csv":
        return _csv_response(table, filename)
    if fmt == "svg":
        return _svg_response(svg, filename)
    query = request.GET.copy()
    query.pop("format", None)
    base = query.urlencode()
    if context.get("run") is not None and "empty" not in context:
        category = context.get("category")
        context["empty"] = reports.empty_reason(
            run=context["run"],
            report=context.get("report", ""),
            category=None if category in (None, "all") else category,
        )
    context.update(
        {
            "header": table[0],
            "rows": table[1],
            "svg": svg,
            "csv_url": "?" + (base + "&" if base else "") + "format=csv",
            "svg_url": "?" + (base + "&" if base else "") + "format=svg",
        }
    )
    return render(request, template, context)


@requires("report.view")
def index(request):
    from dissect.models import Network

    return render(
        request,
        "labels/index.html",
        {
            "networks": reports.network_runs(),
            "all_networks": Network.objects.order_by("name").values_list("name", flat=True),
            "can_export": can(request.user, "export.create"),
        },
    )


def _layer_rows(request, run) -> list[dict]:
    """The run's per-layer report rows for the layers asked for, or 404 naming the problem."""
    return [r.as_dict() for r in reports.layer_report(run=run, layers=_layers(request))]


@requires("report.view")
def categories(request, network: str):
    run = _run_or_404(request, network)
    rows = _layer_rows(request, run)
    title = f"{network}: share of answers per category and layer"
    return _page(
        request,
        template="labels/report.html",
        table=tables.category_table(rows),
        svg=plots.category_distribution_chart(rows=rows, title=title),
        filename=f"{network}-categories",
        context={
            "title": title,
            "network": network,
            "run": run,
            "run_picker": run_picker(request, network=network, run=run),
            "report": "categories",
            "explain": "Percent of all counted answers that chose each category (the paper's "
            "Fig. 9). Each column of the chart adds up to 100%.",
        },
    )


@requires("report.view")
def detectors(request, network: str):
    run = _run_or_404(request, network)
    rows = _layer_rows(request, run)
    from annotate.labels.aggregation import detector_min_agreeing, detector_precision

    title = f"{network}: detector units per layer, by category"
    return _page(
        request,
        template="labels/report.html",
        table=tables.detector_table(rows),
        svg=plots.detector_chart(rows=rows, title=title),
        filename=f"{network}-detectors",
        context={
            "title": title,
            "network": network,
            "run": run,
            "run_picker": run_picker(request, network=network, run=run),
            "report": "detectors",
            "explain": f"A unit is a detector when its precision is at least "
            f"{detector_precision():.2f} and at least {detector_min_agreeing()} answers name "
            "its consensus concept. Bars are stacked by the unit's consensus category.",
        },
    )


@requires("report.view")
def concepts(request, network: str):
    run = _run_or_404(request, network)
    category = request.GET.get("category", "object")
    if category not in CATEGORY_KEYS and category != "all":
        category = "object"
    try:
        data = reports.concept_detectors(
            run=run,
            layers=_layers(request),
            category=None if category == "all" else category,
            limit=int(request.GET.get("limit", "40") or 40),
        )
    except (reports.ReportError, ValueError) as exc:
        raise Http404(str(exc)) from None
    label = "all categories" if category == "all" else CATEGORY_LABELS[category]
    title = f"{network}: detector units per concept ({label})"
    return _page(
        request,
        template="labels/report.html",
        table=tables.concept_table(data),
        svg=plots.concept_chart(data=data, title=title),
        filename=f"{network}-concepts-{category}",
        context={
            "title": title,
            "network": network,
            "run": run,
            "run_picker": run_picker(request, network=network, run=run),
            "report": "concepts",
            "category": category,
            "categories": [("all", "all categories")] + list(CATEGORY_LABELS.items()),
            "explain": f"Detector units per consensus concept, segments per layer (the paper's "
            f"Fig. 10). Showing the {len(data['rows'])} most frequent of {data['concepts']} "
            "concepts.",
        },
    )


@requires("report.view")
def precision(request, network: str):
    run = _run_or_404(request, network)
    histogram = reports.precision_histogram(run=run, layers=_layers(request))
    title = f"{network}: unit precision"
    return _page(
        request,
        template="labels/report.html",
        table=tables.precision_table(histogram),
        svg=plots.precision_chart(histogram=histogram, title=title),
        filename=f"{network}-precision",
        context={
            "title": title,
            "network": network,
            "run": run,
            "run_picker": run_picker(request, network=network, run=run),
            "report": "precision",
            "explain": "How many units reach each precision (mean of their answers' "
            "precisions); the dashed line is the detector threshold.",
        },
    )


@requires("report.view")
def compare(request):
    names = [n for n in request.GET.getlist("network") if n][:4]
    from dissect.models import Network

    context = {
        "title": "Networks side by side",
        "report": "compare",
        "all_networks": Network.objects.order_by("name").values_list("name", flat=True),
        "selected": names,
        "explain": "Share of answers per category, layer by layer, one bar per network.",
    }
    if len(names) < 2:
        return render(request, "labels/compare.html", context)
    try:
        runs = [
            reports.run_for_network(network=n, run_id=_run_id(request, f"run_{n}")) for n in names
        ]
        comparison = reports.network_comparison(runs=runs, layers=_layers(request))
    except reports.ReportError as exc:
        messages.error(request, str(exc))
        return render(request, "labels/compare.html", context)
    context["run_pickers"] = [
        run_picker(request, network=n, run=r, field=f"run_{n}")
        for n, r in zip(names, runs, strict=True)
    ]
    title = " vs ".join(names) + ": share of answers per category"
    context["title"] = title
    return _page(
        request,
        template="labels/compare.html",
        table=tables.comparison_table(comparison),
        svg=plots.comparison_chart(comparison=comparison, title=title),
        filename="-vs-".join(names),
        context=context,
    )


@requires("report.view")
def agreement(request):
    from annotate.crowd.models import Campaign
    from annotate.labels.crowd_models import METHOD_LABELS, METHODS

    network = request.GET.get("network") or ""
    campaign_id = request.GET.get("campaign") or ""
    method = request.GET.get("method") if request.GET.get("method") in METHODS else None
    campaign = None
    run = None
    if campaign_id.isdigit():
        campaign = get_object_or_404(Campaign, pk=int(campaign_id))
    elif network:
        run = _run_or_404(request, network)
    context = {
        "title": "Agreement",
        "networks": reports.network_runs(),
        "campaigns": Campaign.objects.order_by("-created_at")[:100],
        "methods": [(m, METHOD_LABELS[m]) for m in METHODS],
        "network": network,
        "campaign": campaign,
        "method": method,
    }
    if run is not None:
        context["run_picker"] = run_picker(request, network=network, run=run)
    if run is None and campaign is None:
        return render(request, "labels/agreement.html", context)
    report = reports.agreement_report(run=run, campaign=campaign, method=method)
    if run is not None:
        context["empty"] = reports.empty_reason(run=run, report="agreement")
    elif not report["answers"]:
        context["empty"] = (
            f"Campaign {campaign.name} has no counted answers yet: set it live and share its "
            'task link, or run "python manage.py demo" to see this report filled.'
        )
    which = request.GET.get("table", "layers")
    table = {
        "workers": tables.agreement_worker_table,
        "pairs": tables.agreement_pair_table,
    }.get(which, tables.agreement_layer_table)(report)
    if request.GET.get("format") == "csv":
        return _csv_response(table, f"agreement-{which}")
    layer_table = tables.agreement_layer_table(report)
    kappa = [r["fleiss_kappa_category"] or 0 for r in report["layers"]]
    svg = plots.bar_chart(
        labels=[r["layer"] for r in report["layers"]],
        values=[round(k, 3) for k in kappa],
        title="Fleiss' kappa on categories, per layer",
        x_label="layer",
        y_label="Fleiss' kappa",
        height=300,
    )
    if request.GET.get("format") == "svg":
        return _svg_response(svg, "agreement-kappa")
    query = request.GET.copy()
    for key in ("format", "table"):
        query.pop(key, None)
    base = query.urlencode()
    context.update(
        {
            "report": report,
            "layer_table": layer_table,
            "worker_table": tables.agreement_worker_table(report),
            "pair_table": tables.agreement_pair_table(report),
            "svg": svg,
            "base_query": base,
        }
    )
    return render(request, "labels/agreement.html", context)


@requires("report.view")
def units(request):
    network = request.GET.get("network") or ""
    run = _run_or_404(request, network) if network else None
    q = request.GET.get("q", "")
    layer = request.GET.get("layer") or None
    category = request.GET.get("category") or None
    detectors_only = request.GET.get("detectors") == "1"
    labels = reports.unit_labels(
        run=run, q=q, layer=layer, category=category, detectors_only=detectors_only
    )
    if request.GET.get("format") == "csv":
        header = [
            "network",
            "layer",
            "unit",
            "concept",
            "category",
            "precision",
            "agreement",
            "detector",
            "answers",
        ]
        rows = [
            [
                lab.unit.layer.run.network.name,
                lab.unit.layer.name,
                lab.unit.index,
                lab.concept_text,
                lab.category,
                round(lab.precision or 0, 4),
                round(lab.agreement or 0, 4),
                int(lab.is_detector),
                lab.answer_count,
            ]
            for lab in labels.iterator(chunk_size=1000)
        ]
        return _csv_response((header, rows), "units")
    page = Paginator(labels, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "labels/units.html",
        {
            "title": "Unit browser",
            "page": page,
            "q": q,
            "network": network,
            "layer": layer or "",
            "category": category or "",
            "detectors_only": detectors_only,
            "run_picker": run_picker(request, network=network, run=run) if run else None,
            "networks": reports.network_runs(),
            "categories": list(CATEGORY_LABELS.items()),
            "base_query": query.urlencode(),
        },
    )


@requires("report.view")
def unit_detail(request, unit_id: int):
    from annotate.labels.models import UnitLabel
    from dissect.models import Unit

    unit = get_object_or_404(Unit.objects.select_related("layer__run__network"), pk=unit_id)
    return render(
        request,
        "labels/unit_detail.html",
        {
            "title": f"{unit.layer.run.network.name} {unit.layer.name} unit {unit.index}",
            "unit": unit,
            "label": UnitLabel.objects.filter(unit=unit, source=UnitLabel.Source.CROWD).first(),
            "auto": unit.auto_labels.all(),
            "answers": [
                {**a, "category_label": CATEGORY_LABELS.get(a["category"], a["category"])}
                for a in reports.unit_answers(unit_id=unit.pk)
            ],
            "montage_url": media_url(unit.montage_path),
            "can_recompute": can(request.user, "labels.recompute"),
        },
    )


@require_POST
@requires("labels.recompute")
def recompute(request):
    """Recompute labels on demand: one unit (unit=ID) or a whole run (run=ID), in the background."""
    from annotate.labels.tasks import recompute_run_labels, recompute_unit_label

    unit_id, run_id = request.POST.get("unit", ""), request.POST.get("run", "")
    if unit_id.isdigit():
        recompute_unit_label.delay(int(unit_id))
        messages.success(request, f"Unit {unit_id}: label recomputed (or queued).")
        return redirect("labels:unit", unit_id=int(unit_id))
    if run_id.isdigit():
        recompute_run_labels.delay(int(run_id))
        messages.success(request, f"Run {run_id}: labels recomputed (or queued).")
    target = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("labels:index")
    return redirect(target)


def _merge_target(text: str):
    """The Concept a merge goes into: an existing row by name, or a vocabulary concept (by its
    name or a synonym) that nobody has answered yet, whose row is created now."""
    from core.concepts.store import concepts_get_or_create
    from core.concepts.vocabulary import default_vocabulary
    from core.models import Concept

    concept = Concept.objects.filter(name=text).first()
    if concept is not None or not text:
        return concept
    entry = default_vocabulary().lookup(text)
    if entry is None:
        return None
    return concepts_get_or_create(names={entry.name: entry.category})[entry.name]


@requires("concept.merge")
def concept_list(request):
    from django.db.models import Count

    from annotate.labels.aggregation import concept_merge, concept_unmerge
    from core.models import Concept

    if request.method == "POST":
        action = request.POST.get("action", "merge")
        source = Concept.objects.filter(name=request.POST.get("source", "").strip()).first()
        if source is None:
            messages.error(request, "source: no concept of that name; pick one from the list.")
        elif action == "unmerge":
            affected = concept_unmerge(concept=source, actor=request.user)
            messages.success(request, f"{source.name} stands alone again ({len(affected)} units).")
        else:
            target = _merge_target(request.POST.get("target", "").strip())
            if target is None:
                messages.error(
                    request,
                    "target: no concept or vocabulary entry of that name; pick one from the list.",
                )
            else:
                try:
                    affected = concept_merge(source=source, target=target, actor=request.user)
                except ValueError as exc:
                    messages.error(request, str(exc))
                else:
                    messages.success(
                        request,
                        f"Merged {source.name} into {target.name}; {len(affected)} unit labels "
                        "recomputed.",
                    )
        return redirect(request.get_full_path())
    q = request.GET.get("q", "").strip()
    concepts_qs = Concept.objects.annotate(answer_count=Count("answers")).select_related(
        "merged_into"
    )
    if q:
        concepts_qs = concepts_qs.filter(name__icontains=q)
    page = Paginator(concepts_qs.order_by("-answers", "name"), 100).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "labels/concepts.html",
        {
            "title": "Concepts",
            "page": page,
            "q": q,
            "names": Concept.objects.filter(merged_into__isnull=True).values_list(
                "name", flat=True
            ),
        },
    )


@requires("export.create")
def export_list(request):
    from annotate.labels.exports import ExportError, export_create
    from annotate.labels.models import Export

    if request.method == "POST":
        parameters = {
            "network": request.POST.get("network", ""),
            "layers": [x for x in request.POST.getlist("layer") if x],
            "detectors_only": request.POST.get("detectors_only") == "1",
        }
        try:
            export = export_create(
                kind=request.POST.get("kind", ""), parameters=parameters, actor=request.user
            )
        except ExportError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Export {export.pk} started.")
        return redirect("labels:exports")
    return render(
        request,
        "labels/exports.html",
        {
            "title": "Exports",
            "exports": Export.objects.select_related("created_by")[:100],
            "kinds": Export.Kind.choices,
            "networks": reports.network_runs(),
        },
    )


@requires("export.download")
def export_download(request, export_id: int):
    from annotate.labels.models import Export
    from core.audit import audit_record
    from core.models import AuditAction

    export = get_object_or_404(Export, pk=export_id, status=Export.Status.DONE)
    from django.core.files.storage import default_storage

    try:
        handle = default_storage.open(export.file_path, "rb")
    except (FileNotFoundError, ValueError):
        raise Http404(f"export {export.pk}: its file is gone; start the export again") from None
    audit_record(
        actor=request.user,
        action=AuditAction.EXPORT_DOWNLOAD,
        target=export,
        data={"sha256": export.sha256},
    )
    from annotate.labels.exports import download_name

    response = FileResponse(handle, as_attachment=True, filename=download_name(export))
    response["X-Checksum-SHA256"] = export.sha256
    return response
