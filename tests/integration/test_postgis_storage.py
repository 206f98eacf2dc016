"""PostGIS specifics of the schema: the generated geography column and its index."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from geoalchemy2 import Geography
from geoalchemy2.elements import WKTElement
from sqlalchemy import cast, column, func, select, table, text

from tracker.models import Batch, NewPosition
from tracker.storage import SqlStore

pytestmark = pytest.mark.postgis

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
BERLIN_TV_TOWER = (13.4094, 52.5208)   # (lon, lat)


@pytest.fixture
def pg_store(fresh_postgis_url) -> Iterator[SqlStore]:
    store = SqlStore(fresh_postgis_url)
    store.migrate()
    try:
        yield store
    finally:
        store.close()


def write(store: SqlStore, *lon_lat: tuple[float, float]) -> int:
    """Store one position per (lon, lat) for a new device; returns the device id."""
    device = store.add_device(f"dev{len(store.devices()) + 1}", "Van")
    store.write_batch(Batch(positions=tuple(
        NewPosition(device_id=device.id, protocol="osmand", server_time=T0,
                    device_time=T0, fix_time=T0 + dt.timedelta(minutes=i), valid=True,
                    longitude=lon, latitude=lat)
        for i, (lon, lat) in enumerate(lon_lat))))
    return device.id


def test_migrate_creates_the_postgis_extension(fresh_postgis_url):
    store = SqlStore(fresh_postgis_url)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pg_extension "
                                 "WHERE extname = 'postgis'")).scalar_one() == 0
    store.migrate()
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pg_extension "
                                 "WHERE extname = 'postgis'")).scalar_one() == 1
    store.close()


def test_migrate_on_a_database_that_already_has_postgis(postgis_url):
    """The shared session database has PostGIS already; migrate twice is fine."""
    store = SqlStore(postgis_url)
    store.migrate()
    store.migrate()
    store.ping()
    store.close()


def test_geom_is_a_generated_geography_point_with_srid_4326(pg_store):
    with pg_store.engine.connect() as conn:
        kind = conn.execute(text(
            "SELECT type, srid FROM geography_columns "
            "WHERE f_table_name = 'positions' AND f_geography_column = 'geom'")).one()
        generated = conn.execute(text(
            "SELECT is_generated FROM information_schema.columns "
            "WHERE table_name = 'positions' AND column_name = 'geom'")).scalar_one()
    assert tuple(kind) == ("Point", 4326)
    assert generated == "ALWAYS"


def test_geom_has_a_gist_index(pg_store):
    with pg_store.engine.connect() as conn:
        definitions = conn.execute(text(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'positions'")).scalars().all()
    assert any("USING gist (geom)" in d for d in definitions), definitions


def test_geom_is_filled_from_longitude_and_latitude(pg_store):
    write(pg_store, BERLIN_TV_TOWER)
    with pg_store.engine.connect() as conn:
        lon, lat, srid = conn.execute(text(
            "SELECT ST_X(geom::geometry), ST_Y(geom::geometry), ST_SRID(geom) "
            "FROM positions")).one()
    assert (lon, lat, srid) == (*BERLIN_TV_TOWER, 4326)


def test_out_of_range_coordinates_give_no_geom_instead_of_failing(pg_store):
    """PostGIS would wrap latitude 95 to 85; the store keeps the row, geom NULL."""
    write(pg_store, (13.4, 95.0), (200.0, 10.0), (float("nan"), 1.0), (-180.0, -90.0))
    with pg_store.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT latitude, geom IS NULL FROM positions ORDER BY fix_time")).all()
    assert [no_geom for _, no_geom in rows] == [True, True, True, False]


def test_st_dwithin_finds_positions_near_a_point(pg_store):
    """Within 100 m of the tower: the point 50 m away, not the one 5 km away."""
    lon, lat = BERLIN_TV_TOWER
    near = write(pg_store, (lon + 0.0007, lat))    # about 47 m east
    far = write(pg_store, (lon + 0.0740, lat))     # about 5 km east
    positions = table("positions", column("device_id"), column("geom", Geography))
    centre = cast(WKTElement(f"POINT({lon} {lat})", srid=4326), Geography(srid=4326))
    with pg_store.engine.connect() as conn:
        found = conn.execute(select(positions.c.device_id)
                             .where(func.ST_DWithin(positions.c.geom, centre, 100))).scalars()
        assert list(found) == [near]
        found = conn.execute(select(positions.c.device_id)
                             .where(func.ST_DWithin(positions.c.geom, centre, 6000))
                             .order_by(positions.c.device_id)).scalars()
        assert list(found) == [near, far]


def test_st_dwithin_can_use_the_gist_index(pg_store):
    write(pg_store, BERLIN_TV_TOWER)
    with pg_store.engine.connect() as conn:
        conn.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(conn.execute(text(
            "EXPLAIN SELECT id FROM positions WHERE ST_DWithin(geom, "
            "ST_GeogFromText('SRID=4326;POINT(13.4 52.5)'), 100)")).scalars())
    assert "ix_positions_geom" in plan, plan


def test_a_history_page_is_an_index_range_scan(pg_store):
    """`positions_page` (after a cursor) reads the (device_id, fix_time) index, not the
    whole positions table: the plan PostgreSQL chooses for the very statement sent."""
    from sqlalchemy import event

    from tracker.models import User
    from tracker.ports import PositionCursor

    device_ids = []
    for n in range(10):
        device = pg_store.add_device(f"page{n}", "Van")
        device_ids.append(device.id)
        pg_store.write_batch(Batch(positions=tuple(
            NewPosition(device_id=device.id, protocol="osmand", server_time=T0,
                        device_time=T0, fix_time=T0 + dt.timedelta(seconds=i), valid=True,
                        longitude=13.4, latitude=52.5) for i in range(1000))))
    with pg_store.engine.begin() as conn:
        conn.execute(text("ANALYZE positions"))
    admin = User(id=0, email="a@example.com", name="", organisation_id=1, administrator=True)
    sent = []

    def record(conn, cursor, statement, parameters, *_context) -> None:
        if "FROM positions" in statement:
            sent.append((statement, parameters))

    event.listen(pg_store.engine, "before_cursor_execute", record)
    try:
        page = pg_store.positions_page(admin, device_ids[4], T0, T0 + dt.timedelta(hours=1),
                                       limit=50, after=PositionCursor(T0 + dt.timedelta(seconds=500), 0))
    finally:
        event.remove(pg_store.engine, "before_cursor_execute", record)
    assert [p.fix_time for p in page.positions][:1] == [T0 + dt.timedelta(seconds=500)]
    assert len(page.positions) == 50 and page.next is not None
    (statement, parameters), = sent
    raw = pg_store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN " + statement, parameters)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    finally:
        raw.close()
    assert "Index" in plan and "Seq Scan on positions" not in plan, plan
