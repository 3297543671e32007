"""The demo database: a small two-tenant company to try data sources on.

``create_demo(url)`` builds it in SQLite, PostgreSQL or MySQL/MariaDB with the same SQLAlchemy
Core tables, so the three are alike: departments, employees, products, customers, orders and
their items, and a view of order totals, for two tenants (``acme`` and ``globex``). Tables
and columns carry comments saying what they mean (PostgreSQL and MySQL keep them; SQLite has
none), which ``describe_table`` shows the model. Some employees and customers have Chinese
names, as graft's users write Chinese and English.

The data comes from ``random.Random(7)`` and fixed dates: no clock, no network, and the same
rows every time. It is written with an ordinary read-write engine, not a ``Database``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, Final

import anyio.to_thread
from sqlalchemy import (
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    inspect,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from graft.errors import ConfigError
from graft.secrets import mask_secrets
from graft.sources.engine import database_url

__all__ = ["DEMO_TABLES", "DEMO_VIEWS", "METADATA", "create_demo"]

DEMO_TABLES: Final[dict[str, str]] = {
    "departments": "Departments of each tenant's company, with their yearly budget.",
    "employees": "People employed by each tenant; manager_id points at another employee.",
    "products": "What each tenant sells, with its list price.",
    "customers": "Companies that buy from a tenant.",
    "orders": "Orders placed by customers, taken by a sales employee.",
    "order_items": "The products of each order, with quantity and the price charged.",
}
"""The demo's tables, parents before children, with what each holds."""

DEMO_VIEWS: Final[dict[str, str]] = {
    "order_totals": "Per order: how many products it has and its total in USD.",
}
_VIEW_SQL: Final = (
    "CREATE VIEW order_totals AS SELECT order_id, COUNT(*) AS items,"
    " ROUND(SUM(quantity * unit_price), 2) AS total FROM order_items GROUP BY order_id"
)
_TENANT = "Tenant that owns the row: 'acme' or 'globex'."
_MYSQL: Final[dict[str, Any]] = {"mysql_charset": "utf8mb4", "mysql_engine": "InnoDB"}


def _id(comment: str) -> Column[int]:
    return Column("id", Integer, primary_key=True, autoincrement=False, comment=comment)


def _tenant() -> Column[str]:
    return Column("tenant_id", String(16), nullable=False, comment=_TENANT)


METADATA: Final = MetaData()
"""The demo's tables (SQLAlchemy Core), one definition for every dialect."""
DEPARTMENTS: Final = Table(
    "departments",
    METADATA,
    _id("Department number."),
    _tenant(),
    Column("name", String(100), nullable=False, comment="Department name."),
    Column("location", String(100), comment="City of the department's office."),
    Column("budget", Numeric(12, 2), comment="Yearly budget in USD."),
    comment=DEMO_TABLES["departments"],
    **_MYSQL,
)
EMPLOYEES: Final = Table(
    "employees",
    METADATA,
    _id("Employee number."),
    _tenant(),
    Column("name", String(100), nullable=False, comment="Full name, as the person writes it."),
    Column("email", String(200), nullable=False, unique=True, comment="Work email address."),
    Column("title", String(100), nullable=False, comment="Job title."),
    Column(
        "department_id", ForeignKey("departments.id"), nullable=False, comment="Their department."
    ),
    Column(
        "manager_id",
        ForeignKey("employees.id"),
        comment="The employee they report to; NULL for the head of the company.",
    ),
    Column("salary", Numeric(10, 2), nullable=False, comment="Yearly gross salary in USD."),
    Column("hired_on", Date, nullable=False, comment="First day of employment."),
    comment=DEMO_TABLES["employees"],
    **_MYSQL,
)
PRODUCTS: Final = Table(
    "products",
    METADATA,
    _id("Product number."),
    _tenant(),
    Column("sku", String(32), nullable=False, unique=True, comment="Stock keeping unit code."),
    Column("name", String(100), nullable=False, comment="Product name."),
    Column("category", String(50), nullable=False, comment="Product category."),
    Column("price", Numeric(10, 2), nullable=False, comment="List price per unit in USD."),
    comment=DEMO_TABLES["products"],
    **_MYSQL,
)
CUSTOMERS: Final = Table(
    "customers",
    METADATA,
    _id("Customer number."),
    _tenant(),
    Column("name", String(200), nullable=False, comment="Company name."),
    Column("country", String(2), nullable=False, comment="ISO 3166 country code, e.g. CN, US."),
    comment=DEMO_TABLES["customers"],
    **_MYSQL,
)
ORDERS: Final = Table(
    "orders",
    METADATA,
    _id("Order number."),
    _tenant(),
    Column("customer_id", ForeignKey("customers.id"), nullable=False, comment="Who ordered."),
    Column(
        "employee_id",
        ForeignKey("employees.id"),
        nullable=False,
        comment="The sales employee who took the order.",
    ),
    Column("ordered_at", DateTime, nullable=False, comment="When it was placed (UTC)."),
    Column(
        "status",
        String(16),
        nullable=False,
        comment="One of: pending, shipped, delivered, cancelled.",
    ),
    comment=DEMO_TABLES["orders"],
    **_MYSQL,
)
ORDER_ITEMS: Final = Table(
    "order_items",
    METADATA,
    Column("order_id", ForeignKey("orders.id"), primary_key=True, comment="The order."),
    Column("product_id", ForeignKey("products.id"), primary_key=True, comment="The product."),
    Column("quantity", Integer, nullable=False, comment="Units ordered."),
    Column(
        "unit_price",
        Numeric(10, 2),
        nullable=False,
        comment="Price charged per unit in USD (the list price, less any discount).",
    ),
    comment=DEMO_TABLES["order_items"],
    **_MYSQL,
)


async def create_demo(url: str, *, reset: bool = False) -> dict[str, int]:
    """Create the demo tables at ``url`` and fill them; returns table -> row count.

    Refuses (``ConfigError``) when any of the tables exists, unless ``reset`` is true, which
    drops them and the view first. A SQLite file and its folder are created if missing.
    """
    return await anyio.to_thread.run_sync(partial(_create, database_url(url), reset))


def _create(url: URL, reset: bool) -> dict[str, int]:
    if url.get_backend_name() == "sqlite" and url.database:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    rows = _company(random.Random(7))
    try:
        with engine.begin() as conn:
            found = inspect(conn)
            existing = sorted(
                (set(found.get_table_names()) | set(found.get_view_names()))
                & (set(DEMO_TABLES) | set(DEMO_VIEWS))
            )
            if existing and not reset:
                raise ConfigError(
                    f"the demo tables exist already ({', '.join(existing)}); "
                    "create the demo with reset to drop and recreate them"
                )
            for view in DEMO_VIEWS:
                conn.exec_driver_sql(f"DROP VIEW IF EXISTS {view}")
            METADATA.drop_all(conn)
            METADATA.create_all(conn)
            conn.exec_driver_sql(_VIEW_SQL)
            if conn.dialect.name == "postgresql":
                comment = DEMO_VIEWS["order_totals"].replace("'", "''")
                conn.exec_driver_sql(f"COMMENT ON VIEW order_totals IS '{comment}'")
            for table in METADATA.sorted_tables:
                conn.execute(table.insert(), rows[table.name])
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("ANALYZE")  # row estimates for describe()
            elif conn.dialect.name in ("mysql", "mariadb"):
                conn.exec_driver_sql(f"ANALYZE TABLE {', '.join(DEMO_TABLES)}").all()
    except SQLAlchemyError as exc:
        reason = mask_secrets(str(getattr(exc, "orig", None) or exc))
        raise ConfigError(f"could not create the demo database: {reason}") from exc
    finally:
        engine.dispose()
    return {name: len(rows[name]) for name in DEMO_TABLES}


# --- the data -------------------------------------------------------------------------------

_EN_GIVEN = ["James", "Mary", "Robert", "Linda", "Michael", "Sarah", "David", "Emma"]
_EN_GIVEN += ["Daniel", "Olivia", "Thomas", "Grace"]
_EN_FAMILY = ["Smith", "Johnson", "Brown", "Taylor", "Miller", "Wilson", "Moore", "Clark"]
_EN_FAMILY += ["Lewis", "Walker", "Hall"]
_ZH_FAMILY = [("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen")]
_ZH_FAMILY += [("杨", "yang"), ("黄", "huang"), ("赵", "zhao"), ("周", "zhou"), ("吴", "wu")]
_ZH_GIVEN = [("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing")]
_ZH_GIVEN += [("磊", "lei"), ("洋", "yang"), ("婷", "ting"), ("强", "qiang"), ("晓明", "xiaoming")]
_ZH_GIVEN += [("丽华", "lihua"), ("建国", "jianguo")]
_CUSTOMER_EN = ["Blue", "North", "Silver", "Pioneer", "Summit", "Harbor", "Apex", "Vertex"]
_CUSTOMER_EN_KIND = ["Logistics", "Foods", "Systems", "Trading", "Labs", "Retail"]
_CUSTOMER_ZH = (
    ["上海", "北京", "深圳", "杭州", "广州", "成都"],
    ["星辰", "云海", "华光", "金桥", "东方", "长城", "天启"],
    ["贸易", "科技", "电子", "物流", "食品"],
)
_COUNTRIES: Final = ["US", "US", "DE", "GB", "FR", "JP", "SG"]
_PRODUCT_WORDS: Final = ["Classic", "Turbo", "Mini", "Pro", "Heavy", "Smart", "Silent", "Rapid"]
_STATUSES: Final = (["delivered", "shipped", "pending", "cancelled"], [60, 20, 12, 8])
_DEPARTMENTS: Final = [
    # name, head's title, staff title, salary range of the staff in USD
    ("Management", "Chief Executive Officer", "Executive Assistant", (52_000, 75_000)),
    ("Engineering", "Head of Engineering", "Software Engineer", (85_000, 160_000)),
    ("Sales", "Head of Sales", "Account Executive", (55_000, 110_000)),
    ("Marketing", "Head of Marketing", "Marketing Specialist", (50_000, 95_000)),
    ("Finance", "Chief Financial Officer", "Accountant", (60_000, 105_000)),
]


@dataclass(frozen=True)
class _Tenant:
    """One tenant's company. The two differ in size, so a missing row filter shows."""

    chinese: float
    """The share of Chinese names among its employees and customers."""
    offices: list[str]
    categories: list[str]
    sku_prefix: str
    staff_per_department: int
    products: int
    customers: int
    orders: int


_TENANTS: Final = {
    "acme": _Tenant(
        chinese=0.25,
        offices=["Chicago", "Berlin"],
        categories=["Anvils", "Rockets", "Traps"],
        sku_prefix="ACM",
        staff_per_department=6,
        products=22,
        customers=28,
        orders=220,
    ),
    "globex": _Tenant(
        chinese=0.7,
        offices=["Shanghai", "Shenzhen"],
        categories=["Sensors", "Robots", "Software"],
        sku_prefix="GBX",
        staff_per_department=4,
        products=18,
        customers=22,
        orders=180,
    ),
}


@dataclass
class _Company:
    """The rows under construction, and the ids handed out so far."""

    rng: random.Random
    rows: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {name: [] for name in DEMO_TABLES}
    )
    emails: set[str] = field(default_factory=set)

    def add(self, table: str, **row: Any) -> int:
        listed = self.rows[table]
        row.setdefault("id", len(listed) + 1)
        listed.append(row)
        return int(row["id"])


def _company(rng: random.Random) -> dict[str, list[dict[str, Any]]]:
    company = _Company(rng)
    for tenant in _TENANTS:
        _staff(company, tenant)
        _catalogue(company, tenant)
    orders = [order for tenant in _TENANTS for order in _orders(company, tenant)]
    for order in sorted(orders, key=lambda order: order["ordered_at"]):
        items = order.pop("items")
        order_id = company.add("orders", **order)
        company.rows["order_items"].extend({"order_id": order_id, **item} for item in items)
    return company.rows


def _person(company: _Company, tenant: str) -> tuple[str, str]:
    """A name and a unique work email."""
    rng = company.rng
    if rng.random() < _TENANTS[tenant].chinese:
        family, family_latin = rng.choice(_ZH_FAMILY)
        given, given_latin = rng.choice(_ZH_GIVEN)
        name, local = family + given, f"{given_latin}.{family_latin}"
    else:
        given, family = rng.choice(_EN_GIVEN), rng.choice(_EN_FAMILY)
        name, local = f"{given} {family}", f"{given}.{family}".lower()
    email, n = f"{local}@{tenant}.example", 1
    while email in company.emails:
        n += 1
        email = f"{local}{n}@{tenant}.example"
    company.emails.add(email)
    return name, email


def _staff(company: _Company, tenant: str) -> None:
    rng = company.rng
    offices = _TENANTS[tenant].offices
    ceo: int | None = None
    for department, head_title, staff_title, (low, high) in _DEPARTMENTS:
        department_id = company.add(
            "departments",
            tenant_id=tenant,
            name=department,
            location=rng.choice(offices),
            budget=Decimal(rng.randrange(400, 3000) * 1000),
        )
        name, email = _person(company, tenant)
        head = company.add(
            "employees",
            tenant_id=tenant,
            name=name,
            email=email,
            title=head_title,
            department_id=department_id,
            manager_id=ceo,
            salary=Decimal(rng.randrange(high // 500, high // 250) * 500),
            hired_on=date(2012, 1, 1) + timedelta(days=rng.randrange(2500)),
        )
        ceo = ceo or head
        for _ in range(_TENANTS[tenant].staff_per_department):
            name, email = _person(company, tenant)
            company.add(
                "employees",
                tenant_id=tenant,
                name=name,
                email=email,
                title=staff_title,
                department_id=department_id,
                manager_id=head,
                salary=Decimal(rng.randrange(low // 500, high // 500) * 500),
                hired_on=date(2015, 1, 1) + timedelta(days=rng.randrange(3500)),
            )


def _catalogue(company: _Company, tenant: str) -> None:
    rng = company.rng
    settings = _TENANTS[tenant]
    categories = settings.categories
    for n in range(1, settings.products + 1):
        category = categories[n % len(categories)]
        company.add(
            "products",
            tenant_id=tenant,
            sku=f"{settings.sku_prefix}-{n:04d}",
            name=f"{rng.choice(_PRODUCT_WORDS)} {category.rstrip('s')} {n}",
            category=category,
            price=Decimal(rng.randrange(500, 250_000)).scaleb(-2),
        )
    names: set[str] = set()
    while len(names) < settings.customers:
        if rng.random() < settings.chinese:
            city, word, kind = (rng.choice(options) for options in _CUSTOMER_ZH)
            name, country = f"{city}{word}{kind}有限公司", "CN"
        else:
            word, kind = rng.choice(_CUSTOMER_EN), rng.choice(_CUSTOMER_EN_KIND)
            name = f"{word} {kind} {rng.choice(['Inc', 'Ltd', 'GmbH'])}"
            country = rng.choice(_COUNTRIES)
        if name not in names:
            names.add(name)
            company.add("customers", tenant_id=tenant, name=name, country=country)


def _orders(company: _Company, tenant: str) -> list[dict[str, Any]]:
    """The tenant's orders, each with its ``items``; ids come once all are in time order."""
    rng = company.rng
    customers = [c["id"] for c in company.rows["customers"] if c["tenant_id"] == tenant]
    products = [p for p in company.rows["products"] if p["tenant_id"] == tenant]
    sales = {d["id"] for d in company.rows["departments"] if d["name"] == "Sales"}
    sellers = [
        e["id"]
        for e in company.rows["employees"]
        if e["tenant_id"] == tenant and e["department_id"] in sales
    ]
    start = datetime(2024, 1, 1)
    orders = []
    for _ in range(_TENANTS[tenant].orders):
        items = []
        for product in rng.sample(products, rng.choices([1, 2, 3, 4], [2, 3, 3, 2])[0]):
            discount = rng.choice([Decimal(1), Decimal(1), Decimal("0.9")])
            items.append(
                {
                    "product_id": product["id"],
                    "quantity": rng.randint(1, 10),
                    "unit_price": (product["price"] * discount).quantize(Decimal("0.01")),
                }
            )
        orders.append(
            {
                "tenant_id": tenant,
                "customer_id": rng.choice(customers),
                "employee_id": rng.choice(sellers),
                "ordered_at": start + timedelta(minutes=rng.randrange(366 * 24 * 60)),
                "status": rng.choices(*_STATUSES)[0],
                "items": items,
            }
        )
    return orders
