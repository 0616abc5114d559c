"""The ``skanimal`` command's output formats: one writer each for tables, CSV and JSON."""

from __future__ import annotations

import csv
import json
import sys

__all__ = ["write_table", "write_csv", "write_json", "write_records", "write_audit",
           "format_bytes"]


def write_table(header, rows, out=None):
    """An aligned plain-text table: columns padded to their widest cell, two spaces apart.

    Parameters
    ----------
    header : list of str
    rows : iterable of list
        Cells, printed with ``str``.
    out : file, default=sys.stdout
    """
    out = out or sys.stdout
    table = [[str(cell) for cell in header]] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[c]) for row in table if c < len(row)) for c in range(len(header))]
    for row in table:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n")


def write_csv(columns, records, out=None):
    """CSV with a header row; each record a dict (keys outside ``columns`` are ignored).

    Parameters
    ----------
    columns : list of str
    records : iterable of dict
    out : file, default=sys.stdout
    """
    writer = csv.DictWriter(out or sys.stdout, fieldnames=columns, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)


def write_json(value, out=None):
    """``value`` as indented JSON (NumPy values and paths converted), then a newline.

    Parameters
    ----------
    value : object
    out : file, default=sys.stdout
    """
    from ..fileio import to_jsonable

    out = out or sys.stdout
    json.dump(to_jsonable(value), out, indent=2, ensure_ascii=False)
    out.write("\n")


def write_records(records, columns, fmt, out=None):
    """Records as a table (upper-case column names), CSV or JSON (a list of objects).

    Parameters
    ----------
    records : list of dict
    columns : list of str
    fmt : {"table", "csv", "json"}
    out : file, default=sys.stdout
    """
    if fmt == "json":
        write_json([{c: row.get(c, "") for c in columns} for row in records], out)
    elif fmt == "csv":
        write_csv(columns, records, out)
    else:
        write_table([c.upper() for c in columns],
                    [[row.get(c, "") for c in columns] for row in records], out)


#: The columns of ``skanimal audit --format csv``.
AUDIT_COLUMNS = ["finding", "path", "label", "label_probability", "suggested",
                 "suggested_probability", "group", "kind", "other_path", "other_label",
                 "similarity", "distance", "nearest", "part", "other_part"]


def write_audit(result, data_dir, fmt):
    """What ``skanimal audit`` prints: its four findings as tables, one CSV or JSON."""
    sections = (("suspect", result.suspects), ("duplicate", result.duplicates),
                ("near_duplicate", result.near_duplicates), ("outlier", result.outliers))
    if fmt == "json":
        write_json({
            "suspects": result.suspects, "duplicates": result.duplicates,
            "near_duplicates": result.near_duplicates, "outliers": result.outliers,
            "outlier_threshold": result.outlier_threshold,
            "unreadable": [{"path": p, "error": e} for p, e in result.unreadable],
        })
    elif fmt == "csv":
        write_records([{"finding": name, **row} for name, rows in sections for row in rows],
                      AUDIT_COLUMNS, "csv")
    else:
        print(f"Audited {result.n_images} photos of {data_dir}")
        columns = {
            "suspect": ["path", "label", "label_probability", "suggested",
                        "suggested_probability"],
            "duplicate": ["group", "kind", "path", "label", "part"],
            "near_duplicate": ["similarity", "kind", "path", "other_path", "label",
                               "other_label"],
            "outlier": ["distance", "path", "label", "nearest"],
        }
        for name, rows in sections:
            if name == "outlier" and result.outlier_threshold is None:
                continue
            if name == "duplicate":  # one row per file: say the groups too
                groups = len({row["group"] for row in rows})
                print(f"\nduplicates: {len(rows)} photos in {groups} group(s) of identical files")
            elif name == "near_duplicate":
                print(f"\nnear-duplicates: {len(rows)} pair(s)")
            else:
                print(f"\n{name}s: {len(rows)}")
            if name == "outlier":
                print(f"(unlike every other photo of their class: cosine distance to the "
                      f"nearest one above {result.outlier_threshold:.4f}, the upper fence of "
                      f"the {result.n_images} photos' distances)")
            if rows:
                write_records(rows, columns[name], "table")


def format_bytes(n):
    """``1234567`` → ``"1.2 MB"`` (decimal units)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
