"""Message models, convocations with reminders, bulk sends (issue 9)."""
