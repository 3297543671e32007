"""Adding a table to the settings file from a command, keeping the rest as the user wrote it.

``graft plugins add-openapi`` and ``graft sources add`` use it. The file is edited with
``tomlkit``, which keeps every comment, table and blank line; a table of the same name is
never replaced; the new text is read back and checked before it is written; and the file is
replaced atomically, with its permissions kept.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from graft.errors import ConfigError

__all__ = ["add_table", "table_text"]


def table_text(section: str, name: str, values: Mapping[str, Any]) -> str:
    """``[section.name]`` with ``values``, as TOML text (for the user to paste)."""
    import tomlkit

    document = tomlkit.document()
    outer = tomlkit.table(is_super_table=True)
    outer[name] = dict(values)
    document[section] = outer
    return tomlkit.dumps(document)


def add_table(
    config: Path,
    section: str,
    name: str,
    values: Mapping[str, Any],
    *,
    check: Callable[[Any], object] | None = None,
    taken: str = "pick another name",
) -> None:
    """Add ``[section.name]`` to ``config``; ``check`` validates the table as read back."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError
    from tomlkit.items import Table

    text = config.read_text(encoding="utf-8") if config.exists() else ""
    try:
        document = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ConfigError(f"{config} is not valid TOML: {exc}") from None
    outer = document.get(section)
    if outer is None:
        outer = tomlkit.table(is_super_table=True)
        document[section] = outer
    elif not isinstance(outer, Table):
        raise ConfigError(f"{config}: {section!r} is not a table; add [{section}.{name}] by hand")
    if name in outer:
        raise ConfigError(f"{config} has a [{section}.{name}] already; remove it or {taken}")
    outer[name] = dict(values)
    new_text = tomlkit.dumps(document)
    if check is not None:
        check(tomllib.loads(new_text)[section][name])
    fd, temp = tempfile.mkstemp(dir=config.absolute().parent, prefix=f".{config.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(new_text)
        if config.exists():
            os.chmod(temp, config.stat().st_mode & 0o7777)
        os.replace(temp, config)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
