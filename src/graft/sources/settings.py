"""``[sources.NAME]``: one database an assistant may query, and who may read what in it.

A data source is a SQLAlchemy URL (SQLite, PostgreSQL, MySQL/MariaDB) plus the rules the SQL
guard (``graft.sqlguard``) enforces for it:

- ``tables``: the tables and views that may be read at all (default: every user table);
  ``columns`` narrows a table to some of its columns (a salary column the model never sees);
- ``row_filters``: a condition per table, in the source's SQL, with ``:user`` and
  ``:tenant`` bound from the principal as parameters, added to every read of that table;
- ``grants``: per user, group, role and assistant, the tables (and columns) they may read;
  with no grants, everyone who may use the source reads ``tables``. With grants, a principal
  reads the union of those that match (an admin matches every one), and nothing when none
  does. Who may use the source at all is ``[access.data_sources.NAME]`` (``graft.policy``),
  and an assistant's ``sources`` list says which sources it offers;
- ``sample_rows``: tables whose first rows ``describe_table`` may show (none by default:
  rows are data, not schema);
- caps on what one query may cost: ``timeout``, ``max_rows``, ``max_bytes``.

Credentials never sit in the settings file as text. The URL carries no password; the
password is a secret reference (``{ "$env" = "NAME" }``), or a value sealed with the
installation's data keys (``g1:...``), which ``graft sources add`` writes.

```toml
[sources.company]
url = "postgresql://graft_reader@db.corp/company"
password = { "$env" = "COMPANY_DB_PASSWORD" }
description = "Employees, products and orders"
tables = ["employees", "departments", "products", "orders", "order_items", "customers"]
columns = { employees = ["id", "name", "title", "department_id", "hired_on"] }
row_filters = { orders = "tenant_id = :tenant", employees = "tenant_id = :tenant" }

[[sources.company.grants]]
roles = ["hr"]
tables = ["employees", "departments"]
columns = { employees = ["*"] }     # hr sees every column of employees, salary too
```
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["SourceSettings", "TableGrant", "url_password"]

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,31}$"
"""A source's name: what the model writes in a tool call's ``source`` argument."""

_FILTER_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
FILTER_PARAMETERS = frozenset({"user", "tenant"})
"""What a row filter may name: ``:user`` (the user id) and ``:tenant``."""


def url_password(url: str) -> str | None:
    """The password written into ``url`` (``scheme://user:PASSWORD@host/db``), if any."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).password
    except (ArgumentError, ValueError):
        return None


class TableGrant(BaseModel):
    """Tables (and columns) some principals may read, through some assistants.

    A grant that names no user, group or role is for every principal.
    """

    model_config = ConfigDict(extra="forbid")

    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)
    assistants: list[str] = Field(
        default_factory=list, description="Assistants the grant is for; empty: every assistant."
    )
    tables: list[str] = Field(
        description='Tables the rule grants (`["*"]`: every table of the source\'s `tables`).'
    )
    columns: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Per table, the columns the rule grants (`["*"]`: all of them); a table '
        "not named keeps the source's `columns`.",
    )


class SourceSettings(BaseModel):
    """One database the SQL tools may read (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        description="SQLAlchemy URL without a password: `sqlite:///path/file.db`, "
        "`postgresql://user@host/db`, `mysql://user@host/db`.",
        repr=False,
    )
    password: SecretStr | None = Field(
        default=None,
        repr=False,
        description='A secret reference (`{ "$env" = "NAME" }`) or a value sealed with the '
        "data keys (`graft sources add` writes one).",
    )
    description: str = Field(default="", description="What the database holds, for the model.")
    tables: list[str] | None = Field(
        default=None, description="Readable tables and views; default: every user table."
    )
    columns: dict[str, list[str]] = Field(
        default_factory=dict, description="Per table, the only columns that may be read."
    )
    row_filters: dict[str, str] = Field(
        default_factory=dict,
        description="Per table, a condition added to every read, with `:user` and `:tenant` "
        "bound from the principal (e.g. `tenant_id = :tenant`).",
    )
    grants: list[TableGrant] = Field(
        default_factory=list, description="Per user, group, role and assistant, what may be read."
    )
    sample_rows: list[str] = Field(
        default_factory=list, description="Tables whose first rows `describe_table` may show."
    )
    max_rows: int = Field(default=200, ge=1, le=10_000, description="Rows one query returns.")
    max_bytes: int = Field(
        default=262_144, ge=1024, le=16 * 1024 * 1024, description="JSON bytes of those rows."
    )
    timeout: float = Field(default=10.0, gt=0, le=600, description="Seconds per statement.")

    @field_validator("row_filters")
    @classmethod
    def _filters_name_known_parameters(cls, value: dict[str, str]) -> dict[str, str]:
        for table, condition in value.items():
            unknown = set(_FILTER_PARAMETER.findall(condition)) - FILTER_PARAMETERS
            if unknown:
                raise ValueError(
                    f"row_filters.{table} names {', '.join(sorted(unknown))}; a filter may "
                    f"bind only {', '.join(sorted(FILTER_PARAMETERS))}"
                )
        return value

    @model_validator(mode="after")
    def _names_are_listed(self) -> SourceSettings:
        if self.tables is not None:
            listed = {t.lower() for t in self.tables}
            for setting, names in (
                ("columns", self.columns),
                ("row_filters", self.row_filters),
                ("sample_rows", self.sample_rows),
            ):
                missing = sorted(n for n in names if n.lower() not in listed)
                if missing:
                    raise ValueError(f"{setting} names tables not in `tables`: {missing}")
        return self

    def public(self) -> dict[str, Any]:
        """What ``graft sources list`` shows: everything but the credentials."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(self.url).render_as_string(hide_password=True)
        except (ArgumentError, ValueError):
            url = "(not a valid URL)"
        return self.model_dump(exclude={"password", "url"}) | {"url": url}
