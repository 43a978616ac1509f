"""`carecast contacts import`: good rows land, bad rows are named by line, reruns change nothing."""

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from carecast.campaign.load import load_campaign
from carecast.contacts.csv_import import ImportFileError, import_contacts
from carecast.contacts.kept import AddressKey
from carecast.filters.model import parse_filter
from carecast.filters.sql import to_sql
from carecast.store.models import ConsentRecord, Contact, Preferences, utcnow

pytestmark = pytest.mark.store
ROOT = Path(__file__).resolve().parent.parent

HEADER = "id,email,phone,timezone,locale,lifecycle_stage,preferences,attr.first_name\n"
SMS_YES = json.dumps({"consent": {"sms": True}, "topics": {"offers": False}}).replace('"', '""')


KEY = AddressKey("k" * 32)


def import_file(sessions, path, **options):
    return import_contacts(sessions, path, address_key=KEY, **options)


def csv_file(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "contacts.csv"
    path.write_text(header + "".join(row + "\n" for row in rows))
    return path


def count(sessions, model):
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_valid_rows_are_normalised_and_stored(sessions, tmp_path):
    path = csv_file(tmp_path, f'c-1,Ada@EXAMPLE.com,+1 415 555 0101,America/Los_Angeles,en-US,new,"{SMS_YES}",Ada')
    report = import_file(sessions, path)
    assert (report.summary.created, report.rejected) == (1, [])
    with sessions() as session:
        contact = session.get(Contact, "c-1")
        prefs = session.get(Preferences, "c-1")
    assert (contact.email, contact.phone, contact.attributes) == (
        "Ada@example.com",
        "+14155550101",
        {"first_name": "Ada"},
    )
    assert (prefs.email_consent, prefs.sms_consent, prefs.voice_consent, prefs.topics) == (
        True,
        True,
        False,
        {"offers": False},
    )


def test_bad_rows_are_reported_by_line_and_the_good_ones_still_land(sessions, tmp_path):
    path = csv_file(
        tmp_path,
        "c-1,ada@example.com,+14155550101,,,,,Ada",
        "c-2,not-an-email,,,,,,Bo",
        "c-3,,+1 555,,,,,Cy",
        "c-4,,,Mars/Base,,,,Di",
        "c-1,other@example.com,,,,,,Dup",
        'c-5,,,,,,"{""consent"": {""sms"": yes}}",Eve',
        "c-6,e@example.com,,,,,,Fay,extra",
    )
    report = import_file(sessions, path)
    assert [str(e) for e in report.rejected] == [
        "line 3 (c-2): email: invalid email 'not-an-email': An email address must have an @-sign.",
        "line 4 (c-3): phone: invalid phone '+1 555': not a valid number for its region",
        "line 5 (c-4): timezone: unknown time zone 'Mars/Base'; use an IANA name such as Europe/Paris",
        "line 6 (c-1): duplicate id; first seen on line 2",
        "line 7 (c-5): preferences: not valid JSON (Expecting value at column 21)",
        "line 8: the row has more cells than the header has columns",
    ]
    assert report.summary.created == 1
    assert count(sessions, Contact) == 1


def test_a_local_number_needs_a_default_region(sessions, tmp_path):
    path = csv_file(tmp_path, "c-1,,(415) 555-0101,,,,,Ada")
    assert "pass a default region" in str(import_file(sessions, path).rejected[0])
    assert import_file(sessions, path, default_region="US").summary.created == 1


def test_reimporting_the_same_file_changes_nothing_and_records_no_consent_again(sessions, tmp_path):
    path = csv_file(tmp_path, f'c-1,ada@example.com,+14155550101,,,,"{SMS_YES}",Ada', "c-2,bo@example.com,,,,,,Bo")
    first = import_file(sessions, path)
    records = count(sessions, ConsentRecord)
    second = import_file(sessions, path)
    assert (first.summary.created, second.summary.created, second.summary.updated, second.summary.unchanged) == (
        2,
        0,
        0,
        2,
    )
    assert records == count(sessions, ConsentRecord) == 2  # sms granted, offers withdrawn


def test_a_changed_row_updates_only_that_contact(sessions, tmp_path):
    import_file(sessions, csv_file(tmp_path, "c-1,ada@example.com,,,,,,Ada", "c-2,bo@example.com,,,,,,Bo"))
    report = import_file(sessions, csv_file(tmp_path, "c-1,ada@example.com,,,,,,Ada", "c-2,bo@example.org,,,,,,Bo"))
    assert (report.summary.updated, report.summary.unchanged) == (1, 1)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("id,email,phnoe\n", "unknown column 'phnoe'"),
        ("email,phone\n", "there is no 'id' column"),
        ("id,email,email\n", "column 'email' appears twice"),
    ],
)
def test_a_bad_header_stops_the_import_before_any_row(sessions, tmp_path, header, message):
    path = csv_file(tmp_path, "c-1,ada@example.com,x", header=header)
    with pytest.raises(ImportFileError, match=message):
        import_file(sessions, path)
    assert count(sessions, Contact) == 0


def test_an_empty_file_asks_for_a_header(sessions, tmp_path):
    with pytest.raises(ImportFileError, match="the file is empty; the first line must name the columns"):
        import_file(sessions, csv_file(tmp_path, header=""))


def test_a_file_that_is_not_utf8_is_refused_with_a_hint(sessions, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("id,attr.city\nc-1,Besançon\n".encode("latin-1"))
    with pytest.raises(ImportFileError, match="is not UTF-8 text; save it as CSV UTF-8"):
        import_file(sessions, path)


def test_an_email_address_as_contact_id_is_refused_by_line(sessions, tmp_path):
    path = csv_file(tmp_path, "ada@example.com,ada@example.com,,,,,,Ada", "c-2,bo@example.com,,,,,,Bo")
    report = import_file(sessions, path)
    [refused] = [str(e) for e in report.rejected]
    assert refused.startswith("line 2 (ada@example.com): id: contact ids may not be an email address")
    assert count(sessions, Contact) == 1


def test_a_cell_with_escape_sequences_or_deep_nesting_is_reported_plainly(sessions, tmp_path):
    deep = "[" * 50_000 + "]" * 50_000
    path = csv_file(tmp_path, "c-1,\x1b[31mred\x1b[0m@x,,,,,,Ada", f'c-2,,,,,,"{deep}",Bo')
    report = import_file(sessions, path)
    first, second = (str(e) for e in report.rejected)
    assert "\x1b" not in first and "\\x1b[31mred" in first
    assert second == "line 3 (c-2): preferences: nested too deeply; a preferences object is two levels deep"


TYPED = (
    "id,email,lifecycle_stage,attr.wishlist_in_stock:bool,attr.visits:int,attr.spent:number,attr.last_order_at:datetime,"
    "attr.born:date,attr.note\n"
)


def test_typed_attribute_columns_store_what_filters_compare(sessions, tmp_path):
    """The shipped back_in_stock audience matches a contact imported with `true` in a bool column."""
    header = TYPED.replace("attr.note\n", "attr.note,attr.wishlist_item\n")
    ada = "c-1,ada@example.com,active,TRUE,3,12.50,2026-11-02T09:30:00+01:00,1990-05-01,true,a kettle"
    path = csv_file(tmp_path, ada, "c-2,bo@example.com,active,no,,,,,,", header=header)
    assert import_file(sessions, path).rejected == []
    with sessions() as session:
        attributes = session.get(Contact, "c-1").attributes
        audience = parse_filter(load_campaign(ROOT / "campaigns" / "back_in_stock.yaml").audience)
        reached = session.scalars(select(Contact.id).where(to_sql(audience, utcnow()))).all()
    assert attributes == {"wishlist_in_stock": True, "visits": 3, "spent": 12.5, "born": "1990-05-01",
                          "last_order_at": "2026-11-02T08:30:00+00:00", "note": "true",
                          "wishlist_item": "a kettle"}  # fmt: skip
    assert reached == ["c-1"]


@pytest.mark.parametrize(
    ("cell", "says"),
    [
        ("maybe,1,1,2026-11-02T09:30:00Z,1990-05-01,x", "attr.wishlist_in_stock:bool: 'maybe' is not a bool"),
        ("true,3.5,1,2026-11-02T09:30:00Z,1990-05-01,x", "attr.visits:int: '3.5' is not a whole number"),
        ("true,3,1;5,2026-11-02T09:30:00Z,1990-05-01,x", "attr.spent:number: '1;5' is not a number"),
        ("true,3,1,2026-11-02T09:30:00,1990-05-01,x", "attr.last_order_at:datetime: '2026-11-02T09:30:00' has no time"),
        ("true,3,1,2026-11-02T09:30:00Z,01/05/1990,x", "attr.born:date: '01/05/1990' is not a date"),
    ],
)
def test_a_cell_that_is_not_its_columns_type_refuses_its_row_only(sessions, tmp_path, cell, says):
    path = csv_file(tmp_path, f"c-1,ada@example.com,new,{cell}", "c-2,bo@example.com,new,true,1,1,,,", header=TYPED)
    report = import_file(sessions, path)
    [rejected] = report.rejected
    assert str(rejected).startswith(f"line 2 (c-1): {says}")
    assert report.summary.created == 1


def test_an_unknown_attribute_type_stops_the_import_before_any_row(sessions, tmp_path):
    path = csv_file(tmp_path, "c-1,true", header="id,attr.vip:boolean\n")
    with pytest.raises(ImportFileError, match="column 'attr.vip:boolean': unknown type 'boolean'; use text, bool"):
        import_file(sessions, path)
    assert count(sessions, Contact) == 0


def test_a_column_imported_again_with_its_type_corrected_stores_the_new_type(sessions, tmp_path):
    """1 == True in Python: a bool column imported after an int one must not be taken as unchanged."""
    first = import_file(sessions, csv_file(tmp_path, "c-1,1", header="id,attr.vip:int\n"))
    second = import_file(sessions, csv_file(tmp_path, "c-1,true", header="id,attr.vip:bool\n"))
    assert (first.summary.created, second.summary.updated) == (1, 1)
    with sessions() as session:
        assert session.get(Contact, "c-1").attributes["vip"] is True


def test_a_date_in_a_datetime_column_is_told_how_to_write_it(sessions, tmp_path):
    report = import_file(sessions, csv_file(tmp_path, "c-1,2026-11-02", header="id,attr.at:datetime\n"))
    assert str(report.rejected[0]).endswith("'2026-11-02' is a date with no time: write 2026-11-02T00:00:00Z, or "
                                            "declare the column :date")  # fmt: skip
