import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).parent))

# Nothing in the tests may reach for the network or a user's own services.
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the project root; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def tiny_site(tmp_path: Path) -> Path:
    from sitegen import make_site

    root = tmp_path / "site"
    make_site(root)
    return root


@pytest.fixture(autouse=True)
def fresh_prefect_events_worker():
    """Prefect keeps one events worker per process, bound to the API it first talked to: a test that
    served its own Prefect server would leave the next test's events (task runs arrive through them)
    going to a server that is gone. Drain it after every test that loaded Prefect's events."""
    yield
    if "prefect.events.worker" in sys.modules:
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=10)
