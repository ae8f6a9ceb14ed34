from django.urls import path

from automation import patient_views

app_name = "automation_patient"
urlpatterns = [
    path("<int:convocation_id>/agenda.ics", patient_views.convocation_ics, name="convocation_ics"),
]
