"""The app NiceGUI's `user` test fixture runs (pytest.ini: main_file), once per test.

It builds the real server (create_app, so mount_ui and ui.run_with run as in production) on a
fresh SQLite database in a temporary directory. The fixture drives NiceGUI's mounted app
directly, without the API app's lifespan, so the group writer is started on NiceGUI's startup.
Tests reach the services (to arrange data) as `nicegui.app.state.dashfleet`.
"""

import atexit
import shutil
import tempfile
from pathlib import Path

from argon2 import PasswordHasher
from nicegui import app

from admin.core import security
from admin.core.config import Settings
from admin.core.db import migrate
from admin.main import create_app

# Argon2 with its cheapest parameters: the same code path, without half a second of hashing per
# user made and per sign-in in every page test (the browser tests run the real server's settings).
security._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

data_dir = Path(tempfile.mkdtemp(prefix="dashfleet-ui-test-"))
atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
settings = Settings(_env_file=None, data_dir=data_dir, database_url="", storage_secret="user-fixture-secret")
migrate(settings)
services = create_app(settings).state.services
app.on_startup(services.writer.start)
app.on_shutdown(services.writer.stop)
app.state.dashfleet = services
