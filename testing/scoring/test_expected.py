from __future__ import annotations

from pytest_structeval.scoring.expected import expected_paths, query_code, requirements
from pytest_structeval.scoring.score import score_task
from pytest_structeval.tasks import Task


def _task(name: str, output: str, query: str, metric: tuple[str, ...] | None = None) -> Task:
    return Task("t1", name, query, output, metric)  # type: ignore[arg-type]


def test_task_metric_wins():
    assert expected_paths(_task("Text to JSON", "JSON", "q", ("a.b",))) == ("a.b",)


GEN = """Please output JSON code:

Task:
Summarize an ecosystem.

Feature Requirements:
1. The field name is 'name', which is a string, located directly within the 'ecosystem' object.
2. The key 'latitude' is a number, nested inside 'location', which itself is within 'ecosystem'.
3. The key 'scientific_name' is a string (e.g., 'Quercus'), located in the first element of the 'plant_species' list inside 'ecosystem'.
4. The artist field in ecosystem.rooms[0].artworks.* specifies the creator of each artwork.
5. The trait_name field within each element of the traits list inside ecosystem.species[0] must be a string.
"""


def test_requirements_split():
    assert len(requirements(GEN)) == 5


def test_generation_paths_follow_requirements():
    assert expected_paths(_task("Text to JSON", "JSON", GEN)) == (
        "ecosystem.name",
        "ecosystem.location.latitude",
        "ecosystem.plant_species[0].scientific_name",
        "ecosystem.rooms[0].artworks.*.artist",
        "ecosystem.species[0].traits.*.trait_name",
    )


def test_text_to_csv_checks_headers():
    query = "Please output CSV code:\n\nFeature Requirements:\n1. The recipe_id field must be a string.\n2. The habitat.region field is a string.\n"
    assert expected_paths(_task("Text to CSV", "CSV", query)) == (
        "csv::recipe_id",
        "csv::habitat.region",
    )


def test_csv_to_json_nests_dotted_and_indexed_headers():
    query = "Please convert the following CSV code to JSON code.\\n\\n<code>name,system.star,moons[0].name\nA,B,C\n</code>"
    assert query_code(query).startswith("name,")
    assert expected_paths(_task("CSV to JSON", "JSON", query)) == (
        "name",
        "system.star",
        "moons[0].name",
    )


def test_xml_to_json_collapses_wrappers():
    query = "convert XML to JSON.\\n\\n<code><galaxy><systems><system><n>A</n></system><system><n>B</n></system></systems><moons><moon>x</moon></moons></galaxy></code>"
    assert expected_paths(_task("XML to JSON", "JSON", query)) == (
        "galaxy.systems[0].n",
        "galaxy.systems[1].n",
        "galaxy.moons",
    )


def test_json_to_xml_keeps_root_and_checks_every_list_element():
    query = 'convert.\\n\\n<code>{"library": {"name": "L", "books": [{"t": 1}, {"t": 2}]}}</code>'
    assert expected_paths(_task("JSON to XML", "XML", query)) == (
        "library.name",
        "library.books[0].t",
        "library.books[1].t",
    )


def test_unclosed_code_tag_still_gives_the_source():
    query = "Please convert the following CSV code to JSON code.\\n\\n<code>name,system.star\nA,B\n"
    assert expected_paths(_task("CSV to JSON", "JSON", query)) == ("name", "system.star")


def test_text_to_csv_requirement_opening_with_the_column_name():
    query = "Please output CSV code:\n\nFeature Requirements:\n1. artifact_id must be a unique string.\n2. discoveryDate is the date it was found.\n"
    assert expected_paths(_task("Text to CSV", "CSV", query)) == (
        "csv::artifact_id",
        "csv::discoveryDate",
    )


def test_yaml_to_csv_uses_record_keys():
    query = "convert.\\n\\n<code>\nplanets:\n  - name: A\n    mass: 1\n  - name: B\n    mass: 2\n</code>"
    assert expected_paths(_task("YAML to CSV", "CSV", query)) == (
        "csv::name",
        "csv::mass",
        "csv_rows[0].name",
        "csv_rows[1].name",
    )


def test_csv_to_csv_checks_headers_and_every_source_row():
    query = "convert.\n\n<code>a,b\n1,2\n3,4\n</code>"
    assert expected_paths(_task("CSV to CSV", "CSV", query)) == (
        "csv::a",
        "csv::b",
        "csv_rows[0].a",
        "csv_rows[1].a",
    )


def test_single_object_to_csv_is_one_row():
    query = 'convert.\n\n<code>{"a": 1, "b": {"c": 2}}</code>'
    assert expected_paths(_task("JSON to CSV", "CSV", query)) == (
        "csv::a",
        "csv::b.c",
        "csv_rows[0].a",
    )


def test_rows_under_renamed_headers_earn_nothing():
    """A row is keyed by the header row (DictReader): rows under renamed columns are not the
    source's rows, so only a header that keeps the source's first column credits them."""
    task = _task("YAML to CSV", "CSV", "convert.\\n\\n<code>\nplanets:\n  - name: A\n  - name: B\n</code>")
    assert score_task(task, "name\nA\nB\n").score == 1.0
    renamed = score_task(task, "Name\nA\nB\n")
    assert renamed.found_paths == ()
    assert renamed.score == 0.2


def test_placeholder_root_counts_as_a_path_level_and_only_the_interval_looks_through_it():
    query = "convert.\\n\\n<code>{\"museum\": {\"name\": \"M\", \"city\": \"C\"}}</code>"
    task = _task("JSON to XML", "XML", query)
    plain = "<museum><name>M</name><city>C</city></museum>"
    assert score_task(task, plain).score == 1.0
    assert score_task(task, plain).unwrapped_key_score is None
    for wrapper in ("root", "code"):
        wrapped = score_task(task, f"<{wrapper}>{plain}</{wrapper}>")
        # xmltodict keeps the wrapper as the first path level, as the grader's parse does
        assert wrapped.score == 0.2
        assert wrapped.unwrapped_key_score == 1.0
    # a wrapper that is itself a name is structure: nothing to look through
    assert score_task(task, f"<gallery>{plain}</gallery>").unwrapped_key_score is None
    # the placeholder is looked through only around one element
    assert score_task(task, f"<root>{plain}<note/></root>").unwrapped_key_score is None


def test_csv_to_xml_has_open_root():
    query = "convert.\\n\\n<code>a,b.c\n1,2\n</code>"
    assert expected_paths(_task("CSV to XML", "XML", query)) == ("<root>.a", "<root>.b.c")
