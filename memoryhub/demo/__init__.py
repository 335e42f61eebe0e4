"""The demo swarm (`python manage.py demo_swarm`): simulated agents acting out SCENARIOS.md."""
