"""Pages of the patient's record (RULES.md §3): profile, measures, documents, profile PDF.

Thin views: each one finds the signed-in patient (`patient_for_user`: 404 for anyone else),
fetches objects through the access-checked functions, calls one action and renders.
"""

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from audit.events import client_ip, record
from audit.models import AuditEvent
from health_record import forms
from health_record.api import profile_pdf
from health_record.documents import (
    delete_document,
    document_for_user,
    documents_for_patient,
    patient_for_user,
    read_document,
    save_document,
)
from health_record.models import Document, Measure
from health_record.profile import (
    SECTIONS,
    SECTIONS_BY_KEY,
    mark_section_updated,
    profile_data,
    profile_for_patient,
    queue_pdf_render,
)
from mailboxes.file_headers import download_headers, preview_headers

log = logging.getLogger(__name__)

# section key → (kind, form class); "rows" sections are inline formsets of child rows.
SECTION_FORMS = {
    "history": ("rows", forms.HistoryFormSet),
    "treatments": ("rows", forms.TreatmentFormSet),
    "allergies": ("rows", forms.AllergyFormSet),
    "lifestyle": ("form", forms.LifestyleForm),
    "contacts": ("rows", forms.ContactsFormSet),
    "directives": ("form", forms.DirectivesForm),
    "vaccinations": ("rows", forms.VaccinationFormSet),
    "administrative": ("form", forms.AdministrativeForm),
}


def _ip(request):
    """The client's address behind the trusted proxy (audit.events.client_ip)."""
    return client_ip(request)


@login_required
@require_GET
def profile(request):
    patient = patient_for_user(request.user)
    data = profile_data(patient)
    return render(
        request,
        "health_record/profile.html",
        {"patient": patient, "p": data, "sections": SECTIONS, "nav": "profile"},
    )


@login_required
@require_http_methods(["GET", "POST"])
def edit_section(request, section):
    patient = patient_for_user(request.user)
    if section not in SECTION_FORMS:
        raise Http404("Section inconnue")
    kind, form_class = SECTION_FORMS[section]
    profile_row = profile_for_patient(patient)
    if request.method == "POST":
        form = form_class(request.POST, instance=profile_row, **({"prefix": "rows"} if kind == "rows" else {}))
        if form.is_valid():
            section_info = SECTIONS_BY_KEY[section]
            first_review = getattr(profile_row, section_info.updated_field) is None
            with transaction.atomic():
                form.save()
                if form.has_changed() or first_review:
                    mark_section_updated(profile_row, section, actor=request.user)
            messages.success(request, f"Section « {section_info.title} » enregistrée.")
            return redirect(f"{_profile_url()}#section-{section}")
    else:
        form = form_class(instance=profile_row, **({"prefix": "rows"} if kind == "rows" else {}))
    return render(
        request,
        "health_record/section_form.html",
        {"section": SECTIONS_BY_KEY[section], "form": form, "is_rows": kind == "rows", "nav": "profile"},
    )


def _profile_url():
    from django.urls import reverse

    return reverse("health_record:profile")


@login_required
@require_http_methods(["GET", "POST"])
def measures(request):
    patient = patient_for_user(request.user)
    if request.method == "POST":
        form = forms.MeasureForm(request.POST)
        if form.is_valid():
            with transaction.atomic():
                measure = form.save(commit=False)
                measure.patient = patient
                measure.save()
                record(
                    AuditEvent.Action.PROFILE_UPDATED,
                    actor=request.user,
                    obj=measure,
                    detail={"patient_id": patient.pk, "section": "measures"},
                    ip=_ip(request),
                )
                queue_pdf_render(patient.pk)
            messages.success(request, f"Mesure « {measure.get_kind_display()} » enregistrée.")
            return redirect("health_record:measures")
    else:
        form = forms.MeasureForm(initial={"kind": request.GET.get("mesure", "")})
    data = profile_data(patient)
    return render(
        request,
        "health_record/measures.html",
        {
            "form": form,
            "p": data,
            "all_measures": Measure.objects.filter(patient=patient).order_by("-measured_on", "-id"),
            "nav": "measures",
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def delete_measure(request, measure_id):
    """The table's « Supprimer » opens a confirmation (GET): a finger that slips on a phone does
    not delete a measure; the confirmation's POST deletes it."""
    patient = patient_for_user(request.user)
    measure = Measure.objects.filter(pk=measure_id, patient=patient).first()
    if measure is None:
        raise Http404("Mesure introuvable")
    if request.method == "GET":
        return render(request, "health_record/measure_delete.html", {"measure": measure, "nav": "measures"})
    with transaction.atomic():
        record(
            AuditEvent.Action.PROFILE_UPDATED,
            actor=request.user,
            obj=measure,
            outcome="deleted",
            detail={"patient_id": patient.pk, "section": "measures"},
            ip=_ip(request),
        )
        measure.delete()
    messages.success(request, "Mesure supprimée.")
    return redirect("health_record:measures")


@login_required
@require_GET
def profile_pdf_download(request):
    patient = patient_for_user(request.user)
    filename, data = profile_pdf(patient, actor=request.user)
    record(
        AuditEvent.Action.PROFILE_DOWNLOADED,
        actor=request.user,
        object_type="profile",
        object_id=patient.pk,
        detail={"patient_id": patient.pk},
        ip=_ip(request),
    )
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return download_headers(response)


@login_required
@require_GET
def documents(request):
    patient = patient_for_user(request.user)
    docs = list(documents_for_patient(patient))
    return render(
        request,
        "health_record/documents.html",
        {
            "health_documents": [d for d in docs if d.kind == Document.Kind.HEALTH],
            "admin_documents": [d for d in docs if d.kind == Document.Kind.ADMINISTRATIVE],
            "nav": "documents",
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def upload_document(request):
    patient = patient_for_user(request.user)
    if request.method == "POST":
        form = forms.DocumentUploadForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                document = save_document(
                    patient,
                    data=upload.read(),
                    filename=upload.name,
                    title=form.cleaned_data["title"],
                    date=form.cleaned_data["date"],
                    category=form.cleaned_data["category"],
                    kind=form.cleaned_data["kind"],
                    actor=request.user,
                )
            except ValidationError as error:
                form.add_error("file", error)
            else:
                messages.success(request, "Document ajouté à votre dossier.")
                return redirect("health_record:document", document_id=document.pk)
    else:
        form = forms.DocumentUploadForm(initial={"kind": request.GET.get("nature", Document.Kind.HEALTH)})
    return render(request, "health_record/document_upload.html", {"form": form, "nav": "documents"})


@login_required
@require_GET
def document(request, document_id):
    patient_for_user(request.user)
    doc = document_for_user(request.user, document_id)
    return render(request, "health_record/document.html", {"document": doc, "nav": "documents"})


@login_required
@require_GET
def document_inline(request, document_id):
    """The file itself, shown in the page (pdf, jpg, png only) with a restrictive CSP."""
    doc = document_for_user(request.user, document_id)
    if not doc.previewable:
        raise Http404("Pas d'aperçu pour ce format")
    record(
        AuditEvent.Action.DOCUMENT_VIEWED,
        actor=request.user,
        obj=doc,
        detail={"patient_id": doc.patient_id},
        ip=_ip(request),
    )
    response = HttpResponse(read_document(doc), content_type=doc.content_type)
    # The same headers as an attachment's preview (mailboxes.file_headers).
    return preview_headers(response)


@login_required
@require_GET
def document_download(request, document_id):
    doc = document_for_user(request.user, document_id)
    record(
        AuditEvent.Action.DOCUMENT_DOWNLOADED,
        actor=request.user,
        obj=doc,
        detail={"patient_id": doc.patient_id},
        ip=_ip(request),
    )
    response = FileResponse(
        doc.file.open("rb"), as_attachment=True, filename=doc.filename, content_type=doc.content_type
    )
    return download_headers(response)


@login_required
@require_http_methods(["GET", "POST"])
def document_delete(request, document_id):
    doc = document_for_user(request.user, document_id)
    if request.method == "POST":
        delete_document(doc, actor=request.user)
        messages.success(request, "Document supprimé de votre dossier.")
        return redirect("health_record:documents")
    return render(request, "health_record/document_delete.html", {"document": doc, "nav": "documents"})
