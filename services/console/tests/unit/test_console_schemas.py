from opsmeter_console.schemas import SCHEMA_DIR, service_schemas


class TestCheckedInSchemas:
    def test_each_service_schema_matches_the_checked_in_copy(self) -> None:
        """The web app's API types come from these files: regenerate both when a service's API changes."""
        for name, text in service_schemas().items():
            stored = SCHEMA_DIR / f"{name}.json"
            assert stored.is_file(), f"{stored} is missing"
            assert stored.read_text() == text, (
                f"{stored} is stale: run `.venv/bin/python -m opsmeter_console.schemas --write` "
                "and `npm run gen:api` in services/console/web"
            )

    def test_the_console_routes_are_in_the_schemas(self) -> None:
        schemas = service_schemas()
        assert "/v1/workspaces/{workspace_id}/status" in schemas["gateway"]
        assert "/v1/workspaces/{workspace_id}/events" in schemas["reporting"]
