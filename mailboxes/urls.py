app_name = "mailboxes"
urlpatterns: list = []
