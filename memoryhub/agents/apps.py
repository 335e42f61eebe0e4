from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "memoryhub.agents"
    label = "agents"
