"""Raw CSV -> Parquet conversion of one table: DuckDB for the small tables, a Polars stream for the event tables.

chartevents (about 30 GB in MIMIC-IV) never enters Python memory. The two event tables stream through Polars'
CSV reader (it decompresses and parses gzip about twice as fast as DuckDB's on two cores), which keeps the rows whose
item id belongs to one of the 17 variables and sinks them to Parquet; should that fast path fail to read a file
(an unusual timestamp format, a malformed row), the table is read again with DuckDB, whose casts are more lenient and
whose failure is turned into a message naming the file and column. The small tables go through one DuckDB
``COPY (SELECT ...)`` each.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from medfuse_bench import resources
from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl.layout import DATE, TIMESTAMP, TableSpec, read_header, resolve_columns

log = logging.getLogger(__name__)


def event_itemids() -> dict[str, list[int]]:
    """Item ids kept per event table: those of the 17 variables, original map and corrected additions together,
    so one ingest serves every value of the ``capillary_refill`` switch."""
    out: dict[str, set[int]] = {"chartevents": set(), "labevents": set()}
    for itemid, (_, table) in resources.itemid_map(include_corrected=True).items():
        out[table].add(itemid)
    return {table: sorted(ids) for table, ids in out.items()}


def _lit(text: str | Path) -> str:
    """A SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _reader(path: Path, header: list[str], types: dict[str, str]) -> str:
    """``read_csv`` with every column's type spelled out (no type sniffing; unlisted columns stay VARCHAR)."""
    columns = ", ".join(f"{_lit(c)}: {_lit(types.get(c, 'VARCHAR'))}" for c in header)
    return (
        f"read_csv({_lit(path)}, header = true, delim = ',', quote = '\"', escape = '\"', "
        f"auto_detect = false, columns = {{{columns}}})"
    )


def _select_list(spec: TableSpec, chosen: dict[str, str | None]) -> tuple[str, dict[str, str]]:
    """SELECT expressions casting each input column to its output type, and the read types of the input columns.

    Timestamps are read as text and cast after the item-id filter, so the filter does not pay for parsing them.
    """
    exprs, read_types = [], {}
    for column in spec.columns:
        source = chosen[column.name]
        if source is None:
            exprs.append(f"CAST(NULL AS {column.type}) AS {_ident(column.name)}")
            continue
        if column.type == TIMESTAMP:
            read_types[source] = "VARCHAR"
            exprs.append(f"CAST({_ident(source)} AS TIMESTAMP) AS {_ident(column.name)}")
        elif column.type == DATE:
            read_types[source] = "VARCHAR"
            exprs.append(f"CAST(CAST({_ident(source)} AS TIMESTAMP) AS DATE) AS {_ident(column.name)}")
        else:
            read_types[source] = column.type
            exprs.append(f"{_ident(source)} AS {_ident(column.name)}")
    return ", ".join(exprs), read_types


#: Columns that identify a row, in order of preference, for naming a bad row in a message.
ROW_IDENTIFIERS: tuple[str, ...] = ("stay_id", "transfer_id", "hadm_id", "dicom_id", "study_id", "subject_id")


def row_identifier(spec: TableSpec, chosen: dict[str, str | None]) -> tuple[str, str] | None:
    """(output name, input column) of the column that best identifies a row of ``spec``'s table, if any."""
    for name in ROW_IDENTIFIERS:
        if chosen.get(name) is not None:
            return name, chosen[name]
    return None


def _diagnose(con: duckdb.DuckDBPyConnection, spec: TableSpec, path: Path, header: list[str],
              chosen: dict[str, str | None], error: duckdb.Error) -> MedfuseError:
    """Turn a DuckDB conversion failure into a message naming the file, the first column with a bad value, the
    value and the identifier of a row that holds it."""
    checks = []
    for column in spec.columns:
        source = chosen[column.name]
        if source is None or column.type == "VARCHAR":
            continue
        target = TIMESTAMP if column.type == DATE else column.type
        checks.append((source, column.type, f"TRY_CAST({_ident(source)} AS {target})"))
    ident = row_identifier(spec, chosen)
    if checks:
        text = _reader(path, header, {})
        row = None
        try:
            key = f"CAST({_ident(ident[1])} AS VARCHAR)" if ident else "NULL"
            picks = ", ".join(
                f"first([{_ident(s)}, {key}]) FILTER (WHERE {_ident(s)} IS NOT NULL AND {expr} IS NULL)"
                for s, _, expr in checks
            )
            row = con.execute(f"SELECT {picks} FROM {text}").fetchone()
        except duckdb.Error:
            row = None
        if row is not None:
            for (source, type_, _), bad in zip(checks, row, strict=True):
                if bad is not None:
                    value, key_value = bad
                    kind = ("a valid timestamp (YYYY-MM-DD HH:MM:SS)" if type_ in (TIMESTAMP, DATE)
                            else f"of type {type_}")
                    where = f" in the row with {ident[1]} {key_value}" if ident and key_value is not None else ""
                    return MedfuseError(
                        f"'{path}': column '{source}' holds a value that is not {kind}: '{value}'{where}; "
                        "fix or remove that row"
                    )
    first_line = str(error).strip().splitlines()[0]
    return MedfuseError(f"cannot read '{path}': {first_line}")


def convert_table(con: duckdb.DuckDBPyConnection, spec: TableSpec, path: Path, out: Path,
                  itemids: list[int] | None = None) -> dict[str, Any]:
    """Write ``spec``'s columns of the CSV at ``path`` to ``out`` (Parquet); return row count and chosen columns."""
    header = read_header(path)
    chosen = resolve_columns(spec, header, path)
    select, read_types = _select_list(spec, chosen)
    where = ""
    if itemids is not None:
        where = f" WHERE {_ident(chosen['itemid'])} IN ({', '.join(str(i) for i in itemids)})"
    sql = (
        f"COPY (SELECT {select} FROM {_reader(path, header, read_types)}{where}) "
        f"TO {_lit(out)} (FORMAT parquet, COMPRESSION zstd)"
    )
    try:
        rows = con.execute(sql).fetchone()[0]
    except duckdb.Error as exc:
        raise _diagnose(con, spec, path, header, chosen, exc) from exc
    return _converted(spec, chosen, rows, "duckdb")


def _converted(spec: TableSpec, chosen: dict[str, str | None], rows: int, reader: str) -> dict[str, Any]:
    """What a conversion reports: rows written, input column of each output column, absent optional columns."""
    return {"rows": int(rows), "columns_from": {k: v for k, v in chosen.items() if v is not None},
            "absent": [c.name for c in spec.columns if chosen[c.name] is None], "reader": reader}


#: Polars type of each DuckDB type the table specs use; timestamps are read as text and parsed after the filter.
_POLARS_TYPES: dict[str, pl.DataType] = {"BIGINT": pl.Int64(), "INTEGER": pl.Int32(), "DOUBLE": pl.Float64(),
                                         "VARCHAR": pl.String(), TIMESTAMP: pl.Datetime("us"), DATE: pl.Date()}
#: The timestamp layout of every MIMIC-IV release; anything else goes to DuckDB's more lenient cast.
_MIMIC_TIMESTAMP = "%Y-%m-%d %H:%M:%S"


def convert_events(spec: TableSpec, path: Path, out: Path, itemids: list[int]) -> dict[str, Any]:
    """Stream the rows of an event table whose item id is in ``itemids`` to ``out`` (Parquet) with Polars.

    Same columns, types and rows as :func:`convert_table` gives with DuckDB; raises ``polars.exceptions.PolarsError``
    (or ``OSError``) when the file does not parse as expected, for the caller to fall back on DuckDB.
    """
    header = read_header(path)
    chosen = resolve_columns(spec, header, path)
    read_types: dict[str, pl.DataType] = {}
    exprs = []
    for column in spec.columns:
        source = chosen[column.name]
        target = _POLARS_TYPES[column.type]
        if source is None:
            exprs.append(pl.lit(None, dtype=target).alias(column.name))
        elif column.type == TIMESTAMP:
            exprs.append(pl.col(source).str.to_datetime(_MIMIC_TIMESTAMP, time_unit="us").alias(column.name))
        elif column.type == DATE:
            exprs.append(pl.col(source).str.to_datetime(_MIMIC_TIMESTAMP, time_unit="us").dt.date().alias(column.name))
        else:
            read_types[source] = target
            exprs.append(pl.col(source).alias(column.name))
    schema = {name: read_types.get(name, pl.String()) for name in header}
    itemid = chosen["itemid"]
    (
        pl.scan_csv(path, schema=schema, has_header=True, quote_char='"')
        .filter(pl.col(itemid).is_in(itemids))
        .select(exprs)
        .sink_parquet(out, compression="zstd")
    )
    return _converted(spec, chosen, pl.scan_parquet(out).select(pl.len()).collect().item(), "polars")


def convert_filtered(con: duckdb.DuckDBPyConnection, spec: TableSpec, path: Path, out: Path,
                     itemids: list[int]) -> dict[str, Any]:
    """:func:`convert_events` (Polars), or :func:`convert_table` (DuckDB) where Polars cannot read the file."""
    try:
        return convert_events(spec, path, out, itemids)
    except (pl.exceptions.PolarsError, OSError) as exc:
        first_line = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        log.warning("%s: the fast reader stopped (%s); reading it again with DuckDB", path, first_line)
        out.unlink(missing_ok=True)
        return convert_table(con, spec, path, out, itemids)


def check_icustays(con: duckdb.DuckDBPyConnection, parquet: Path, source: Path) -> None:
    """Every stay_id of icustays must be unique: the cohort and every later table key on it."""
    dup = con.execute(
        f"SELECT stay_id, count(*) FROM read_parquet({_lit(parquet)}) GROUP BY stay_id HAVING count(*) > 1 "
        "ORDER BY stay_id LIMIT 1"
    ).fetchone()
    if dup is not None:
        raise MedfuseError(
            f"'{source}': column 'stay_id' holds duplicated values (stay_id {dup[0]} appears {dup[1]} times); "
            "each ICU stay must appear once"
        )


def _connect(memory_limit: str, threads: int | None, temp_dir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = {_lit(memory_limit)}")
    except duckdb.Error as exc:
        raise MedfuseError(f"--memory-limit '{memory_limit}' is not a valid DuckDB memory limit (e.g. 4GB)") from exc
    if threads is not None:
        if threads < 1:
            raise MedfuseError(f"--threads must be at least 1, got {threads}")
        con.execute(f"SET threads = {int(threads)}")
    con.execute(f"SET temp_directory = {_lit(temp_dir)}")
    # Row order of the raw tables carries no meaning; dropping it lets DuckDB write in parallel with less memory.
    con.execute("SET preserve_insertion_order = false")
    return con
