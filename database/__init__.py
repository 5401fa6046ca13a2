"""Flight database: typed data access, episode isolation, tool functions.

The deterministic builder is ``database.build`` (``python -m database.build``)."""

from database.episode import EpisodeDatabase
from database.flight_db import CABINS, BookingError, FlightDatabase
from database.tools import READ_TOOLS, WRITE_TOOLS, FlightTools

__all__ = [
    "CABINS", "READ_TOOLS", "WRITE_TOOLS", "BookingError", "EpisodeDatabase", "FlightDatabase", "FlightTools",
]
