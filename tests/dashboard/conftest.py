from tests.dashboard.people import login, people, project  # noqa: F401 - fixtures
