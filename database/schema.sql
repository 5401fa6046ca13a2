-- Flight database schema. All SQL of the project lives in database/.
PRAGMA foreign_keys = ON;

CREATE TABLE IF NOT EXISTS metadata (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS airports (
    code  TEXT PRIMARY KEY CHECK (length(code) = 3 AND code = upper(code)),
    city  TEXT NOT NULL,
    state TEXT NOT NULL,
    name  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS flights (
    flight_id      INTEGER PRIMARY KEY,
    flight_number  TEXT NOT NULL,
    origin         TEXT NOT NULL REFERENCES airports (code),
    destination    TEXT NOT NULL REFERENCES airports (code),
    departure_date TEXT NOT NULL,          -- YYYY-MM-DD, local to origin
    departure_time TEXT NOT NULL,          -- YYYY-MM-DD HH:MM
    arrival_time   TEXT NOT NULL,          -- YYYY-MM-DD HH:MM
    status         TEXT NOT NULL DEFAULT 'scheduled' CHECK (status IN ('scheduled', 'delayed', 'cancelled')),
    price_economy  REAL NOT NULL CHECK (price_economy > 0),
    price_business REAL NOT NULL CHECK (price_business > 0),
    price_first    REAL NOT NULL CHECK (price_first > 0),
    seats_economy  INTEGER NOT NULL CHECK (seats_economy >= 0),
    seats_business INTEGER NOT NULL CHECK (seats_business >= 0),
    seats_first    INTEGER NOT NULL CHECK (seats_first >= 0),
    CHECK (origin <> destination),
    CHECK (arrival_time > departure_time),
    UNIQUE (flight_number, departure_date)
);
CREATE INDEX IF NOT EXISTS flights_route ON flights (origin, destination, departure_date);

CREATE TABLE IF NOT EXISTS passengers (
    passenger_id INTEGER PRIMARY KEY,
    full_name    TEXT NOT NULL UNIQUE CHECK (length(full_name) BETWEEN 1 AND 64)
);

CREATE TABLE IF NOT EXISTS bookings (
    confirmation_code TEXT PRIMARY KEY CHECK (length(confirmation_code) = 6),
    flight_id         INTEGER NOT NULL REFERENCES flights (flight_id),
    passenger_id      INTEGER NOT NULL REFERENCES passengers (passenger_id),
    cabin             TEXT NOT NULL CHECK (cabin IN ('economy', 'business', 'first')),
    passenger_name    TEXT NOT NULL,
    num_passengers    INTEGER NOT NULL CHECK (num_passengers BETWEEN 1 AND 9),
    total_price       REAL NOT NULL CHECK (total_price > 0),
    status            TEXT NOT NULL DEFAULT 'booked' CHECK (status IN ('booked', 'cancelled')),
    created_at        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bookings_flight ON bookings (flight_id);
