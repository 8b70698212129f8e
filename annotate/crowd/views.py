"""Crowd pages: annotator home, task pages (local, Mechanical Turk, link-out), researcher campaign pages.

Views are thin: they read a form, call one service or selector, and render. The task page never
shows which tiles are controls, gold answers, or anyone else's answers.
"""

from django.contrib import messages
from django.core import signing
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from annotate.crowd import quality, selectors, services
from annotate.crowd.concepts import vocabulary_datalist
from annotate.crowd.forms import AnswerForm, CampaignForm
from annotate.crowd.instructions import CATEGORY_HELP
from annotate.crowd.models import Assignment, Campaign, Task, Worker
from annotate.crowd.services import AnswerInvalid, CrowdError, LeaseExpired, NoTask
from annotate.crowd.throttling import external_entry_wait_seconds, submit_wait_seconds
from core.access import can, requires
from dissect.models import UnitImage

A = Assignment.Status
MTURK_PREVIEW_ID = "ASSIGNMENT_ID_NOT_AVAILABLE"


def _worker(request) -> Worker:
    return services.worker_for_user(user=request.user)


# --- task page (one template, three doors) ---------------------------------------------------------


def _task_context(*, task: Task, assignment: Assignment | None, mode: str, **extra) -> dict:
    form = extra.pop("form", None)
    flagged = set()
    if form is not None and form.is_bound and form.is_valid():
        flagged = set(form.cleaned_data.get("flagged") or [])
    context = {
        "task": task,
        "campaign": task.campaign,
        "assignment": assignment,
        "mode": mode,  # preview | work
        "tiles": selectors.task_tiles(task=task),
        "flagged": flagged,
        "categories": CATEGORY_HELP,
        "vocabulary": vocabulary_datalist(),
        "concept": (form.data.get("concept", "") if form is not None else ""),
        "category": (form.data.get("category", "") if form is not None else ""),
        "errors": {},
        "min_unmarked": services.MIN_UNMARKED_UNIT_TILES,
        "seconds_left": (
            max(0, int((assignment.lease_expires_at - timezone.now()).total_seconds()))
            if assignment is not None and assignment.lease_expires_at
            else None
        ),
    }
    context.update(extra)
    return context


def _form_errors(request, form: AnswerForm) -> dict[str, list[str]]:
    """Messages for a form the browser could not have sent as is (a 10,000-character concept, a
    NUL byte, a tile position off the page), each under the field that is wrong: the concept and
    category get the service's own messages; only broken tile or timing fields say reload."""
    errors = {
        name: messages_
        for name, messages_ in services.validate_answer(
            concept=request.POST.get("concept", ""), category=request.POST.get("category", "")
        ).items()
        if name in form.errors
    }
    for name in ("concept", "category"):
        if name in form.errors and name not in errors:
            errors[name] = [f"{name.capitalize()}: {' '.join(form.errors[name])}"]
    if "flagged" in form.errors or "active_seconds" in form.errors:
        errors["flagged"] = ["Tiles: the page sent tile marks it could not have made; reload it."]
    return errors


def _handle_submit(request, *, assignment: Assignment, worker: Worker, render_task):
    """Shared POST handling of the local and outside-crowd task pages.

    Returns (outcome or None, response to send when not saved).
    """
    wait = submit_wait_seconds(request=request, worker=worker)
    if wait is not None:
        messages.error(
            request, f"Too many submissions; wait {int(wait) + 1} seconds and submit again."
        )
        return None, render_task(form=None, status=429)
    form = AnswerForm(request.POST, tile_count=len(assignment.task.tile_order))
    if not form.is_valid():
        return None, render_task(form=form, errors=_form_errors(request, form), status=400)
    data = form.cleaned_data
    try:
        outcome = services.assignment_submit(
            assignment=assignment,
            worker=worker,
            concept=data["concept"],
            category=data["category"],
            flagged_positions=data["flagged"] or [],
            active_seconds=data["active_seconds"],
        )
    except AnswerInvalid as error:
        return None, render_task(form=form, errors=error.errors, status=400)
    except LeaseExpired as error:
        return None, render_task(
            form=form, errors={"lease": [str(error)]}, status=409, expired=True
        )
    except CrowdError as error:
        return None, render_task(form=form, errors={"assignment": [str(error)]}, status=409)
    if outcome.revise:
        return None, render_task(form=form, revise=outcome.messages, status=200)
    return outcome, None


@requires("task.work")
@require_GET
def annotator_home(request):
    worker = _worker(request)
    context = {
        "worker": worker,
        "campaigns": selectors.campaigns_open(),
        "assignments": selectors.worker_assignments(worker=worker)[:50],
        "stats": selectors.worker_stats(worker=worker),
    }
    return render(request, "crowd/annotator_home.html", context)


@requires("task.work")
@require_GET
def campaign_preview(request, pk: int):
    campaign = get_object_or_404(Campaign, pk=pk, status=Campaign.Status.LIVE)
    task = selectors.task_preview(worker=_worker(request), campaign=campaign)
    if task is None:
        messages.info(
            request, "There are no tasks left for you in this campaign right now. Thank you!"
        )
        return redirect("crowd:annotator-home")
    context = _task_context(task=task, assignment=None, mode="preview")
    context["accept_url"] = reverse("crowd:task-accept", args=[task.pk])
    return render(request, "crowd/task.html", context)


@requires("task.work")
@require_POST
def task_start(request, pk: int):
    campaign = get_object_or_404(Campaign, pk=pk)
    try:
        assignment = services.assignment_next(worker=_worker(request), campaign=campaign)
    except NoTask as error:
        messages.info(request, str(error))
        return redirect("crowd:annotator-home")
    return redirect("crowd:task", pk=assignment.pk)


@requires("task.work")
@require_POST
def task_accept(request, pk: int):
    task = get_object_or_404(Task.objects.select_related("campaign"), pk=pk)
    try:
        assignment = services.assignment_accept(worker=_worker(request), task=task)
    except NoTask as error:
        messages.info(request, str(error))
        return redirect("crowd:annotator-home")
    return redirect("crowd:task", pk=assignment.pk)


def _own_assignment(request, pk: int) -> tuple[Assignment, Worker]:
    worker = _worker(request)
    assignment = get_object_or_404(
        Assignment.objects.select_related("task__campaign"), pk=pk, worker=worker
    )
    return assignment, worker


@requires("task.work")
@never_cache
def task_page(request, pk: int):
    assignment, worker = _own_assignment(request, pk)
    if assignment.status != A.LEASED:
        messages.info(request, f"That task is {assignment.get_status_display()}.")
        return redirect("crowd:annotator-home")

    def render_task(*, form, status=200, **extra):
        context = _task_context(
            task=assignment.task, assignment=assignment, mode="work", form=form, **extra
        )
        context.update(
            submit_url=reverse("crowd:task", args=[assignment.pk]),
            return_url=reverse("crowd:task-return", args=[assignment.pk]),
            skip_url=reverse("crowd:task-skip", args=[assignment.pk]),
        )
        return render(request, "crowd/task.html", context, status=status)

    if request.method != "POST":
        if assignment.lease_expires_at and assignment.lease_expires_at <= timezone.now():
            messages.info(request, "Your time for that task ran out, so it went back to the pool.")
            return redirect("crowd:annotator-home")
        return render_task(form=None)
    outcome, failure = _handle_submit(
        request, assignment=assignment, worker=worker, render_task=render_task
    )
    if failure is not None:
        return failure
    try:
        following = services.assignment_next(worker=worker, campaign=assignment.task.campaign)
    except NoTask as error:
        messages.success(request, "Saved. Thank you!")
        messages.info(request, str(error))
        return redirect("crowd:annotator-home")
    messages.success(request, "Saved. Thank you! Here is your next task.")
    return redirect("crowd:task", pk=following.pk)


@requires("task.work")
@require_POST
def task_return(request, pk: int):
    assignment, worker = _own_assignment(request, pk)
    try:
        services.assignment_return(assignment=assignment, worker=worker)
        messages.info(request, "Task returned. It goes to another worker.")
    except CrowdError as error:
        messages.error(request, str(error))
    return redirect("crowd:annotator-home")


@requires("task.work")
@require_POST
def task_skip(request, pk: int):
    assignment, worker = _own_assignment(request, pk)
    try:
        following = services.assignment_skip(assignment=assignment, worker=worker)
    except CrowdError as error:
        messages.error(request, str(error))
        return redirect("crowd:annotator-home")
    if following is None:
        messages.info(
            request, "Skipped. There are no more tasks for you in this campaign right now."
        )
        return redirect("crowd:annotator-home")
    messages.info(
        request,
        "Skipped: that unit goes to other workers and will not come back to you. "
        "Here is your next task.",
    )
    return redirect("crowd:task", pk=following.pk)


@require_GET
def tile(request, token: str):
    """A tile by its opaque token (outside-crowd workers have no session, so the token is the key)."""
    try:
        task_id, position = selectors.tile_from_token(token=token)
    except signing.BadSignature:
        raise Http404("No such tile.") from None
    task = get_object_or_404(Task, pk=task_id)
    if not 0 <= position < len(task.tile_order):
        raise Http404("No such tile.")
    path = get_object_or_404(UnitImage, pk=task.tile_order[position]).tile_path
    try:
        handle = default_storage.open(path, "rb")
    except FileNotFoundError:
        raise Http404("Tile file missing.") from None
    response = FileResponse(handle)
    response["Cache-Control"] = "private, max-age=86400"
    return response


# --- outside crowds ---------------------------------------------------------------------------------


def _external_preview(request, campaign: Campaign, *, note: str):
    task = selectors.task_preview(worker=None, campaign=campaign)
    if task is None:
        return render(
            request, "crowd/message.html", {"title": "No tasks", "text": "No tasks right now."}
        )
    return render(
        request,
        "crowd/task.html",
        _task_context(task=task, assignment=None, mode="preview", note=note),
    )


def _too_many(request, error):
    response = render(
        request, "crowd/message.html", {"title": "Please wait", "text": str(error)}, status=429
    )
    response["Retry-After"] = str(error.retry_after)
    return response


def _external_entry(
    request, pk: int, *, source: str, worker_id: str, external_assignment: str, submit_url: str = ""
):
    campaign = get_object_or_404(Campaign, pk=pk)
    if source == Worker.Source.MTURK and external_assignment in ("", MTURK_PREVIEW_ID):
        return _external_preview(request, campaign, note="Accept the HIT to start working on it.")
    # No login at these doors: each request may create a worker and a lease, so they are
    # rate-limited per client, and the service caps their leases per campaign and worker id.
    wait = external_entry_wait_seconds(request=request)
    if wait is not None:
        return _too_many(
            request,
            services.TooManyRequests(
                "Too many requests from your network in a short time; wait "
                f"{max(1, int(wait + 0.999))} s and reload this page.",
                retry_after=wait,
            ),
        )
    full = services.external_door_full(campaign=campaign, source=source, external_id=worker_id)
    if full:
        return render(request, "crowd/message.html", {"title": "No task", "text": full}, status=409)
    try:
        worker = services.worker_for_external(source=source, external_id=worker_id)
        assignment = services.assignment_for_external(
            worker=worker,
            campaign=campaign,
            external_assignment_id=external_assignment,
            submit_url=submit_url,
        )
    except services.TooManyRequests as error:
        return _too_many(request, error)
    except CrowdError as error:
        return render(
            request, "crowd/message.html", {"title": "No task", "text": str(error)}, status=409
        )
    token = selectors.assignment_token(assignment_id=assignment.pk)
    return HttpResponseRedirect(reverse("crowd:external-task", args=[token]))


@xframe_options_exempt
@require_GET
def mturk_entry(request, pk: int):
    """Mechanical Turk ExternalQuestion: ?assignmentId&hitId&workerId&turkSubmitTo (any panel speaking it)."""
    return _external_entry(
        request,
        pk,
        source=Worker.Source.MTURK,
        worker_id=request.GET.get("workerId", ""),
        external_assignment=request.GET.get("assignmentId", ""),
        submit_url=request.GET.get("turkSubmitTo", ""),
    )


@require_GET
def link_entry(request, pk: int):
    """Link-out panels (Prolific style): ?PROLIFIC_PID (or ?workerId), optional SESSION_ID."""
    return _external_entry(
        request,
        pk,
        source=Worker.Source.LINK,
        worker_id=request.GET.get("PROLIFIC_PID") or request.GET.get("workerId", ""),
        external_assignment=request.GET.get("SESSION_ID", ""),
    )


# The signed token in the URL is the credential and the anti-forgery secret of outside-crowd pages:
# they run inside the panel's frame, where our session and CSRF cookies are not sent.
@csrf_exempt
@xframe_options_exempt
@never_cache
def external_task(request, token: str):
    try:
        assignment = selectors.assignment_from_token(token=token)
    except (signing.BadSignature, Assignment.DoesNotExist):
        raise Http404("No such task.") from None
    worker = assignment.worker
    if assignment.status != A.LEASED:
        return _external_done(request, assignment)

    def render_task(*, form, status=200, **extra):
        context = _task_context(
            task=assignment.task, assignment=assignment, mode="work", form=form, **extra
        )
        context.update(submit_url=request.path, external=True)
        return render(request, "crowd/task.html", context, status=status)

    if request.method != "POST":
        return render_task(form=None)
    outcome, failure = _handle_submit(
        request, assignment=assignment, worker=worker, render_task=render_task
    )
    if failure is not None:
        return failure
    return _external_done(request, outcome.assignment)


def _external_done(request, assignment: Assignment):
    if (
        assignment.status in (A.SUBMITTED, A.APPROVED, A.REJECTED)
        and assignment.external_submit_url
    ):
        return render(
            request,
            "crowd/mturk_submit.html",
            {
                "action": assignment.external_submit_url + "/mturk/externalSubmit",
                "external_assignment_id": assignment.external_assignment_id,
            },
        )
    if assignment.status in (A.SUBMITTED, A.APPROVED, A.REJECTED):
        return render(request, "crowd/done.html", {"code": assignment.completion_code})
    return render(
        request,
        "crowd/message.html",
        {"title": "Task closed", "text": f"This task is {assignment.get_status_display()}."},
        status=410,
    )


# --- researcher pages -------------------------------------------------------------------------------


@requires("campaign.view")
@require_GET
def campaign_list(request):
    campaigns = Campaign.objects.select_related("run__network")
    rows = [(c, selectors.campaign_progress(campaign=c)) for c in campaigns[:100]]
    return render(
        request,
        "crowd/campaign_list.html",
        {"rows": rows, "can_create": can(request.user, "campaign.create")},
    )


@requires("campaign.create")
def campaign_new(request):
    form = CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            campaign = services.campaign_create(created_by=request.user, **form.campaign_kwargs())
        except CrowdError as error:  # shown on the form, beside its field
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            messages.success(
                request, f"Campaign created with {campaign.tasks.count()} tasks (draft)."
            )
            return redirect("crowd:campaign-detail", pk=campaign.pk)
    return render(request, "crowd/campaign_form.html", {"form": form})


@requires("campaign.view")
@require_GET
def campaign_detail(request, pk: int):
    campaign = get_object_or_404(Campaign.objects.select_related("run__network"), pk=pk)
    context = {
        "campaign": campaign,
        "progress": selectors.campaign_progress(campaign=campaign),
        "pending": selectors.pending_review(campaign=campaign)[:200],
        "workers": quality.campaign_worker_table(campaign=campaign),
        "transitions": [
            s
            for s in Campaign.Status.values
            if s in services.allowed_transitions(campaign=campaign)
        ],
        "can_review": can(request.user, "assignment.review"),
        "can_block": can(request.user, "worker.block"),
        "can_status": can(request.user, "campaign.status"),
    }
    return render(request, "crowd/campaign_detail.html", context)


@requires("campaign.status")
@require_POST
def campaign_status(request, pk: int):
    campaign = get_object_or_404(Campaign, pk=pk)
    try:
        services.campaign_set_status(
            campaign=campaign, status=request.POST.get("status", ""), actor=request.user
        )
        messages.success(request, f"Campaign is now {request.POST.get('status')}.")
    except CrowdError as error:
        messages.error(request, str(error))
    return redirect("crowd:campaign-detail", pk=pk)


@requires("assignment.review")
@require_POST
def campaign_review(request, pk: int):
    campaign = get_object_or_404(Campaign, pk=pk)
    ids = [int(x) for x in request.POST.getlist("assignment") if x.isdigit()]
    ids = list(
        Assignment.objects.filter(pk__in=ids, task__campaign=campaign).values_list("pk", flat=True)
    )
    approve = request.POST.get("decision") == "approve"
    if not ids:
        messages.error(request, "Select at least one answer to review.")
        return redirect("crowd:campaign-detail", pk=pk)
    try:
        changed = services.assignment_review(
            assignment_ids=ids,
            approve=approve,
            actor=request.user,
            reason=request.POST.get("reason", ""),
        )
        verb = "Approved" if approve else "Rejected"
        messages.success(request, f"{verb} {len(changed)} answer(s).")
    except CrowdError as error:
        messages.error(request, str(error))
    return redirect("crowd:campaign-detail", pk=pk)


@requires("worker.block")
@require_POST
def worker_block(request, pk: int):
    worker = get_object_or_404(Worker, pk=pk)
    try:
        if request.POST.get("unblock"):
            services.worker_unblock(worker=worker, actor=request.user)
            messages.success(request, f"Worker {worker.pseudonym} unblocked.")
        else:
            services.worker_block(
                worker=worker, actor=request.user, reason=request.POST.get("reason", "")
            )
            messages.success(request, f"Worker {worker.pseudonym} blocked.")
    except CrowdError as error:
        messages.error(request, str(error))
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("crowd:campaign-list")
    return HttpResponseRedirect(target)
