app_name = "health_record"
urlpatterns: list = []
