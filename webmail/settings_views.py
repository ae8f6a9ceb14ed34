"""Settings pages of a box (RULES.md §6 client functions): absence message, forwarding
(nominative boxes only) and sorting rules. Only the box's owner, or the responsible professional
and managers of a shared box, change them (`selectors.can_manage`); the box comes through
`mailboxes.access` like every object. The actions live in `mailboxes.absence`,
`mailboxes.forwarding` and `mailboxes.box_rules`.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from mailboxes import absence, box_rules, forwarding
from mailboxes.models import AbsenceMessage, BoxRule, Forwarding, Mailbox
from webmail.selectors import can_manage, pro_mailbox
from webmail.settings_forms import AbsenceForm, ForwardingForm, RuleForm


def _managed_box(user, mailbox_id) -> Mailbox:
    mailbox = pro_mailbox(user, mailbox_id)
    if not can_manage(user, mailbox):
        raise PermissionDenied(
            _("Seuls le titulaire ou les gestionnaires de la boîte modifient son absence, son transfert et ses règles.")
        )
    return mailbox


def _render(request, template, mailbox, tab, context, status=200):
    return render(
        request,
        template,
        {"mailbox": mailbox, "tab": tab, "can_forward": mailbox.kind == Mailbox.Kind.NOMINATIVE, **context},
        status=status,
    )


@login_required
def absence_settings(request, mailbox_id):
    mailbox = _managed_box(request.user, mailbox_id)
    current = AbsenceMessage.objects.filter(mailbox=mailbox).first()
    if request.method == "POST":
        form = AbsenceForm(request.POST)
        if form.is_valid():
            absence.save_absence(mailbox, request.user, **form.cleaned_data)
            messages.success(
                request,
                _("Message d'absence activé.") if form.cleaned_data["enabled"] else _("Message d'absence désactivé."),
            )
            return redirect("webmail:absence", mailbox.pk)
        return _render(request, "webmail/settings_absence.html", mailbox, "absence", {"form": form}, status=400)
    initial = {}
    if current is not None:
        initial = {
            "enabled": current.enabled,
            "starts_on": current.starts_on,
            "ends_on": current.ends_on,
            "subject": current.subject,
            "text": current.text,
            "reply_to_patients": current.reply_to_patients,
        }
    return _render(request, "webmail/settings_absence.html", mailbox, "absence", {"form": AbsenceForm(initial=initial)})


@login_required
def forwarding_settings(request, mailbox_id):
    mailbox = _managed_box(request.user, mailbox_id)
    if mailbox.kind != Mailbox.Kind.NOMINATIVE:
        raise Http404("Le transfert automatique concerne les boîtes nominatives")
    current = Forwarding.objects.filter(mailbox=mailbox).first()
    if request.method == "POST":
        form = ForwardingForm(request.POST, mailbox=mailbox)
        if form.is_valid():
            forwarding.save_forwarding(mailbox, request.user, **form.cleaned_data)
            messages.success(
                request,
                _("Transfert automatique activé.")
                if form.cleaned_data["enabled"]
                else _("Transfert automatique désactivé."),
            )
            return redirect("webmail:forwarding", mailbox.pk)
        return _render(request, "webmail/settings_forwarding.html", mailbox, "forwarding", {"form": form}, status=400)
    initial = {"keep_copy": True}
    if current is not None:
        initial = {"enabled": current.enabled, "address": current.address, "keep_copy": current.keep_copy}
    form = ForwardingForm(initial=initial, mailbox=mailbox)
    return _render(request, "webmail/settings_forwarding.html", mailbox, "forwarding", {"form": form})


@login_required
def rules_settings(request, mailbox_id):
    mailbox = _managed_box(request.user, mailbox_id)
    status = 200
    if request.method == "POST":
        form = RuleForm(request.POST, mailbox=mailbox)
        if form.is_valid():
            try:
                box_rules.add_rule(mailbox, request.user, **form.cleaned_data)
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, _("Règle ajoutée : elle s'applique aux prochains messages reçus."))
                return redirect("webmail:rules", mailbox.pk)
        status = 400
    else:
        form = RuleForm(mailbox=mailbox)
    rules = BoxRule.objects.filter(mailbox=mailbox).select_related("move_to")
    return _render(
        request, "webmail/settings_rules.html", mailbox, "rules", {"form": form, "rules": rules}, status=status
    )


@login_required
@require_POST
def rule_action(request, mailbox_id, rule_id):
    mailbox = _managed_box(request.user, mailbox_id)
    if not BoxRule.objects.filter(mailbox=mailbox, pk=rule_id).exists():
        raise Http404("Règle introuvable")
    action = request.POST.get("action")
    if action == "delete":
        box_rules.delete_rule(mailbox, request.user, rule_id)
        messages.success(request, _("Règle supprimée."))
    elif action in ("enable", "disable"):
        box_rules.set_enabled(mailbox, request.user, rule_id, action == "enable")
        messages.success(request, _("Règle activée.") if action == "enable" else _("Règle désactivée."))
    else:
        messages.error(request, _("Action inconnue."))
    return redirect("webmail:rules", mailbox.pk)
