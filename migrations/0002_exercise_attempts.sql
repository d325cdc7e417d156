-- One row per learner and exercise; `lesson` is "module/lesson". An attempt starts when
-- the learner first works on the exercise in a playground (its setup is done then).
CREATE TABLE exercise_attempts (
    learner_id         TEXT NOT NULL REFERENCES learners(id) ON DELETE CASCADE,
    lesson             TEXT NOT NULL,
    exercise           TEXT NOT NULL,
    started_at         INTEGER NOT NULL,
    completed_at       INTEGER,
    hints_used         INTEGER NOT NULL DEFAULT 0,
    solution_viewed_at INTEGER,
    PRIMARY KEY (learner_id, lesson, exercise)
) WITHOUT ROWID;
