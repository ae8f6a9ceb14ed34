"""Operations: the scheduler's heartbeat and the daily statistics table (issue 14)."""

from django.db import models
from django.utils import timezone
from django.utils.formats import date_format


class Heartbeat(models.Model):
    """When a periodic component last ran: one row per name, updated in place (cheap to write,
    read by /readyz and /metrics)."""

    BEAT = "beat"

    name = models.CharField(max_length=40, primary_key=True, verbose_name="nom")
    at = models.DateTimeField(verbose_name="date")

    class Meta:
        verbose_name = "battement"
        verbose_name_plural = "battements"

    def __str__(self) -> str:
        return f"{self.name} : {date_format(timezone.localtime(self.at), 'DATETIME_FORMAT')}"


class DailyStat(models.Model):
    """One number of one day, for one box (with its structure) or for one structure only
    (sign-ins), or for the whole service (both empty). Pages add rows up over weeks and months:
    every metric stored here is additive (a median is kept as bucket counts, an "active box" as
    a 0/1 per box and day). Filled by `operations.statistics.aggregate_day` (beat task and
    `manage.py aggregate_stats`); never written by a page."""

    day = models.DateField()
    structure_id = models.BigIntegerField(null=True, blank=True)
    mailbox_id = models.BigIntegerField(null=True, blank=True)
    metric = models.CharField(max_length=60)
    value = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "statistique journalière"
        verbose_name_plural = "statistiques journalières"
        indexes = [
            models.Index(fields=["day", "metric"], name="dailystat_day_metric"),
            models.Index(fields=["structure_id", "day"], name="dailystat_structure_day"),
            models.Index(fields=["mailbox_id", "day"], name="dailystat_mailbox_day"),
        ]

    def __str__(self) -> str:
        return f"{date_format(self.day)} {self.metric}={self.value}"
