"""Pages of automation (issue 9), for the professionals of a box: message models (with a preview),
convocations (send, move, cancel), campaigns (upload, map, check, preview, send, progress,
report). Views parse and answer; `authoring`, `convocations`, `campaigns` act. Every object is
fetched through `automation.access` (404 for "not yours"); INS travel in POST bodies only.
"""

from __future__ import annotations

from types import SimpleNamespace

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from audit.events import record
from audit.models import AuditEvent
from automation import access, authoring, campaign_report, campaigns, convocations, csvfile, fields, sending
from automation.forms import (
    ConvocationForm,
    MappingForm,
    MessageModelForm,
    PreviewForm,
    RescheduleForm,
    UploadForm,
)
from automation.models import Campaign, CampaignLine, Convocation
from mailboxes.delivery import DeliveryRefused
from patients.models import Patient

SAMPLE_PATIENT = SimpleNamespace(
    sex="F", first_name="Camille", usage_name="Exemple", birth_name="Modèle", address="", display_name=""
)


def _boxes(request):
    boxes = list(access.sending_boxes_for_user(request.user).select_related("structure"))
    if not boxes:
        raise Http404("Aucune boîte aux lettres")
    return boxes


@login_required
@require_GET
def index(request):
    boxes = _boxes(request)
    return render(
        request,
        "automation/index.html",
        {
            "boxes": boxes,
            "models": access.models_for_user(request.user).filter(is_active=True),
            "campaigns": access.campaigns_for_user(request.user)[:20],
            "convocations": access.convocations_for_user(request.user)
            .filter(starts_at__gte=timezone.now(), status=Convocation.Status.SCHEDULED)
            .order_by("starts_at")[:20],
        },
    )


# --- Models ------------------------------------------------------------------------------------


def _uploads(files):
    return [(f.name, f.content_type or "application/octet-stream", f.read()) for f in files]


@login_required
def model_create(request):
    boxes = _boxes(request)
    form = MessageModelForm(request.POST or None, request.FILES or None, boxes=boxes)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            model = authoring.create_model(
                mailbox=data["mailbox"],
                service=data["service"],
                name=data["name"],
                kind=data["kind"],
                is_appointment=data["is_appointment"],
                reminder_days=data["reminder_days"],
                defaults=data["defaults"],
                subject=data["subject"],
                body=data["body"],
                user=request.user,
                attachments=_uploads(data["attachments"]),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("Modèle enregistré."))
            return redirect("automation:model", model.pk)
    _say_files_not_kept(request, form)
    context = {"form": form, "model": None, "catalogue": fields.FIELDS.items()}
    return render(request, "automation/model_form.html", context, status=_status(request, form))


def _status(request, form):
    return 400 if request.method == "POST" and form.errors else 200


def _say_files_not_kept(request, form) -> None:
    """A browser never refills a file input: when the form comes back with an error, the
    standing attachments just chosen are named, to be chosen again (they were not saved)."""
    names = [f.name for f in request.FILES.getlist("attachments")]
    if request.method == "POST" and form.errors and names and "attachments" not in form.errors:
        form.add_error(
            "attachments",
            ngettext(
                "Le fichier « %(names)s » n'a pas été enregistré : choisissez-le de nouveau.",
                "Les fichiers « %(names)s » n'ont pas été enregistrés : choisissez-les de nouveau.",
                len(names),
            )
            % {"names": " », « ".join(names)},
        )


@login_required
def model_edit(request, model_id):
    model = access.model_for_user(request.user, model_id)
    boxes = _boxes(request)
    current = model.current
    initial = {
        "mailbox": model.mailbox_id,
        "service": model.service,
        "name": model.name,
        "kind": model.kind,
        "is_appointment": model.is_appointment,
        "reminder_days": ", ".join(str(d) for d in model.reminder_days),
        "subject": current.subject,
        "body": current.body,
        **{f"default_{k}": v for k, v in (model.defaults or {}).items()},
    }
    form = MessageModelForm(request.POST or None, request.FILES or None, boxes=boxes, model=model, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            version = authoring.edit_model(
                model,
                subject=data["subject"],
                body=data["body"],
                user=request.user,
                add_attachments=_uploads(data["attachments"]),
                remove_attachments=data["remove_attachments"],
                **{name: data[name] for name in authoring.EDITABLE},
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("Modèle enregistré (version %(n)d).") % {"n": version.number})
            return redirect("automation:model", model.pk)
    _say_files_not_kept(request, form)
    context = {
        "form": form,
        "model": model,
        "current": current,
        "versions": model.versions.all()[:20],
        "preview_form": PreviewForm(),
        "catalogue": fields.FIELDS.items(),
    }
    return render(request, "automation/model_form.html", context, status=_status(request, form))


@login_required
@require_POST
def model_preview(request, model_id):
    """htmx: the message a (fictional) patient gets with the text being edited or the current one."""
    model = access.model_for_user(request.user, model_id)
    form = PreviewForm(request.POST)
    form.is_valid()
    version = SimpleNamespace(
        model=model,
        subject=request.POST.get("subject") or model.current.subject,
        body=request.POST.get("body") or model.current.body,
        attachments=model.current.attachments,
    )
    composed = sending.compose(version, SAMPLE_PATIENT, {k: v for k, v in form.cleaned_data.items() if v})
    return render(
        request,
        "automation/_preview.html",
        {
            "composed": composed,
            "sender": model.mailbox,
            "to": _("Camille EXEMPLE (patiente fictive)"),
            "attachments": [a.filename for a in model.current.attachments.all()]
            + (["invitation.ics"] if model.is_appointment else []),
            "unknown": authoring.text_errors(version.subject, version.body),
        },
    )


# --- Convocations ------------------------------------------------------------------------------


def _appointment_models(request):
    return list(access.models_for_user(request.user).filter(is_appointment=True, is_active=True))


@login_required
def convocation_create(request):
    _boxes(request)
    form = ConvocationForm(request.POST or None, models=_appointment_models(request))
    if request.method == "POST" and form.is_valid():
        patient = Patient.objects.filter(ins=form.cleaned_data["ins"]).first()
        try:
            if patient is None:
                raise ValueError(_("Aucun espace Mon espace santé ne correspond à ce matricule INS."))
            convocation = convocations.create_convocation(
                model=form.cleaned_data["model"],
                patient=patient,
                starts_at=form.starts_at(),
                user=request.user,
                values=form.values(),
                duration_minutes=form.cleaned_data["duration"],
            )
        except (ValueError, sending.DailyLimitReached, DeliveryRefused) as exc:
            form.add_error(None, _refusal_text(exc))
        else:
            messages.success(request, _("Convocation envoyée avec son invitation agenda."))
            return redirect("automation:convocation", convocation.pk)
    return render(request, "automation/convocation_form.html", {"form": form}, status=_status(request, form))


def _refusal_text(exc) -> str:
    if isinstance(exc, DeliveryRefused):
        reasons = [d.reason for d in exc.refused.values() if d.reason]
        return " ".join(reasons or [exc.reason])
    return getattr(exc, "message", None) or str(exc)


@login_required
def convocation_detail(request, convocation_id):
    convocation = access.convocation_for_user(request.user, convocation_id)
    form = RescheduleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            convocations.reschedule(convocation, form.starts_at(), request.user)
        except (ValueError, sending.DailyLimitReached, DeliveryRefused) as exc:
            form.add_error(None, _refusal_text(exc))
        else:
            messages.success(request, _("Rendez-vous déplacé : le patient a reçu la mise à jour de son agenda."))
            return redirect("automation:convocation", convocation.pk)
    context = {"convocation": convocation, "form": form, "reminders": convocation.reminders.order_by("due_at")}
    return render(request, "automation/convocation.html", context, status=_status(request, form))


def _confirmation(request, *, title, text, button, back, back_label):
    """The page asked before an action that cannot be undone (sends to patients, stops a list):
    a POST without `confirm=on` lands here; its button posts again with it."""
    context = {"title": title, "text": text, "button": button, "back": back, "back_label": back_label}
    return render(request, "automation/confirm.html", context)


@login_required
@require_POST
def convocation_cancel(request, convocation_id):
    convocation = access.convocation_for_user(request.user, convocation_id)
    if request.POST.get("confirm") != "on":
        when = fields.appointment_values(convocation.starts_at)
        return _confirmation(
            request,
            title=_("Annuler le rendez-vous ?"),
            text=_(
                "%(name)s recevra un message d'annulation du rendez-vous du %(date)s à %(time)s, qui le retire "
                "de son agenda ; les rappels prévus ne partiront pas. Cette annulation est définitive."
            )
            % {"name": convocation.patient.display_name, "date": when["date_rdv"], "time": when["heure_rdv"]},
            button=_("Oui, annuler le rendez-vous"),
            back=reverse("automation:convocation", args=[convocation.pk]),
            back_label=_("Non, garder le rendez-vous"),
        )
    convocations.cancel(convocation, request.user)
    messages.success(request, _("Convocation annulée : le patient a reçu l'annulation pour son agenda."))
    return redirect("automation:convocation", convocation.pk)


# --- Campaigns ---------------------------------------------------------------------------------


@login_required
def campaign_create(request):
    _boxes(request)
    models = list(access.models_for_user(request.user).filter(is_active=True))
    form = UploadForm(request.POST or None, request.FILES or None, models=models)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            campaign = campaigns.create_campaign(
                form.cleaned_data["model"], filename=upload.name, data=upload.read(), user=request.user
            )
        except csvfile.CsvError as exc:
            form.add_error("file", str(exc))
        else:
            return redirect("automation:campaign", campaign.pk)
    return render(request, "automation/campaign_new.html", {"form": form}, status=_status(request, form))


def _mapping_form(campaign, data=None):
    return MappingForm(
        data,
        campaign=campaign,
        names=campaigns.mappable_fields(campaign.model, campaign.model.current),
        required=campaigns.required_columns(campaign.model),
    )


@login_required
def campaign_detail(request, campaign_id):
    return _campaign_page(request, access.campaign_for_user(request.user, campaign_id))


def _campaign_page(request, campaign):
    context = {"campaign": campaign, "progress": campaigns.progress(campaign)}
    if campaign.status == Campaign.Status.DRAFT:
        context.update(_draft_context(request, campaign))
    elif campaign.status in (Campaign.Status.DONE, Campaign.Status.CANCELLED):
        context["summary"] = campaign_report.summary(campaign)
        context["answered"] = campaign_report.answered_lines(campaign)
    return render(request, "automation/campaign.html", context)


def _draft_context(request, campaign) -> dict:
    context = {"mapping_form": _mapping_form(campaign)}
    if campaign.validated_at:
        problems = campaign.lines.filter(status=CampaignLine.Status.INVALID).order_by("number")
        context["problems"] = problems[:500]
        valid = campaign.lines.filter(status=CampaignLine.Status.PENDING).select_related("patient")
        chosen = request.GET.get("ligne")
        line = valid.filter(number=int(chosen)).first() if chosen and chosen.isdigit() else None
        line = line or valid.order_by("number").first()
        if line is not None:
            composed = sending.compose(campaign.version, line.patient, line.values, campaigns.starts_at_of(line))
            context["preview"] = {
                "line": line,
                "composed": composed,
                "sender": campaign.mailbox,
                "to": f"{line.patient.display_name} <{line.patient.address}>",
                "attachments": [a.filename for a in campaign.version.attachments.all()]
                + (["invitation.ics"] if campaign.model.is_appointment else []),
            }
            context["preview_numbers"] = list(valid.order_by("number").values_list("number", flat=True)[:200])
    return context


@login_required
@require_POST
def campaign_mapping(request, campaign_id):
    campaign = access.campaign_for_user(request.user, campaign_id)
    form = _mapping_form(campaign, request.POST)
    if form.is_valid():
        try:
            report = campaigns.apply_mapping(campaign, form.cleaned_data, request.user)
        except ValueError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                _("Liste vérifiée — lignes prêtes : %(v)d ; lignes refusées : %(i)d.")
                % {"v": report.valid, "i": len(report.problems)},
            )
    else:
        messages.error(request, _("Choisissez la colonne de chaque champ obligatoire."))
    return redirect("automation:campaign", campaign.pk)


@login_required
@require_POST
def campaign_control(request, campaign_id, action):
    campaign = access.campaign_for_user(request.user, campaign_id)
    try:
        if action == "envoyer":
            count = campaigns.start(campaign, request.user)
            messages.success(
                request,
                ngettext(
                    "Envoi lancé : %(n)d message part en arrière-plan.",
                    "Envoi lancé : %(n)d messages partent en arrière-plan.",
                    count,
                )
                % {"n": count},
            )
        elif action == "pause":
            campaigns.pause(campaign, request.user, reason="user")
        elif action == "reprendre":
            campaigns.resume(campaign, request.user)
        elif action == "annuler":
            if request.POST.get("confirm") != "on":
                return _campaign_cancel_confirmation(request, campaign)
            count = campaigns.cancel(campaign, request.user)
            messages.success(request, _campaign_cancelled_text(campaign, count))
        else:
            raise Http404("Action inconnue")
    except (ValueError, sending.DailyLimitReached) as exc:
        messages.error(request, _refusal_text(exc))
    return redirect("automation:campaign", campaign.pk)


def _campaign_cancel_confirmation(request, campaign):
    back = reverse("automation:campaign", args=[campaign.pk])
    if campaign.status == Campaign.Status.DRAFT:
        return _confirmation(
            request,
            title=_("Abandonner cette liste ?"),
            text=_(
                "Aucun message de cette liste n'est parti et aucun ne partira. Pour l'envoyer plus tard, déposez le fichier de nouveau."
            ),
            button=_("Oui, abandonner la liste"),
            back=back,
            back_label=_("Non, revenir à la liste"),
        )
    pending = campaigns.progress(campaign).pending
    return _confirmation(
        request,
        title=_("Annuler les envois restants ?"),
        text=ngettext(
            "%(n)d message n'est pas encore parti : il ne partira pas. Les messages déjà envoyés restent envoyés. "
            "Cette annulation est définitive.",
            "%(n)d messages ne sont pas encore partis : ils ne partiront pas. Les messages déjà envoyés restent "
            "envoyés. Cette annulation est définitive.",
            pending,
        )
        % {"n": pending},
        button=_("Oui, annuler les envois restants"),
        back=back,
        # Going back leaves the list as it is: sending, or paused until « Reprendre l'envoi ».
        back_label=_("Non, garder la liste en pause")
        if campaign.status == Campaign.Status.PAUSED
        else _("Non, continuer l'envoi"),
    )


def _campaign_cancelled_text(campaign, count: int) -> str:
    if campaign.status == Campaign.Status.DRAFT:
        return _("Liste abandonnée : aucun message n'est parti.")
    return ngettext(
        "Envois annulés : %(n)d message ne partira pas.", "Envois annulés : %(n)d messages ne partiront pas.", count
    ) % {"n": count}


@login_required
@require_GET
def campaign_progress(request, campaign_id):
    """htmx (polled): the progress bar. Once the campaign is over, its page's body (#campaign-body)
    becomes the report in place, without a reload, so that the page's live region, outside that
    body, can say the send is over (templates/automation/_progress.html)."""
    campaign = access.campaign_for_user(request.user, campaign_id)
    if campaign.status in (Campaign.Status.DONE, Campaign.Status.CANCELLED):
        response = _campaign_page(request, campaign)
        response["HX-Retarget"] = response["HX-Reselect"] = "#campaign-body"
        response["HX-Reswap"] = "outerHTML"
        return response
    return render(
        request, "automation/_progress.html", {"campaign": campaign, "progress": campaigns.progress(campaign)}
    )


@login_required
@require_GET
def campaign_report_csv(request, campaign_id):
    campaign = access.campaign_for_user(request.user, campaign_id)
    record(
        AuditEvent.Action.CAMPAIGN_REPORT_DOWNLOADED,
        actor=request.user,
        obj=campaign,
        mailbox_id=campaign.mailbox_id,
        ip=request.META.get("REMOTE_ADDR"),
    )
    response = HttpResponse(campaign_report.report_csv(campaign), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="rapport-campagne-{campaign.pk}.csv"'
    return response
