"""Authored source records for the open StructEval-T set (``open150.json``).

Everything here was written for this project; none of it comes from the competition's
``public_150.json`` or from upstream StructEval. ``build_open150.py`` turns these records into
tasks, so adding a record (or a table) and re-running the build extends the set.

Conventions the build relies on (it checks them and stops with a message if one is broken):

* ``RECORDS``: nested entities. ``data`` is a one-key dict ``{root: {...}}``; the root becomes
  the XML root element and the first token of every key path.
  - Every list holds at least two items, all dicts or all scalars of one type (TOML arrays must
    be homogeneous; a one-item list would be a single XML child, not a list).
  - A key starting with ``@`` is an XML attribute. In JSON, YAML, TOML and CSV it is written
    without the ``@``; the path keeps the ``@`` whenever XML is involved, which upstream's
    attribute fallback lets either spelling satisfy.
  - Keys are XML names and never YAML 1.1 booleans or numbers (on, off, yes, no, 1, ...).
  - Strings are plain ASCII without double quotes, backslashes, ``&`` or ``<``: upstream's
    ``unicode_escape`` step would change such characters before parsing.
  - No ``None`` (TOML has no null) and no empty strings, lists or dicts.
* ``TABLES``: flat row sets for the CSV-output tasks. ``row`` is the XML element of one row.
* ``ITEM_TAGS``: the XML element for one item of a list whose name does not singularise by
  the plain English rules in the build (``ies`` -> ``y``, ``ches`` -> ``ch``, ``s`` -> ``""``).
* ``docs`` (optional, per record or table): short meanings for leaf keys, used in the
  Feature Requirements of Text-to-X tasks; keys without an entry get a meaning derived from
  their name.
"""

from __future__ import annotations

ITEM_TAGS: dict[str, str] = {
    "accommodation": "option",
    "aircraft": "aircraft_type",
    "cast": "cast_member",
    "crew": "picker",
    "hours": "slot",
    "incidents_last_week": "incident",
    "insurance": "policy",
    "jury": "juror",
    "league": "standing",
    "machinery": "machine",
    "on_call": "engineer",
    "on_shift": "baker",
    "open_months": "month",
    "podium": "place",
    "ports_of_call": "port",
    "produce": "crop",
    "programme": "piece",
    "reading_list": "book",
    "rolling_stock": "train_class",
    "rota": "shift",
    "schedule": "flight",
    "termini": "terminus",
    "turbines_serviced": "turbine",
    "deep_water_days": "day",
    "flour_stock": "flour",
}

RECORDS: list[dict] = [
    {
        "slug": "observatory",
        "task": "Describe a mountain-top observatory: where it is, the telescopes it runs and the instruments on each, and its most recent observing nights.",
        "docs": {
            "aperture_m": "the diameter of the primary mirror in metres",
            "seeing_arcsec": "the median atmospheric seeing in arcseconds",
        },
        "data": {
            "observatory": {
                "name": "Cerro Alto Observatory",
                "founded": 1987,
                "location": {
                    "country": "Chile",
                    "region": "Coquimbo",
                    "altitude_m": 2650,
                    "latitude": -30.24,
                    "longitude": -70.73,
                },
                "telescopes": [
                    {
                        "@id": "CA-41",
                        "name": "Vicuna Reflector",
                        "aperture_m": 4.1,
                        "mount": "altazimuth",
                        "instruments": ["spectrograph", "infrared camera"],
                    },
                    {
                        "@id": "CA-18",
                        "name": "Elqui Survey Telescope",
                        "aperture_m": 1.8,
                        "mount": "equatorial",
                        "instruments": ["wide-field imager", "photometer"],
                    },
                ],
                "director": {"name": "Dr. Paula Ortiz", "email": "p.ortiz@cerroalto.example"},
                "recent_nights": [
                    {"date": "2024-05-14", "clear_hours": 8.5, "seeing_arcsec": 0.7},
                    {"date": "2024-05-15", "clear_hours": 3.0, "seeing_arcsec": 1.2},
                ],
            }
        },
    },
    {
        "slug": "library-branch",
        "task": "Capture the details of a neighbourhood public library branch, including its address, opening hours, the collections it holds and its upcoming events.",
        "data": {
            "library": {
                "branch_name": "Riverside Branch Library",
                "branch_code": "RSB-07",
                "address": {
                    "street": "48 Millrace Lane",
                    "city": "Portsmouth",
                    "postcode": "PO1 3HT",
                },
                "opening_hours": {
                    "weekdays": "09:00-19:00",
                    "saturday": "10:00-16:00",
                    "sunday": "closed",
                },
                "collections": [
                    {"@id": "fic", "name": "Adult Fiction", "items": 18250, "floor": 1},
                    {"@id": "kid", "name": "Children and Young Adults", "items": 9400, "floor": 0},
                    {"@id": "loc", "name": "Local History Archive", "items": 2120, "floor": 2},
                ],
                "events": [
                    {
                        "title": "Rhyme Time",
                        "weekday": "Tuesday",
                        "audience": "toddlers",
                        "free": True,
                    },
                    {
                        "title": "Family History Drop-in",
                        "weekday": "Thursday",
                        "audience": "adults",
                        "free": False,
                    },
                ],
            }
        },
    },
    {
        "slug": "recipe-risotto",
        "task": "Write down a recipe for a lemon and asparagus risotto with its ingredients, ordered steps, nutrition per serving and tags.",
        "data": {
            "recipe": {
                "title": "Lemon and Asparagus Risotto",
                "servings": 4,
                "author": {"name": "Marta Bellini", "website": "bellinikitchen.example"},
                "timing": {"prep_minutes": 15, "cook_minutes": 30},
                "ingredients": [
                    {"name": "arborio rice", "quantity": 320, "unit": "g"},
                    {"name": "asparagus", "quantity": 250, "unit": "g"},
                    {"name": "vegetable stock", "quantity": 1.2, "unit": "l"},
                    {"name": "parmesan", "quantity": 60, "unit": "g"},
                ],
                "steps": [
                    {
                        "order": 1,
                        "instruction": "Toast the rice in butter for two minutes.",
                        "minutes": 2,
                    },
                    {
                        "order": 2,
                        "instruction": "Add the stock a ladle at a time, stirring often.",
                        "minutes": 20,
                    },
                    {
                        "order": 3,
                        "instruction": "Fold in asparagus, parmesan and lemon zest.",
                        "minutes": 5,
                    },
                ],
                "nutrition": {"calories": 465, "protein_g": 14.5, "fat_g": 12.0},
                "tags": ["vegetarian", "spring", "one-pot"],
            }
        },
    },
    {
        "slug": "orchestra-tour",
        "task": "Summarise a chamber orchestra's autumn tour: the ensemble, its conductor, each concert with its programme, and the tour sponsors.",
        "data": {
            "tour": {
                "name": "Northern Lights Autumn Tour",
                "year": 2025,
                "ensemble": {
                    "name": "Baltic Chamber Orchestra",
                    "musicians": 38,
                    "home_city": "Riga",
                },
                "conductor": {"name": "Ilze Kalnina", "nationality": "Latvian"},
                "concerts": [
                    {
                        "city": "Tallinn",
                        "venue": "Estonia Concert Hall",
                        "date": "2025-10-03",
                        "programme": ["Sibelius Andante Festivo", "Mozart Symphony No. 29"],
                    },
                    {
                        "city": "Helsinki",
                        "venue": "Musiikkitalo",
                        "date": "2025-10-06",
                        "programme": ["Part Fratres", "Grieg Holberg Suite"],
                    },
                    {
                        "city": "Stockholm",
                        "venue": "Berwaldhallen",
                        "date": "2025-10-09",
                        "programme": ["Nielsen Little Suite", "Haydn Symphony No. 44"],
                    },
                ],
                "sponsors": ["Nordic Culture Fund", "Riga City Council"],
            }
        },
    },
    {
        "slug": "shipping-manifest",
        "task": "Record the cargo manifest of a container ship on one voyage: the vessel, its ports of call, the containers aboard and the officers responsible.",
        "data": {
            "manifest": {
                "voyage_number": "NV-2291E",
                "vessel": {
                    "name": "MV Nordic Heron",
                    "imo_number": 9482716,
                    "flag": "Norway",
                    "gross_tonnage": 41200,
                },
                "ports_of_call": ["Rotterdam", "Hamburg", "Gdansk"],
                "containers": [
                    {
                        "@number": "MSKU 481220-3",
                        "contents": "machine parts",
                        "weight_t": 18.4,
                        "hazardous": False,
                    },
                    {
                        "@number": "TGHU 902114-7",
                        "contents": "lithium batteries",
                        "weight_t": 11.9,
                        "hazardous": True,
                    },
                    {
                        "@number": "CMAU 330871-1",
                        "contents": "frozen fish",
                        "weight_t": 24.1,
                        "hazardous": False,
                    },
                ],
                "officers": [
                    {"role": "master", "name": "Capt. Henrik Dahl"},
                    {"role": "chief officer", "name": "Aisha Mensah"},
                ],
                "departure": {"port": "Rotterdam", "date": "2024-11-02", "time_utc": "06:30"},
            }
        },
    },
    {
        "slug": "clinic",
        "task": "Describe a community health clinic, its departments with their heads and rooms, its hours, and the insurers it accepts.",
        "data": {
            "clinic": {
                "name": "Harbourview Community Clinic",
                "registration": "CQC-1-448201",
                "contact": {"phone": "+44 20 7946 0312", "email": "frontdesk@harbourview.example"},
                "departments": [
                    {
                        "name": "General Practice",
                        "head": "Dr. Samuel Okafor",
                        "rooms": [101, 102, 103],
                    },
                    {"name": "Physiotherapy", "head": "Claire Dunmore", "rooms": [210, 211]},
                    {"name": "Pediatrics", "head": "Dr. Yuki Tanaka", "rooms": [115, 116]},
                ],
                "hours": [
                    {"days": "Monday to Friday", "open": "08:00", "close": "18:30"},
                    {"days": "Saturday", "open": "09:00", "close": "13:00"},
                ],
                "accepted_insurers": ["Bupa", "AXA Health", "Vitality"],
                "walk_in": True,
            }
        },
    },
    {
        "slug": "rail-network",
        "task": "Lay out a regional rail network: its operator, each line with its stations, and the trains in service.",
        "data": {
            "network": {
                "operator": "Valley Lines Rail",
                "region": "South Wales",
                "lines": [
                    {
                        "@code": "VL1",
                        "name": "Rhondda Line",
                        "length_km": 37.2,
                        "stations": [
                            {"name": "Cardiff Central", "step_free": True},
                            {"name": "Pontypridd", "step_free": True},
                            {"name": "Treherbert", "step_free": False},
                        ],
                    },
                    {
                        "@code": "VL2",
                        "name": "Merthyr Line",
                        "length_km": 38.9,
                        "stations": [
                            {"name": "Cardiff Queen Street", "step_free": True},
                            {"name": "Abercynon", "step_free": False},
                            {"name": "Merthyr Tydfil", "step_free": True},
                        ],
                    },
                ],
                "rolling_stock": [
                    {"class_name": "Class 756", "units": 24, "traction": "tri-mode"},
                    {"class_name": "Class 398", "units": 36, "traction": "tram-train"},
                ],
                "control_centre": {"town": "Taffs Well", "opened": 2023},
            }
        },
    },
    {
        "slug": "bakery-inventory",
        "task": "Produce the morning stock sheet of an artisan bakery: shop details, the breads baked today, flour supplies and the staff on shift.",
        "data": {
            "bakery": {
                "shop_name": "Crumb and Crust",
                "date": "2024-09-21",
                "address": {"street": "9 Weaver Street", "city": "Bristol"},
                "breads": [
                    {
                        "name": "sourdough boule",
                        "loaves": 42,
                        "price_gbp": 4.5,
                        "allergens": ["wheat", "rye"],
                    },
                    {
                        "name": "rye and caraway",
                        "loaves": 18,
                        "price_gbp": 4.2,
                        "allergens": ["rye", "wheat"],
                    },
                    {
                        "name": "seeded spelt",
                        "loaves": 24,
                        "price_gbp": 4.8,
                        "allergens": ["spelt", "sesame"],
                    },
                ],
                "flour_stock": [
                    {"type": "strong white", "sacks": 12, "supplier": "Shipton Mill"},
                    {"type": "dark rye", "sacks": 4, "supplier": "Gilchesters"},
                ],
                "on_shift": ["Tom Avery", "Priya Nair", "Jonas Weber"],
            }
        },
    },
    {
        "slug": "hiking-trail",
        "task": "Document a long-distance hiking trail with its stages, overnight huts, difficulty and the maintaining association.",
        "data": {
            "trail": {
                "name": "Alta Via dei Larici",
                "country": "Italy",
                "total_km": 64.5,
                "difficulty": "moderate",
                "stages": [
                    {
                        "number": 1,
                        "start": "Passo Rolle",
                        "end": "Rifugio Mulaz",
                        "km": 14.2,
                        "ascent_m": 1120,
                    },
                    {
                        "number": 2,
                        "start": "Rifugio Mulaz",
                        "end": "Rifugio Pedrotti",
                        "km": 11.8,
                        "ascent_m": 860,
                    },
                    {
                        "number": 3,
                        "start": "Rifugio Pedrotti",
                        "end": "San Martino",
                        "km": 16.0,
                        "ascent_m": 540,
                    },
                ],
                "huts": [
                    {
                        "name": "Rifugio Mulaz",
                        "beds": 64,
                        "open_months": ["June", "July", "August", "September"],
                    },
                    {
                        "name": "Rifugio Pedrotti",
                        "beds": 80,
                        "open_months": ["July", "August", "September"],
                    },
                ],
                "maintainer": {"association": "CAI Trento", "phone": "+39 0461 981871"},
            }
        },
    },
    {
        "slug": "exhibition",
        "task": "Describe a temporary exhibition at a design museum: curator, dates, galleries with the works shown in them, and ticket prices.",
        "data": {
            "exhibition": {
                "title": "Chairs of the Century",
                "museum": "Helsinki Design Museum",
                "dates": {"opening": "2025-02-14", "closing": "2025-06-29"},
                "curator": {"name": "Aino Virtanen", "department": "Furniture and Interiors"},
                "galleries": [
                    {
                        "name": "Gallery North",
                        "theme": "Bentwood",
                        "works": [
                            {"title": "Paimio Chair", "designer": "Alvar Aalto", "year": 1932},
                            {"title": "Chair No. 14", "designer": "Michael Thonet", "year": 1859},
                        ],
                    },
                    {
                        "name": "Gallery South",
                        "theme": "Plastics",
                        "works": [
                            {"title": "Ball Chair", "designer": "Eero Aarnio", "year": 1963},
                            {"title": "Panton Chair", "designer": "Verner Panton", "year": 1967},
                        ],
                    },
                ],
                "tickets": {"adult_eur": 16.0, "student_eur": 8.0, "under_18_free": True},
            }
        },
    },
    {
        "slug": "course-catalog",
        "task": "Describe a university course offering for one term: the course, the lecturer, weekly sessions, assessments and reading list.",
        "data": {
            "course": {
                "code": "GEOG2041",
                "title": "Coastal Geomorphology",
                "credits": 15,
                "term": "Spring 2025",
                "lecturer": {
                    "name": "Dr. Fiona MacLeod",
                    "office": "Geography Building 3.14",
                    "email": "f.macleod@uni.example",
                },
                "sessions": [
                    {"type": "lecture", "weekday": "Monday", "start": "10:00", "room": "LT2"},
                    {
                        "type": "fieldwork",
                        "weekday": "Thursday",
                        "start": "13:00",
                        "room": "minibus bay",
                    },
                ],
                "assessments": [
                    {"name": "field report", "weight_pct": 40, "due": "2025-03-21"},
                    {"name": "final exam", "weight_pct": 60, "due": "2025-05-12"},
                ],
                "reading_list": [
                    "Coastal Systems by Masselink",
                    "Beaches and Coasts by Davis",
                    "Rock Coast Geomorphology by Trenhaile",
                ],
            }
        },
    },
    {
        "slug": "software-release",
        "task": "Write the release notes of a software library version: the release, its components, fixed issues and the contributors involved.",
        "data": {
            "release": {
                "project": "tidewater",
                "version": "3.2.0",
                "date": "2025-01-28",
                "license": "MIT",
                "components": [
                    {"name": "tidewater-core", "version": "3.2.0", "changed": True},
                    {"name": "tidewater-cli", "version": "1.9.4", "changed": False},
                    {"name": "tidewater-plugins", "version": "0.8.1", "changed": True},
                ],
                "fixed_issues": [
                    {
                        "@number": 1182,
                        "title": "Crash when reading empty parquet files",
                        "severity": "high",
                    },
                    {"@number": 1207, "title": "Timezone lost on round trip", "severity": "medium"},
                ],
                "contributors": ["hanna-k", "oduya", "mpetrov", "lin-wei"],
                "compatibility": {"python_min": "3.10", "python_max": "3.13"},
            }
        },
    },
    {
        "slug": "weather-station",
        "task": "Report a day of readings from an automatic weather station: the station, daily summary, hourly observations and any alerts issued.",
        "data": {
            "station": {
                "id": "WS-KIR-04",
                "name": "Kirkwall Airport AWS",
                "position": {"latitude": 58.95, "longitude": -2.9, "elevation_m": 21},
                "summary": {
                    "date": "2024-12-03",
                    "max_temp_c": 7.4,
                    "min_temp_c": 2.1,
                    "rain_mm": 11.6,
                    "max_gust_kmh": 96,
                },
                "observations": [
                    {"time": "06:00", "temp_c": 2.4, "wind_kmh": 41, "wind_dir": "SW"},
                    {"time": "12:00", "temp_c": 6.8, "wind_kmh": 63, "wind_dir": "W"},
                    {"time": "18:00", "temp_c": 5.1, "wind_kmh": 55, "wind_dir": "WNW"},
                ],
                "alerts": [
                    {"level": "yellow", "hazard": "wind", "valid_until": "2024-12-03T21:00"},
                    {"level": "yellow", "hazard": "rain", "valid_until": "2024-12-04T06:00"},
                ],
            }
        },
    },
    {
        "slug": "film-festival",
        "task": "Outline a small documentary film festival: venue, festival dates, the jury, the competition films and the award categories.",
        "data": {
            "festival": {
                "name": "Tidelines Documentary Festival",
                "edition": 12,
                "venue": {"name": "Harbour Arts Cinema", "city": "Galway", "screens": 3},
                "dates": {"start": "2025-04-10", "end": "2025-04-13"},
                "jury": [
                    {"name": "Orla Byrne", "profession": "editor"},
                    {"name": "Tomasz Wrobel", "profession": "cinematographer"},
                    {"name": "Nadia Haddad", "profession": "critic"},
                ],
                "films": [
                    {
                        "title": "Salt Roads",
                        "director": "Ines Carvalho",
                        "runtime_min": 88,
                        "country": "Portugal",
                    },
                    {
                        "title": "The Last Lighthouse Keeper",
                        "director": "Eamon Keane",
                        "runtime_min": 74,
                        "country": "Ireland",
                    },
                ],
                "awards": ["Best Feature", "Best Short", "Audience Prize"],
            }
        },
    },
    {
        "slug": "apiary",
        "task": "Keep the inspection record of an apiary: the beekeeper, its location, every hive with its latest inspection, and the honey harvested this season.",
        "data": {
            "apiary": {
                "name": "Hawthorn Hill Apiary",
                "beekeeper": {
                    "name": "Gwen Pryce",
                    "association": "Shropshire Beekeepers",
                    "years_experience": 11,
                },
                "location": {"parish": "Church Stretton", "grid_ref": "SO 4593 9412"},
                "hives": [
                    {
                        "@label": "H1",
                        "type": "National",
                        "queen_marked": True,
                        "last_inspection": {
                            "date": "2024-07-02",
                            "brood_frames": 7,
                            "temper": "calm",
                        },
                    },
                    {
                        "@label": "H2",
                        "type": "WBC",
                        "queen_marked": False,
                        "last_inspection": {
                            "date": "2024-07-02",
                            "brood_frames": 5,
                            "temper": "defensive",
                        },
                    },
                    {
                        "@label": "H3",
                        "type": "National",
                        "queen_marked": True,
                        "last_inspection": {
                            "date": "2024-06-28",
                            "brood_frames": 8,
                            "temper": "calm",
                        },
                    },
                ],
                "harvest": {
                    "season": 2024,
                    "honey_kg": 61.5,
                    "varieties": ["spring blossom", "summer wildflower"],
                },
            }
        },
    },
    {
        "slug": "conference",
        "task": "Describe a one-day technical conference: organiser, venue, the talks in each track, and sponsorship tiers.",
        "data": {
            "conference": {
                "name": "Data Plumbing Day",
                "date": "2025-03-07",
                "organiser": {"name": "Leeds Data Guild", "contact": "hello@datapl.example"},
                "venue": {"name": "Aire Conference Centre", "city": "Leeds", "capacity": 420},
                "tracks": [
                    {
                        "name": "Pipelines",
                        "room": "Hall A",
                        "talks": [
                            {
                                "title": "Backfills Without Tears",
                                "speaker": "Rosa Lindqvist",
                                "minutes": 30,
                            },
                            {
                                "title": "Idempotent Ingestion",
                                "speaker": "Kwame Asante",
                                "minutes": 45,
                            },
                        ],
                    },
                    {
                        "name": "Storage",
                        "room": "Hall B",
                        "talks": [
                            {
                                "title": "Compaction Strategies",
                                "speaker": "Mei Chen",
                                "minutes": 30,
                            },
                            {
                                "title": "Columnar Formats in Practice",
                                "speaker": "Diego Alvarez",
                                "minutes": 30,
                            },
                        ],
                    },
                ],
                "sponsor_tiers": ["gold", "silver", "community"],
            }
        },
    },
    {
        "slug": "vineyard-harvest",
        "task": "Record the grape harvest of a family vineyard: the estate, each parcel picked with its grape and yield, the harvest crew and the cellar notes.",
        "data": {
            "harvest": {
                "estate": "Domaine des Trois Chenes",
                "vintage": 2024,
                "appellation": "Saumur-Champigny",
                "parcels": [
                    {
                        "name": "Les Pentes",
                        "grape": "Cabernet Franc",
                        "hectares": 3.2,
                        "yield_hl_per_ha": 48.0,
                        "picked": "2024-10-04",
                    },
                    {
                        "name": "Le Clos",
                        "grape": "Cabernet Franc",
                        "hectares": 1.6,
                        "yield_hl_per_ha": 41.5,
                        "picked": "2024-10-07",
                    },
                    {
                        "name": "La Source",
                        "grape": "Chenin Blanc",
                        "hectares": 2.1,
                        "yield_hl_per_ha": 52.0,
                        "picked": "2024-09-30",
                    },
                ],
                "crew": ["Mathis", "Lea", "Karim", "Oksana", "Benoit"],
                "cellar": {
                    "fermentation": "stainless steel",
                    "ageing_months": 14,
                    "oak_share_pct": 30,
                },
            }
        },
    },
    {
        "slug": "marathon",
        "task": "Present the results of a city marathon: race information, course details, the podium finishers of each category and the aid stations.",
        "data": {
            "race": {
                "name": "Lakeshore City Marathon",
                "date": "2024-10-20",
                "course": {"distance_km": 42.195, "certified": True, "elevation_gain_m": 118},
                "finishers": {"total": 6841, "women": 2903, "men": 3938},
                "podium": [
                    {
                        "category": "women",
                        "runner": "Agnes Chebet",
                        "time": "2:24:51",
                        "club": "Iten Harriers",
                    },
                    {
                        "category": "men",
                        "runner": "Marco Rinaldi",
                        "time": "2:09:37",
                        "club": "Atletica Lecco",
                    },
                ],
                "aid_stations": [
                    {"km": 5, "supplies": ["water", "electrolyte"]},
                    {"km": 21, "supplies": ["water", "gels", "bananas"]},
                    {"km": 35, "supplies": ["water", "electrolyte", "sponges"]},
                ],
            }
        },
    },
    {
        "slug": "data-center",
        "task": "Describe the inventory of one data center hall: the facility, its power feeds, the server racks with their devices, and the on-call engineers.",
        "data": {
            "datacenter": {
                "site": "FRA-3",
                "hall": "Hall B",
                "power": {"feeds": 2, "capacity_kw": 1200, "ups_minutes": 12},
                "racks": [
                    {
                        "@id": "B-01",
                        "row": "B",
                        "position": 1,
                        "devices": [
                            {"hostname": "db-fra3-01", "model": "R750", "units": 2},
                            {"hostname": "db-fra3-02", "model": "R750", "units": 2},
                        ],
                    },
                    {
                        "@id": "B-02",
                        "row": "B",
                        "position": 2,
                        "devices": [
                            {"hostname": "sw-fra3-core1", "model": "N9K-C93180", "units": 1},
                            {"hostname": "fw-fra3-01", "model": "PA-5430", "units": 3},
                        ],
                    },
                ],
                "on_call": [
                    {"name": "Lukas Brandt", "phone": "+49 69 2019 4410"},
                    {"name": "Selin Arslan", "phone": "+49 69 2019 4423"},
                ],
            }
        },
    },
    {
        "slug": "greenhouse",
        "task": "Describe a botanical garden's tropical glasshouse: climate settings, the plant beds with their species, volunteers and the watering schedule.",
        "data": {
            "glasshouse": {
                "name": "Palm House",
                "garden": "Fenwick Botanical Garden",
                "climate": {"day_temp_c": 26.0, "night_temp_c": 19.0, "humidity_pct": 80},
                "beds": [
                    {
                        "@number": 1,
                        "zone": "understorey",
                        "plants": [
                            {
                                "latin_name": "Calathea lutea",
                                "common_name": "cigar plant",
                                "count": 14,
                            },
                            {
                                "latin_name": "Alocasia macrorrhizos",
                                "common_name": "giant taro",
                                "count": 3,
                            },
                        ],
                    },
                    {
                        "@number": 2,
                        "zone": "canopy",
                        "plants": [
                            {
                                "latin_name": "Ceiba pentandra",
                                "common_name": "kapok tree",
                                "count": 1,
                            },
                            {
                                "latin_name": "Musa basjoo",
                                "common_name": "hardy banana",
                                "count": 5,
                            },
                        ],
                    },
                ],
                "volunteers": ["Ruth Ellison", "Dev Patel", "Hamid Rahimi"],
                "watering": {"mist_interval_min": 45, "deep_water_days": ["Monday", "Thursday"]},
            }
        },
    },
    {
        "slug": "school-timetable",
        "task": "Write out one class's weekly timetable at a secondary school: class details, form tutor, the lessons for each day and the clubs the class attends.",
        "data": {
            "timetable": {
                "school": "Abbeyfield Academy",
                "class_name": "9C",
                "form_tutor": {"name": "Mr. Idris Lewis", "room": "S12"},
                "days": [
                    {
                        "weekday": "Monday",
                        "lessons": [
                            {"period": 1, "subject": "Mathematics", "teacher": "Ms. Grant"},
                            {"period": 2, "subject": "Chemistry", "teacher": "Dr. Akande"},
                        ],
                    },
                    {
                        "weekday": "Tuesday",
                        "lessons": [
                            {"period": 1, "subject": "English", "teacher": "Mr. Howe"},
                            {"period": 2, "subject": "Geography", "teacher": "Ms. Varga"},
                        ],
                    },
                ],
                "clubs": [
                    {"name": "Robotics", "day": "Wednesday"},
                    {"name": "Choir", "day": "Friday"},
                ],
            }
        },
    },
    {
        "slug": "farm-coop",
        "task": "Describe an agricultural cooperative: its members' farms with their produce, the shared machinery and this year's delivery contracts.",
        "data": {
            "cooperative": {
                "name": "Upper Dale Growers Cooperative",
                "founded": 1974,
                "farms": [
                    {
                        "name": "Low Fold Farm",
                        "hectares": 84.0,
                        "produce": ["barley", "potatoes"],
                        "organic": False,
                    },
                    {
                        "name": "Crag End",
                        "hectares": 52.5,
                        "produce": ["oats", "lamb"],
                        "organic": True,
                    },
                    {
                        "name": "Beck House",
                        "hectares": 120.0,
                        "produce": ["wheat", "oilseed rape"],
                        "organic": False,
                    },
                ],
                "machinery": [
                    {"item": "combine harvester", "make": "Claas", "shared_days": 40},
                    {"item": "grain dryer", "make": "Alvan Blanch", "shared_days": 65},
                ],
                "contracts": [
                    {"buyer": "Dales Maltings", "crop": "barley", "tonnes": 310},
                    {"buyer": "Moorland Mill", "crop": "oats", "tonnes": 95},
                ],
            }
        },
    },
    {
        "slug": "flight-route",
        "task": "Describe a scheduled airline route: the airline, the airports at each end, the weekly schedule of flights and the aircraft types used.",
        "data": {
            "route": {
                "flight_number": "NX 418",
                "airline": {"name": "Nordaxis Air", "iata": "NX", "alliance": "none"},
                "origin": {"airport": "Bergen Flesland", "iata": "BGO", "terminal": "Main"},
                "destination": {"airport": "Aberdeen Dyce", "iata": "ABZ", "terminal": "Main"},
                "schedule": [
                    {"weekday": "Monday", "departs": "07:15", "arrives": "07:50"},
                    {"weekday": "Wednesday", "departs": "07:15", "arrives": "07:50"},
                    {"weekday": "Friday", "departs": "16:40", "arrives": "17:15"},
                ],
                "aircraft": [
                    {"type": "ATR 72-600", "seats": 70},
                    {"type": "Dash 8-400", "seats": 78},
                ],
                "distance_km": 497,
            }
        },
    },
    {
        "slug": "hotel-booking",
        "task": "Capture a group booking at a hotel: the hotel, the lead guest, each room booked with its occupants, extras ordered and the payment terms.",
        "data": {
            "booking": {
                "reference": "HB-55310",
                "hotel": {"name": "Hotel Alpenblick", "town": "Grindelwald", "stars": 4},
                "lead_guest": {
                    "name": "Sofia Marquez",
                    "email": "s.marquez@mail.example",
                    "phone": "+34 611 204 877",
                },
                "stay": {"check_in": "2025-01-18", "check_out": "2025-01-25", "nights": 7},
                "rooms": [
                    {
                        "@number": 214,
                        "type": "double",
                        "guests": ["Sofia Marquez", "Pablo Marquez"],
                    },
                    {"@number": 215, "type": "twin", "guests": ["Lucia Marquez", "Elena Ruiz"]},
                ],
                "extras": [
                    {"item": "half board", "price_chf": 55.0},
                    {"item": "ski locker", "price_chf": 12.0},
                ],
                "payment": {"deposit_chf": 800.0, "balance_due": "2024-12-18", "method": "card"},
            }
        },
    },
    {
        "slug": "bike-share",
        "task": "Describe a city bike-sharing scheme: the operator, pricing plans, docking stations with their capacity, and last month's usage.",
        "data": {
            "bikeshare": {
                "city": "Ghent",
                "operator": {"name": "Velo Gent", "support_line": "+32 9 266 12 00"},
                "plans": [
                    {"name": "day pass", "price_eur": 5.0, "minutes_included": 30},
                    {"name": "annual", "price_eur": 60.0, "minutes_included": 45},
                ],
                "stations": [
                    {"@id": "GNT-001", "name": "Sint-Pietersstation", "docks": 40, "ebikes": True},
                    {"@id": "GNT-014", "name": "Korenmarkt", "docks": 24, "ebikes": False},
                    {"@id": "GNT-027", "name": "Dampoort", "docks": 30, "ebikes": True},
                ],
                "usage_last_month": {
                    "trips": 48210,
                    "average_minutes": 14.2,
                    "busiest_day": "2024-06-14",
                },
            }
        },
    },
    {
        "slug": "fire-station",
        "task": "Describe a fire station: its watch structure, appliances with their crews, and the incidents attended last week.",
        "data": {
            "fire_station": {
                "name": "Kingsmead Fire Station",
                "station_number": 31,
                "service": "Avon Fire and Rescue",
                "appliances": [
                    {"callsign": "Kingsmead 31P1", "type": "pump", "crew_size": 5, "water_l": 1800},
                    {
                        "callsign": "Kingsmead 31A1",
                        "type": "aerial ladder platform",
                        "crew_size": 2,
                        "water_l": 0,
                    },
                ],
                "watches": [
                    {"colour": "red", "manager": "WM Dean Parfitt"},
                    {"colour": "blue", "manager": "WM Helen Shaw"},
                ],
                "incidents_last_week": [
                    {"type": "kitchen fire", "date": "2024-08-12", "duration_min": 55},
                    {"type": "road traffic collision", "date": "2024-08-14", "duration_min": 80},
                ],
            }
        },
    },
    {
        "slug": "podcast",
        "task": "Describe a history podcast: its hosts, publishing details, recent episodes with their guests, and where it is distributed.",
        "data": {
            "podcast": {
                "title": "Footnotes of the Empire",
                "language": "en",
                "hosts": [
                    {"name": "Ruth Abernethy", "role": "historian"},
                    {"name": "Callum Reid", "role": "producer"},
                ],
                "publishing": {
                    "frequency": "weekly",
                    "release_day": "Wednesday",
                    "explicit": False,
                },
                "episodes": [
                    {
                        "number": 87,
                        "title": "The Salt Tax",
                        "minutes": 52,
                        "guests": ["Prof. Anil Mehra", "Dr. Jo Field"],
                    },
                    {
                        "number": 88,
                        "title": "Coffee Houses of London",
                        "minutes": 47,
                        "guests": ["Dr. Hattie Moss", "Ben Carter"],
                    },
                ],
                "platforms": ["RSS", "Spotify", "Apple Podcasts"],
            }
        },
    },
    {
        "slug": "board-game-club",
        "task": "Describe a board game club: where and when it meets, its game library, the members and the current league standings.",
        "data": {
            "club": {
                "name": "Meeple Cellar",
                "meeting": {
                    "venue": "The Crown and Anchor",
                    "weekday": "Thursday",
                    "start": "19:00",
                },
                "games": [
                    {"title": "Brass Birmingham", "players_max": 4, "play_minutes": 120},
                    {"title": "Azul", "players_max": 4, "play_minutes": 40},
                    {"title": "Root", "players_max": 6, "play_minutes": 90},
                ],
                "league": [
                    {"member": "Nadine", "points": 42, "wins": 6},
                    {"member": "Oscar", "points": 37, "wins": 5},
                ],
                "membership": {"fee_gbp": 3.0, "members": 28},
            }
        },
    },
    {
        "slug": "coffee-roastery",
        "task": "Describe the current offer of a specialty coffee roastery: the roastery, each coffee with its origin and tasting notes, and the roasting schedule.",
        "data": {
            "roastery": {
                "name": "Ember and Bean Roasters",
                "city": "Utrecht",
                "coffees": [
                    {
                        "name": "Kochere",
                        "origin": {
                            "country": "Ethiopia",
                            "region": "Yirgacheffe",
                            "altitude_m": 1950,
                        },
                        "process": "washed",
                        "notes": ["jasmine", "bergamot"],
                    },
                    {
                        "name": "La Esperanza",
                        "origin": {"country": "Colombia", "region": "Huila", "altitude_m": 1700},
                        "process": "honey",
                        "notes": ["red apple", "panela"],
                    },
                ],
                "roasting": {
                    "machine": "Loring S15",
                    "days": ["Tuesday", "Friday"],
                    "batch_kg": 15.0,
                },
                "wholesale": True,
            }
        },
    },
    {
        "slug": "park-maintenance",
        "task": "Describe the maintenance plan of a city park: the park, its work zones, the tasks scheduled in each zone, and the contractors used.",
        "data": {
            "park": {
                "name": "Victoria Meadows Park",
                "area_ha": 22.4,
                "zones": [
                    {
                        "name": "Rose Garden",
                        "tasks": [
                            {"activity": "deadheading", "frequency": "weekly"},
                            {"activity": "mulching", "frequency": "twice yearly"},
                        ],
                    },
                    {
                        "name": "Boating Lake",
                        "tasks": [
                            {"activity": "litter removal", "frequency": "daily"},
                            {"activity": "weed clearance", "frequency": "monthly"},
                        ],
                    },
                ],
                "contractors": [
                    {
                        "company": "GreenEdge Grounds",
                        "service": "mowing",
                        "contract_end": "2026-03-31",
                    },
                    {
                        "company": "ArborCare",
                        "service": "tree surgery",
                        "contract_end": "2025-09-30",
                    },
                ],
                "manager": {"name": "Beth Olawale", "phone": "01632 960 441"},
            }
        },
    },
    {
        "slug": "aquarium",
        "task": "Describe a public aquarium: the building, its display tanks with their water conditions and animals, and the daily feeding talks.",
        "data": {
            "aquarium": {
                "name": "North Sea Discovery Aquarium",
                "city": "Esbjerg",
                "tanks": [
                    {
                        "@id": "T1",
                        "name": "Kelp Forest",
                        "volume_l": 450000,
                        "water": {"temp_c": 11.5, "salinity_ppt": 33.0},
                        "animals": ["Atlantic cod", "wolffish", "edible crab"],
                    },
                    {
                        "@id": "T2",
                        "name": "Harbour Touch Pool",
                        "volume_l": 8000,
                        "water": {"temp_c": 13.0, "salinity_ppt": 31.5},
                        "animals": ["starfish", "sea urchin", "hermit crab"],
                    },
                ],
                "feeding_talks": [
                    {"time": "11:00", "tank": "Kelp Forest", "presenter": "Mads"},
                    {"time": "14:30", "tank": "Seal Lagoon", "presenter": "Freja"},
                ],
                "annual_visitors": 310000,
            }
        },
    },
    {
        "slug": "ski-resort",
        "task": "Give the daily snow report of a ski resort: snow conditions, lifts and whether they run, pistes by difficulty, and ski pass prices.",
        "data": {
            "resort": {
                "name": "Val Serena",
                "report_date": "2025-02-08",
                "snow": {"base_cm": 145, "summit_cm": 230, "new_snow_cm": 18, "avalanche_risk": 3},
                "lifts": [
                    {"name": "Serena Gondola", "type": "gondola", "operating": True},
                    {"name": "Costa Chair", "type": "six-seat chair", "operating": True},
                    {"name": "Ghiacciaio T-bar", "type": "drag lift", "operating": False},
                ],
                "pistes": {"blue_open": 14, "red_open": 11, "black_open": 3},
                "passes": [
                    {"type": "day", "adult_eur": 58.0, "child_eur": 39.0},
                    {"type": "six days", "adult_eur": 298.0, "child_eur": 199.0},
                ],
            }
        },
    },
    {
        "slug": "theatre-production",
        "task": "Describe a touring theatre production: the play, the creative team, the cast with their roles, and the tour venues.",
        "data": {
            "production": {
                "play": "The Lighthouse at Skerry Point",
                "playwright": "Moira Galbraith",
                "company": "Strathearn Touring Theatre",
                "creative_team": {
                    "director": "Ewan Baird",
                    "designer": "Lena Hoffmann",
                    "composer": "Rafael Ortega",
                },
                "cast": [
                    {"actor": "Niamh Quinn", "role": "Elspeth", "understudy": "Kirsty Rae"},
                    {"actor": "Graham Fyfe", "role": "Old Tam", "understudy": "Douglas Hay"},
                    {"actor": "Omar Sheikh", "role": "The Inspector", "understudy": "Douglas Hay"},
                ],
                "venues": [
                    {"theatre": "Eden Court", "town": "Inverness", "nights": 4},
                    {"theatre": "Perth Theatre", "town": "Perth", "nights": 5},
                ],
                "running_time_min": 135,
            }
        },
    },
    {
        "slug": "bookstore-order",
        "task": "Record a customer order at an independent bookshop: the customer, the books ordered with their details, delivery and payment.",
        "data": {
            "order": {
                "order_id": "WB-20931",
                "placed": "2024-11-29",
                "customer": {
                    "name": "Harriet Lowe",
                    "email": "hlowe@post.example",
                    "loyalty_member": True,
                },
                "items": [
                    {
                        "isbn": "9780141439518",
                        "title": "Pride and Prejudice",
                        "format": "paperback",
                        "quantity": 1,
                        "price_gbp": 8.99,
                    },
                    {
                        "isbn": "9780008435776",
                        "title": "The Thursday Murder Club",
                        "format": "hardback",
                        "quantity": 2,
                        "price_gbp": 16.99,
                    },
                ],
                "delivery": {
                    "method": "click and collect",
                    "shop": "Wivenhoe Books",
                    "ready_by": "2024-12-02",
                },
                "payment": {"method": "card", "total_gbp": 42.97, "gift_wrap": False},
            }
        },
    },
    {
        "slug": "wind-farm",
        "task": "Describe an offshore wind farm: its location, grid connection, the turbine models installed, and recent maintenance visits.",
        "data": {
            "wind_farm": {
                "name": "Dogger Reach Offshore Wind",
                "capacity_mw": 1140.0,
                "location": {"sea": "North Sea", "distance_offshore_km": 131, "water_depth_m": 28},
                "grid": {"substation": "Creyke Beck", "export_kv": 220, "cables": 2},
                "turbines": [
                    {"model": "SG 14-222", "count": 57, "rated_mw": 14.0, "rotor_m": 222},
                    {"model": "V164-9.5", "count": 36, "rated_mw": 9.5, "rotor_m": 164},
                ],
                "maintenance_visits": [
                    {
                        "date": "2024-09-03",
                        "vessel": "Esvagt Alba",
                        "turbines_serviced": ["DR-12", "DR-13", "DR-19"],
                    },
                    {
                        "date": "2024-09-17",
                        "vessel": "Windea Leibniz",
                        "turbines_serviced": ["DR-41", "DR-42"],
                    },
                ],
            }
        },
    },
    {
        "slug": "beach-cleanup",
        "task": "Report on a volunteer beach clean-up: the event, the beach sections covered with their team leaders, the litter collected and the partner groups.",
        "data": {
            "cleanup": {
                "event": "Autumn Shoreline Sweep",
                "date": "2024-09-22",
                "beach": {"name": "Perranporth Beach", "county": "Cornwall", "length_km": 3.2},
                "sections": [
                    {"name": "North Dunes", "leader": "Tamsin Hocking", "volunteers": 23},
                    {"name": "Droskyn Point", "leader": "Aled Morgan", "volunteers": 17},
                ],
                "collected": {
                    "bags": 64,
                    "weight_kg": 212.5,
                    "top_items": ["bottle caps", "fishing line", "crisp packets"],
                },
                "partners": ["Surfers Against Sewage", "Perranzabuloe Parish Council"],
            }
        },
    },
    {
        "slug": "bus-depot",
        "task": "Describe a bus depot: the depot, routes operated from it with their termini, the vehicles allocated, and the charging infrastructure.",
        "data": {
            "depot": {
                "name": "Westfield Road Depot",
                "operator": "Lothian Rivers Buses",
                "routes": [
                    {
                        "number": "22",
                        "termini": ["Ocean Terminal", "Gyle Centre"],
                        "peak_frequency_min": 8,
                    },
                    {"number": "44", "termini": ["Wallyford", "Balerno"], "peak_frequency_min": 10},
                ],
                "vehicles": [
                    {"fleet_number": 1071, "model": "Enviro400EV", "electric": True},
                    {"fleet_number": 664, "model": "Volvo B9TL", "electric": False},
                ],
                "charging": {"chargers": 18, "power_kw": 150, "overnight_only": True},
            }
        },
    },
    {
        "slug": "language-school",
        "task": "Describe a language school's summer programme: the school, the courses offered with their level and weekly hours, accommodation options and excursions.",
        "data": {
            "language_school": {
                "name": "Escuela Sol y Mar",
                "city": "Malaga",
                "accreditation": "Instituto Cervantes",
                "courses": [
                    {
                        "name": "Intensive Spanish",
                        "level": "A2",
                        "hours_per_week": 20,
                        "price_eur": 240.0,
                    },
                    {
                        "name": "Business Spanish",
                        "level": "B2",
                        "hours_per_week": 15,
                        "price_eur": 280.0,
                    },
                    {
                        "name": "DELE Preparation",
                        "level": "C1",
                        "hours_per_week": 25,
                        "price_eur": 320.0,
                    },
                ],
                "accommodation": [
                    {"type": "host family", "meals": "half board", "price_per_week_eur": 210.0},
                    {
                        "type": "student residence",
                        "meals": "self catering",
                        "price_per_week_eur": 180.0,
                    },
                ],
                "excursions": ["Ronda", "Granada", "Nerja caves"],
            }
        },
    },
    {
        "slug": "pottery-studio",
        "task": "Describe a community pottery studio: its kilns and their firing ranges, the clay bodies stocked, and the weekly classes.",
        "data": {
            "studio": {
                "name": "Kiln Yard Ceramics",
                "address": {"street": "3 Foundry Mews", "city": "Stoke-on-Trent"},
                "kilns": [
                    {
                        "name": "big electric",
                        "fuel": "electric",
                        "max_temp_c": 1300,
                        "capacity_l": 180,
                    },
                    {"name": "raku", "fuel": "propane", "max_temp_c": 1000, "capacity_l": 40},
                ],
                "clay_bodies": [
                    {"name": "St Thomas stoneware", "cone": "6", "colour": "buff"},
                    {"name": "Earthstone red", "cone": "04", "colour": "terracotta"},
                ],
                "classes": [
                    {"title": "Wheel Basics", "weekday": "Tuesday", "places": 8},
                    {"title": "Handbuilding Evenings", "weekday": "Thursday", "places": 10},
                ],
            }
        },
    },
    {
        "slug": "car-rental",
        "task": "Describe the fleet of a car rental branch: the branch, vehicle categories with their models and daily rates, insurance options, and opening times.",
        "data": {
            "rental_branch": {
                "name": "Faro Airport Branch",
                "company": "Atlantico Rent",
                "categories": [
                    {
                        "code": "ECMR",
                        "example_model": "Fiat Panda",
                        "seats": 4,
                        "daily_rate_eur": 29.0,
                        "transmission": "manual",
                    },
                    {
                        "code": "CDAR",
                        "example_model": "Renault Clio",
                        "seats": 5,
                        "daily_rate_eur": 38.0,
                        "transmission": "automatic",
                    },
                    {
                        "code": "SVMR",
                        "example_model": "Dacia Jogger",
                        "seats": 7,
                        "daily_rate_eur": 54.0,
                        "transmission": "manual",
                    },
                ],
                "insurance": [
                    {"name": "basic CDW", "excess_eur": 1500.0},
                    {"name": "zero excess", "excess_eur": 0.0},
                ],
                "opening": {"weekdays": "06:00-23:30", "weekends": "07:00-23:00"},
            }
        },
    },
    {
        "slug": "research-cruise",
        "task": "Describe an oceanographic research cruise: the ship, the chief scientist, the sampling stations with their measurements, and the onboard instruments.",
        "data": {
            "cruise": {
                "cruise_id": "JC-268",
                "ship": {"name": "RRS Aurora Bay", "length_m": 99.7, "home_port": "Southampton"},
                "chief_scientist": {
                    "name": "Prof. Helen Achterberg",
                    "institution": "National Oceanography Centre",
                },
                "stations": [
                    {
                        "@id": "S01",
                        "latitude": 49.4,
                        "longitude": -12.1,
                        "depth_m": 2780,
                        "measurements": ["CTD", "nutrients", "chlorophyll"],
                    },
                    {
                        "@id": "S02",
                        "latitude": 48.9,
                        "longitude": -13.6,
                        "depth_m": 3410,
                        "measurements": ["CTD", "trace metals"],
                    },
                ],
                "instruments": ["ADCP", "multibeam echosounder", "rosette sampler"],
                "dates": {"sail": "2025-05-02", "return": "2025-05-29"},
            }
        },
    },
    {
        "slug": "animal-shelter",
        "task": "Describe an animal rescue shelter: the shelter, the animals currently available for adoption with their health records, and the volunteer rota.",
        "data": {
            "shelter": {
                "name": "Second Chance Animal Rescue",
                "charity_number": "1148823",
                "animals": [
                    {
                        "name": "Biscuit",
                        "species": "dog",
                        "age_years": 4,
                        "vaccinated": True,
                        "health": {"weight_kg": 18.2, "neutered": True},
                    },
                    {
                        "name": "Pepper",
                        "species": "cat",
                        "age_years": 2,
                        "vaccinated": True,
                        "health": {"weight_kg": 4.1, "neutered": False},
                    },
                    {
                        "name": "Clover",
                        "species": "rabbit",
                        "age_years": 1,
                        "vaccinated": False,
                        "health": {"weight_kg": 1.9, "neutered": True},
                    },
                ],
                "rota": [
                    {"day": "Saturday", "volunteers": ["Ava", "Reuben"]},
                    {"day": "Sunday", "volunteers": ["Ines", "Malik"]},
                ],
                "adoption_fee_gbp": 150.0,
            }
        },
    },
]

TABLES: list[dict] = [
    {
        "slug": "tide-readings",
        "task": "Tabulate one day of tide gauge readings from a harbour, one row per reading.",
        "root": "tide_readings",
        "row": "reading",
        "docs": {
            "gauge_id": "the identifier of the tide gauge",
            "timestamp": "the local date and time of the reading",
            "height_m": "the water height above chart datum in metres",
            "tide": "whether the reading is a high or a low tide",
            "surge_m": "the storm surge component in metres",
        },
        "rows": [
            {
                "gauge_id": "PLY-01",
                "timestamp": "2024-03-11T02:15",
                "height_m": 5.42,
                "tide": "high",
                "surge_m": 0.18,
            },
            {
                "gauge_id": "PLY-01",
                "timestamp": "2024-03-11T08:31",
                "height_m": 0.71,
                "tide": "low",
                "surge_m": 0.09,
            },
            {
                "gauge_id": "PLY-01",
                "timestamp": "2024-03-11T14:40",
                "height_m": 5.18,
                "tide": "high",
                "surge_m": 0.22,
            },
            {
                "gauge_id": "PLY-01",
                "timestamp": "2024-03-11T20:52",
                "height_m": 0.94,
                "tide": "low",
                "surge_m": 0.11,
            },
        ],
    },
    {
        "slug": "book-loans",
        "task": "List the current loans of a school library, one row per borrowed book.",
        "root": "loans",
        "row": "loan",
        "docs": {
            "loan_id": "the loan number",
            "pupil": "the full name of the borrowing pupil",
            "book_title": "the title of the borrowed book",
            "borrowed": "the date the book was taken out",
            "due": "the date the book must be returned",
            "renewals": "how many times the loan has been renewed",
        },
        "rows": [
            {
                "loan_id": 5521,
                "pupil": "Amira Haddou",
                "book_title": "Holes",
                "borrowed": "2024-10-01",
                "due": "2024-10-15",
                "renewals": 0,
            },
            {
                "loan_id": 5527,
                "pupil": "Finn O'Neill",
                "book_title": "Wonder",
                "borrowed": "2024-10-02",
                "due": "2024-10-16",
                "renewals": 1,
            },
            {
                "loan_id": 5530,
                "pupil": "Grace Mensah",
                "book_title": "Skellig",
                "borrowed": "2024-10-03",
                "due": "2024-10-17",
                "renewals": 0,
            },
        ],
    },
    {
        "slug": "lab-samples",
        "task": "Record water samples received by a testing laboratory, one row per sample.",
        "root": "samples",
        "row": "sample",
        "docs": {
            "sample_code": "the laboratory reference of the sample",
            "site": "where the sample was taken",
            "collected": "the collection date",
            "ph": "the measured pH",
            "nitrate_mg_l": "the nitrate concentration in milligrams per litre",
            "passed": "whether the sample met the drinking water standard",
        },
        "rows": [
            {
                "sample_code": "W-24-0811",
                "site": "Reservoir intake",
                "collected": "2024-06-03",
                "ph": 7.4,
                "nitrate_mg_l": 3.1,
                "passed": True,
            },
            {
                "sample_code": "W-24-0812",
                "site": "Treatment outlet",
                "collected": "2024-06-03",
                "ph": 7.1,
                "nitrate_mg_l": 2.6,
                "passed": True,
            },
            {
                "sample_code": "W-24-0813",
                "site": "Borehole 4",
                "collected": "2024-06-04",
                "ph": 6.3,
                "nitrate_mg_l": 51.8,
                "passed": False,
            },
        ],
    },
    {
        "slug": "departures",
        "task": "Show a regional airport's departures board for the morning, one row per flight.",
        "root": "departures",
        "row": "flight",
        "docs": {
            "flight": "the flight number",
            "destination": "the destination airport",
            "scheduled": "the scheduled departure time",
            "gate": "the departure gate",
            "status": "the current status shown on the board",
        },
        "rows": [
            {
                "flight": "LM 633",
                "destination": "Kirkwall",
                "scheduled": "07:05",
                "gate": "3",
                "status": "boarding",
            },
            {
                "flight": "EZY 214",
                "destination": "Bristol",
                "scheduled": "07:40",
                "gate": "5",
                "status": "on time",
            },
            {
                "flight": "KL 1280",
                "destination": "Amsterdam",
                "scheduled": "08:10",
                "gate": "1",
                "status": "delayed",
            },
            {
                "flight": "LM 471",
                "destination": "Sumburgh",
                "scheduled": "08:35",
                "gate": "2",
                "status": "on time",
            },
        ],
    },
    {
        "slug": "warehouse-stock",
        "task": "Produce a stock count of a hardware warehouse, one row per product line.",
        "root": "stock",
        "row": "line",
        "docs": {
            "sku": "the stock keeping unit code",
            "description": "a short product description",
            "bin": "the storage bin location",
            "quantity": "the number of units counted",
            "reorder_level": "the quantity at which the line is reordered",
            "unit_cost_gbp": "the cost of one unit in pounds sterling",
        },
        "rows": [
            {
                "sku": "HW-10442",
                "description": "M8 hex bolts, box of 100",
                "bin": "A-03-2",
                "quantity": 86,
                "reorder_level": 40,
                "unit_cost_gbp": 6.75,
            },
            {
                "sku": "HW-10587",
                "description": "Galvanised wall plug 6mm",
                "bin": "A-05-1",
                "quantity": 312,
                "reorder_level": 150,
                "unit_cost_gbp": 0.12,
            },
            {
                "sku": "HW-22013",
                "description": "Cordless drill 18V",
                "bin": "C-01-4",
                "quantity": 9,
                "reorder_level": 10,
                "unit_cost_gbp": 64.0,
            },
        ],
    },
    {
        "slug": "monthly-rainfall",
        "task": "Summarise monthly rainfall at an upland weather station for the first half of the year.",
        "root": "rainfall",
        "row": "month",
        "docs": {
            "month": "the month in YYYY-MM form",
            "total_mm": "the total rainfall in millimetres",
            "wet_days": "the number of days with measurable rain",
            "wettest_day_mm": "the rainfall on the wettest day in millimetres",
        },
        "rows": [
            {"month": "2024-01", "total_mm": 212.4, "wet_days": 24, "wettest_day_mm": 31.0},
            {"month": "2024-02", "total_mm": 188.9, "wet_days": 21, "wettest_day_mm": 27.5},
            {"month": "2024-03", "total_mm": 141.2, "wet_days": 19, "wettest_day_mm": 22.8},
            {"month": "2024-04", "total_mm": 96.3, "wet_days": 15, "wettest_day_mm": 18.1},
            {"month": "2024-05", "total_mm": 74.0, "wet_days": 12, "wettest_day_mm": 16.4},
            {"month": "2024-06", "total_mm": 61.7, "wet_days": 10, "wettest_day_mm": 14.9},
        ],
    },
    {
        "slug": "nurse-shifts",
        "task": "Lay out next week's nursing shifts on a hospital ward, one row per shift.",
        "root": "shifts",
        "row": "shift",
        "rows": [
            {
                "nurse": "Joy Adeyemi",
                "band": 6,
                "date": "2024-08-19",
                "start": "07:30",
                "end": "20:00",
                "ward": "Larch",
            },
            {
                "nurse": "Piotr Zielinski",
                "band": 5,
                "date": "2024-08-19",
                "start": "19:30",
                "end": "08:00",
                "ward": "Larch",
            },
            {
                "nurse": "Hannah Birch",
                "band": 7,
                "date": "2024-08-20",
                "start": "07:30",
                "end": "20:00",
                "ward": "Larch",
            },
        ],
    },
    {
        "slug": "seed-catalogue",
        "task": "Build a page of a heritage seed catalogue, one row per variety.",
        "root": "seeds",
        "row": "variety",
        "rows": [
            {
                "variety": "Cherokee Purple",
                "crop": "tomato",
                "days_to_harvest": 80,
                "packet_seeds": 25,
                "price_gbp": 2.95,
                "organic": True,
            },
            {
                "variety": "Boston Pickling",
                "crop": "cucumber",
                "days_to_harvest": 55,
                "packet_seeds": 30,
                "price_gbp": 2.5,
                "organic": False,
            },
            {
                "variety": "Scarlet Emperor",
                "crop": "runner bean",
                "days_to_harvest": 70,
                "packet_seeds": 20,
                "price_gbp": 2.75,
                "organic": True,
            },
            {
                "variety": "Golden Ball",
                "crop": "turnip",
                "days_to_harvest": 60,
                "packet_seeds": 400,
                "price_gbp": 1.95,
                "organic": False,
            },
        ],
    },
    {
        "slug": "earthquakes",
        "task": "List recent earthquakes recorded by a seismic network, one row per event.",
        "root": "events",
        "row": "event",
        "rows": [
            {
                "event_id": "is2024ghjk",
                "origin_time": "2024-05-20T03:12:44Z",
                "magnitude": 3.9,
                "depth_km": 6.1,
                "region": "Reykjanes Peninsula",
            },
            {
                "event_id": "is2024ghmq",
                "origin_time": "2024-05-20T11:47:02Z",
                "magnitude": 2.7,
                "depth_km": 4.8,
                "region": "Reykjanes Peninsula",
            },
            {
                "event_id": "is2024gjab",
                "origin_time": "2024-05-21T22:05:19Z",
                "magnitude": 4.2,
                "depth_km": 8.3,
                "region": "Bardarbunga",
            },
        ],
    },
    {
        "slug": "ferry-crossings",
        "task": "Give the timetable of a ferry route for one day, one row per crossing.",
        "root": "crossings",
        "row": "crossing",
        "rows": [
            {
                "departure_port": "Oban",
                "arrival_port": "Craignure",
                "departs": "07:45",
                "arrives": "08:31",
                "vessel": "MV Isle of Mull",
                "car_spaces": 70,
            },
            {
                "departure_port": "Craignure",
                "arrival_port": "Oban",
                "departs": "08:45",
                "arrives": "09:31",
                "vessel": "MV Isle of Mull",
                "car_spaces": 70,
            },
            {
                "departure_port": "Oban",
                "arrival_port": "Craignure",
                "departs": "10:00",
                "arrives": "10:46",
                "vessel": "MV Loch Frisa",
                "car_spaces": 36,
            },
        ],
    },
    {
        "slug": "meter-readings",
        "task": "Record the half-hourly readings of a building's electricity meter for one morning.",
        "root": "meter_readings",
        "row": "reading",
        "rows": [
            {
                "meter": "MPAN 1200050341",
                "interval_start": "2024-02-05T08:00",
                "kwh": 14.2,
                "estimated": False,
            },
            {
                "meter": "MPAN 1200050341",
                "interval_start": "2024-02-05T08:30",
                "kwh": 17.9,
                "estimated": False,
            },
            {
                "meter": "MPAN 1200050341",
                "interval_start": "2024-02-05T09:00",
                "kwh": 19.4,
                "estimated": True,
            },
            {
                "meter": "MPAN 1200050341",
                "interval_start": "2024-02-05T09:30",
                "kwh": 18.1,
                "estimated": False,
            },
        ],
    },
    {
        "slug": "bird-sightings",
        "task": "Log the bird sightings reported at a nature reserve over a weekend, one row per sighting.",
        "root": "sightings",
        "row": "sighting",
        "rows": [
            {
                "species": "Bittern",
                "count": 1,
                "hide": "Reedbed Hide",
                "observer": "K. Shaw",
                "date": "2024-01-13",
            },
            {
                "species": "Marsh Harrier",
                "count": 2,
                "hide": "Island Mere",
                "observer": "D. Lowe",
                "date": "2024-01-13",
            },
            {
                "species": "Bearded Tit",
                "count": 6,
                "hide": "Reedbed Hide",
                "observer": "K. Shaw",
                "date": "2024-01-14",
            },
        ],
    },
    {
        "slug": "exam-results",
        "task": "Tabulate the module exam results for a small tutorial group, one row per student.",
        "root": "results",
        "row": "student",
        "rows": [
            {
                "student_id": "S2201",
                "name": "Leila Farouk",
                "module": "STAT1002",
                "mark": 74,
                "grade": "A",
                "resit": False,
            },
            {
                "student_id": "S2214",
                "name": "George Pike",
                "module": "STAT1002",
                "mark": 58,
                "grade": "C",
                "resit": False,
            },
            {
                "student_id": "S2230",
                "name": "Mina Sato",
                "module": "STAT1002",
                "mark": 37,
                "grade": "F",
                "resit": True,
            },
        ],
    },
    {
        "slug": "blood-donations",
        "task": "List the donations taken at a mobile blood donation session, one row per donor.",
        "root": "donations",
        "row": "donation",
        "rows": [
            {
                "donor_ref": "D-88120",
                "blood_group": "O-",
                "volume_ml": 470,
                "haemoglobin_g_l": 142,
                "session": "Ludlow Town Hall",
            },
            {
                "donor_ref": "D-90455",
                "blood_group": "A+",
                "volume_ml": 470,
                "haemoglobin_g_l": 131,
                "session": "Ludlow Town Hall",
            },
            {
                "donor_ref": "D-91733",
                "blood_group": "B+",
                "volume_ml": 465,
                "haemoglobin_g_l": 138,
                "session": "Ludlow Town Hall",
            },
        ],
    },
    {
        "slug": "parcel-tracking",
        "task": "Show the tracking events of a parcel in transit, one row per scan.",
        "root": "tracking",
        "row": "scan",
        "rows": [
            {
                "tracking_number": "JD014600003829",
                "scanned_at": "2024-12-09T18:22",
                "location": "Daventry hub",
                "event": "received at hub",
            },
            {
                "tracking_number": "JD014600003829",
                "scanned_at": "2024-12-10T04:51",
                "location": "Glasgow depot",
                "event": "arrived at depot",
            },
            {
                "tracking_number": "JD014600003829",
                "scanned_at": "2024-12-10T07:33",
                "location": "Glasgow depot",
                "event": "out for delivery",
            },
        ],
    },
    {
        "slug": "allotment-plots",
        "task": "Keep the register of plots at a town allotment site, one row per plot.",
        "root": "plots",
        "row": "plot",
        "rows": [
            {
                "plot_number": "12A",
                "tenant": "Derek Holt",
                "size_m2": 125,
                "annual_rent_gbp": 42.0,
                "water_butt": True,
            },
            {
                "plot_number": "12B",
                "tenant": "Shabnam Ali",
                "size_m2": 125,
                "annual_rent_gbp": 42.0,
                "water_butt": False,
            },
            {
                "plot_number": "14",
                "tenant": "Colin and Sue Price",
                "size_m2": 250,
                "annual_rent_gbp": 78.0,
                "water_butt": True,
            },
        ],
    },
]
