"""The data contract: canonical tables, typed schemas and validation at the boundary.

Every source (Complete Journey, synthetic, the user's files) is converted into these
tables and passed through :func:`validate` before anything else sees it. Only
``transactions`` is required; every other table is optional.

Conventions
-----------
* Ids (customer, product, basket, store, campaign, coupon) are ``int64``. Sources whose
  ids are strings keep the original code in a descriptive column and map to integers.
* ``timestamp`` is a naive ``datetime64[ns]``.
* Discounts (``retail_discount``, ``coupon_discount``, and a coupon's optional ``discount``)
  are amounts taken off (currency, not shares of the price), >= 0 on a
  sale; ``sales_value`` is what the customer paid.
* A line with negative ``quantity`` or negative ``sales_value`` is a *return*: it is kept
  and flagged by :func:`is_return`, never dropped. Its ``sales_value`` is the amount
  refunded (<= 0): a return with a positive value is rejected, as it would count as spend.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

INT, FLOAT, STR, DATETIME = "int", "float", "str", "datetime"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    required: bool = True
    nullable: bool = False


SCHEMAS: dict[str, tuple[Column, ...]] = {
    "transactions": (
        Column("customer_id", INT),
        Column("basket_id", INT),
        Column("product_id", INT),
        Column("store_id", INT),
        Column("timestamp", DATETIME),
        Column("quantity", FLOAT),
        Column("sales_value", FLOAT),
        Column("retail_discount", FLOAT),
        Column("coupon_discount", FLOAT),
    ),
    "customers": (
        Column("customer_id", INT),
        Column("age_band", STR, nullable=True),
        Column("income_band", STR, nullable=True),
        Column("home_ownership", STR, nullable=True),
        Column("marital_status", STR, nullable=True),
        Column("household_size", STR, nullable=True),
        Column("household_comp", STR, nullable=True),
        Column("kids_count", STR, nullable=True),
        Column("region", STR, nullable=True),
    ),
    "products": (
        Column("product_id", INT),
        Column("department", STR, nullable=True),
        Column("category", STR, nullable=True),
        Column("product_type", STR, nullable=True),
        Column("brand", STR, nullable=True),
        Column("manufacturer_id", INT, nullable=True),
        Column("package_size", STR, nullable=True),
        Column("description", STR, required=False, nullable=True),
    ),
    "campaigns": (
        Column("campaign_id", INT),
        Column("campaign_type", STR, nullable=True),
        Column("start_date", DATETIME),
        Column("end_date", DATETIME),
    ),
    "campaign_targets": (
        Column("campaign_id", INT),
        Column("customer_id", INT),
    ),
    "coupons": (
        Column("coupon_id", INT),
        Column("product_id", INT),
        Column("campaign_id", INT),
        Column("discount", FLOAT, required=False, nullable=True),
        Column("start_date", DATETIME, required=False, nullable=True),
        Column("end_date", DATETIME, required=False, nullable=True),
    ),
    "redemptions": (
        Column("customer_id", INT),
        Column("coupon_id", INT),
        Column("campaign_id", INT),
        Column("redemption_date", DATETIME),
    ),
}

#: Columns that must be unique in each table.
UNIQUE_KEYS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id",),
    "products": ("product_id",),
    "campaigns": ("campaign_id",),
    "campaign_targets": ("campaign_id", "customer_id"),
    "coupons": ("coupon_id", "product_id", "campaign_id"),
}

TABLE_NAMES = tuple(SCHEMAS)
MAX_SHOWN_ROWS = 5


class ContractError(ValueError):
    """Input data breaks the data contract.

    Carries the ``table``, the ``column`` (if one) and the first offending ``rows``.
    """

    def __init__(
        self, table: str, column: str | None, problem: str, rows: pd.DataFrame | None = None
    ):
        self.table, self.column, self.problem = table, column, problem
        self.rows = rows
        where = f"table '{table}'" + (f", column '{column}'" if column else "")
        msg = f"{where}: {problem}"
        if rows is not None and len(rows):
            shown = rows.head(MAX_SHOWN_ROWS)
            msg += f"\nfirst offending rows (of {len(rows):,}):\n{shown.to_string()}"
        super().__init__(msg)


@dataclass
class Tables:
    """The canonical tables of one source. Only ``transactions`` is required."""

    transactions: pd.DataFrame
    customers: pd.DataFrame | None = None
    products: pd.DataFrame | None = None
    campaigns: pd.DataFrame | None = None
    campaign_targets: pd.DataFrame | None = None
    coupons: pd.DataFrame | None = None
    redemptions: pd.DataFrame | None = None
    #: What the source did to get here (exclusions, placeholders, mappings), for the user.
    notes: list[str] = field(default_factory=list)

    def present(self) -> list[str]:
        return [n for n in TABLE_NAMES if getattr(self, n) is not None]

    def items(self):
        for name in self.present():
            yield name, getattr(self, name)

    def fingerprint(self, n: int = 16) -> str:
        """A short hash of every table's content (names, values, row order)."""
        h = hashlib.sha256()
        for name, df in self.items():
            h.update(name.encode())
            h.update(str(list(df.columns)).encode())
            h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
        return h.hexdigest()[:n]

    def subset_customers(self, customer_ids) -> Tables:
        """The rows of the given customers (global tables such as products kept whole)."""
        ids = pd.Index(customer_ids)
        out = {}
        for f in fields(self):
            val = getattr(self, f.name)
            if isinstance(val, pd.DataFrame) and "customer_id" in val.columns:
                val = val[val["customer_id"].isin(ids)]
            out[f.name] = val
        return Tables(**out)

    def before(self, cutoff) -> Tables:
        """Events strictly before ``cutoff`` (transactions and redemptions); reference tables whole."""
        cutoff = pd.Timestamp(cutoff)
        tx = self.transactions[self.transactions["timestamp"] < cutoff]
        red = self.redemptions
        if red is not None:
            red = red[red["redemption_date"] < cutoff]
        return Tables(
            **{
                **{f.name: getattr(self, f.name) for f in fields(self)},
                "transactions": tx,
                "redemptions": red,
            }
        )

    def summary(self) -> dict:
        tx = self.transactions
        out = {name: len(df) for name, df in self.items()}
        out.update(
            customers_with_purchases=int(tx["customer_id"].nunique()),
            baskets=int(tx["basket_id"].nunique()),
            first_timestamp=str(tx["timestamp"].min()),
            last_timestamp=str(tx["timestamp"].max()),
            returns=int(is_return(tx).sum()),
        )
        return out


def is_return(transactions: pd.DataFrame) -> pd.Series:
    """True for lines that are returns or cancellations (negative quantity or value)."""
    return (transactions["quantity"] < 0) | (transactions["sales_value"] < 0)


# --------------------------------------------------------------------------- coercion


_NUMERIC_DATE = r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-]\d{2,4}\b"


def _day_first(table: str, column: str, s: pd.Series) -> bool:
    """Whether numeric dates like ``13/02/2017`` put the day first, decided for the whole
    column: a first field above 12 means day first, a second above 12 month first. Both, or
    only fields up to 12 where they differ (``01/02/2017``), cannot be read safely: pandas
    would decide row by row and mix the two readings."""
    parts = s.astype(str).str.extract(_NUMERIC_DATE).dropna()
    if parts.empty:
        return False
    first, second = parts[0].astype(int), parts[1].astype(int)
    day_first, month_first = (first > 12).any(), (second > 12).any()
    if day_first and month_first:
        rows = s.loc[parts.index[(first > 12) | (second > 12)]]
        raise ContractError(
            table,
            column,
            "numeric dates are day-first in some rows and month-first in others; write ISO "
            "dates (2017-02-13) or give the format in a mapping",
            rows.head(4).to_frame(),
        )
    if not day_first and not month_first and (first != second).any():
        raise ContractError(
            table,
            column,
            "numeric dates such as 01/02/2017 are ambiguous (day or month first?) and no row "
            "settles it; write ISO dates (2017-02-01) or give the format in a mapping "
            '(e.g. format = "%d/%m/%Y")',
            s.loc[parts.index[first != second]].head(4).to_frame(),
        )
    return bool(day_first)


def _check_int64_range(table: str, column: str, values: pd.Series, raw: pd.Series) -> None:
    """Ids must fit int64: a cast would wrap them or collapse them all to -2**63."""
    if values.dtype.kind == "u":
        bad = values > np.iinfo("int64").max
    elif values.dtype.kind == "f":
        bad = values.notna() & ~((values >= -(2.0**63)) & (values < 2.0**63))
    else:
        return
    if bad.any():
        raise ContractError(
            table, column, "ids outside the int64 range (-2**63 to 2**63 - 1)", raw[bad].to_frame()
        )


def _coerce(table: str, col: Column, s: pd.Series) -> pd.Series:
    """Convert a column to its canonical dtype or raise a ContractError naming bad rows."""
    if col.kind == DATETIME:
        if pd.api.types.is_datetime64_any_dtype(s):
            out = s
            if getattr(out.dt, "tz", None) is not None:
                out = out.dt.tz_convert(None)
            return out.astype("datetime64[ns]")
        if pd.api.types.is_numeric_dtype(s):
            raise ContractError(
                table,
                col.name,
                "wrong type: numbers where a timestamp is expected (epoch values are ambiguous; "
                "give ISO dates like 2017-01-31 14:05)",
                s.head().to_frame(),
            )
        has_offset = s.astype(str).str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
        dayfirst = _day_first(table, col.name, s)
        # strings with offsets become naive UTC; plain strings are kept as written (shop time)
        out = pd.to_datetime(
            s, errors="coerce", format="mixed", utc=bool(has_offset.any()), dayfirst=dayfirst
        )
        if getattr(out.dt, "tz", None) is not None:
            out = out.dt.tz_convert(None)
        bad = out.isna() & s.notna()
        if bad.any():
            raise ContractError(table, col.name, "unparseable timestamp", s[bad].to_frame())
        return out.astype("datetime64[ns]")
    if col.kind in (INT, FLOAT):
        if (
            col.kind == INT
            and pd.api.types.is_integer_dtype(s)
            and not isinstance(s.dtype, pd.CategoricalDtype)
        ):
            _check_int64_range(table, col.name, s, s)
            return (
                s.astype("Int64") if col.nullable or s.isna().any() else s.astype("int64")
            )  # NA: null check reports it
        if pd.api.types.is_bool_dtype(s):
            raise ContractError(
                table, col.name, f"wrong type: expected {col.kind}, got bool", s.head().to_frame()
            )
        out = pd.to_numeric(s, errors="coerce")
        bad = out.isna() & s.notna()
        if bad.any():
            raise ContractError(
                table,
                col.name,
                f"wrong type: expected {col.kind}, got non-numeric values",
                s[bad].to_frame(),
            )
        if col.kind == INT:
            _check_int64_range(table, col.name, out, s)
            frac = out.notna() & (out != np.floor(out.fillna(0)))
            if frac.any():
                raise ContractError(
                    table,
                    col.name,
                    "wrong type: expected integer ids, got fractions",
                    s[frac].to_frame(),
                )
            if not col.nullable and out.isna().any():
                return out  # null check reports it
            return out.astype("Int64") if col.nullable or out.isna().any() else out.astype("int64")
        out = out.astype("float64")
        inf = np.isinf(out)
        if inf.any():
            raise ContractError(
                table, col.name, "infinite values where an amount is expected", s[inf].to_frame()
            )
        return out
    # STR
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    return s.astype(object).where(s.notna(), None)


def _check_nulls(table: str, col: Column, s: pd.Series, df: pd.DataFrame) -> None:
    if not col.nullable:
        bad = s.isna()
        if bad.any():
            raise ContractError(
                table,
                col.name,
                f"{int(bad.sum()):,} missing values (NaN/null) in a required column",
                df[bad],
            )


def conform(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """Check columns and coerce dtypes of one table; returns a new frame in canonical order."""
    if table not in SCHEMAS:
        raise ContractError(table, None, f"unknown table; expected one of {', '.join(TABLE_NAMES)}")
    if not isinstance(df, pd.DataFrame):
        raise ContractError(table, None, f"expected a pandas DataFrame, got {type(df).__name__}")
    schema = SCHEMAS[table]
    missing = [c.name for c in schema if c.required and c.name not in df.columns]
    if missing:
        raise ContractError(
            table,
            missing[0],
            f"missing required column(s) {missing}; columns present: {list(df.columns)}",
        )
    out = {}
    for col in schema:
        if col.name not in df.columns:
            continue
        s = _coerce(table, col, df[col.name])
        _check_nulls(table, col, s, df)
        out[col.name] = s.reset_index(drop=True)
    extra = [c for c in df.columns if c not in out]
    for c in extra:  # keep extra columns the user supplied, after the canonical ones
        out[c] = df[c].reset_index(drop=True)
    return pd.DataFrame(out)


def _check_transactions(tx: pd.DataFrame) -> None:
    if tx.empty:
        raise ContractError("transactions", None, "no rows: at least one line item is required")
    ret = is_return(tx)
    bad = (tx["sales_value"] < 0) & (tx["quantity"] > 0)
    if bad.any():
        raise ContractError(
            "transactions",
            "sales_value",
            "negative price on a line that is not a return (quantity > 0); returns need negative quantity",
            tx[bad],
        )
    bad = (tx["quantity"] < 0) & (tx["sales_value"] > 0)
    if bad.any():
        raise ContractError(
            "transactions",
            "sales_value",
            "positive value on a return (quantity < 0) would count as spend; a return's "
            "sales_value is the (negative) amount refunded",
            tx[bad],
        )
    for c in ("retail_discount", "coupon_discount"):
        neg = (tx[c] < 0) & ~ret
        if neg.any():
            raise ContractError(
                "transactions",
                c,
                "negative discount on a sale; discounts are amounts taken off (>= 0)",
                tx[neg],
            )
    inconsistent = tx.groupby("basket_id", sort=False)["customer_id"].nunique()
    inconsistent = inconsistent[inconsistent > 1]
    if len(inconsistent):
        raise ContractError(
            "transactions",
            "basket_id",
            "basket ids shared by several customers",
            tx[tx["basket_id"].isin(inconsistent.index)].sort_values("basket_id"),
        )


def _check_unique(name: str, df: pd.DataFrame) -> None:
    key = list(UNIQUE_KEYS.get(name, ()))
    if not key:
        return
    dup = df.duplicated(key, keep=False)
    if dup.any():
        raise ContractError(
            name,
            ",".join(key),
            f"duplicate ids: {int(df.duplicated(key).sum()):,} rows repeat a key",
            df[dup].sort_values(key),
        )


def _check_refs(t: Tables) -> None:
    tx = t.transactions
    if t.products is not None:
        unknown = ~tx["product_id"].isin(t.products["product_id"])
        if unknown.any():
            raise ContractError(
                "transactions",
                "product_id",
                "line items whose product is not in the products table",
                tx[unknown],
            )
        if t.coupons is not None:
            unknown = ~t.coupons["product_id"].isin(t.products["product_id"])
            if unknown.any():
                raise ContractError(
                    "coupons",
                    "product_id",
                    "coupons for products not in the products table",
                    t.coupons[unknown],
                )
    known_customers = pd.Index(tx["customer_id"].unique())
    if t.customers is not None:
        known_customers = known_customers.union(pd.Index(t.customers["customer_id"]))
    for name in ("campaign_targets", "redemptions"):
        df = getattr(t, name)
        if df is None:
            continue
        unknown = ~df["customer_id"].isin(known_customers)
        if unknown.any():
            raise ContractError(
                name,
                "customer_id",
                "rows whose customer is unknown (no purchases and no profile)",
                df[unknown],
            )
    if t.campaigns is not None:
        for name in ("campaign_targets", "coupons", "redemptions"):
            df = getattr(t, name)
            if df is None:
                continue
            unknown = ~df["campaign_id"].isin(t.campaigns["campaign_id"])
            if unknown.any():
                raise ContractError(
                    name,
                    "campaign_id",
                    "rows whose campaign is not in the campaigns table",
                    df[unknown],
                )
        bad = t.campaigns["end_date"] < t.campaigns["start_date"]
        if bad.any():
            raise ContractError(
                "campaigns", "end_date", "campaign ends before it starts", t.campaigns[bad]
            )
    if t.redemptions is not None and t.coupons is not None:
        unknown = ~t.redemptions["coupon_id"].isin(t.coupons["coupon_id"])
        if unknown.any():
            raise ContractError(
                "redemptions",
                "coupon_id",
                "redemptions of coupons not in the coupons table",
                t.redemptions[unknown],
            )


def validate(tables: Tables) -> Tables:
    """Validate and coerce every table; return canonical :class:`Tables` or raise :class:`ContractError`."""
    if tables.transactions is None:
        raise ContractError("transactions", None, "the transactions table is required")
    out = {}
    for name in TABLE_NAMES:
        df = getattr(tables, name)
        if df is None:
            out[name] = None
            continue
        df = conform(name, df)
        _check_unique(name, df)
        out[name] = df
    canon = Tables(**out, notes=list(tables.notes))
    _check_transactions(canon.transactions)
    _check_refs(canon)
    return canon


# --------------------------------------------------------------------------- storage

MANIFEST = "manifest.json"


def _recover(directory: Path) -> Path:
    """Put back data left aside by a save that died between its two renames; return the aside path."""
    old = directory.with_name(f".{directory.name}.old")
    if old.exists() and not directory.exists():
        old.rename(directory)
    return old


def save_tables(tables: Tables, directory: str | Path, extra_manifest: dict | None = None) -> Path:
    """Write validated tables as Parquet, atomically.

    The tables are validated first and written to a temporary sibling directory, which
    replaces ``directory`` only when complete: a rejected or interrupted load leaves the
    previous good data in place.
    """
    directory = Path(directory)
    old = _recover(directory)
    canon = validate(tables)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        for name, df in canon.items():
            df.to_parquet(tmp / f"{name}.parquet", index=False)
        manifest = {"tables": canon.present(), "summary": canon.summary(), "notes": canon.notes}
        manifest.update(extra_manifest or {})
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        if old.exists():
            shutil.rmtree(old)
        if directory.exists():
            directory.rename(old)
        tmp.rename(directory)
        if old.exists():
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("saved %s to %s", canon.present(), directory)
    return directory


def load_tables(directory: str | Path, validate_: bool = True) -> Tables:
    """Read canonical tables written by :func:`save_tables` (or any directory in canonical names)."""
    directory = Path(directory)
    _recover(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no data directory at {directory}; run `tailor data load` first")
    found = {}
    for name in TABLE_NAMES:
        for ext in ("parquet", "csv"):
            p = directory / f"{name}.{ext}"
            if p.exists():
                found[name] = pd.read_parquet(p) if ext == "parquet" else pd.read_csv(p)
                break
    if "transactions" not in found:
        raise FileNotFoundError(f"{directory} holds no transactions.parquet or transactions.csv")
    notes = []
    if (directory / MANIFEST).exists():
        notes = json.loads((directory / MANIFEST).read_text()).get("notes", [])
    t = Tables(**found, notes=notes)
    return validate(t) if validate_ else t
