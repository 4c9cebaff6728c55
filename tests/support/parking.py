"""Parking lots and bookings for tests, made through the public API like any client."""

from __future__ import annotations

from tests.support.graphql import GraphQL

LOT_FIELDS = "id name pricePerHour spotCount active free occupied reserved opensAt closesAt"
BOOKING_FIELDS = (
    "id status vehicleNumber reservedFrom reservedUntil parkedAt leftAt cost rate "
    "user { username } spot { id number lot { id } }"
)
CREATE_LOT = f"""mutation($input: CreateParkingLotInput!) {{
  createParkingLot(input: $input) {{ {LOT_FIELDS} }} }}"""
UPDATE_LOT = f"""mutation($id: ID!, $input: UpdateParkingLotInput!) {{
  updateParkingLot(id: $id, input: $input) {{ {LOT_FIELDS} }} }}"""
PARK = f"""mutation($lot: ID!, $v: String!, $spot: Int) {{
  park(lotId: $lot, vehicleNumber: $v, spotNumber: $spot) {{ {BOOKING_FIELDS} }} }}"""
LEAVE = f"""mutation($id: ID!, $force: Boolean) {{
  leave(bookingId: $id, force: $force) {{ {BOOKING_FIELDS} }} }}"""
RESERVE = f"""mutation($lot: ID!, $from: DateTime!, $until: DateTime!, $v: String!) {{
  reserveSpot(lotId: $lot, from: $from, until: $until, vehicleNumber: $v) {{ {BOOKING_FIELDS} }}
}}"""
CANCEL = f"""mutation($id: ID!) {{ cancelSpotBooking(bookingId: $id) {{ {BOOKING_FIELDS} }} }}"""
LOT = f"query($id: ID!) {{ parkingLot(id: $id) {{ {LOT_FIELDS} }} }}"
SETTINGS = """mutation($input: RuntimeSettingsInput!) {
  updateRuntimeSettings(input: $input) { maxActiveParkingsPerUser } }"""


async def lot(api: GraphQL, admin: str, **fields) -> dict:
    given = {"name": "North", "pricePerHour": "2.50", "spotCount": 3, **fields}
    return (await api.data(CREATE_LOT, {"input": given}, token=admin))["createParkingLot"]


async def park(api: GraphQL, token: str, lot_id: str, vehicle: str = "HF001", spot=None) -> dict:
    """The whole response (it may be an error)."""
    return await api.post(PARK, {"lot": lot_id, "v": vehicle, "spot": spot}, token=token)


async def settings(api: GraphQL, admin: str, **values) -> None:
    await api.data(SETTINGS, {"input": values}, token=admin)
