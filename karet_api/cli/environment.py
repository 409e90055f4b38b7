"""What a ``karet`` command runs on: its one ``Settings`` and the Dagster instance those settings select.

A command builds its settings once (``load_settings``) and passes them down. The commands that start Dagster
processes or execute runs then ``prepare_instance``: ``KARET_DEPLOYMENT`` picks which of the instances shipped
in ``karet_defs/instance/`` becomes ``$DAGSTER_HOME/dagster.yaml``, and a refusal of the settings ends the
command with its message rather than a traceback.
"""

import os
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from karet_defs.settings import DEPLOYMENTS, Deployment, Settings


def out(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def err(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def load_settings(data_dir: str | None = None) -> Settings:
    """The command's settings, read from the environment, with ``--data-dir`` over ``KARET_DATA_DIR``."""
    try:
        return Settings(data_dir=Path(data_dir)) if data_dir else Settings()
    except ValidationError as exc:
        problems = (
            f"{'.'.join(map(str, error['loc']))}: {error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors(include_url=False)
        )
        raise SystemExit(f"invalid settings: {'; '.join(problems)}") from None


def check(requirement: Callable[[], None]) -> None:
    """Apply one of the settings' ``require_*`` checks; its refusal ends the command with its message."""
    try:
        requirement()
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def with_home(settings: Settings) -> Settings:
    """The settings with the store and the Dagster home made absolute, and the home created.

    Dagster wants an absolute ``DAGSTER_HOME``, and every process of a command must find the same store.
    """
    home = settings.dagster_home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    return settings.model_copy(update={"data_dir": settings.data_dir.resolve(), "dagster_home": home})


def instance_yaml(deployment: Deployment) -> bytes:
    """The shipped ``dagster.yaml`` of a deployment."""
    return (resources.files("karet_defs") / "instance" / f"{deployment}.yaml").read_bytes()


def install_instance_yaml(home: Path, deployment: Deployment) -> bool:
    """Make ``home/dagster.yaml`` the deployment's shipped instance, unless the user has edited it.

    A file equal to one of the shipped instances is replaced (``KARET_DEPLOYMENT`` changed); an edited one
    is kept, with a warning, since it is the user's. Returns whether the shipped instance is in place.
    """
    target = home / "dagster.yaml"
    wanted = instance_yaml(deployment)
    if target.exists():
        current = target.read_bytes()
        if current == wanted:
            return True
        shipped = {instance_yaml(d) for d in DEPLOYMENTS}
        if current not in shipped:
            err(f"{target} was edited by hand: kept as is (KARET_DEPLOYMENT={deployment} not applied)")
            return False
    target.write_bytes(wanted)
    return True


def prepare_instance(settings: Settings) -> Settings:
    """Pin the store and Dagster home, install the deployment's instance and create its storage.

    The instance's storage is created here, once: webserver, daemon and API creating a fresh SQLite
    storage at the same moment race on its schema migrations. Returns the settings with absolute paths.
    """
    settings = with_home(settings)
    # Dagster finds its instance through DAGSTER_HOME, and the definitions build their own Settings from the
    # environment, in the runs this process executes and in every process it starts: only the environment
    # reaches them.
    os.environ.update(DAGSTER_HOME=str(settings.dagster_home), KARET_DATA_DIR=str(settings.data_dir))
    if install_instance_yaml(settings.dagster_home, settings.deployment):
        check(settings.require_instance_env)
    import dagster as dg

    dg.DagsterInstance.get().dispose()
    return settings
