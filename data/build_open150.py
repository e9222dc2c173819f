"""Build the open StructEval-T set: ``open150.json`` (tasks) and ``open150.answers.json``.

Run ``python data/build_open150.py`` (or ``--out DIR`` to write elsewhere). The build is pure
and deterministic: the same sources give byte-identical files.

Each task comes from an authored record in ``open150_sources.py``:

* the source document is the record rendered in the input format (conversions) or the
  record's task description plus one Feature Requirement per key path (Text to X);
* the reference answer is the record rendered in the output format;
* ``raw_output_metric`` is enumerated from the answer's structure under upstream StructEval's
  path conventions (docs: scoring-spec §3): XML paths start at the root element and walk
  through wrapper elements (``root.items.item[0].name``), and index only children that really
  repeat; a list read from XML into JSON/YAML/TOML collapses the wrapper (``root.items[0]``);
  XML attributes are ``@name``; CSV outputs use ``csv::<header>`` only.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import toml
import xmltodict
import yaml

HERE = Path(__file__).resolve().parent
# The built files ship inside the package, so that a plain `pip install` evaluates them.
TASKSETS = HERE.parent / "plugin" / "pytest_structeval" / "tasksets"
sys.path.insert(0, str(HERE))
from open150_sources import ITEM_TAGS, RECORDS, TABLES  # noqa: E402

# Task kinds and counts, in the competition's mix (../shared/data/README.md).
KINDS: tuple[tuple[str, int], ...] = (
    ("Text to TOML", 25),
    ("CSV to JSON", 14),
    ("JSON to YAML", 14),
    ("XML to JSON", 13),
    ("TOML to JSON", 11),
    ("YAML to JSON", 10),
    ("TOML to YAML", 8),
    ("CSV to YAML", 6),
    ("XML to YAML", 6),
    ("Text to XML", 6),
    ("JSON to XML", 6),
    ("Text to CSV", 6),
    ("YAML to XML", 5),
    ("XML to CSV", 5),
    ("YAML to CSV", 5),
    ("JSON to CSV", 4),
    ("CSV to XML", 3),
    ("Text to JSON", 2),
    ("Text to YAML", 1),
)

ID_PREFIX = "open150"
CSV_NOTE = "(Only output the CSV content as plain text, starting with the header row.)"
# Upstream conversion queries carry a literal backslash-n pair before the <code> block.
GAP = "\\n\\n"
MAX_CSV_COLUMNS = 28
YAML_11_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


# --------------------------------------------------------------------------- renderers


def strip_at(node: object) -> object:
    """The record as JSON/YAML/TOML/CSV see it: attribute keys lose their ``@``."""
    if isinstance(node, dict):
        return {(k[1:] if k.startswith("@") else k): strip_at(v) for k, v in node.items()}
    if isinstance(node, list):
        return [strip_at(v) for v in node]
    return node


def scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def item_tag(list_name: str) -> str:
    if list_name in ITEM_TAGS:
        return ITEM_TAGS[list_name]
    if list_name.endswith("ies"):
        return list_name[:-3] + "y"
    if list_name.endswith(("sses", "shes", "ches", "xes", "zes")):
        return list_name[:-2]
    if list_name.endswith("s") and not list_name.endswith("ss"):
        return list_name[:-1]
    raise SystemExit(f"open150_sources: add an ITEM_TAGS entry for the list {list_name!r}")


def xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xml_lines(tag: str, value: object, depth: int) -> Iterator[str]:
    pad = "  " * depth
    if not isinstance(value, dict):
        yield f"{pad}<{tag}>{xml_escape(scalar_text(value))}</{tag}>"
        return
    attrs = "".join(
        f' {k[1:]}="{xml_escape(scalar_text(v))}"' for k, v in value.items() if k.startswith("@")
    )
    yield f"{pad}<{tag}{attrs}>"
    for key, child in value.items():
        if key.startswith("@"):
            continue
        if isinstance(child, list):
            yield f"{pad}  <{key}>"
            for item in child:
                yield from _xml_lines(item_tag(key), item, depth + 2)
            yield f"{pad}  </{key}>"
        else:
            yield from _xml_lines(key, child, depth + 1)
    yield f"{pad}</{tag}>"


def render_xml(data: dict) -> str:
    ((root, body),) = data.items()
    return "\n".join(_xml_lines(root, body, 0))


def render_json(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


class _IndentedDumper(yaml.SafeDumper):
    """Indent block sequences under their key, as hand-written YAML usually is."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def render_yaml(data: object) -> str:
    return yaml.dump(
        data,
        Dumper=_IndentedDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1000,
    ).rstrip("\n")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # ASCII without quotes or backslashes: a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _is_table_array(value: object) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict)


def _toml_table(table: dict, path: list[str], out: list[str], *, array: bool) -> None:
    scalars = [
        (k, v) for k, v in table.items() if not isinstance(v, dict) and not _is_table_array(v)
    ]
    if path and (scalars or array):
        if out:
            out.append("")
        name = ".".join(path)
        out.append(f"[[{name}]]" if array else f"[{name}]")
    out.extend(f"{k} = {_toml_value(v)}" for k, v in scalars)
    for key, value in table.items():
        if isinstance(value, dict):
            _toml_table(value, [*path, key], out, array=False)
        elif _is_table_array(value):
            for item in value:
                _toml_table(item, [*path, key], out, array=True)


def render_toml(data: dict) -> str:
    out: list[str] = []
    _toml_table(data, [], out, array=False)
    return "\n".join(out)


def _csv_text(header: list[str], rows: list[list[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([scalar_text(v) for v in row])
    return buf.getvalue().rstrip("\n")


def flatten(node: object, prefix: str = "") -> list[tuple[str, object]]:
    """Dotted, indexed CSV headers for a nested record (``root.items[0].name``)."""
    if isinstance(node, dict):
        return [
            pair
            for key, child in node.items()
            for pair in flatten(child, f"{prefix}.{key}" if prefix else key)
        ]
    if isinstance(node, list):
        return [pair for i, child in enumerate(node) for pair in flatten(child, f"{prefix}[{i}]")]
    return [(prefix, node)]


def render_table(table: dict, fmt: str, variant: int) -> str:
    rows = table["rows"]
    if fmt == "CSV":
        return _csv_text(list(rows[0]), [list(r.values()) for r in rows])
    if fmt == "XML":
        body = "\n".join(line for row in rows for line in _xml_lines(table["row"], row, 1))
        return f"<{table['root']}>\n{body}\n</{table['root']}>"
    if fmt == "JSON":
        # Upstream JSON sources for CSV come both as a bare array and under a root key.
        return render_json(rows if variant % 2 == 0 else {table["root"]: rows})
    if fmt == "YAML":
        return render_yaml({table["root"]: rows})
    raise ValueError(fmt)


def xml_shaped(node: object) -> object:
    """The record as upstream's X-to-XML sources spell it (``{"items": {"item": [...]}}``), so
    the source itself names every wrapper and item element the XML answer must use."""
    if isinstance(node, dict):
        return {
            key: {item_tag(key): [xml_shaped(v) for v in child]}
            if isinstance(child, list)
            else xml_shaped(child)
            for key, child in node.items()
        }
    return node


def render(data: dict, fmt: str) -> str:
    if fmt == "XML":
        return render_xml(data)
    plain = strip_at(data)
    if fmt == "JSON":
        return render_json(plain)
    if fmt == "YAML":
        return render_yaml(plain)
    if fmt == "TOML":
        return render_toml(plain)
    if fmt == "CSV":
        pairs = flatten(plain)
        return _csv_text([h for h, _ in pairs], [[v for _, v in pairs]])
    raise ValueError(fmt)


def parse(text: str, fmt: str) -> object:
    """Parse with the libraries upstream StructEval uses (toml = uiri toml, not tomllib)."""
    if fmt == "JSON":
        return json.loads(text)
    if fmt == "YAML":
        return yaml.safe_load(text)
    if fmt == "TOML":
        return toml.loads(text)
    if fmt == "XML":
        return xmltodict.parse(text)
    raise ValueError(fmt)


# --------------------------------------------------------------------------- key paths


class ListModes:
    """Rotates how lists are addressed so a task set mixes ``[0]``, ``*`` and ``[1]`` paths."""

    OBJECT_MODES = ("first", "each", "pair")
    SCALAR_MODES = ("whole", "index")

    def __init__(self, seed: int) -> None:
        self.objects = seed
        self.scalars = seed

    def object_mode(self) -> str:
        self.objects += 1
        return self.OBJECT_MODES[self.objects % len(self.OBJECT_MODES)]

    def scalar_mode(self) -> str:
        self.scalars += 1
        return self.SCALAR_MODES[self.scalars % len(self.SCALAR_MODES)]


def leaf_paths(node: object, prefix: tuple[str, ...], modes: ListModes) -> list[tuple[str, ...]]:
    """Token paths to the leaves of ``node``, each guaranteed to exist under upstream rules.

    ``*`` is existential upstream, so the leaves under a ``*`` are read from the first item.
    """
    if isinstance(node, dict):
        return [p for key, child in node.items() for p in leaf_paths(child, (*prefix, key), modes)]
    if isinstance(node, list):
        if node and all(isinstance(item, dict) for item in node):
            mode = modes.object_mode()
            if mode == "each":
                return leaf_paths(node[0], (*prefix, "*"), modes)
            paths = leaf_paths(node[0], (*prefix, "[0]"), modes)
            if mode == "pair" and len(node) > 1:
                paths += leaf_paths(node[1], (*prefix, "[1]"), modes)
            return paths
        if modes.scalar_mode() == "index" and len(node) > 1:
            return [(*prefix, "[1]")]
        return [prefix]
    return [prefix]


def path_string(tokens: tuple[str, ...]) -> str:
    out = ""
    for token in tokens:
        if token.startswith("["):
            out += token
        else:
            out += ("." if out else "") + token
    return out


def select(paths: list[tuple[str, ...]], limit: int) -> list[tuple[str, ...]]:
    """Evenly spaced subset of at most ``limit`` paths, in document order."""
    unique = list(dict.fromkeys(paths))
    if len(unique) <= limit:
        return unique
    picks = sorted({round(i * (len(unique) - 1) / (limit - 1)) for i in range(limit)})
    return [unique[i] for i in picks]


def value_at(node: object, tokens: tuple[str, ...]) -> object:
    """Follow a path this module generated (first item for ``*``); used for prose only."""
    for token in tokens:
        if token == "*":
            node = node[0]
        elif token.startswith("["):
            node = node[int(token[1:-1])]
        else:
            node = node[token] if token in node else node[token.lstrip("@")]
    return node


# --------------------------------------------------------------------------- prose

ORDINALS = ("first", "second", "third", "fourth", "fifth")
UNITS = {
    "m": "metres",
    "km": "kilometres",
    "kg": "kilograms",
    "g": "grams",
    "t": "tonnes",
    "c": "degrees Celsius",
    "min": "minutes",
    "minutes": "minutes",
    "mm": "millimetres",
    "cm": "centimetres",
    "pct": "percent",
    "eur": "euros",
    "gbp": "pounds sterling",
    "chf": "Swiss francs",
    "kw": "kilowatts",
    "mw": "megawatts",
    "kv": "kilovolts",
    "l": "litres",
    "kmh": "kilometres per hour",
    "ha": "hectares",
    "ml": "millilitres",
    "ppt": "parts per thousand",
    "kwh": "kilowatt hours",
    "arcsec": "arcseconds",
    "m2": "square metres",
    "years": "years",
}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
CLOCK = re.compile(r"^\d{2}:\d{2}$")


def words(name: str) -> str:
    return name.lstrip("@").replace("_", " ")


def noun_for(container: tuple[str, ...], *, xml: bool = False) -> str:
    names = [t for t in container if t != "*" and not t.startswith("[")]
    if not names:
        return "record"
    last = names[-1]
    indexed = container[-1] == "*" or container[-1].startswith("[")
    # In XML paths the token before an index is already the item element.
    return words(item_tag(last) if indexed and not xml else last)


def meaning(
    key: str, container: tuple[str, ...], value: object, docs: dict[str, str], *, xml: bool = False
) -> str:
    bare = key.lstrip("@")
    if bare in docs:
        return docs[bare]
    noun = noun_for(container, xml=xml)
    parts = bare.split("_")
    unit = ""
    if len(parts) > 1 and parts[-1] in UNITS:
        unit = f" in {UNITS[parts.pop()]}"
    what = " ".join(parts)
    if isinstance(value, bool) or value in ("true", "false"):
        return f"the {what} flag of the {noun}"
    if isinstance(value, list):
        return f"the {what} of the {noun}"
    return f"the {what} of the {noun}{unit}"


def type_phrase(value: object) -> str:
    if isinstance(value, list):
        inner = type_phrase(value[0])
        return {
            "a string": "a list of strings",
            "an integer": "a list of integers",
            "a boolean": "a list of booleans",
        }.get(inner, "a list of numbers")
    if isinstance(value, bool) or value in ("true", "false"):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    text = str(value)
    if DATE.match(text):
        return "an ISO-8601 date string"
    if DATETIME.match(text):
        return "an ISO-8601 date-time string"
    if CLOCK.match(text):
        return "a time string in HH:MM form"
    if re.fullmatch(r"-?\d+", text):
        return "an integer"
    if re.fullmatch(r"-?\d+\.\d+", text):
        return "a number"
    return "a string"


def container_prose(container: tuple[str, ...], *, xml: bool) -> str:
    groups: list[tuple[str, str | None]] = []
    for token in container:
        if token == "*" or token.startswith("["):
            groups[-1] = (groups[-1][0], token)
        else:
            groups.append((token, None))
    parts = []
    for name, sel in reversed(groups):
        if sel is None:
            parts.append(f"the <{name}> element" if xml else f"'{name}'")
        elif sel == "*":
            parts.append(f"each <{name}> element" if xml else f"each element of the '{name}' list")
        else:
            ordinal = ORDINALS[int(sel[1:-1])]
            parts.append(
                f"the {ordinal} <{name}> element"
                if xml
                else f"the {ordinal} element of the '{name}' list"
            )
    return ", inside ".join(parts) if xml else " within ".join(parts)


def requirement(
    tokens: tuple[str, ...], value: object, docs: dict[str, str], style: int, *, xml: bool
) -> str:
    if tokens[-1].startswith("["):
        ordinal = ORDINALS[int(tokens[-1][1:-1])]
        container = tokens[:-2]
        listed = tokens[-2]
        where = container_prose(container, xml=xml)
        kind = type_phrase(value)
        if xml:
            what = f"one of the {words(container[-1])} of the {noun_for(container[:-1], xml=True)}"
            return (
                f"The {ordinal} <{listed}> element, inside {where}, must be {kind} giving {what}."
            )
        what = f"one of the {words(listed)} of the {noun_for(container)}"
        if style % 2:
            return f"The {ordinal} entry of the '{listed}' list in {path_string(container)} is {kind} naming {what}."
        return f"The {ordinal} entry of '{listed}', located within {where}, must be {kind} giving {what}."
    key = tokens[-1]
    container = tokens[:-1]
    kind = type_phrase(value)
    sense = meaning(key, container, value, docs, xml=xml)
    where = container_prose(container, xml=xml)
    label = "attribute" if key.startswith("@") else ("element" if xml else "key")
    bare = key.lstrip("@")
    style %= 4
    if style == 0:
        return f"The {label} '{bare}' is {kind} holding {sense}, located in {where}."
    if style == 1:
        return f"The {bare} {'attribute' if label == 'attribute' else 'field'} inside {path_string(container)} must be {kind} that gives {sense}."
    if style == 2:
        return f"Within {where}, the '{bare}' {label} should be {kind} for {sense}."
    return f"The {path_string(tokens)} {label if label != 'key' else 'field'} is {kind} recording {sense}."


# --------------------------------------------------------------------------- tasks


def slug(task_name: str) -> str:
    return task_name.lower().replace(" ", "-")


def query_conversion(src_fmt: str, dst_fmt: str, source: str) -> str:
    lead = "\n" if src_fmt in ("TOML", "XML", "YAML") else ""
    if dst_fmt == "CSV":
        head = f"Please convert the following {src_fmt} code to CSV code {CSV_NOTE}."
    else:
        head = f"Please convert the following {src_fmt} code to {dst_fmt} code."
    return f"{head}{GAP}<code>{lead}{source}\n</code>"


def query_generation(dst_fmt: str, task: str, requirements: list[str]) -> str:
    head = (
        f"Please output CSV code {CSV_NOTE}:"
        if dst_fmt == "CSV"
        else f"Please output {dst_fmt} code:"
    )
    numbered = "\n".join(f"{i}. {text}" for i, text in enumerate(requirements, 1))
    return f"{head}\n\nTask:\n{task}\n\nFeature Requirements:\n{numbered}"


def view(record: dict, use: int, *, csv_source: bool) -> dict:
    """The record's data for its ``use``-th task: later uses leave out one section so reused
    entities do not repeat verbatim; CSV sources are also capped at MAX_CSV_COLUMNS columns."""
    ((root, body),) = record["data"].items()
    keys = list(body)
    drop: set[str] = set()
    if use and len(keys) > 4:
        drop.add(keys[1 + (use * 3 + len(keys)) % (len(keys) - 1)])
    kept = {k: v for k, v in body.items() if k not in drop}
    while csv_source and len(flatten(kept)) > MAX_CSV_COLUMNS and len(kept) > 3:
        kept.pop(next(reversed([k for k in kept if k != keys[0]])))
    return {root: kept}


def check_record(node: object, where: str) -> None:
    if isinstance(node, dict):
        if not node:
            raise SystemExit(f"{where}: empty object")
        for key, child in node.items():
            if key.lstrip("@").lower() in YAML_11_RESERVED or not re.fullmatch(
                r"@?[A-Za-z_][A-Za-z0-9_]*", key
            ):
                raise SystemExit(f"{where}: key {key!r} is not usable in every format")
            check_record(child, f"{where}.{key}")
    elif isinstance(node, list):
        if len(node) < 2:
            raise SystemExit(f"{where}: lists need two or more items (one XML child is not a list)")
        kinds = {type(v) for v in node}
        if len(kinds) != 1:
            raise SystemExit(f"{where}: mixed list (TOML arrays must be homogeneous)")
        for i, child in enumerate(node):
            check_record(child, f"{where}[{i}]")
    elif (
        node is None
        or node == ""
        or (isinstance(node, str) and re.search(r'["\\&<>]|[^\x20-\x7e]', node))
    ):
        raise SystemExit(f"{where}: value {node!r} would not survive every format unchanged")


def nested_task(name: str, seq: int, number: int, record: dict, use: int) -> tuple[dict, str]:
    src_fmt, dst_fmt = (part.upper() for part in name.split(" to "))
    data = view(record, use, csv_source=src_fmt == "CSV")
    check_record(data, record["slug"])
    answer = render(data, dst_fmt)
    parsed = parse(answer, dst_fmt)
    xml_involved = "XML" in (src_fmt, dst_fmt)
    if dst_fmt == "XML":
        tree = parsed
    else:
        if parsed != strip_at(data):
            raise SystemExit(f"{record['slug']}: {dst_fmt} rendering does not round-trip")
        tree = data if xml_involved else strip_at(data)
    modes = ListModes(seq)
    limit = 10 + (seq * 5) % 11
    paths = select(leaf_paths(tree, (), modes), limit)
    if src_fmt == "TEXT":
        docs = record.get("docs", {})
        reqs = [
            requirement(p, value_at(tree, p), docs, seq + i, xml=dst_fmt == "XML")
            for i, p in enumerate(paths)
        ]
        query = query_generation(dst_fmt, record["task"], reqs)
    else:
        source_data = xml_shaped(data) if dst_fmt == "XML" else data
        source = render(source_data, src_fmt)
        if src_fmt in ("JSON", "YAML", "TOML") and parse(source, src_fmt) != strip_at(source_data):
            raise SystemExit(f"{record['slug']}: {src_fmt} source does not round-trip")
        query = query_conversion(src_fmt, dst_fmt, source)
    task = {
        "task_id": f"{ID_PREFIX}-{slug(name)}-{number:02d}",
        "task_name": name,
        "rendering": False,
        "query": query,
        "output_type": dst_fmt,
        "raw_output_metric": [path_string(p) for p in paths],
    }
    return task, answer


def table_task(name: str, seq: int, number: int, table: dict) -> tuple[dict, str]:
    src_fmt = name.split(" to ")[0].upper()
    check_record(table["rows"], table["slug"])
    answer = render_table(table, "CSV", seq)
    headers = list(table["rows"][0])
    if src_fmt == "TEXT":
        docs = table.get("docs", {})
        first = table["rows"][0]
        reqs = []
        for i, column in enumerate(headers):
            sense = docs.get(column) or meaning(column, (table["row"],), first[column], {})
            kind = type_phrase(first[column])
            reqs.append(
                f"The {column} column must contain {sense}, as {kind}."
                if (seq + i) % 2
                else f"Include a column named {column} holding {sense} ({kind})."
            )
        query = query_generation(
            "CSV", table["task"] + " The first row must be the header row.", reqs
        )
    else:
        query = query_conversion(src_fmt, "CSV", render_table(table, src_fmt, seq))
    task = {
        "task_id": f"{ID_PREFIX}-{slug(name)}-{number:02d}",
        "task_name": name,
        "rendering": False,
        "query": query,
        "output_type": "CSV",
        "raw_output_metric": [f"csv::{h}" for h in headers],
    }
    return task, answer


def build() -> tuple[list[dict], list[dict]]:
    tasks: list[dict] = []
    answers: list[dict] = []
    nested = table_count = 0
    for name, count in KINDS:
        for number in range(1, count + 1):
            seq = len(tasks)
            if name.endswith(" to CSV"):
                task, answer = table_task(name, seq, number, TABLES[table_count % len(TABLES)])
                table_count += 1
            else:
                record = RECORDS[nested % len(RECORDS)]
                task, answer = nested_task(name, seq, number, record, nested // len(RECORDS))
                nested += 1
            tasks.append(task)
            answers.append({"task_id": task["task_id"], "generation": answer})
    return tasks, answers


def dump(items: list[dict]) -> str:
    return json.dumps(items, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=TASKSETS,
        metavar="DIR",
        help="directory to write open150.json and open150.answers.json (default: plugin/pytest_structeval/tasksets/, where the package ships them)",
    )
    args = parser.parse_args(argv)
    tasks, answers = build()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "open150.json").write_text(dump(tasks), encoding="utf-8")
    (args.out / "open150.answers.json").write_text(dump(answers), encoding="utf-8")
    print(f"wrote {len(tasks)} tasks to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
