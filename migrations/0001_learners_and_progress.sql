-- Learners are created on their first recorded progress; an account is a learner with a
-- username and a password hash (argon2id, PHC string).
CREATE TABLE learners (
    id            TEXT PRIMARY KEY NOT NULL,
    created_at    INTEGER NOT NULL,
    username      TEXT UNIQUE COLLATE NOCASE,
    password_hash TEXT,
    CHECK ((username IS NULL) = (password_hash IS NULL))
);

-- One row per learner and lesson; `lesson` is "module/lesson".
CREATE TABLE lesson_progress (
    learner_id   TEXT NOT NULL REFERENCES learners(id) ON DELETE CASCADE,
    lesson       TEXT NOT NULL,
    opened_at    INTEGER NOT NULL,
    completed_at INTEGER,
    PRIMARY KEY (learner_id, lesson)
) WITHOUT ROWID;
