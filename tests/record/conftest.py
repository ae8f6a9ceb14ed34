import pytest


@pytest.fixture
def paul_client(client, cast):
    client.force_login(cast.paul)
    return client


def formset_data(rows: list[dict], *, initial: int = 0, prefix: str = "rows") -> dict:
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        for key, value in row.items():
            data[f"{prefix}-{i}-{key}"] = value
    return data
