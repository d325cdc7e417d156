//! Exercise attempts: when a learner started an exercise, finished it, how many hints
//! they revealed and whether they looked at the solution.

use anyhow::Result;

use super::{LearnerId, Store, now};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempt {
    pub started_at: i64,
    pub completed_at: Option<i64>,
    pub hints_used: i64,
    pub solution_viewed_at: Option<i64>,
}

/// An attempt row with the exercise it belongs to.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub lesson: String,
    pub exercise: String,
    pub attempt: Attempt,
}

/// lesson, exercise, started_at, completed_at, hints_used, solution_viewed_at.
type AttemptColumns = (String, String, i64, Option<i64>, i64, Option<i64>);

impl Store {
    /// Makes the attempt if it is new, then runs `update` (if any) on it, in one
    /// transaction; returns the rows `update` changed. `update` binds `value`, then the
    /// learner, the lesson and the exercise, in that order.
    async fn update_attempt(
        &self,
        id: &LearnerId,
        lesson: &str,
        exercise: &str,
        update: Option<&'static str>,
        value: i64,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        self.ensure_learner(&mut tx, id).await?;
        sqlx::query(
            "INSERT OR IGNORE INTO exercise_attempts (learner_id, lesson, exercise, started_at) VALUES (?, ?, ?, ?)",
        )
        .bind(id.as_str())
        .bind(lesson)
        .bind(exercise)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        let mut changed = 0;
        if let Some(update) = update {
            changed = sqlx::query(update)
                .bind(value)
                .bind(id.as_str())
                .bind(lesson)
                .bind(exercise)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Records that the learner started an exercise (once; later calls change nothing).
    pub async fn start_attempt(&self, id: &LearnerId, lesson: &str, exercise: &str) -> Result<()> {
        self.update_attempt(id, lesson, exercise, None, 0).await?;
        Ok(())
    }

    /// Records that the exercise is done. Returns whether this is the first time.
    pub async fn complete_attempt(&self, id: &LearnerId, lesson: &str, exercise: &str) -> Result<bool> {
        let changed = self
            .update_attempt(
                id,
                lesson,
                exercise,
                Some(
                    "UPDATE exercise_attempts SET completed_at = ?
                 WHERE learner_id = ? AND lesson = ? AND exercise = ? AND completed_at IS NULL",
                ),
                now(),
            )
            .await?;
        Ok(changed == 1)
    }

    /// Records that hints up to `n` (1-based) were revealed.
    pub async fn use_hints(&self, id: &LearnerId, lesson: &str, exercise: &str, n: i64) -> Result<()> {
        self.update_attempt(
            id,
            lesson,
            exercise,
            Some(
                "UPDATE exercise_attempts SET hints_used = MAX(hints_used, ?)
             WHERE learner_id = ? AND lesson = ? AND exercise = ?",
            ),
            n,
        )
        .await?;
        Ok(())
    }

    pub async fn view_solution(&self, id: &LearnerId, lesson: &str, exercise: &str) -> Result<()> {
        self.update_attempt(
            id,
            lesson,
            exercise,
            Some(
                "UPDATE exercise_attempts SET solution_viewed_at = COALESCE(solution_viewed_at, ?)
             WHERE learner_id = ? AND lesson = ? AND exercise = ?",
            ),
            now(),
        )
        .await?;
        Ok(())
    }

    /// The learner's attempts, in one lesson or (with `None`) everywhere.
    pub async fn attempts(&self, id: &LearnerId, lesson: Option<&str>) -> Result<Vec<AttemptRow>> {
        let rows: Vec<AttemptColumns> = sqlx::query_as(
            "SELECT lesson, exercise, started_at, completed_at, hints_used, solution_viewed_at
             FROM exercise_attempts WHERE learner_id = ? AND (? IS NULL OR lesson = ?)
             ORDER BY lesson, started_at",
        )
        .bind(id.as_str())
        .bind(lesson)
        .bind(lesson)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(lesson, exercise, started_at, completed_at, hints_used, solution_viewed_at)| AttemptRow {
                    lesson,
                    exercise,
                    attempt: Attempt {
                        started_at,
                        completed_at,
                        hints_used,
                        solution_viewed_at,
                    },
                },
            )
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn attempts_are_kept_in_a_real_sqlite_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let me = LearnerId::random();
        store.start_attempt(&me, "volumes/named", "keep-notes").await.unwrap();
        store.use_hints(&me, "volumes/named", "keep-notes", 2).await.unwrap();
        store.use_hints(&me, "volumes/named", "keep-notes", 1).await.unwrap();
        assert!(
            store
                .complete_attempt(&me, "volumes/named", "keep-notes")
                .await
                .unwrap()
        );
        assert!(
            !store
                .complete_attempt(&me, "volumes/named", "keep-notes")
                .await
                .unwrap()
        );
        store.view_solution(&me, "volumes/named", "other").await.unwrap();
        drop(store);

        let again = Store::open(dir.path()).await.unwrap();
        let all = again.attempts(&me, None).await.unwrap();
        assert_eq!(all.len(), 2);
        let keep = all.iter().find(|r| r.exercise == "keep-notes").unwrap();
        assert_eq!(keep.attempt.hints_used, 2);
        assert!(keep.attempt.completed_at.is_some() && keep.attempt.solution_viewed_at.is_none());
        let other = again.attempts(&me, Some("volumes/named")).await.unwrap();
        assert!(
            other
                .iter()
                .any(|r| r.exercise == "other" && r.attempt.solution_viewed_at.is_some())
        );
        assert!(again.attempts(&me, Some("networks/x")).await.unwrap().is_empty());
    }
}
