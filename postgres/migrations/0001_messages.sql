-- Messages, one row per id. Ids sort in time order as text under the "C"
-- collation, so history pages are keyset scans of (room, id).
CREATE TABLE messages (
    id        text COLLATE "C" PRIMARY KEY,
    room      text NOT NULL,
    sender    text NOT NULL,
    cid       text,
    body      text NOT NULL,
    ts        bigint NOT NULL,
    region    text NOT NULL
);

CREATE INDEX messages_room_id ON messages (room, id COLLATE "C");

-- A client retry with the same cid must never be stored twice, even if it
-- reached Kafka under two ids.
CREATE UNIQUE INDEX messages_room_sender_cid ON messages (room, sender, cid) WHERE cid IS NOT NULL;
