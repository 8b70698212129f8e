"""Verification task pages (issue 16): one image at a time, "does the highlighted region show
CONCEPT?" yes / no / can't tell. Server-rendered (three submit buttons work without script;
``verify.js`` adds the y / n / c keys). The page names only the image's position: never its
activation, weight, stratum or whether it is a planted check."""

from django.contrib import messages
from django.core import signing
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from annotate.crowd import services, verification
from annotate.crowd.models import Campaign, VerificationAssignment, VerificationItem
from annotate.crowd.services import CrowdError, NoTask
from core.access import requires
from core.errors import Conflict
from dissect.storage import media_response

VA = VerificationAssignment.Status


@requires("task.work")
@require_POST
def verify_start(request, pk: int):
    campaign = get_object_or_404(Campaign, pk=pk)
    worker = services.worker_for_user(user=request.user)
    try:
        assignment = verification.verification_next(worker=worker, campaign=campaign)
    except NoTask as error:
        messages.info(request, str(error))
        return redirect("crowd:annotator-home")
    return redirect("crowd:verify", pk=assignment.pk)


@requires("task.work")
@never_cache
def verify_page(request, pk: int):
    worker = services.worker_for_user(user=request.user)
    assignment = get_object_or_404(
        VerificationAssignment.objects.select_related("task__campaign"), pk=pk, worker=worker
    )
    error, status = None, 200
    if request.method == "POST":
        try:
            verification.verification_answer(
                assignment=assignment,
                worker=worker,
                token=request.POST.get("item", ""),
                answer=request.POST.get("answer", ""),
            )
        except CrowdError as refused:
            error = str(refused)
            status = 409 if isinstance(refused, Conflict) else 400
        else:
            return redirect("crowd:verify", pk=assignment.pk)  # the next image (PRG)
    assignment.refresh_from_db()
    progress = verification.assignment_progress(assignment=assignment)
    if assignment.status == VA.LEASED and progress.item is not None:
        if assignment.lease_expires_at and assignment.lease_expires_at <= timezone.now():
            messages.info(request, "Your time for that task ran out, so it went back to the pool.")
            return redirect("crowd:annotator-home")
    else:
        if assignment.status == VA.SUBMITTED:
            messages.success(request, "Saved. Thank you!")
        try:
            following = verification.verification_next(
                worker=worker, campaign=assignment.task.campaign
            )
        except NoTask as none_left:
            messages.info(request, str(none_left))
            return redirect("crowd:annotator-home")
        return redirect("crowd:verify", pk=following.pk)
    item = progress.item
    context = {
        "assignment": assignment,
        "campaign": assignment.task.campaign,
        "concept": assignment.task.concept,
        "token": verification.tile_token(task_id=item.task_id, position=item.position),
        "tile_url": verification.tile_url(task_id=item.task_id, position=item.position),
        "number": progress.answered + 1,
        "total": progress.total,
        "error": error,
        "choices": [("yes", "y", "Yes"), ("no", "n", "No"), ("cant", "c", "Can't tell")],
    }
    return render(request, "crowd/verify.html", context, status=status)


@require_GET
def verify_tile(request, token: str):
    """A verification image by its signed, position-only token."""
    try:
        task_id, position = verification.tile_from_token(token=token)
    except signing.BadSignature:
        raise Http404("No such image.") from None
    item = get_object_or_404(VerificationItem, task_id=task_id, position=position)
    return media_response(
        item.tile_path, content_type="image/jpeg", cache_control="private, max-age=86400"
    )
