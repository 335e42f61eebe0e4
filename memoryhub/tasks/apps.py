from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "memoryhub.tasks"
    label = "tasks"
