"""Crowd pages: annotator home, task pages (local, Mechanical Turk, link-out), researcher campaign pages.

Views are thin: they read a form, call one service or selector, and render. The task page never
shows which tiles are controls, gold answers, or anyone else's answers.
"""

from django.contrib import messages
from django.core import signing
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from annotate.crowd import quality, selectors, services, verification
from annotate.crowd.concepts import vocabulary_datalist
from annotate.crowd.forms import AnswerForm, CampaignForm
from annotate.crowd.instructions import CATEGORY_HELP
from annotate.crowd.models import Assignment, Campaign, StudySession, Task, Worker
from annotate.crowd.services import AnswerInvalid, CrowdError, LeaseExpired, NoTask
from annotate.crowd.throttling import external_entry_wait_seconds, submit_wait_seconds
from core.access import can, requires
from dissect.models import UnitImage
from dissect.storage import media_response

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
    return media_response(path, content_type="image/jpeg", cache_control="private, max-age=86400")


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
    request,
    pk: int,
    *,
    source: str,
    worker_id: str,
    external_assignment: str,
    submit_url: str = "",
    session_id: str = "",
    study_id: str = "",
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
        if session_id:  # a study session (Prolific): its tasks, then its completion
            session = services.study_session_enter(
                campaign=campaign, worker=worker, session_id=session_id, study_id=study_id
            )
            assignment = services.session_assignment_next(session=session)
            if assignment is None:  # answered already: straight to its completion
                token = selectors.session_token(session_pk=session.pk)
                return HttpResponseRedirect(reverse("crowd:study-complete", args=[token]))
        else:
            assignment = services.assignment_for_external(
                worker=worker,
                campaign=campaign,
                external_assignment_id=external_assignment,
                submit_url=submit_url,
            )
    except services.TooManyRequests as error:
        return _too_many(request, error)
    except CrowdError as error:
        title = "Link not valid" if error.field in ("SESSION_ID", "STUDY_ID") else "No task"
        return render(
            request, "crowd/message.html", {"title": title, "text": str(error)}, status=409
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
    """Link-out panels (Prolific): ?PROLIFIC_PID (or ?workerId), STUDY_ID and SESSION_ID. With a
    SESSION_ID the visit is a study session: tasks_per_session tasks, then the completion."""
    return _external_entry(
        request,
        pk,
        source=Worker.Source.LINK,
        worker_id=request.GET.get("PROLIFIC_PID") or request.GET.get("workerId", ""),
        external_assignment="",
        session_id=request.GET.get("SESSION_ID", ""),
        study_id=request.GET.get("STUDY_ID", ""),
    )


def _study_session(request, token: str):
    try:
        return selectors.session_from_token(token=token), None
    except (signing.BadSignature, StudySession.DoesNotExist):
        return None, render(
            request,
            "crowd/message.html",
            {
                "title": "Link not valid",
                "text": "This study link is not valid: it was changed or belongs to another "
                "session. Open the study again from your panel (e.g. Prolific).",
            },
            status=400,
        )


@xframe_options_exempt
@never_cache
@require_GET
def study_next(request, token: str):
    """A study session's next task, or its completion once its answers are stored."""
    session, refused = _study_session(request, token)
    if refused:
        return refused
    try:
        assignment = services.session_assignment_next(session=session)
    except CrowdError as error:
        return render(
            request, "crowd/message.html", {"title": "No task", "text": str(error)}, status=409
        )
    if assignment is None:
        return HttpResponseRedirect(reverse("crowd:study-complete", args=[token]))
    task_token = selectors.assignment_token(assignment_id=assignment.pk)
    return HttpResponseRedirect(reverse("crowd:external-task", args=[task_token]))


@xframe_options_exempt
@never_cache
@require_GET
def study_complete(request, token: str):
    """The session's completion: a redirect to the campaign's completion URL (Prolific's
    …/submissions/complete?cc=CODE), or the code on a page; only after its answers are stored."""
    session, refused = _study_session(request, token)
    if refused:
        return refused
    try:
        completion = services.session_complete(session=session)
    except CrowdError as error:
        next_url = reverse("crowd:study-next", args=[token])
        return render(
            request,
            "crowd/message.html",
            {"title": "Not finished yet", "text": str(error), "link": next_url,
             "link_text": "Back to your task"},
            status=409,
        )  # fmt: skip
    if completion.url:
        return HttpResponseRedirect(completion.url)
    return render(request, "crowd/done.html", {"code": completion.code, "session": True})


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
    if assignment.session_id is not None and assignment.status != A.LEASED:
        # A study session goes on with its next task, or to its completion.
        token = selectors.session_token(session_pk=assignment.session_id)
        return HttpResponseRedirect(reverse("crowd:study-next", args=[token]))
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
    rows = [
        (
            c,
            selectors.campaign_progress(campaign=c),
            verification.verification_build_status(campaign=c),
        )
        for c in campaigns[:100]
    ]
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
            campaign = verification.campaign_create_with_verification(
                created_by=request.user, **form.campaign_kwargs()
            )
        except CrowdError as error:  # shown on the form, beside its field
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            building = campaign.verification_state in (
                Campaign.VerificationState.PENDING,
                Campaign.VerificationState.BUILDING,
            )
            messages.success(
                request,
                f"Campaign created with {campaign.tasks.count()} tasks (draft)"
                + (
                    "; its verification sample is being built on a gpu worker." if building else "."
                ),
            )
            return redirect("crowd:campaign-detail", pk=campaign.pk)
    return render(request, "crowd/campaign_form.html", {"form": form})


@requires("campaign.view")
@require_GET
def campaign_detail(request, pk: int):
    campaign = get_object_or_404(Campaign.objects.select_related("run__network"), pk=pk)
    return _campaign_page(request, campaign)


def _campaign_page(request, campaign: Campaign, *, review: dict | None = None, status: int = 200):
    """The campaign page; ``review`` carries a refused review's ticks, reason and error."""
    context = {
        "campaign": campaign,
        "progress": selectors.campaign_progress(campaign=campaign),
        "pending": review_rows(selectors.pending_review(campaign=campaign)[:200]),
        "review": review or {"selected": set(), "reason": "", "error": ""},
        "workers": quality.campaign_worker_table(campaign=campaign),
        "simulated": selectors.campaign_simulated_answers(campaign=campaign),
        "tiles_shown": selectors.campaign_tiles_shown(campaign=campaign),
        "verification_tasks": campaign.verification_tasks.count(),
        "build": verification.verification_build_status(campaign=campaign),
        "transitions": [
            s
            for s in Campaign.Status.values
            if s in services.allowed_transitions(campaign=campaign)
        ],
        "can_review": can(request.user, "assignment.review"),
        "can_block": can(request.user, "worker.block"),
        "can_status": can(request.user, "campaign.status"),
        "can_create": can(request.user, "campaign.create"),
    }
    return render(request, "crowd/campaign_detail.html", context, status=status)


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


@requires("campaign.create")
@require_POST
def campaign_verification_rebuild(request, pk: int):
    """Build the campaign's verification sample again, with the same options (after a failure
    was fixed); units that already have their task keep it."""
    campaign = get_object_or_404(Campaign, pk=pk)
    try:
        verification.verification_build_enqueue(campaign=campaign, actor=request.user)
    except verification.BuildBusy as error:
        messages.info(request, str(error))
    except CrowdError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "The verification sample is being built again.")
    return redirect("crowd:campaign-detail", pk=pk)


@requires("assignment.review")
@require_POST
def campaign_review(request, pk: int):
    """Approve or reject the ticked answers. A refusal (nothing ticked, no reason to reject) shows
    the page again with the ticks and the reason as they were, and says what to do (400)."""
    campaign = get_object_or_404(Campaign.objects.select_related("run__network"), pk=pk)
    ids = [int(x) for x in request.POST.getlist("assignment") if x.isdigit()]
    ids = list(
        Assignment.objects.filter(pk__in=ids, task__campaign=campaign).values_list("pk", flat=True)
    )
    approve = request.POST.get("decision") == "approve"
    reason = request.POST.get("reason", "")
    verb = "Approve" if approve else "Reject"
    if not ids:
        error = f"{verb}: tick at least one answer in the first column, then press {verb} again."
        return _review_refused(request, campaign, ids=ids, reason=reason, error=error)
    try:
        changed = services.assignment_review(
            assignment_ids=ids, approve=approve, actor=request.user, reason=reason
        )
    except CrowdError as refused:
        error = (
            f"{refused} Your {len(ids)} ticked answer(s) are still ticked: "
            + ("type the reason below and press Reject selected again." if not approve else "")
        ).strip()
        return _review_refused(request, campaign, ids=ids, reason=reason, error=error)
    done = "Approved" if approve else "Rejected"
    messages.success(request, f"{done} {len(changed)} answer(s).")
    return redirect("crowd:campaign-detail", pk=pk)


def _review_refused(request, campaign, *, ids, reason, error):
    review = {"selected": set(ids), "reason": reason, "error": error}
    return _campaign_page(request, campaign, review=review, status=400)


def review_rows(pending) -> list[dict]:
    """Pending assignments with their tiles in the order the worker saw them, for the review
    table: [{assignment, unit_url, tiles: [{url, flagged, control, position}]}]. The tile URLs
    are the task's own signed ones: the reviewer sees exactly what the worker saw."""
    pending = list(pending)
    ids = {tile for a in pending for tile in a.task.tile_order or []}
    tiles = UnitImage.objects.only("pk", "kind", "tile_path").in_bulk(ids)
    rows = []
    for a in pending:
        answer = getattr(a, "answer", None)
        flagged = set(answer.flagged_tiles or []) if answer else set()
        unit = a.task.unit
        shown = [
            {
                "url": reverse(
                    "crowd:tile",
                    args=[selectors.tile_token(task_id=a.task_id, position=position)],
                )
                if tiles[pk].tile_path
                else "",
                "flagged": pk in flagged,
                "control": tiles[pk].kind == UnitImage.Kind.CONTROL,
                "position": position,
            }
            for position, pk in enumerate(a.task.tile_order or [])
            if pk in tiles
        ]
        rows.append(
            {
                "assignment": a,
                "unit_url": reverse(
                    "dissect:unit-detail", args=[unit.layer.run_id, unit.layer.name, unit.index]
                ),
                "tiles": shown,
                "flagged_count": sum(t["flagged"] for t in shown),
            }
        )
    return rows


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


@requires("assignment.review")
@require_GET
def study_decisions_csv(request, pk: int):
    """Approve/reject decisions of the campaign's study sessions (?study=STUDY_ID for one
    study), keyed by SESSION_ID (Prolific's submission id), as CSV for the panel's bulk review."""
    import csv

    from django.http import HttpResponse

    from core.csv_safe import safe_row

    campaign = get_object_or_404(Campaign, pk=pk)
    study = request.GET.get("study")
    decisions = selectors.study_decisions(campaign=campaign, study_id=study or None)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"campaign-{campaign.pk}-" + (f"study-{slugify(study)}" if study else "studies")
    response["Content-Disposition"] = f'attachment; filename="{name}-decisions.csv"'
    writer = csv.writer(response)
    writer.writerow(selectors.DECISION_COLUMNS)
    for decision in decisions:
        writer.writerow(safe_row(decision.row()))
    return response
