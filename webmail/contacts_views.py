"""The address book pages (issue 16 item 19): the personal book and the shared books of the
person's organisational boxes, searched, added to, edited and pruned. The work lives in
`webmail.contacts`; books and contacts are fetched through its access-checked functions."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from webmail import contacts


class ContactForm(forms.Form):
    address = forms.CharField(
        label=gettext_lazy("Adresse MSSanté"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    name = forms.CharField(label=gettext_lazy("Nom"), max_length=200, required=False)
    note = forms.CharField(
        label=gettext_lazy("Note"),
        max_length=300,
        required=False,
        help_text=gettext_lazy("Fonction, service, structure : ce qui aide à choisir le bon destinataire."),
    )


class ContactEditForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Nom"), max_length=200, required=False)
    note = forms.CharField(label=gettext_lazy("Note"), max_length=300, required=False)


@login_required
def address_books(request):
    books = contacts.refresh_for_user(request.user)
    current = contacts.book_for_user(request.user, request.GET.get("carnet") or books[0].pk)
    term = (request.GET.get("q") or "").strip()[:100]
    form = ContactForm()
    status = 200
    if request.method == "POST":
        form = ContactForm(request.POST)
        if form.is_valid():
            try:
                contact = contacts.save_contact(current, **form.cleaned_data)
            except ValidationError as error:
                form.add_error("address", error)
            else:
                messages.success(request, _("Contact %(a)s ajouté.") % {"a": contact.address})
                return redirect(f"{request.path}?carnet={current.pk}")
        status = 400
    context = {
        "books": books,
        "book": current,
        "term": term,
        "contacts": contacts.book_contacts(current, term)[:500],
        "form": form,
    }
    return render(request, "webmail/contacts.html", context, status=status)


@login_required
def contact_edit(request, contact_id):
    contact = contacts.contact_for_user(request.user, contact_id)
    back = f"{_books_url()}?carnet={contact.book_id}"
    if request.method == "POST":
        form = ContactEditForm(request.POST)
        if form.is_valid():
            contacts.update_contact(contact, **form.cleaned_data)
            messages.success(request, _("Contact enregistré."))
            return redirect(back)
    else:
        form = ContactEditForm(initial={"name": contact.name, "note": contact.note})
    return render(request, "webmail/contact_edit.html", {"contact": contact, "form": form, "back": back})


@login_required
@require_POST
def contact_remove(request, contact_id):
    contact = contacts.contact_for_user(request.user, contact_id)
    contacts.remove_contact(contact)
    messages.success(request, _("Contact %(a)s retiré du carnet.") % {"a": contact.address})
    return redirect(f"{_books_url()}?carnet={contact.book_id}")


def _books_url():
    from django.urls import reverse

    return reverse("webmail:contacts")
