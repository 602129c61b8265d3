"""The user's own files: CSV or Parquet, in canonical names or through a column mapping.

Canonical layout
----------------
A directory holding ``transactions.csv`` or ``transactions.parquet`` (plus any of
``customers``, ``products``, ``campaigns``, ``campaign_targets``, ``coupons``,
``redemptions`` as ``.csv`` or ``.parquet``) with the canonical column names of
:mod:`features.contract` is a valid source as it is: ``load_files(path)``. The only
defaults filled in (and reported in ``notes``) are ``retail_discount`` and
``coupon_discount`` = 0 and ``store_id`` = 0 when those columns are absent.

Column mapping
--------------
Any other layout needs a mapping file, TOML (preferred) or JSON, with one section per
canonical table. ``load_files(path, mapping="my_shop.toml")``; the name of a mapping
shipped in ``features/sources/mappings/`` (e.g. ``"online_retail"``) works too::

    [transactions]
    file = "online_retail.parquet"        # in the data directory; .csv or .parquet
    customer_id = "CustomerID"            # canonical column = source column
    basket_id = "InvoiceNo"
    product_id = "StockCode"
    timestamp = { column = "InvoiceDate", format = "%m/%d/%Y %H:%M" }
    quantity = "Quantity"
    unit_price = "UnitPrice"              # optional input: enables the price rule below
    sales_value = { multiply = ["Quantity", "UnitPrice"] }
    store_id = { column = "Country" }     # strings become stable integer codes
    retail_discount = 0.0                 # a number is a constant
    coupon_discount = 0.0

    [transactions.rules]
    cancellation_prefix = "C"             # basket codes starting with it are cancellations
    non_product_codes = ["POST", "DOT", "M", "BANK CHARGES", "AMAZONFEE"]
    non_product_patterns = ["gift_0001_.*"]   # regular expressions, whole code
    exclude_nonpositive_price = true

    [products]
    from = "transactions"                 # one row per product of the kept lines
    product_id = "StockCode"
    description = "Description"           # most frequent value per product

    [customers]
    file = "households.csv"               # or a table of its own
    customer_id = "hh_key"
    age_band = "AGE_DESC"
    region = { value = "UK" }             # a string constant

Value forms for a canonical column: ``"Column"`` (a source column), a number or boolean
(constant), ``{ value = ... }`` (constant of any type), ``{ column = "C", format = "..." }``
(timestamp parsed with a ``strptime`` format; without ``format`` the format is inferred),
``{ multiply = ["A", "B"] }`` (product of numeric columns, e.g. quantity x unit price).
Nullable descriptive columns that are not mapped (``department``, ``age_band``, ...) are
left empty; a missing required column is an error naming it.

Ids: integer ids are kept. Other codes (``'85123A'``, ``'C536379'``, country names) are
mapped to stable ``int64`` ids -- the number itself for plain integer strings, else a
keyed hash in ``[2**62, 2**63)`` -- so the same code gets the same id in every file and
every load. The original codes are kept in ``transactions.customer_code``,
``transactions.product_code`` and ``transactions.basket_code`` (and in
``products.product_code`` and ``customers.customer_code``); ``tailor predict`` writes them
next to the ids, so predictions join back to the shop's own codes.

Rules (``[transactions.rules]``), applied in this order, each line counted once under
the first reason that applies:

1. lines without a customer id are excluded (always);
2. ``non_product_codes`` / ``non_product_patterns`` (postage, fees, manual adjustments)
   are excluded;
3. with ``exclude_nonpositive_price``, sale lines (not cancellations, quantity > 0)
   whose ``unit_price`` is zero or negative are excluded.

Lines of a cancellation invoice are *kept* as returns: quantity and sales value are made
negative. Every exclusion is reported in ``Tables.notes`` with its count and reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.contract import INT, SCHEMAS, TABLE_NAMES, Tables

logger = logging.getLogger(__name__)

MAPPINGS_DIR = Path(__file__).parent / "mappings"
EXTENSIONS = ("parquet", "csv")
#: Extra inputs a section may name besides canonical columns.
TRANSACTION_INPUTS = ("unit_price",)
SECTION_KEYS = ("file", "from", "rules")
RULE_KEYS = (
    "cancellation_prefix",
    "cancellation_column",
    "non_product_codes",
    "non_product_patterns",
    "exclude_nonpositive_price",
)
#: Columns filled with a default (and reported) when a transactions source lacks them.
TX_DEFAULTS = {"retail_discount": 0.0, "coupon_discount": 0.0, "store_id": 0}
_INT_CODE = re.compile(r"^(0|[1-9]\d{0,17})(\.0*)?$")
_HASH_BASE = 1 << 62


class MappingError(ValueError):
    """The mapping file is wrong or does not fit the files (names the section and column)."""


# --------------------------------------------------------------------------- ids


def _code_to_id(code: str) -> int:
    m = _INT_CODE.match(code)
    if m:
        return int(m.group(1))
    digest = hashlib.blake2b(code.encode("utf-8"), digest_size=8, key=b"tailor-ids").digest()
    return _HASH_BASE + (int.from_bytes(digest, "big") % _HASH_BASE)


@dataclass
class _Coded:
    """An id column: canonical ids plus, for text input, the factorised original codes."""

    ids: pd.Series  # Int64, missing stays missing
    labels: np.ndarray  # per row: index into ``uniques``, -1 where missing
    uniques: np.ndarray  # the distinct codes as stripped strings
    hashed: bool  # some codes were not plain integers

    def flag(self, test) -> np.ndarray:
        """Per-row booleans from a vectorised test on the distinct codes (False where missing)."""
        if not len(self.uniques):
            return np.zeros(len(self.labels), dtype=bool)
        hit = np.asarray(test(pd.Series(self.uniques, dtype=object)), dtype=bool)
        return np.where(self.labels >= 0, hit[np.maximum(self.labels, 0)], False)

    def text(self, rows: np.ndarray | None = None) -> pd.Series:
        lab = self.labels if rows is None else self.labels[rows]
        if not len(self.uniques):
            return pd.Series([None] * len(lab), dtype=object)
        return pd.Series(np.where(lab >= 0, self.uniques[np.maximum(lab, 0)], None), dtype=object)


def _encode(s: pd.Series, what: str) -> _Coded:
    if pd.api.types.is_bool_dtype(s):
        raise MappingError(f"{what}: expected ids, got booleans")
    if pd.api.types.is_float_dtype(s):
        frac = s.notna() & (s != np.floor(s))
        if frac.any():
            raise MappingError(f"{what}: ids with fractions, e.g. {s[frac].head(3).tolist()}")
    if pd.api.types.is_numeric_dtype(s):
        ids = s.astype("Int64")
        labels, uniques = pd.factorize(ids, use_na_sentinel=True)
        return _Coded(
            ids.reset_index(drop=True),
            labels,
            np.asarray(uniques, dtype=np.int64).astype(str).astype(object),
            False,
        )
    labels, raw_uniques = pd.factorize(s, use_na_sentinel=True)
    stripped = pd.Series(raw_uniques, dtype=object).astype(str).str.strip()
    empty = (stripped == "").to_numpy()
    if empty.any():
        labels = np.where((labels >= 0) & empty[np.maximum(labels, 0)], -1, labels)
    ids_u = np.fromiter(
        (0 if e else _code_to_id(u) for u, e in zip(stripped, empty, strict=True)),
        dtype=np.int64,
        count=len(stripped),
    )
    distinct = pd.DataFrame(
        {"code": stripped[~empty].to_numpy(), "id": ids_u[~empty]}
    ).drop_duplicates()
    clash = distinct["id"].duplicated(keep=False)
    if clash.any():
        raise MappingError(
            f"{what}: distinct codes map to the same id: {distinct.loc[clash, 'code'].head(6).tolist()}"
        )
    ids = pd.array(
        np.where(labels >= 0, ids_u[np.maximum(labels, 0)] if len(ids_u) else 0, 0), dtype="Int64"
    )
    ids[labels < 0] = pd.NA
    return _Coded(
        pd.Series(ids),
        labels,
        stripped.to_numpy(dtype=object),
        bool((ids_u[~empty] >= _HASH_BASE).any()),
    )


def stable_ids(s: pd.Series, what: str = "ids") -> tuple[pd.Series, bool]:
    """Map a column of ids or codes to ``Int64`` ids; missing values stay missing.

    Integer columns are kept; integral floats (``17850.0``) become integers; strings that
    are plain integers keep their number (``"536365"`` -> 536365), other strings get a
    stable keyed hash in ``[2**62, 2**63)`` (the same code gives the same id in every
    file and every run). Surrounding blanks are ignored; an empty string is missing.

    Returns
    -------
    (Series, bool)
        The ids (index of ``s``) and whether any code was not a plain integer.

    Raises
    ------
    MappingError
        Booleans, fractional numbers, or two distinct codes mapped to one id.
    """
    coded = _encode(s, what)
    return coded.ids.set_axis(s.index), coded.hashed


# --------------------------------------------------------------------------- reading


def _find_table(directory: Path, name: str) -> Path | None:
    for ext in EXTENSIONS:
        p = directory / f"{name}.{ext}"
        if p.exists():
            return p
    return None


@contextmanager
def _reading(path: Path):
    """Errors of the readers as one line naming the file (they name none themselves)."""
    try:
        yield
    except pd.errors.EmptyDataError as exc:
        raise MappingError(f"{path.name}: the file is empty (not even a header row)") from exc
    except UnicodeDecodeError as exc:
        raise MappingError(
            f"{path.name}: not UTF-8 text (byte {exc.object[exc.start : exc.start + 1]!r} at "
            f"position {exc.start:,}); save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from exc
    except pd.errors.ParserError as exc:
        raise MappingError(f"{path.name}: not a readable CSV file: {exc}".strip()) from exc
    except pa.ArrowException as exc:
        raise MappingError(f"{path.name}: not a readable Parquet file: {exc}") from exc


def _columns_of(path: Path) -> list[str]:
    with _reading(path):
        if path.suffix == ".parquet":
            return list(pq.read_schema(path).names)
        return list(pd.read_csv(path, nrows=0).columns)


def _read(
    path: Path, columns: list[str] | None = None, text_columns: tuple[str, ...] = ()
) -> pd.DataFrame:
    with _reading(path):
        if path.suffix == ".parquet":
            return pd.read_parquet(path, columns=columns)
        if path.suffix == ".csv":
            dtype = {c: "string" for c in text_columns}
            # low_memory=False: one type per column, no DtypeWarning on mixed columns (the
            # contract then names the rows that are not numbers)
            return pd.read_csv(path, usecols=columns, dtype=dtype or None, low_memory=False)
    raise MappingError(f"{path.name}: unsupported file type {path.suffix!r}; use .csv or .parquet")


def _load_mapping(mapping) -> tuple[dict, str]:
    if isinstance(mapping, dict):
        return mapping, "mapping"
    p = Path(mapping)
    if not p.exists() and p.suffix == "" and (MAPPINGS_DIR / f"{p.name}.toml").exists():
        p = MAPPINGS_DIR / f"{p.name}.toml"
    if not p.exists():
        shipped = sorted(q.stem for q in MAPPINGS_DIR.glob("*.toml"))
        raise FileNotFoundError(
            f"mapping file {mapping} not found (shipped mappings: {', '.join(shipped) or 'none'})"
        )
    if p.suffix == ".toml":
        with open(p, "rb") as fh:
            try:
                return tomllib.load(fh), p.name
            except tomllib.TOMLDecodeError as exc:
                raise MappingError(f"mapping {p.name}: not valid TOML: {exc}") from exc
    if p.suffix == ".json":
        try:
            return json.loads(p.read_text()), p.name
        except json.JSONDecodeError as exc:
            raise MappingError(f"mapping {p.name}: not valid JSON: {exc}") from exc
    raise MappingError(f"mapping {p.name}: use a .toml or .json file")


# --------------------------------------------------------------------------- mapping


@dataclass
class _Section:
    table: str
    spec: dict
    where: str  # "mapping X.toml [table]" for messages

    def column_refs(self) -> list[tuple[str, str]]:
        """(mapping key, source column) for every source column this section reads."""
        refs = []
        for key, v in self.spec.items():
            if key in SECTION_KEYS:
                continue
            if isinstance(v, str):
                refs.append((key, v))
            elif isinstance(v, dict):
                if "column" in v:
                    refs.append((key, v["column"]))
                refs.extend((key, c) for c in v.get("multiply", []))
        rules = self.spec.get("rules", {})
        if rules.get("cancellation_column"):
            refs.append(("rules.cancellation_column", rules["cancellation_column"]))
        return refs

    def id_columns(self) -> list[str]:
        """Source columns read as ids (read as text from CSV so codes like '00123' survive)."""
        kinds = {c.name: c.kind for c in SCHEMAS[self.table]}
        return [col for key, col in self.column_refs() if kinds.get(key) == INT]


def _check_section(name: str, spec, label: str) -> _Section:
    where = f"{label} [{name}]"
    if name not in SCHEMAS:
        raise MappingError(f"{where}: unknown table; expected one of {', '.join(TABLE_NAMES)}")
    if not isinstance(spec, dict):
        raise MappingError(f"{where}: expected a table of column mappings")
    known = {c.name for c in SCHEMAS[name]} | set(SECTION_KEYS)
    if name == "transactions":
        known |= set(TRANSACTION_INPUTS)
    for key, v in spec.items():
        if key not in known:
            raise MappingError(
                f"{where}: unknown column {key!r}; canonical columns are {[c.name for c in SCHEMAS[name]]}"
            )
        if key in SECTION_KEYS:
            continue
        if isinstance(v, dict):
            forms = {"column", "value", "multiply"} & set(v)
            if len(forms) != 1 or set(v) - {"column", "value", "multiply", "format"}:
                raise MappingError(
                    f"{where} {key}: use one of {{column = ...}}, {{value = ...}}, {{multiply = [...]}}; got {v}"
                )
            if "multiply" in v and (not isinstance(v["multiply"], list) or len(v["multiply"]) < 2):
                raise MappingError(f"{where} {key}: multiply needs a list of at least two columns")
        elif not isinstance(v, str | int | float | bool):
            raise MappingError(
                f"{where} {key}: expected a column name, a constant or a table; got {v!r}"
            )
    if "file" in spec and "from" in spec:
        raise MappingError(f"{where}: give either 'file' or 'from', not both")
    if "from" in spec and spec["from"] != "transactions":
        raise MappingError(f"{where}: 'from' can only be \"transactions\"")
    if name == "transactions" and "file" not in spec:
        raise MappingError(f"{where}: says no 'file' for the transactions")
    rules = spec.get("rules", {})
    if rules and name != "transactions":
        raise MappingError(f"{where}: rules apply to transactions only")
    bad = set(rules) - set(RULE_KEYS)
    if bad:
        raise MappingError(
            f"{where}.rules: unknown rule(s) {sorted(bad)}; known: {list(RULE_KEYS)}"
        )
    return _Section(name, spec, where)


def _value(sec: _Section, key: str, raw: pd.DataFrame, source: str) -> pd.Series:
    """Evaluate one mapped column on the raw frame."""
    v = sec.spec[key]
    n = len(raw)

    def col(c: str) -> pd.Series:
        if c not in raw.columns:
            raise MappingError(
                f"{sec.where} {key}: column {c!r} not in {source}; columns: {list(raw.columns)}"
            )
        return raw[c]

    if isinstance(v, str):
        s = col(v)
    elif isinstance(v, dict) and "column" in v:
        s = col(v["column"])
        if v.get("format") and not pd.api.types.is_datetime64_any_dtype(s):
            parsed = pd.to_datetime(s, format=v["format"], errors="coerce")
            bad = parsed.isna() & s.notna()
            if bad.any():
                raise MappingError(
                    f"{sec.where} {key}: {int(bad.sum()):,} values of {v['column']!r} do not match format "
                    f"{v['format']!r}, e.g. {s[bad].head(3).tolist()}"
                )
            s = parsed
    elif isinstance(v, dict) and "multiply" in v:
        s = pd.Series(np.ones(n), index=raw.index)
        for c in v["multiply"]:
            x = pd.to_numeric(col(c), errors="coerce")
            if x.isna().any() and not col(c).isna().all():
                bad = x.isna() & col(c).notna()
                if bad.any():
                    raise MappingError(
                        f"{sec.where} {key}: column {c!r} is not numeric, e.g. {col(c)[bad].head(3).tolist()}"
                    )
            s = s * x
    else:
        const = v["value"] if isinstance(v, dict) else v
        s = pd.Series([const] * n, index=raw.index)
    return s


def _mode_per(df: pd.DataFrame, key: str, col: str) -> pd.Series:
    """Most frequent non-missing value of ``col`` for each ``key`` (ties: first in sort order)."""
    sub = df[[key, col]].dropna()
    counts = sub.groupby([key, col], sort=True).size().rename("n").reset_index()
    counts = counts.sort_values([key, "n"], ascending=[True, False], kind="stable")
    return counts.drop_duplicates(key).set_index(key)[col]


def _plain_table(sec: _Section, raw: pd.DataFrame, source: str, notes: list[str]) -> pd.DataFrame:
    """A non-transaction table from its own file."""
    out = {}
    for c in SCHEMAS[sec.table]:
        if c.name in sec.spec:
            s = _value(sec, c.name, raw, source)
            if c.kind == INT:
                ids, hashed = stable_ids(s, f"{sec.where} {c.name}")
                if hashed and c.name in ("customer_id", "product_id"):
                    out[c.name.replace("_id", "_code")] = s.astype("string").str.strip()
                s = ids
            out[c.name] = s
        elif c.required and c.nullable:
            out[c.name] = pd.Series([None] * len(raw), index=raw.index, dtype=object)
        elif c.required:
            raise MappingError(
                f"{sec.where}: does not say where the required column {c.name!r} comes from"
            )
    df = pd.DataFrame(out).reset_index(drop=True)
    order = [c.name for c in SCHEMAS[sec.table] if c.name in df.columns]
    return df[order + [c for c in df.columns if c not in order]]


# --------------------------------------------------------------------------- transactions


def _transactions(
    sec: _Section, raw: pd.DataFrame, source: str, notes: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical transactions plus the kept raw rows (for tables derived ``from = "transactions"``)."""
    spec, rules = sec.spec, sec.spec.get("rules", {})
    raw = raw.reset_index(drop=True)
    n0 = len(raw)
    notes.append(f"transactions: {n0:,} rows read from {source}")
    for c in SCHEMAS["transactions"]:
        if c.name not in spec and c.name not in TX_DEFAULTS:
            raise MappingError(
                f"{sec.where}: does not say where the required column {c.name!r} comes from"
            )
    ids: dict[str, _Coded] = {}
    for name in ("customer_id", "basket_id", "product_id", "store_id"):
        if name in spec:
            ids[name] = _encode(_value(sec, name, raw, source), f"{sec.where} {name}")
    num: dict[str, np.ndarray] = {}
    for name in ("quantity", "sales_value", "retail_discount", "coupon_discount", "unit_price"):
        if name not in spec:
            continue
        v = _value(sec, name, raw, source)
        x = pd.to_numeric(v, errors="coerce")
        bad = x.isna() & v.notna()
        if bad.any():
            raise MappingError(
                f"{sec.where} {name}: non-numeric values, e.g. {v[bad].head(3).tolist()}"
            )
        num[name] = x.to_numpy(dtype="float64", na_value=np.nan)

    # --- cancellations: kept, as returns
    cancel = np.zeros(n0, dtype=bool)
    prefix = rules.get("cancellation_prefix")
    if prefix:
        ccol = rules.get("cancellation_column")
        coded = (
            _encode(raw[ccol], f"{sec.where}.rules cancellation_column")
            if ccol
            else ids["basket_id"]
        )
        cancel = coded.flag(lambda u: u.str.startswith(str(prefix)))

    # --- exclusions, in order; each line counted once under its first reason
    excluded = np.zeros(n0, dtype=bool)
    reasons: list[tuple[str, int]] = []

    def exclude(hit: np.ndarray, why: str) -> None:
        new = hit & ~excluded
        excluded[new] = True
        reasons.append((why, int(new.sum())))

    exclude(ids["customer_id"].ids.isna().to_numpy(), "without a customer id")
    np_codes = {str(c).strip().upper() for c in rules.get("non_product_codes", [])}
    patterns = []
    for pat in rules.get("non_product_patterns", []):
        try:
            patterns.append(re.compile(pat, re.IGNORECASE))
        except re.error as exc:
            raise MappingError(
                f"{sec.where}.rules non_product_patterns: bad regular expression {pat!r}: {exc}"
            ) from exc
    if np_codes or patterns:
        prod = ids["product_id"]

        def non_product(u: pd.Series) -> np.ndarray:
            hit = u.str.upper().isin(np_codes).to_numpy()
            for rx in patterns:
                hit |= u.map(lambda code, rx=rx: rx.fullmatch(code) is not None).to_numpy(
                    dtype=bool
                )
            return hit

        hit = prod.flag(non_product) & ~excluded
        counts = pd.Series(
            np.bincount(prod.labels[hit], minlength=len(prod.uniques)), index=prod.uniques
        )
        counts = counts[counts > 0].sort_values(ascending=False, kind="stable")
        shown = ", ".join(f"{k} {v:,}" for k, v in counts.head(12).items()) + (
            ", ..." if len(counts) > 12 else ""
        )
        exclude(hit, f"that are not products ({shown or 'none found'})")
    if rules.get("exclude_nonpositive_price"):
        if "unit_price" not in num:
            raise MappingError(
                f"{sec.where}.rules exclude_nonpositive_price: needs 'unit_price' mapped to a column"
            )
        sale = ~cancel & (num["quantity"] > 0)
        exclude(
            sale & (num["unit_price"] <= 0), "sold at a zero or negative unit price (not returns)"
        )

    keep = ~excluded
    for why, count in reasons:
        notes.append(f"transactions: excluded {count:,} of {n0:,} lines {why}")

    out = pd.DataFrame(
        {
            name: ids[name].ids[keep].reset_index(drop=True)
            for name in ("customer_id", "basket_id", "product_id")
        }
    )
    if "store_id" in ids:
        out["store_id"] = ids["store_id"].ids[keep].reset_index(drop=True)
    out["timestamp"] = _value(sec, "timestamp", raw, source)[keep].reset_index(drop=True)
    c = cancel[keep]
    for name in ("quantity", "sales_value"):
        x = num[name][keep]
        out[name] = np.where(c, -np.abs(x), x)  # a cancellation line is a return, whatever its sign
    for name in ("retail_discount", "coupon_discount"):
        if name in num:
            out[name] = num[name][keep]
    for name, default in TX_DEFAULTS.items():
        if name not in out.columns:
            out[name] = default
            notes.append(f"transactions: no {name} in the mapping; set to {default} on every line")
    for name in ("basket_id", "customer_id", "product_id"):
        if ids[name].hashed:  # the shop's own codes, so outputs can be joined back on them
            out[name.replace("_id", "_code")] = ids[name].text(keep)
    canon = [col.name for col in SCHEMAS["transactions"]]
    out = out[canon + [col for col in out.columns if col not in canon]]
    if len(out) + sum(n for _, n in reasons) != n0:  # the books must balance
        raise AssertionError("files source: kept + excluded lines do not add up to the lines read")
    n_ret = int(((out["quantity"] < 0) | (out["sales_value"] < 0)).sum())
    notes.append(
        f"transactions: kept {len(out):,} lines, {n_ret:,} of them returns (kept; {int(c.sum()):,} lines of "
        f"cancellation invoices given negative quantity and value)"
    )
    hashed = [f"{_source_name(spec[k])} -> {k}" for k, v in ids.items() if v.hashed]
    if hashed:
        notes.append(
            f"ids: text codes mapped to stable int64 ids ({', '.join(hashed)}); original codes kept in "
            "transactions.customer_code / product_code / basket_code, products.product_code, "
            "customers.customer_code, and written next to the ids by `tailor predict`"
        )
    if "store_id" in ids and ids["store_id"].hashed:
        n_st = len(np.unique(ids["store_id"].labels[keep]))
        notes.append(
            f"transactions: {n_st:,} distinct {_source_name(spec['store_id'])} values used as store ids"
        )
    dup = int(out.duplicated().sum())
    if dup:
        notes.append(f"transactions: {dup:,} lines repeat another line exactly; kept as they are")
    kept_raw = raw[keep].reset_index(drop=True)
    for name, coded in ids.items():  # canonical ids and original codes for the derived tables
        kept_raw[f"__{name}"] = coded.ids[keep].reset_index(drop=True)
        if coded.hashed:
            kept_raw[f"__{name}_code"] = coded.text(keep)
    return out, kept_raw


def _source_name(v) -> str:
    return v if isinstance(v, str) else str(v.get("column", v))


def _derived_table(
    sec: _Section, kept: pd.DataFrame, tx_spec: dict, notes: list[str]
) -> pd.DataFrame:
    """A table built from the kept transaction rows: one row per id, most frequent values."""
    key = {"products": "product_id", "customers": "customer_id"}.get(sec.table)
    if key is None:
        raise MappingError(
            f"{sec.where}: only products and customers can be built from the transactions"
        )
    if key not in sec.spec:
        raise MappingError(f"{sec.where}: does not say which column holds {key!r}")
    if sec.spec[key] != tx_spec.get(key):
        raise MappingError(
            f"{sec.where} {key}: must be the same column as in [transactions] ({tx_spec.get(key)!r})"
        )
    ids = kept[f"__{key}"]
    base = pd.DataFrame({key: pd.Index(ids.unique()).sort_values()})
    work = pd.DataFrame({key: ids})
    for c in SCHEMAS[sec.table]:
        if c.name == key:
            continue
        if c.name in sec.spec:
            work[c.name] = _value(sec, c.name, kept, "the transactions")
            if c.kind == INT:
                work[c.name] = stable_ids(work[c.name], f"{sec.where} {c.name}")[0]
            base[c.name] = _mode_per(work, key, c.name).reindex(base[key]).to_numpy()
        elif c.required and c.nullable:
            base[c.name] = None
        elif c.required:
            raise MappingError(
                f"{sec.where}: does not say where the required column {c.name!r} comes from"
            )
    code_col = f"__{key}_code"
    if code_col in kept.columns:
        work["__code"] = kept[code_col]
        base[key.replace("_id", "_code")] = (
            _mode_per(work, key, "__code").reindex(base[key]).to_numpy()
        )
    notes.append(
        f"{sec.table}: {len(base):,} rows built from the kept transaction lines (most frequent value per id)"
    )
    return base


# --------------------------------------------------------------------------- entry point


def _canonical(directory: Path) -> Tables:
    found = {}
    for name in TABLE_NAMES:
        p = _find_table(directory, name)
        if p is not None:
            found[name] = _read(p)
    if "transactions" not in found:
        present = sorted(p.name for p in directory.iterdir() if p.suffix in (".csv", ".parquet"))
        raise FileNotFoundError(
            f"{directory} holds no transactions.csv or transactions.parquet (data files there: "
            f"{', '.join(present) or 'none'}); name the files canonically or pass a column mapping"
        )
    notes = [f"files: {', '.join(sorted(found))} read from {directory} in canonical names"]
    tx = found["transactions"]
    for name, default in TX_DEFAULTS.items():
        if name not in tx.columns:
            tx[name] = default
            notes.append(f"transactions: no {name} column; set to {default} on every line")
    return Tables(**found, notes=notes)


def load_files(path: str | Path, mapping: str | Path | dict | None = None) -> Tables:
    """Load the user's CSV/Parquet files as canonical tables.

    Parameters
    ----------
    path : str or Path
        Directory holding the files.
    mapping : str, Path or dict, optional
        Column mapping (TOML or JSON file, the name of a shipped mapping such as
        ``"online_retail"``, or the parsed dict). Without it the files must be in
        canonical names (see the module docstring for both layouts).

    Returns
    -------
    Tables
        Not yet validated (call :func:`features.contract.validate`); ``notes`` lists every
        exclusion with its count and reason, and every default filled in.

    Raises
    ------
    FileNotFoundError
        The directory, the transactions file, a file named by the mapping or the mapping
        file itself does not exist.
    MappingError
        The mapping is malformed or names a column that is not in its file.
    """
    directory = Path(path)
    if not directory.exists():
        raise FileNotFoundError(f"no data directory at {directory}")
    if not directory.is_dir():
        raise FileNotFoundError(
            f"{directory} is a file; pass the directory that holds it (and a mapping if needed)"
        )
    if mapping is None:
        return _canonical(directory)
    spec, label = _load_mapping(mapping)
    if "transactions" not in spec:
        raise MappingError(f"mapping {label}: has no [transactions] section")
    sections = {name: _check_section(name, s, f"mapping {label}") for name, s in spec.items()}
    notes = [f"files: {directory} read with mapping {label}"]
    derived = [sec for sec in sections.values() if sec.spec.get("from") == "transactions"]
    raws: dict[str, pd.DataFrame] = {}
    by_file: dict[str, list[_Section]] = {}
    for sec in sections.values():
        if "file" in sec.spec:
            by_file.setdefault(str(sec.spec["file"]), []).append(sec)
    for fname, secs in by_file.items():
        p = directory / fname
        if not p.is_file():
            present = sorted(q.name for q in directory.iterdir())
            raise FileNotFoundError(
                f"{secs[0].where}: file {fname!r} not found in {directory} (files there: {', '.join(present) or 'none'})"
            )
        readers = secs + (derived if any(sec.table == "transactions" for sec in secs) else [])
        available = _columns_of(p)
        for sec in readers:
            for key, col in sec.column_refs():
                if col not in available:
                    raise MappingError(
                        f"{sec.where} {key}: column {col!r} not in {fname}; columns: {available}"
                    )
        needed = list(dict.fromkeys(col for sec in readers for _, col in sec.column_refs()))
        text = tuple(dict.fromkeys(col for sec in readers for col in sec.id_columns()))
        raws[fname] = _read(p, needed, text_columns=text)

    tx_sec = sections["transactions"]
    source = str(tx_sec.spec["file"])
    raw = raws[source]
    transactions, kept = _transactions(tx_sec, raw, source, notes)
    del raw
    out: dict[str, pd.DataFrame | None] = {"transactions": transactions}
    for name, sec in sections.items():
        if name == "transactions":
            continue
        if sec.spec.get("from") == "transactions":
            out[name] = _derived_table(sec, kept, tx_sec.spec, notes)
        elif "file" in sec.spec:
            src = str(sec.spec["file"])
            df = raws[src]
            out[name] = _plain_table(sec, df, src, notes)
            notes.append(f"{name}: {len(out[name]):,} rows read from {src}")
        else:
            raise MappingError(f"{sec.where}: says neither 'file' nor 'from'")
    logger.info("files source: %s", "; ".join(notes))
    return Tables(**out, notes=notes)
